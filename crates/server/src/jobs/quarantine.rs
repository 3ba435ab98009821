//! The safety net's quarantine check: when AWS finds a key in public it attaches its managed
//! quarantine policy (`AWSCompromisedKeyQuarantineV2`, `…V3`, and later versions) to the key's
//! user. Seeing that policy on a decoy user is an exposure, whether or not the key was used.

use canarykeys_aws::AwsError;
use canarykeys_core::health::is_quarantine_policy;
use canarykeys_store::TokenRecord;

use super::safety_net::SafetyNet;

impl SafetyNet {
    /// Checks one token's user; returns 1 when this was its first quarantine exposure. A user
    /// AWS does not know (the local minter's keys) has nothing to report.
    pub(super) async fn check_quarantine(&self, token: &TokenRecord) -> anyhow::Result<usize> {
        let policies = match self
            .usage_for(&token.account_id)
            .attached_policies(&token.username)
            .await
        {
            Ok(p) => p,
            Err(AwsError::NotFound { .. }) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let Some(policy) = policies.iter().find(|p| is_quarantine_policy(&p.name)) else {
            return Ok(0);
        };
        let new = self
            .exposures
            .record_quarantine(token, &policy.name, &policy.arn)
            .await?;
        Ok(usize::from(new))
    }
}
