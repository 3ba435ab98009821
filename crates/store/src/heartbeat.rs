//! Proof of life as stored: each decoy account's heartbeat identity (a key that is not a
//! token), the receipts its calls leave on each detection path, and the due slots replicas
//! share so that one call goes out per interval per region.

use canarykeys_core::{AccessKeyId, AccountId, IamUserName};

/// A heartbeat identity: an IAM user with no permissions and its key, made by the minter like a
/// decoy but never planted or shown. The secret is sealed by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatKey {
    pub access_key_id: AccessKeyId,
    /// What the secret is sealed under (a fresh id per identity).
    pub id: String,
    pub account_id: AccountId,
    pub username: IamUserName,
    pub secret_sealed: String,
    pub minter: String,
    pub created_at: i64,
    /// When a newer identity replaced it; its late events still count as receipts.
    pub retired_at: Option<i64>,
}

/// A heartbeat call's event, as one detection path delivered it. Times are unix ms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub account_id: String,
    pub region: String,
    /// The delivery path's wire name (`eventbridge`, `s3`, ...).
    pub path: String,
    /// CloudTrail's eventID: a second copy on the same path is not a second receipt.
    pub event_id: String,
    /// When the call was made (`eventTime`).
    pub event_time: i64,
    /// When the event reached us.
    pub received_at: i64,
}

impl Receipt {
    /// How long the path took: the time we got it minus the call's time.
    pub fn latency_ms(&self) -> i64 {
        self.received_at.saturating_sub(self.event_time).max(0)
    }
}
