//! One decoy account of the `iam` minter: where it is, how to reach it, how its users are made,
//! and the checks that refuse a setting which would fail every mint or give the users away.

use std::fmt;

use canarykeys_core::names::{check_iam_path, check_no_tells};
use canarykeys_core::AccountId;

use crate::AwsSettings;

/// Users kept free below an account's IAM user quota unless configured otherwise.
pub const DEFAULT_USER_HEADROOM: u32 = 10;

/// One decoy account the `iam` minter works in.
#[derive(Clone, PartialEq, Eq)]
pub struct DecoyAccount {
    pub account_id: AccountId,
    /// A role to assume in the account; unset, the credentials below (or the default chain)
    /// call IAM directly.
    pub role_arn: Option<String>,
    /// The region to sign for (IAM is global; STS is called here when assuming a role).
    pub region: String,
    /// Relative share of the tokens minted without a chosen account; 0: only when chosen.
    pub weight: u32,
    /// The IAM path of new users, `/` by default.
    pub path: String,
    /// A managed policy ARN set as each new user's permissions boundary.
    pub permissions_boundary: Option<String>,
    /// Send IAM (and STS) calls here instead of AWS (moto, a proxy).
    pub endpoint_url: Option<String>,
    /// Static credentials; both or neither (then the SDK's default chain).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// IAM users kept free below the account's quota (GetAccountSummary's `UsersQuota`): minting
    /// stops this many users short of it, leaving room for the heartbeat identity and rotation.
    pub user_headroom: u32,
}

impl DecoyAccount {
    /// An account with weight 1, path `/` and the default credential chain.
    pub fn new(account_id: AccountId, region: impl Into<String>) -> Self {
        Self {
            account_id,
            role_arn: None,
            region: region.into(),
            weight: 1,
            path: "/".into(),
            permissions_boundary: None,
            endpoint_url: None,
            access_key_id: None,
            secret_access_key: None,
            user_headroom: DEFAULT_USER_HEADROOM,
        }
    }

    /// Refuses what would fail at every mint, or make users that give themselves away.
    pub(super) fn validate(&self) -> Result<(), String> {
        let id = self.account_id;
        check_iam_path(&self.path)
            .and_then(|()| check_no_tells(&self.path))
            .map_err(|e| format!("account {id}: path: {e}"))?;
        if let Some(b) = &self.permissions_boundary {
            if !b.starts_with("arn:") {
                return Err(format!(
                    "account {id}: permissions_boundary is a policy ARN"
                ));
            }
            check_no_tells(b).map_err(|e| format!("account {id}: permissions_boundary: {e}"))?;
        }
        let settings = AwsSettings {
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
        };
        settings
            .validate()
            .map_err(|e| format!("account {id}: {e}"))
    }
}

impl fmt::Debug for DecoyAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecoyAccount")
            .field("account_id", &self.account_id)
            .field("role_arn", &self.role_arn)
            .field("region", &self.region)
            .field("weight", &self.weight)
            .field("path", &self.path)
            .field("permissions_boundary", &self.permissions_boundary)
            .field("endpoint_url", &self.endpoint_url)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}
