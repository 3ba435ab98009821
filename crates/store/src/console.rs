//! What the operator console reads across all tokens: filters for the alert feed and the rows of
//! its overview (per-token hit counts, detection path and alert channel health).

use canarykeys_core::TokenId;

/// Which hits the console's alert feed shows. Every `None` matches everything.
#[derive(Clone, Debug, Default)]
pub struct HitFilter {
    pub token: Option<TokenId>,
    /// Event time at or after (unix ms).
    pub since: Option<i64>,
    /// Event time before (unix ms).
    pub until: Option<i64>,
    pub source_ip: Option<String>,
    pub event_name: Option<String>,
}

/// How often a token was hit, and when last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenHitStats {
    pub token_id: TokenId,
    pub hits: u64,
    /// The newest event time (unix ms).
    pub last_hit: Option<i64>,
}

/// The last time a detection path (`cloudwatch-logs`, `s3`, …) delivered a hit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathHealth {
    pub path: String,
    /// When its newest hit arrived (unix ms): arrival, not event time, is what shows the path
    /// is working.
    pub last_received: i64,
    pub hits: u64,
}

/// How an alert channel (`email`, `webhook`) has been doing, over every token's deliveries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelHealth {
    pub channel: String,
    pub last_delivered_at: Option<i64>,
    pub delivered: u64,
    pub pending: u64,
    /// Failed deliveries written at or after the `since` asked for.
    pub failed_recent: u64,
    /// The newest failed delivery's error and creation time.
    pub last_error: Option<String>,
    pub last_failed_at: Option<i64>,
}

/// A stream's waiting rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamBacklog {
    pub stream: crate::StreamKind,
    pub pending: u64,
    /// The error of the send being retried, if one is.
    pub retry_error: Option<String>,
}

/// The overview's token counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub total: u64,
    /// Not expired (no expiry, or one still ahead).
    pub active: u64,
    /// With an expiry at or before the overview's horizon (expired ones included).
    pub expiring: u64,
}
