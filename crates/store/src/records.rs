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
    /// The whole record, as JSON.
    pub raw: String,
}
