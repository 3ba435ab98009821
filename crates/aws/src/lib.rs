//! Key minting: the `Minter` trait every way of making a decoy key implements, and the `local`
//! minter, which makes keys in AWS's exact format without calling AWS. Also the small traits over
//! the AWS calls the detection pollers make (`TrailBucket`, `KeyUsage`), with SDK implementations.

mod caller_identity;
mod error;
mod gateway;
mod iam_minter;
mod key_usage;
mod local;
mod session;
mod settings;
#[cfg(feature = "testing")]
pub mod testing;
mod trail_bucket;

use async_trait::async_trait;
use canarykeys_core::{AccessKeyId, AccountId, IamUserName, SecretAccessKey};

pub use caller_identity::{CallerIdentity, CallerIdentityApi, IdentityCall, StsCallerIdentity};
pub use error::{AwsError, BoxError, ErrorDetail};
pub use gateway::{GatewayMinter, GatewayRetry};
pub use iam_minter::{DecoyAccount, IamMinter, DEFAULT_USER_HEADROOM};
pub use key_usage::{AttachedPolicy, IamKeyUsage, KeyUsage, LastUsed};
pub use local::LocalMinter;
pub use session::{IssuedSession, LocalSessions, SessionCall, SessionIssuer, StsSessions};
pub use settings::{sdk_config, AwsSettings};
pub use trail_bucket::{S3TrailBucket, TrailBucket, TrailObject};

/// A freshly minted key and the identity it belongs to.
#[derive(Clone, Debug)]
pub struct MintedKey {
    pub access_key_id: AccessKeyId,
    pub secret_access_key: SecretAccessKey,
    pub username: IamUserName,
    pub account_id: AccountId,
}

/// What the caller asks of a mint; everything is optional.
#[derive(Clone, Debug, Default)]
pub struct MintRequest {
    /// A user name chosen by the caller (else the minter generates an ordinary one).
    pub username: Option<IamUserName>,
    /// The decoy account to mint in (else the minter picks one).
    pub account: Option<AccountId>,
}

/// A key to destroy, with the identity and account it belongs to.
#[derive(Clone, Copy, Debug)]
pub struct KeyRef<'a> {
    pub access_key_id: &'a AccessKeyId,
    pub username: &'a IamUserName,
    pub account_id: AccountId,
}

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// A caller-given user name is taken in that account.
    #[error("the user name is already taken in that account")]
    Conflict(String),
    /// AWS (or the minting service) could not be reached or kept failing; worth retrying later.
    #[error("the minting service is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The request names an account this minter does not mint in: the caller's mistake.
    #[error("account {0} is not one of the decoy accounts this server mints in")]
    UnknownAccount(AccountId),
    /// The request was refused for a reason that retrying will not fix.
    #[error("minting was refused: {0}")]
    Refused(String),
    /// Every decoy account this mint could use is within its headroom of the IAM user quota.
    #[error(
        "decoy account {account} has {users} IAM users of its quota of {quota}; minting stops \
         {headroom} short of the quota (delete tokens, or ask AWS for a higher quota)"
    )]
    UserQuota {
        account: AccountId,
        users: u64,
        quota: u64,
        headroom: u64,
    },
}

/// A decoy account's IAM users against its quota (GetAccountSummary), and the headroom the
/// minter keeps free below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserQuota {
    pub users: u64,
    pub quota: u64,
    pub headroom: u64,
}

impl UserQuota {
    /// Whether one more user would eat into the headroom.
    pub fn is_full(&self) -> bool {
        self.users.saturating_add(self.headroom) >= self.quota
    }
}

/// Makes and destroys decoy keys. Implementations must leave nothing behind when `mint` fails:
/// no user without a key, no key without a caller that knows of it.
#[async_trait]
pub trait Minter: Send + Sync + 'static {
    /// Short name recorded with each token (`local`, `iam`, `gateway`).
    fn name(&self) -> &'static str;
    /// Whether keys from this minter work at AWS. The UI and API say so plainly when not.
    fn keys_valid_at_aws(&self) -> bool;
    async fn mint(&self, request: &MintRequest) -> Result<MintedKey, MintError>;
    /// Destroys the key and its user. Destroying what is already gone is not an error.
    async fn revoke(&self, key: &KeyRef<'_>) -> Result<(), MintError>;
    /// `account`'s IAM user count and quota, where minting is bounded by one (briefly cached).
    /// `None`, the default for `local` and `gateway`: no limit this server can see.
    async fn user_quota(&self, _account: AccountId) -> Result<Option<UserQuota>, MintError> {
        Ok(None)
    }
}
