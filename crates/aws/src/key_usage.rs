//! Asking IAM when a key was last used: the safety-net poller's view of a decoy key, which
//! catches use that the CloudTrail paths missed (at the cost of AWS's hours-long update delay).

use async_trait::async_trait;
use aws_config::sts::AssumeRoleProvider;
use aws_config::SdkConfig;
use aws_sdk_iam::Client;
use canarykeys_core::{AccessKeyId, IamUserName};

use crate::error::{classify, AwsError, ErrorDetail};
use crate::{sdk_config, AwsSettings, DecoyAccount};

/// The AssumeRole session name of the safety net's calls; ordinary, like the minter's.
const SESSION_NAME: &str = "iam-audit";

/// When and where a key was last used, as IAM reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastUsed {
    /// Unix time in milliseconds (IAM's resolution is coarser, but millis match the rest of the
    /// code base's timestamps).
    pub at_millis: i64,
    /// The service of the last call (`s3`, `sts`, …); `None` when IAM says `N/A`.
    pub service: Option<String>,
    /// The region of the last call; `None` when IAM says `N/A`.
    pub region: Option<String>,
}

/// A managed policy attached to a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedPolicy {
    pub name: String,
    pub arn: String,
}

#[async_trait]
pub trait KeyUsage: Send + Sync + 'static {
    /// IAM GetAccessKeyLastUsed. `Ok(None)` when AWS says never used. `NotFound` when the key
    /// does not exist.
    async fn last_used(&self, access_key_id: &AccessKeyId) -> Result<Option<LastUsed>, AwsError>;
    /// IAM ListAttachedUserPolicies, every page: how the safety net sees AWS's quarantine
    /// policy on a decoy user. `NotFound` when the user does not exist.
    async fn attached_policies(&self, user: &IamUserName) -> Result<Vec<AttachedPolicy>, AwsError>;
}

/// [`KeyUsage`] over the AWS SDK's IAM client.
#[derive(Clone, Debug)]
pub struct IamKeyUsage {
    client: Client,
}

impl IamKeyUsage {
    pub fn new(cfg: &SdkConfig) -> Self {
        Self {
            client: Client::new(cfg),
        }
    }

    /// Asks IAM in one decoy account with that account's credentials: its role when it has one
    /// (as the `iam` minter reaches it), else its static keys or the default chain.
    pub async fn for_account(account: &DecoyAccount) -> Self {
        let base = sdk_config(&AwsSettings {
            region: account.region.clone(),
            endpoint_url: account.endpoint_url.clone(),
            access_key_id: account.access_key_id.clone(),
            secret_access_key: account.secret_access_key.clone(),
        })
        .await;
        let mut conf = aws_sdk_iam::config::Builder::from(&base);
        if let Some(role) = &account.role_arn {
            let provider = AssumeRoleProvider::builder(role)
                .configure(&base)
                .session_name(SESSION_NAME)
                .build()
                .await;
            conf = conf.credentials_provider(provider);
        }
        Self {
            client: Client::from_conf(conf.build()),
        }
    }
}

/// IAM fills ServiceName and Region with the literal `N/A` for a key that was never used.
fn known(s: &str) -> Option<String> {
    (!s.is_empty() && s != "N/A").then(|| s.to_owned())
}

#[async_trait]
impl KeyUsage for IamKeyUsage {
    async fn last_used(&self, access_key_id: &AccessKeyId) -> Result<Option<LastUsed>, AwsError> {
        const OP: &str = "IAM GetAccessKeyLastUsed";
        // An unknown key: moto answers NoSuchEntity (HTTP 404, "The Access Key with id … cannot
        // be found"), which `classify` makes NotFound. AWS documents the same NoSuchEntity/404
        // for this call. Not checked here against a real account: for a key id that belongs to
        // ANOTHER account, IAM cannot resolve the resource in ours and may answer AccessDenied
        // instead, which comes back as Denied, so callers must not read Denied as "our
        // credentials are broken" without checking the key's account first.
        let out = self
            .client
            .get_access_key_last_used()
            .access_key_id(access_key_id.as_str())
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        // Never used: AccessKeyLastUsed comes back with no LastUsedDate and `N/A` for the rest.
        let Some(used) = out.access_key_last_used() else {
            return Ok(None);
        };
        let Some(date) = used.last_used_date() else {
            return Ok(None);
        };
        let at_millis = date.to_millis().map_err(|e| AwsError::Other {
            op: OP,
            detail: ErrorDetail::message("LastUsedDate is out of range"),
            source: Some(Box::new(e)),
        })?;
        Ok(Some(LastUsed {
            at_millis,
            service: known(used.service_name()),
            region: known(used.region()),
        }))
    }

    async fn attached_policies(&self, user: &IamUserName) -> Result<Vec<AttachedPolicy>, AwsError> {
        const OP: &str = "IAM ListAttachedUserPolicies";
        let mut pages = self
            .client
            .list_attached_user_policies()
            .user_name(user.as_str())
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(OP, e))?;
            out.extend(page.attached_policies().iter().map(|p| AttachedPolicy {
                name: p.policy_name().unwrap_or_default().to_owned(),
                arn: p.policy_arn().unwrap_or_default().to_owned(),
            }));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::known;

    #[test]
    fn n_a_and_empty_mean_unknown() {
        assert_eq!(known("N/A"), None);
        assert_eq!(known(""), None);
        assert_eq!(known("s3").as_deref(), Some("s3"));
    }
}
