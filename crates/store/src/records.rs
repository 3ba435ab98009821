//! The rows the store reads and writes, as domain-typed records.

use canarykeys_core::{
    AccessKeyId, AccountId, Email, IamUserName, ManageSecretHash, Memo, OutputFormat, Region,
    TokenId, TokenKind, WebhookUrl,
};

/// A token as stored. The secret access key is sealed (encrypted) by the server before it gets
/// here: the store never sees it in the clear.
#[derive(Clone, Debug)]
pub struct TokenRecord {
    pub id: TokenId,
    pub kind: TokenKind,
    pub memo: Memo,
    pub email: Option<Email>,
    pub email_enabled: bool,
    pub webhook: Option<WebhookUrl>,
    pub webhook_enabled: bool,
    pub manage_hash: ManageSecretHash,
    /// Which minter made the key (`local`, `iam`, …).
    pub minter: String,
    pub access_key_id: AccessKeyId,
    pub secret_sealed: String,
    pub username: IamUserName,
    pub account_id: AccountId,
    pub region: Region,
    pub output: OutputFormat,
    /// Unix time in milliseconds.
    pub created_at: i64,
    /// When the expiry job deletes the token and its key (unix ms).
    pub expires_at: Option<i64>,
    /// Alerting state, kept by the outbox (new tokens start with the defaults).
    pub alerting: Alerting,
}

/// A mint in progress, written before the minter's first call and removed once its token is
/// stored. One left behind means a crash in between: the reconciler cleans up after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MintIntent {
    pub id: String,
    pub minter: String,
    /// What the minter made, once it answered; `None` when it never did.
    pub minted: Option<MintedRef>,
    pub created_at: i64,
}

/// The key a mint made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MintedRef {
    pub account_id: AccountId,
    pub username: IamUserName,
    pub access_key_id: AccessKeyId,
}

/// A token's alerting state: the open cooldown window, the ignored sources, channel health.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alerting {
    /// While set and in the future, new hits are gathered into a summary (unix ms).
    pub cooldown_until: Option<i64>,
    /// Source addresses and CIDR ranges whose hits are recorded but not alerted.
    pub ignore_sources: Vec<String>,
    /// Why a channel was switched off by the server (consecutive permanent failures).
    pub email_disabled_reason: Option<String>,
    pub webhook_disabled_reason: Option<String>,
}

/// Which alert channels to switch on or off.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChannelSwitches {
    pub email: Option<bool>,
    pub webhook: Option<bool>,
}

/// One recorded use of a token's key. Every text field came from outside (CloudTrail, a
/// caller): it is stored as received and escaped wherever it is shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HitRecord {
    pub id: String,
    pub token_id: TokenId,
    /// CloudTrail's `eventID`: the dedupe key across every path and redelivery.
    pub event_id: String,
    /// Unix time in milliseconds, as the event says.
    pub event_time: i64,
    /// Unix time in milliseconds, when it reached us (so the real detection delay is visible).
    pub received_at: i64,
    pub event_name: String,
    pub event_source: String,
    pub region: String,
    pub source_ip: String,
    pub user_agent: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub account_id: Option<String>,
    pub access_key_id: Option<String>,
    /// `tlsDetails.clientProvidedHostHeader`: which endpoint the caller talked to.
    pub tls_host: Option<String>,
    pub vpc_endpoint_id: Option<String>,
    pub request_id: Option<String>,
    /// The way it reached us (`cloudwatch-logs`, `eventbridge`, `s3`, `api`, `cli`, `safety-net`).
    pub path: String,
    /// A remark on how the use was seen (the safety net says CloudTrail did not log the call).
    pub note: Option<String>,
    /// Why the hit raised no alert of its own (set by the planner, e.g. an ignored source).
    pub suppressed: Option<String>,
    /// The whole record, as JSON.
    pub raw: String,
}

/// The alert channels a delivery can go through: a token's own (email, webhook), or one of the
/// operator's streams (`[streams.<type>]`), which get every token's alerts in a lane of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelKind {
    Email,
    Webhook,
    Stream(StreamKind),
}

impl ChannelKind {
    /// A token's own channels (each has its switch and failure count on the token).
    pub const ALL: [Self; 2] = [Self::Email, Self::Webhook];

    /// The `channel` column: `email`, `webhook`, or `stream:<type>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Webhook => "webhook",
            Self::Stream(s) => s.channel(),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        if let Some(kind) = s.strip_prefix("stream:") {
            return StreamKind::parse(kind).map(Self::Stream);
        }
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The stream types (`[streams.<type>]`): operator-level sinks such as a SIEM or a pager.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamKind {
    Syslog,
    SplunkHec,
    Elastic,
    Ocsf,
    Pagerduty,
}

impl StreamKind {
    pub const ALL: [Self; 5] = [
        Self::Syslog,
        Self::SplunkHec,
        Self::Elastic,
        Self::Ocsf,
        Self::Pagerduty,
    ];

    /// The type's name, as its config section (`[streams.splunk_hec]`) and lane say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syslog => "syslog",
            Self::SplunkHec => "splunk_hec",
            Self::Elastic => "elastic",
            Self::Ocsf => "ocsf",
            Self::Pagerduty => "pagerduty",
        }
    }

    /// The `channel` column of its deliveries.
    fn channel(self) -> &'static str {
        match self {
            Self::Syslog => "stream:syslog",
            Self::SplunkHec => "stream:splunk_hec",
            Self::Elastic => "stream:elastic",
            Self::Ocsf => "stream:ocsf",
            Self::Pagerduty => "stream:pagerduty",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for StreamKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stream of deliveries sent in order: a token's by one channel, the operator channel's
/// by one channel, or one operator stream's (every token's alerts, in the order written).
/// Stored as `token/<id>/<channel>`, `operator/<channel>` or `stream/<type>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    Token(TokenId, ChannelKind),
    Operator(ChannelKind),
    Stream(StreamKind),
}

impl Lane {
    /// The lane of a delivery for `token` (none: the operator channel) by `channel`. A
    /// stream's deliveries share its lane, whatever the token.
    pub fn of(token: Option<&TokenId>, channel: ChannelKind) -> Self {
        match (token, channel) {
            (_, ChannelKind::Stream(s)) => Self::Stream(s),
            (Some(t), c) => Self::Token(t.clone(), c),
            (None, c) => Self::Operator(c),
        }
    }

    /// Reads a stored lane key; `None` for one this version does not know.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('/');
        let lane = match (parts.next()?, parts.next(), parts.next()) {
            ("token", Some(id), Some(channel)) => {
                Self::Token(TokenId::parse(id).ok()?, ChannelKind::parse(channel)?)
            }
            ("operator", Some(channel), None) => Self::Operator(ChannelKind::parse(channel)?),
            ("stream", Some(kind), None) => Self::Stream(StreamKind::parse(kind)?),
            _ => return None,
        };
        parts.next().is_none().then_some(lane)
    }

    pub fn channel(&self) -> ChannelKind {
        match self {
            Self::Token(_, c) | Self::Operator(c) => *c,
            Self::Stream(s) => ChannelKind::Stream(*s),
        }
    }
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token(t, c) => write!(f, "token/{t}/{}", c.as_str()),
            Self::Operator(c) => write!(f, "operator/{}", c.as_str()),
            Self::Stream(s) => write!(f, "stream/{s}"),
        }
    }
}

/// A delivery to write: one message through one channel.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub id: String,
    /// The token it tells about; `None` for an operator alert (the operator channel).
    pub token_id: Option<TokenId>,
    /// The alert, summary or test this delivers; with the channel, unique.
    pub message_id: String,
    /// `hit`, `summary`, `test`, ... or `operator` (an operator alert).
    pub kind: String,
    pub channel: ChannelKind,
    /// The address or URL.
    pub target: String,
    /// The message, frozen (JSON).
    pub payload: String,
    /// `pending`, or `failed` for a delivery that cannot be attempted (channel not configured).
    pub state: String,
    pub last_error: Option<String>,
    pub created_at: i64,
}

/// A delivery as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: String,
    /// `None` for an operator alert.
    pub token_id: Option<TokenId>,
    pub message_id: String,
    pub kind: String,
    pub channel: String,
    pub target: String,
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    /// The lane it is sent in, in order with the lane's other rows.
    pub lane: Lane,
}

/// An alert waiting for the planner, with its hit.
#[derive(Clone, Debug)]
pub struct NewAlert {
    pub alert_id: String,
    pub hit: HitRecord,
}

/// What the planner decided for one alert.
#[derive(Clone, Debug)]
pub enum AlertPlan {
    /// Send now through these deliveries; open a cooldown window until the given time.
    Send {
        deliveries: Vec<NewDelivery>,
        cooldown_until: Option<i64>,
    },
    /// Inside an open window: gather it into the window's summary (its counter and values).
    Group(crate::WindowHit),
    /// The source is ignored: mark the hit with the reason, send nothing.
    Ignore { reason: String },
}

/// How a token ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndCause {
    /// Deleted by someone (manage secret, API key, operator, CLI).
    Deleted,
    /// Its expiry came (or had come when it was deleted).
    Expired,
}

impl EndCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::Expired => "expired",
        }
    }
}

/// What a deleted or expired token leaves: its copy (without the sealed secret), when it ended
/// and how. A record from before `died_at` (plus the allowed clock skew) is a hit of the token;
/// one from after it, a use of a retired key.
#[derive(Clone, Debug)]
pub struct Tombstone {
    pub token: TokenRecord,
    /// Unix ms.
    pub died_at: i64,
    pub cause: EndCause,
}

/// What the in-memory key index keeps of a token: enough to match a record, and whether (and
/// since when) the token is a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    pub token_id: TokenId,
    pub access_key_id: AccessKeyId,
    pub account_id: AccountId,
    pub username: IamUserName,
    /// `None` for a live token; when it ended, for a tombstone.
    pub died_at: Option<i64>,
}

/// Who created a token: the operator, and the API key when it was made with one. Tokens made
/// anonymously or from the CLI have none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenOwner {
    pub operator_id: String,
    pub api_key_id: Option<String>,
}

/// What asking an API key's create budget for one more token said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateBudget {
    /// Counted: go ahead.
    Granted,
    /// The key's creates this minute are used up; the window reopens at `retry_at` (unix ms).
    PerMinute { limit: i64, retry_at: i64 },
    /// The key has `limit` live tokens already.
    LiveTokens { limit: i64 },
    /// No such key (revoked keys still count).
    UnknownKey,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_lanes_and_channels_read_back() {
        for kind in StreamKind::ALL {
            let lane = Lane::of(None, ChannelKind::Stream(kind));
            assert_eq!(lane, Lane::Stream(kind));
            assert_eq!(Lane::parse(&lane.to_string()), Some(lane.clone()));
            assert_eq!(lane.channel(), ChannelKind::Stream(kind));
            let channel = ChannelKind::Stream(kind).as_str();
            assert_eq!(channel, format!("stream:{kind}"));
            assert_eq!(ChannelKind::parse(channel), Some(ChannelKind::Stream(kind)));
        }
        assert_eq!(
            Lane::Stream(StreamKind::SplunkHec).to_string(),
            "stream/splunk_hec"
        );
        assert_eq!(Lane::parse("stream/nope"), None);
        assert_eq!(Lane::parse("stream/syslog/x"), None);
        assert_eq!(ChannelKind::parse("stream:"), None);
    }
}
