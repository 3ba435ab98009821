//! The JSON shapes the server answers with, as types: the API, the operator API and the CLI's
//! `--json` all serialise these, so one token looks the same wherever it is read. Times are
//! RFC 3339 text; secrets appear only in the shapes that are meant to carry them.

use std::collections::BTreeMap;

use canarykeys_aws::Minter;
use canarykeys_core::AwsCredentials;
use canarykeys_store::{DeliveryRecord, HitRecord, TokenRecord};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::render::{rfc3339, LOCAL_KEYS_NOTICE};

/// A token. `aws.secret_access_key`, `alert_count`, `delivery` and `notice` are present where
/// the reader may see them (the token's own secret holder, the CLI), absent in operator lists.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    #[schema(value_type = String, example = "aws_keys")]
    pub kind: &'static str,
    pub memo: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub minter: String,
    pub keys_valid_at_aws: bool,
    pub channels: ChannelsView,
    pub ignore_sources: Vec<String>,
    pub aws: AwsView,
    /// How many hits the token has (the name predates "hits").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_count: Option<u64>,
    /// Delivery state per channel (`email`, `webhook`), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BTreeMap<String, ChannelDelivery>>)]
    pub delivery: Option<BTreeMap<&'static str, ChannelDelivery>>,
    /// Why these keys do not work at AWS, for keys of the local minter.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub notice: Option<&'static str>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelsView {
    pub email: Option<EmailChannelView>,
    pub webhook: Option<WebhookChannelView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailChannelView {
    pub address: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookChannelView {
    pub url: String,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AwsView {
    pub access_key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// An `aws_session` token's session token (with its secret holder's view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// When the session stops working (RFC 3339), for an `aws_session` token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    pub region: String,
    #[schema(value_type = String, example = "json")]
    pub output: &'static str,
    pub username: String,
    pub account_id: String,
    pub arn: String,
}

impl TokenView {
    /// As an operator list shows it: no secret, no counts.
    pub fn listed(t: &TokenRecord, minter: &dyn Minter) -> Self {
        let aws = AwsView {
            access_key_id: t.access_key_id.to_string(),
            secret_access_key: None,
            session_token: None,
            expiration: None,
            region: t.region.as_str().to_owned(),
            output: t.output.as_str(),
            username: t.username.to_string(),
            account_id: t.account_id.to_string(),
            arn: format!("arn:aws:iam::{}:user/{}", t.account_id, t.username),
        };
        Self {
            id: t.id.to_string(),
            kind: t.kind.as_str(),
            memo: t.memo.as_str().to_owned(),
            created_at: rfc3339(t.created_at),
            expires_at: t.expires_at.map(rfc3339),
            minter: t.minter.clone(),
            keys_valid_at_aws: t.minter == minter.name() && minter.keys_valid_at_aws(),
            channels: ChannelsView {
                email: t.email.as_ref().map(|e| EmailChannelView {
                    address: e.as_str().to_owned(),
                    enabled: t.email_enabled,
                    disabled_reason: t.alerting.email_disabled_reason.clone(),
                }),
                webhook: t.webhook.as_ref().map(|w| WebhookChannelView {
                    url: w.as_str().to_owned(),
                    enabled: t.webhook_enabled,
                    disabled_reason: t.alerting.webhook_disabled_reason.clone(),
                }),
            },
            ignore_sources: t.alerting.ignore_sources.clone(),
            aws,
            alert_count: None,
            delivery: None,
            notice: None,
        }
    }

    /// As its secret holder sees it: with the credentials and the hit count.
    pub fn full(t: &TokenRecord, c: &AwsCredentials, minter: &dyn Minter, hits: u64) -> Self {
        let mut v = Self::listed(t, minter);
        v.aws.access_key_id = c.access_key_id.to_string();
        v.aws.secret_access_key = Some(c.secret_access_key.expose().to_owned());
        if let Some(s) = &c.session {
            v.aws.session_token = Some(s.token.expose().to_owned());
            v.aws.expiration = Some(rfc3339(s.expires_at));
        }
        v.alert_count = Some(hits);
        v.notice = (t.minter == "local").then_some(LOCAL_KEYS_NOTICE);
        v
    }

    pub fn with_delivery(mut self, deliveries: &[DeliveryRecord]) -> Self {
        self.delivery = Some(delivery_summary(deliveries));
        self
    }
}

/// A token just created: the token, plus the manage secret shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedTokenView {
    #[serde(flatten)]
    pub token: TokenView,
    pub manage_url: String,
    pub manage_secret: String,
    /// An `aws_session` token's refresh secret, shown only here: it can call
    /// `POST /tokens/{id}/session` and nothing else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_secret: Option<String>,
}

/// A confirm's answer: whether an expected-use window was open and is closed now.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfirmView {
    pub id: String,
    pub confirmed: bool,
}

/// Fresh session credentials of an `aws_session` token.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub aws: AwsView,
}

/// A token's manage secret, just replaced: the old one no longer works. The new one is shown
/// only to the holder of the old one; an API key, which manages tokens without their secrets,
/// gets `null`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManageSecretView {
    pub id: String,
    pub manage_secret: Option<String>,
}

/// One channel's deliveries, from the token's recent ones.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelDelivery {
    pub last_state: String,
    pub last_attempts: i64,
    pub last_error: Option<String>,
    pub last_delivered_at: Option<String>,
    pub pending: usize,
    pub failed: usize,
}

/// Delivery state per channel, from the token's recent deliveries (newest first).
pub fn delivery_summary(deliveries: &[DeliveryRecord]) -> BTreeMap<&'static str, ChannelDelivery> {
    let mut out = BTreeMap::new();
    for channel in ["email", "webhook"] {
        let mine: Vec<_> = deliveries.iter().filter(|d| d.channel == channel).collect();
        let Some(last) = mine.first() else { continue };
        out.insert(
            channel,
            ChannelDelivery {
                last_state: last.state.clone(),
                last_attempts: last.attempts,
                last_error: mine.iter().find_map(|d| d.last_error.clone()),
                last_delivered_at: mine.iter().find_map(|d| d.delivered_at).map(rfc3339),
                pending: mine.iter().filter(|d| d.state == "pending").count(),
                failed: mine.iter().filter(|d| d.state == "failed").count(),
            },
        );
    }
    out
}

/// One hit. `token_id` and `token_memo` are set in lists across tokens.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HitView {
    /// Always `hit`; exposures are the other kind of alert (`ExposuresPage`).
    #[schema(value_type = String, pattern = "^hit$")]
    pub kind: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_memo: Option<String>,
    pub event_id: String,
    pub event_time: String,
    pub received_at: String,
    pub event_name: String,
    pub event_source: String,
    pub region: String,
    pub source_ip: String,
    pub user_agent: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub account_id: Option<String>,
    pub access_key_id: Option<String>,
    pub tls_host: Option<String>,
    pub vpc_endpoint_id: Option<String>,
    pub request_id: Option<String>,
    pub path: String,
    pub note: Option<String>,
    pub suppressed: Option<String>,
    pub delay_seconds: i64,
    /// The CloudTrail record as received (attacker-controlled text: escape before display).
    #[schema(value_type = Object)]
    pub cloudtrail: Value,
}

impl HitView {
    pub fn of(h: &HitRecord) -> Self {
        Self {
            kind: "hit",
            id: h.id.clone(),
            token_id: None,
            token_memo: None,
            event_id: h.event_id.clone(),
            event_time: rfc3339(h.event_time),
            received_at: rfc3339(h.received_at),
            event_name: h.event_name.clone(),
            event_source: h.event_source.clone(),
            region: h.region.clone(),
            source_ip: h.source_ip.clone(),
            user_agent: h.user_agent.clone(),
            error_code: h.error_code.clone(),
            error_message: h.error_message.clone(),
            account_id: h.account_id.clone(),
            access_key_id: h.access_key_id.clone(),
            tls_host: h.tls_host.clone(),
            vpc_endpoint_id: h.vpc_endpoint_id.clone(),
            request_id: h.request_id.clone(),
            path: h.path.clone(),
            note: h.note.clone(),
            suppressed: h.suppressed.clone(),
            delay_seconds: (h.received_at - h.event_time) / 1000,
            cloudtrail: serde_json::from_str(&h.raw).unwrap_or(Value::Null),
        }
    }

    /// With the token it belongs to, for lists across tokens.
    pub fn with_token(h: &HitRecord, memo: &str) -> Self {
        Self {
            token_id: Some(h.token_id.to_string()),
            token_memo: Some(memo.to_owned()),
            ..Self::of(h)
        }
    }
}

/// A page of hits. `alerts` repeats `hits` under the lists' former name, for older clients.
#[derive(Debug, Serialize, ToSchema)]
pub struct HitsPage {
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
    pub hits: Vec<HitView>,
    pub alerts: Vec<HitView>,
}

impl HitsPage {
    pub fn new(total: u64, limit: u32, offset: u32, hits: Vec<HitView>) -> Self {
        let alerts = hits.clone();
        Self {
            total,
            limit,
            offset,
            hits,
            alerts,
        }
    }
}

/// A page of exposures (`GET /api/v1/alerts?kind=exposure`), under the same keys as hits.
/// Closed to other keys, so a page of hits never reads as one of these.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExposuresPage {
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
    pub alerts: Vec<crate::services::exposures::ExposureItem>,
}

/// The list across tokens: hits, or exposures with `kind=exposure`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum AlertsPage {
    Hits(HitsPage),
    Exposures(ExposuresPage),
}

/// A page of tokens as the operator API lists them.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokensPage {
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
    /// Give this as `after` for the next page (same cost at any depth); `null` on a page that
    /// was not full, the last one.
    pub next: Option<String>,
    pub tokens: Vec<TokenView>,
}

/// One outbox row: a message to one channel of a token, and how its sending went.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub message_id: String,
    /// `hit`, `summary`, `test`, `exposure` or `tamper`.
    pub kind: String,
    /// `email` or `webhook`.
    pub channel: String,
    /// The address or URL the message goes to.
    pub target: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i64,
    /// When the next try is due, while the row is pending.
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

impl DeliveryView {
    pub fn of(d: &DeliveryRecord) -> Self {
        Self {
            id: d.id.clone(),
            message_id: d.message_id.clone(),
            kind: d.kind.clone(),
            channel: d.channel.clone(),
            target: d.target.clone(),
            state: d.state.clone(),
            attempts: d.attempts,
            next_attempt_at: (d.state == "pending").then(|| rfc3339(d.next_attempt_at)),
            last_error: d.last_error.clone(),
            created_at: rfc3339(d.created_at),
            delivered_at: d.delivered_at.map(rfc3339),
        }
    }
}

/// A token's recent deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveriesView {
    pub deliveries: Vec<DeliveryView>,
}

/// A delivery just queued by a test alert.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedDelivery {
    pub id: String,
    /// `email` or `webhook`.
    pub channel: String,
    /// `pending`, or `failed` when the channel cannot be tried (not configured).
    pub state: String,
}

/// The answer to a test alert: one queued delivery per enabled channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestAlertView {
    pub deliveries: Vec<QueuedDelivery>,
}

/// Every error of the JSON API (and of ingest) has this body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code: `bad_request`, `invalid_input`, `unauthenticated`,
    /// `forbidden`, `not_found`, `conflict`, `payload_too_large`, `unsupported_media_type`,
    /// `rate_limited`, `minter_refused`, `minter_unavailable`, `ingest_disabled`,
    /// `not_cloudtrail`, `key_unavailable` or `internal`.
    #[schema(value_type = String)]
    pub code: &'static str,
    /// For people; a server error says only that something failed.
    pub message: String,
    /// Each invalid field and what is wrong with it (422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldProblem>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

/// A token's whole history as `GET /tokens/{id}/alerts/export?format=json` downloads it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HitsExport {
    pub hits: Vec<HitView>,
}
