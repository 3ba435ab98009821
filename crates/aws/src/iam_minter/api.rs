//! The IAM calls the `iam` minter makes, behind a small trait (the seam its tests use to inject
//! failures), their implementation over the AWS SDK, and the client set-up for one decoy account.

use std::sync::Arc;

use async_trait::async_trait;
use aws_config::sts::AssumeRoleProvider;
use aws_sdk_iam::config::retry::RetryConfig;
use aws_sdk_iam::Client;

use super::DecoyAccount;
use crate::error::{classify, AwsError};
use crate::{sdk_config, AwsSettings};

/// Attempts per IAM call under the SDK's standard retry (exponential backoff with jitter, on
/// throttling, 5xx and network errors). The SDK default is 3; minting is rare and a throttled
/// IAM is common in busy accounts, so try a little harder before answering 503.
const MAX_ATTEMPTS: u32 = 5;

/// The role session name our IAM calls show in the decoy account's CloudTrail. The operator
/// reads it there, an intruder never sees it; it still names no product.
const SESSION_NAME: &str = "iam-provisioning";

/// The five IAM calls of minting and revoking. Errors are the crate's classified [`AwsError`];
/// IAM's own codes (`EntityAlreadyExists`, `NoSuchEntity`, `DeleteConflict`) are in its detail.
#[async_trait]
pub(crate) trait IamApi: Send + Sync + 'static {
    /// CreateUser, with no tags: nothing on the user may say what it is.
    async fn create_user(
        &self,
        name: &str,
        path: &str,
        boundary: Option<&str>,
    ) -> Result<(), AwsError>;
    /// CreateAccessKey: the key id and its secret.
    async fn create_access_key(&self, user: &str) -> Result<(String, String), AwsError>;
    async fn list_access_keys(&self, user: &str) -> Result<Vec<String>, AwsError>;
    async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), AwsError>;
    async fn delete_user(&self, user: &str) -> Result<(), AwsError>;
    /// GetAccountSummary's `Users` and `UsersQuota`; `None` where nothing limits users.
    async fn user_count_and_quota(&self) -> Result<Option<(u64, u64)>, AwsError> {
        Ok(None)
    }
}

/// Whether IAM answered with this error code.
pub(crate) fn is_code(e: &AwsError, code: &str) -> bool {
    e.detail().code.as_deref() == Some(code)
}

/// [`IamApi`] over the SDK's IAM client.
pub(crate) struct SdkIam {
    client: Client,
}

impl SdkIam {
    /// One client for `account`: its region, endpoint and credentials (static keys, else the
    /// default chain), through `AssumeRole` when it names a role. The SDK's standard endpoint
    /// settings (`AWS_ENDPOINT_URL_IAM`, …) still apply when no endpoint is configured.
    pub(crate) async fn connect(account: &DecoyAccount) -> Arc<dyn IamApi> {
        let base = sdk_config(&AwsSettings {
            region: account.region.clone(),
            endpoint_url: account.endpoint_url.clone(),
            access_key_id: account.access_key_id.clone(),
            secret_access_key: account.secret_access_key.clone(),
        })
        .await;
        let mut conf = aws_sdk_iam::config::Builder::from(&base)
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
        if let Some(role) = &account.role_arn {
            // The base credentials only sign AssumeRole; the SDK caches the session and renews
            // it before it expires.
            let provider = AssumeRoleProvider::builder(role)
                .configure(&base)
                .session_name(SESSION_NAME)
                .build()
                .await;
            conf = conf.credentials_provider(provider);
        }
        Arc::new(Self {
            client: Client::from_conf(conf.build()),
        })
    }
}

#[async_trait]
impl IamApi for SdkIam {
    async fn create_user(
        &self,
        name: &str,
        path: &str,
        boundary: Option<&str>,
    ) -> Result<(), AwsError> {
        self.client
            .create_user()
            .user_name(name)
            .path(path)
            .set_permissions_boundary(boundary.map(str::to_owned))
            .send()
            .await
            .map_err(|e| classify("IAM CreateUser", e))?;
        Ok(())
    }

    async fn create_access_key(&self, user: &str) -> Result<(String, String), AwsError> {
        const OP: &str = "IAM CreateAccessKey";
        let out = self
            .client
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let key = out
            .access_key()
            .ok_or_else(|| AwsError::refused(OP, "the answer holds no access key"))?;
        Ok((
            key.access_key_id().to_owned(),
            key.secret_access_key().to_owned(),
        ))
    }

    async fn list_access_keys(&self, user: &str) -> Result<Vec<String>, AwsError> {
        // A user has at most two keys, so one page is all of them.
        let out = self
            .client
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .map_err(|e| classify("IAM ListAccessKeys", e))?;
        Ok(out
            .access_key_metadata()
            .iter()
            .filter_map(|k| k.access_key_id().map(str::to_owned))
            .collect())
    }

    async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), AwsError> {
        self.client
            .delete_access_key()
            .user_name(user)
            .access_key_id(key_id)
            .send()
            .await
            .map_err(|e| classify("IAM DeleteAccessKey", e))?;
        Ok(())
    }

    async fn delete_user(&self, user: &str) -> Result<(), AwsError> {
        self.client
            .delete_user()
            .user_name(user)
            .send()
            .await
            .map_err(|e| classify("IAM DeleteUser", e))?;
        Ok(())
    }

    async fn user_count_and_quota(&self) -> Result<Option<(u64, u64)>, AwsError> {
        use aws_sdk_iam::types::SummaryKeyType;
        let out = self
            .client
            .get_account_summary()
            .send()
            .await
            .map_err(|e| classify("IAM GetAccountSummary", e))?;
        let map = out.summary_map();
        let get = |k: SummaryKeyType| {
            map.and_then(|m| m.get(&k))
                .and_then(|v| u64::try_from(*v).ok())
        };
        Ok(get(SummaryKeyType::Users).zip(get(SummaryKeyType::UsersQuota)))
    }
}

/// Test support (feature `testing`): passes every call through, except that CreateAccessKey
/// fails, i.e. a failure right after CreateUser.
#[cfg(any(test, feature = "testing"))]
pub(crate) struct FailCreateAccessKey(pub Arc<dyn IamApi>);

#[cfg(any(test, feature = "testing"))]
#[async_trait]
impl IamApi for FailCreateAccessKey {
    async fn create_user(
        &self,
        name: &str,
        path: &str,
        boundary: Option<&str>,
    ) -> Result<(), AwsError> {
        self.0.create_user(name, path, boundary).await
    }
    async fn create_access_key(&self, _user: &str) -> Result<(String, String), AwsError> {
        Err(AwsError::refused(
            "IAM CreateAccessKey",
            "failure injected by the test",
        ))
    }
    async fn list_access_keys(&self, user: &str) -> Result<Vec<String>, AwsError> {
        self.0.list_access_keys(user).await
    }
    async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), AwsError> {
        self.0.delete_access_key(user, key_id).await
    }
    async fn delete_user(&self, user: &str) -> Result<(), AwsError> {
        self.0.delete_user(user).await
    }
    async fn user_count_and_quota(&self) -> Result<Option<(u64, u64)>, AwsError> {
        self.0.user_count_and_quota().await
    }
}
