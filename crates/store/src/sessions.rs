//! Session decoys as stored: the refresh secret's hash of an `aws_session` token, and each
//! session (`ASIA` key) issued for it, kept after it expires so late records still match.

use canarykeys_core::{AccessKeyId, AccountId, TokenId};

/// One issued session. The secret and session token are sealed by the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub access_key_id: AccessKeyId,
    pub token_id: TokenId,
    pub account_id: AccountId,
    pub secret_sealed: String,
    /// The session token, sealed by the server (bound to the token id and key id).
    pub session_sealed: String,
    pub issued_at: i64,
    pub expires_at: i64,
    /// The eventID of the server's own GetSessionToken call in CloudTrail, once ingest saw it.
    pub issue_event_id: Option<String>,
}
