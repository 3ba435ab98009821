//! Notification channels: what an alert says (`AlertView`, and `operator::OperatorAlert` for
//! alerts about the system), and the channels that say it (email, webhooks). The outbox worker
//! (`jobs::deliver`) decides when; channels only send.

pub mod email;
pub mod operator;
pub mod stream;
pub mod webhook;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What kind of alert a message is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AlertKind {
    /// One use of the key: the first after a quiet period.
    Hit,
    /// The uses gathered during a cooldown window, sent when it closes.
    Summary {
        /// How many calls the window gathered (`folded` included).
        count: u64,
        /// Of `count`, the calls past `[alerts] stored_hits_per_window`: counted, not stored
        /// one by one (the history has the stored ones).
        #[serde(default)]
        folded: u64,
        /// Distinct source addresses, at most a handful (the history has them all).
        addresses: Vec<String>,
        /// Distinct event names, at most a handful.
        events: Vec<String>,
        first_event_time: String,
        last_event_time: String,
    },
    /// Sent on request to check a channel; says plainly that it is a test.
    Test,
    /// The key was seen in public (AWS Health, or AWS's quarantine policy on its user). Nobody
    /// has to have used it; never grouped by a cooldown, sent once per token and source.
    Exposure {
        /// `health` or `quarantine`.
        source: String,
        /// The AWS Health event type, or the quarantine policy's name.
        event_type: String,
        /// AWS's description: quotes the place the key was published (attacker-influenced).
        description: String,
        /// Where the key was found, when the description names a place. Text, not a trusted
        /// URL: shown escaped, linked only when it is http(s).
        location: Option<String>,
        /// RFC 3339, UTC.
        first_seen: String,
        last_seen: String,
        /// Sightings so far (1 in the alert itself).
        count: u64,
    },
    /// Someone holding the manage secret or an API key switched a channel off, deleted the
    /// token or changed its ignore list. Sent on the channels the token had before the change,
    /// written with the change itself, never grouped by a cooldown. The caller's address and
    /// user agent are in the view's `source_ip` and `user_agent` (attacker-controlled).
    Tamper {
        /// `channel_off`, `delete` or `ignore_list`.
        action: String,
        /// What changed, in words. An ignore list's entries are the caller's text.
        change: String,
        /// `manage_secret` or `api_key`.
        by: String,
        /// The API key's id and name, and its operator; `None` for the manage secret.
        api_key_id: Option<String>,
        api_key_name: Option<String>,
        operator: Option<String>,
    },
}

impl AlertKind {
    /// The kind's name, as the outbox's `kind` column and the generic webhook's `type` say it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Summary { .. } => "summary",
            Self::Test => "test",
            Self::Exposure { .. } => "exposure",
            Self::Tamper { .. } => "tamper",
        }
    }
}

/// Everything a message shows, already formatted. Every string that came from CloudTrail (the
/// user agent above all) is attacker-controlled: each channel escapes it for its own markup.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AlertView {
    pub kind: AlertKind,
    /// Stable id of the alert; with the channel it makes the idempotency key.
    pub alert_id: String,
    pub token_id: String,
    pub memo: String,
    /// One sentence: "GetCallerIdentity on sts.amazonaws.com in us-east-1 from 203.0.113.7".
    pub headline: String,
    pub event_name: String,
    pub event_source: String,
    pub region: String,
    pub source_ip: String,
    pub user_agent: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// RFC 3339, UTC.
    pub event_time: String,
    pub received_at: String,
    pub account_id: Option<String>,
    pub access_key_id: Option<String>,
    /// The delivery path (`cloudwatch-logs`, `eventbridge`, `s3`, `safety-net`, …).
    pub path: String,
    pub note: Option<String>,
    /// What we know of the source: labels such as "TruffleHog (secret scanner)", "AWS Internal",
    /// "Tor exit node", "via VPC endpoint vpce-…".
    pub source_labels: Vec<String>,
    pub country: Option<String>,
    pub asn: Option<String>,
    /// The token's manage page (it asks for the manage secret, which we never store).
    pub manage_url: String,
    /// The token's alert history on the manage page.
    pub history_url: String,
    /// A use of a retired key: made after its token was deleted or expired, so someone still
    /// holds it. Its headline and every channel's title say so. (Absent in payloads queued
    /// before this field existed: false.)
    #[serde(default)]
    pub retired: bool,
}

/// How one send went. The worker turns it into the row's next state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Worth trying again later (network error, 5xx, 408, 429, SMTP 4xx).
    Retry(String),
    /// Worth trying again, and the receiver said when (`Retry-After`): wait this long (the
    /// worker caps it).
    RetryAfter(String, std::time::Duration),
    /// Will never work as it stands (4xx other than 408/429, an invalid address, SMTP 5xx).
    Permanent(String),
}

/// One way of telling a person. `target` is the address or URL stored on the token.
#[async_trait]
pub trait Channel: Send + Sync + 'static {
    async fn send(&self, alert: &AlertView, target: &str, idempotency_key: &str) -> Outcome;

    /// Sends an operator alert (`[operator_alerts]`) to `target`. Channels that have no
    /// operator format refuse it.
    async fn send_operator(
        &self,
        alert: &operator::OperatorAlert,
        target: &str,
        idempotency_key: &str,
    ) -> Outcome {
        let _ = (alert, target, idempotency_key);
        Outcome::Permanent("this channel cannot send operator alerts".into())
    }
}
