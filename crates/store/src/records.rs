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
    pub event_id: String,
    /// Unix time in milliseconds, as the event says.
    pub event_time: i64,
    /// Unix time in milliseconds, when it reached us.
    pub received_at: i64,
    pub event_name: String,
    pub event_source: String,
    pub region: String,
    pub source_ip: String,
    pub user_agent: String,
    /// The way it reached us (`cloudwatch`, `eventbridge`, `s3`, …).
    pub path: String,
    /// The whole record, as JSON.
    pub raw: String,
}
