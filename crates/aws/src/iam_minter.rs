//! The `iam` minter: real, working access keys for bare IAM users in the operator's decoy
//! accounts, made by calling IAM directly (static keys, the default credential chain, or
//! `AssumeRole` into a role per account), with nothing left behind when a step fails.
//!
//! A decoy user gets no policy, no group and no tag: it is allowed nothing by IAM's implicit
//! deny. An explicit deny-all policy would be belt and braces, but AWS then says "… with an
//! explicit deny in an identity-based policy" in every AccessDenied message, and that phrase is
//! itself a tell: ordinary forgotten keys are denied implicitly. The trade-off is that the key is
//! only as powerless as the account's other grants let it be: a resource policy that trusts the
//! whole account, or an SCP gap, would apply to it. Keep decoy accounts empty of such grants,
//! and use `permissions_boundary` to cap a user without changing the error text.

mod account;
mod api;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_iam::error::DisplayErrorContext;
use canarykeys_core::names::{check_no_tells, NameGenerator};
use canarykeys_core::{AccessKeyId, AccountId, IamUserName, SecretAccessKey};
use rand::distributions::{Distribution, WeightedIndex};
use rand::{rngs::OsRng, Rng};
use tokio::time::{timeout_at, Instant};

pub use self::account::{DecoyAccount, DEFAULT_USER_HEADROOM};
use self::api::{is_code, IamApi, SdkIam};
use crate::error::{AwsError, ErrorDetail};
use crate::{KeyRef, MintError, MintRequest, MintedKey, Minter, UserQuota};

/// How long one mint (or revoke) may take, SDK retries included, before it answers
/// `Unavailable`: long enough for five throttled attempts with backoff, short enough for a
/// person waiting on a web form.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Generated names tried per mint. Each collides with a user already in the account with a
/// chance of (users made from the same set) / (names the set makes), under 1 in 8 even with
/// 10,000 decoys in one account, so five collisions in a row mean something else is wrong.
const NAME_TRIES: usize = 5;

/// When an account's users and quota were read, the user count (plus the users made since)
/// and the quota.
type QuotaRead = (Instant, u64, u64);

/// How long an account's GetAccountSummary answer is used. Users this minter makes meanwhile
/// are counted into it, so a burst cannot run past the headroom between two reads.
const QUOTA_TTL: Duration = Duration::from_secs(30);

/// Mints keys for bare IAM users in the configured decoy accounts. See the module docs for why
/// the users carry no policy.
pub struct IamMinter {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    accounts: Vec<Account>,
    names: NameGenerator,
    chooser: WeightedIndex<u32>,
    timeout: Duration,
    /// Per account: when its user count and quota were read, and what they were.
    quotas: Arc<Mutex<HashMap<AccountId, QuotaRead>>>,
}

#[derive(Clone)]
struct Account {
    config: DecoyAccount,
    api: Arc<dyn IamApi>,
}

impl IamMinter {
    /// Checks every account (path syntax and tells, boundary, credentials, unique ids, some
    /// weight) and builds one IAM client per account. No AWS call is made yet.
    pub async fn new(accounts: Vec<DecoyAccount>, names: NameGenerator) -> Result<Self, MintError> {
        for a in &accounts {
            a.validate().map_err(MintError::Refused)?;
        }
        let mut connected = Vec::with_capacity(accounts.len());
        for config in accounts {
            let api = SdkIam::connect(&config).await;
            connected.push(Account { config, api });
        }
        Self::from_parts(connected, names)
    }

    fn from_parts(accounts: Vec<Account>, names: NameGenerator) -> Result<Self, MintError> {
        let refuse = |why: &str| Err(MintError::Refused(why.to_owned()));
        if accounts.is_empty() {
            return refuse("the iam minter needs at least one decoy account");
        }
        for (i, a) in accounts.iter().enumerate() {
            if accounts[..i]
                .iter()
                .any(|b| b.config.account_id == a.config.account_id)
            {
                return refuse("a decoy account is listed twice");
            }
        }
        let Ok(chooser) = WeightedIndex::new(accounts.iter().map(|a| a.config.weight)) else {
            return refuse("every decoy account has weight 0; give at least one a weight");
        };
        let inner = Inner {
            accounts,
            names,
            chooser,
            timeout: DEFAULT_TIMEOUT,
            quotas: Arc::default(),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Bounds each mint and revoke at `timeout` instead of 30 s.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.map_inner(|i| i.timeout = timeout)
    }

    /// Test support: CreateAccessKey fails in every account, i.e. a failure right after
    /// CreateUser, so tests can watch the rollback against a real IAM (moto).
    #[cfg(any(test, feature = "testing"))]
    pub fn fail_after_create_user_for_tests(self) -> Self {
        self.map_inner(|i| {
            for a in &mut i.accounts {
                a.api = Arc::new(api::FailCreateAccessKey(a.api.clone()));
            }
        })
    }

    fn map_inner(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }
}

#[async_trait]
impl Minter for IamMinter {
    fn name(&self) -> &'static str {
        "iam"
    }

    fn keys_valid_at_aws(&self) -> bool {
        true
    }

    /// Runs in its own task, so that a caller that goes away mid-mint (a closed connection
    /// drops the request's future) cannot stop the rollback half-way, and a key minted for a
    /// caller that is no longer there is destroyed rather than left for no one to know of.
    async fn mint(&self, request: &MintRequest) -> Result<MintedKey, MintError> {
        let inner = self.inner.clone();
        let request = request.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let result = inner.mint(&request).await;
            if let Err(Ok(orphan)) = tx.send(result) {
                tracing::warn!(user = %orphan.username, account = %orphan.account_id,
                    "the caller went away during the mint; deleting the new key and user");
                let _ = inner
                    .revoke(
                        orphan.account_id,
                        &orphan.username,
                        Some(&orphan.access_key_id),
                    )
                    .await;
            }
        });
        rx.await
            .unwrap_or_else(|_| Err(MintError::Refused("the mint task failed".into())))
    }

    async fn revoke(&self, key: &KeyRef<'_>) -> Result<(), MintError> {
        self.inner
            .revoke(key.account_id, key.username, Some(key.access_key_id))
            .await
    }

    async fn user_quota(&self, account: AccountId) -> Result<Option<UserQuota>, MintError> {
        let account = self.inner.account(account)?;
        Ok(self.inner.quota(account).await)
    }
}

impl Inner {
    /// The account asked for, else one drawn by weight.
    fn choose<R: Rng + ?Sized>(
        &self,
        wanted: Option<AccountId>,
        rng: &mut R,
    ) -> Result<&Account, MintError> {
        match wanted {
            None => Ok(&self.accounts[self.chooser.sample(rng)]),
            Some(id) => self.account(id),
        }
    }

    fn account(&self, id: AccountId) -> Result<&Account, MintError> {
        self.accounts
            .iter()
            .find(|a| a.config.account_id == id)
            .ok_or(MintError::UnknownAccount(id))
    }

    async fn mint(&self, request: &MintRequest) -> Result<MintedKey, MintError> {
        let account = self.choose(request.account, &mut OsRng)?;
        let account = self.with_room(account, request.account.is_some()).await?;
        let deadline = Instant::now() + self.timeout;
        let username = self
            .create_user(account, request.username.as_ref(), deadline)
            .await?;
        self.count_new_user(account.config.account_id);
        match self.create_key(account, &username, deadline).await {
            Ok(key) => Ok(key),
            Err(e) => {
                // Undo under a fresh bound: the mint's own may be what ran out.
                let _ = self
                    .revoke(account.config.account_id, &username, None)
                    .await;
                Err(e)
            }
        }
    }

    /// `account` if it has room below its quota's headroom; else, when the caller did not choose
    /// it, another weighted account that has; else the quota error.
    async fn with_room<'a>(
        &'a self,
        account: &'a Account,
        chosen: bool,
    ) -> Result<&'a Account, MintError> {
        let full = |a: &Account, q: UserQuota| MintError::UserQuota {
            account: a.config.account_id,
            users: q.users,
            quota: q.quota,
            headroom: q.headroom,
        };
        let first = match self.quota(account).await {
            Some(q) if q.is_full() => full(account, q),
            _ => return Ok(account),
        };
        if chosen {
            return Err(first);
        }
        for other in self.accounts.iter().filter(|a| a.config.weight > 0) {
            if std::ptr::eq(other, account) {
                continue;
            }
            match self.quota(other).await {
                Some(q) if q.is_full() => {}
                _ => return Ok(other),
            }
        }
        Err(first)
    }

    /// The account's users and quota, from a recent read or GetAccountSummary. An account whose
    /// summary cannot be read (the role lacks `iam:GetAccountSummary`) is not held back: the
    /// failure is logged, and IAM's own quota error still stops a mint at the limit.
    async fn quota(&self, account: &Account) -> Option<UserQuota> {
        let id = account.config.account_id;
        let headroom = u64::from(account.config.user_headroom);
        let cached = self.quotas.lock().ok()?.get(&id).copied();
        if let Some((_, users, quota)) = cached.filter(|c| c.0.elapsed() < QUOTA_TTL) {
            return Some(UserQuota {
                users,
                quota,
                headroom,
            });
        }
        let deadline = Instant::now() + self.timeout;
        let call = account.api.user_count_and_quota();
        match bounded("IAM GetAccountSummary", deadline, call).await {
            Ok(Some((users, quota))) => {
                if let Ok(mut q) = self.quotas.lock() {
                    q.insert(id, (Instant::now(), users, quota));
                }
                Some(UserQuota {
                    users,
                    quota,
                    headroom,
                })
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(account = %id, error = %e,
                    "cannot read the account's IAM user quota; minting goes on unchecked");
                None
            }
        }
    }

    /// Counts a user just made into the account's cached summary.
    fn count_new_user(&self, id: AccountId) {
        if let Ok(mut q) = self.quotas.lock() {
            if let Some(entry) = q.get_mut(&id) {
                entry.1 += 1;
            }
        }
    }

    /// CreateUser under the caller's name, or under generated names until one is free.
    async fn create_user(
        &self,
        account: &Account,
        given: Option<&IamUserName>,
        deadline: Instant,
    ) -> Result<IamUserName, MintError> {
        if let Some(name) = given {
            check_no_tells(name.as_str())
                .map_err(|e| MintError::Refused(format!("user name {e}")))?;
        }
        let (path, boundary) = (
            &account.config.path,
            account.config.permissions_boundary.as_deref(),
        );
        for _ in 0..NAME_TRIES {
            let name = given.cloned().unwrap_or_else(|| self.names.generate());
            let call = account.api.create_user(name.as_str(), path, boundary);
            match bounded("IAM CreateUser", deadline, call).await {
                Ok(()) => return Ok(name),
                // Someone else's user (or an earlier decoy): never touch it.
                Err(e) if is_code(&e, "EntityAlreadyExists") => {
                    if given.is_some() {
                        let id = account.config.account_id;
                        return Err(MintError::Conflict(format!(
                            "user {name} already exists in account {id}"
                        )));
                    }
                    tracing::debug!(user = %name, "generated user name is taken; drawing another");
                }
                // An unknown outcome (a timeout after IAM acted) could leave a user without a
                // key; it holds nothing and no secret exists for it, so it is logged, not
                // deleted: deleting by name could hit a user that was there before.
                Err(e) => {
                    tracing::warn!(user = %name, error = %e, "CreateUser failed");
                    return Err(mint_error(e));
                }
            }
        }
        Err(MintError::Refused(format!(
            "{NAME_TRIES} generated user names in a row were taken; use a larger names file"
        )))
    }

    async fn create_key(
        &self,
        account: &Account,
        user: &IamUserName,
        deadline: Instant,
    ) -> Result<MintedKey, MintError> {
        let call = account.api.create_access_key(user.as_str());
        let (id, secret) = bounded("IAM CreateAccessKey", deadline, call)
            .await
            .map_err(mint_error)?;
        let bad = |e: canarykeys_core::Invalid| {
            MintError::Refused(format!("IAM CreateAccessKey answered {e}"))
        };
        let access_key_id = AccessKeyId::parse(&id).map_err(bad)?;
        let secret_access_key = SecretAccessKey::parse(&secret).map_err(bad)?;
        let account_id = account.config.account_id;
        if access_key_id.account_id() != account_id {
            // Keys encode their account; a mismatch means the credentials reach another account
            // than configured, and account-based matching of temporary keys will miss.
            tracing::warn!(configured = %account_id, actual = %access_key_id.account_id(),
                "the minted key belongs to another account than configured");
        }
        Ok(MintedKey {
            access_key_id,
            secret_access_key,
            username: user.clone(),
            account_id,
        })
    }

    /// Deletes `key` (or, without one, every key of the user) and then the user. What is
    /// already gone counts as deleted. Errors are logged here too, because the rollback path
    /// has no one else to tell.
    async fn revoke(
        &self,
        account_id: AccountId,
        user: &IamUserName,
        key: Option<&AccessKeyId>,
    ) -> Result<(), MintError> {
        let account = self.account(account_id)?;
        let deadline = Instant::now() + self.timeout;
        let result = delete_user(
            &*account.api,
            user.as_str(),
            key.map(AccessKeyId::as_str),
            deadline,
        )
        .await;
        if let Err(e) = &result {
            tracing::error!(user = %user, account = %account_id, error = %e,
                "could not delete the decoy user; it stays until deleted again");
        }
        result.map_err(mint_error)
    }
}

async fn delete_user(
    api: &dyn IamApi,
    user: &str,
    key: Option<&str>,
    deadline: Instant,
) -> Result<(), AwsError> {
    let gone = |r: Result<(), AwsError>| match r {
        Err(e) if is_code(&e, "NoSuchEntity") => Ok(()),
        other => other,
    };
    let keys = match key {
        Some(k) => vec![k.to_owned()],
        None => match bounded("IAM ListAccessKeys", deadline, api.list_access_keys(user)).await {
            Err(e) if is_code(&e, "NoSuchEntity") => return Ok(()),
            other => other?,
        },
    };
    for k in &keys {
        gone(
            bounded(
                "IAM DeleteAccessKey",
                deadline,
                api.delete_access_key(user, k),
            )
            .await,
        )?;
    }
    match gone(bounded("IAM DeleteUser", deadline, api.delete_user(user)).await) {
        // Another key than the one we know of (a CreateAccessKey whose answer was lost): find
        // and delete them all, then try once more.
        Err(e) if key.is_some() && is_code(&e, "DeleteConflict") => {
            Box::pin(delete_user(api, user, None, deadline)).await
        }
        other => other,
    }
}

/// `call`, or `Unavailable` when `deadline` passes first.
async fn bounded<T>(
    op: &'static str,
    deadline: Instant,
    call: impl std::future::Future<Output = Result<T, AwsError>>,
) -> Result<T, AwsError> {
    timeout_at(deadline, call).await.unwrap_or_else(|_| {
        Err(AwsError::Unavailable {
            op,
            detail: ErrorDetail::message("no answer in time (the SDK retries included)"),
            source: None,
        })
    })
}

/// Throttling, 5xx, network trouble and our own time bound are worth retrying later; anything
/// else is refused, with IAM's error code in the message.
fn mint_error(e: AwsError) -> MintError {
    if e.is_transient() {
        return MintError::Unavailable(Box::new(e));
    }
    // Without an IAM error code, the call may never have reached IAM (no credentials,
    // AssumeRole refused); the SDK's chain of causes says which, and holds no secrets.
    let mut why = e.to_string();
    if e.detail().code.is_none() {
        tracing::warn!(error = %DisplayErrorContext(&e), "IAM call failed");
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            why = format!("{why}: {c}");
            cause = c.source();
        }
    }
    MintError::Refused(why)
}
