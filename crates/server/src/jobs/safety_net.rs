//! The safety net: some calls never reach CloudTrail, but IAM still moves the key's "last used"
//! date. For every token this asks IAM `GetAccessKeyLastUsed`; when the date moves and no
//! CloudTrail hit explains it, it records a hit marked as a call CloudTrail did not log, with the
//! service and region AWS reports.
//!
//! Every key is checked every round: an error is counted against the key's account and the round
//! goes on. Each account is asked with its own credentials (the role of its
//! `[[minter.accounts]]` entry, as the `iam` minter reaches it); other accounts with the `[aws]`
//! credentials. Each round's per-account outcome is stored for `/healthz/detail` and the console,
//! and reported to the operator channel, which alerts when an account starts failing and when
//! it recovers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use canarykeys_aws::{AwsError, KeyUsage, LastUsed};
use canarykeys_core::cloudtrail::{Identity, Record};
use canarykeys_core::AccountId;
use canarykeys_store::{Store, TokenRecord};
use serde_json::json;

use crate::services::detection_health::{AccountCheck, SafetyNetHealth};
use crate::services::operator_alerts::Condition;
use crate::services::{DeliveryPath, IngestService};

pub const NOTE: &str = "used through a call CloudTrail did not log (seen by IAM's last-used date)";
/// A CloudTrail hit this close before the last-used time explains it: IAM's date and the
/// event's time come from different clocks and IAM's lags.
const EXPLAINED_WITHIN_MS: i64 = 15 * 60 * 1000;

pub struct SafetyNet {
    /// Asks IAM for accounts without an entry in `accounts` (the `[aws]` credentials).
    pub usage: Arc<dyn KeyUsage>,
    /// Asks IAM in one decoy account with that account's own credentials.
    pub accounts: HashMap<AccountId, Arc<dyn KeyUsage>>,
    pub store: Arc<dyn Store>,
    pub ingest: IngestService,
    /// Records AWS's quarantine policy on a decoy user as an exposure (`quarantine.rs`).
    pub exposures: crate::services::ExposureService,
    pub clock: crate::clock::SharedClock,
    /// Told each account's outcome: it alerts when an account's checks start failing and when
    /// they work again.
    pub operator_alerts: crate::services::operator_alerts::OperatorAlerts,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundReport {
    pub checked: usize,
    pub not_at_aws: usize,
    pub moved: usize,
    pub new_hits: usize,
    /// Keys whose check failed (the round went on with the others).
    pub errors: usize,
    /// Tokens whose user was found quarantined by AWS for the first time this round.
    pub quarantined: usize,
}

/// What checking one key found.
enum KeyOutcome {
    NeverUsed,
    NotAtAws,
    Unchanged,
    Moved { new_hits: usize },
}

impl SafetyNet {
    pub(super) fn usage_for(&self, account: &AccountId) -> &Arc<dyn KeyUsage> {
        self.accounts.get(account).unwrap_or(&self.usage)
    }

    pub async fn round(&self) -> anyhow::Result<RoundReport> {
        let mut report = RoundReport::default();
        let mut accounts: BTreeMap<String, AccountCheck> = BTreeMap::new();
        for token in self.store.list_tokens().await? {
            report.checked += 1;
            let account = accounts
                .entry(token.account_id.to_string())
                .or_insert_with(|| AccountCheck::new(token.account_id.to_string()));
            account.keys += 1;
            // Apart from the last-used check: AWS's quarantine policy means the key was seen
            // in public, used or not. A key with a failed check counts as one error.
            let quarantine = self.check_quarantine(&token).await;
            let usage = self.check_key(&token).await;
            if let Ok(n) = &quarantine {
                report.quarantined += n;
            }
            let failure = match usage {
                Ok(KeyOutcome::NotAtAws) => {
                    report.not_at_aws += 1;
                    None
                }
                Ok(KeyOutcome::Moved { new_hits }) => {
                    report.moved += 1;
                    report.new_hits += new_hits;
                    None
                }
                Ok(KeyOutcome::NeverUsed | KeyOutcome::Unchanged) => None,
                Err(e) => Some(e),
            }
            .or(quarantine.err());
            if let Some(e) = failure {
                // One key's failure (a throttle, a denied role) must not hide the others.
                report.errors += 1;
                account.errors += 1;
                account.last_error = Some(format!("{e:#}"));
                tracing::warn!(token = %token.id, account = %token.account_id, error = format!("{e:#}"), "safety net cannot check key");
            }
        }
        // The heartbeat keys too: a move of their date is the safety net's own receipt.
        if let Err(e) = self.check_heartbeats().await {
            tracing::warn!(
                error = format!("{e:#}"),
                "safety net cannot check the heartbeat keys"
            );
        }
        let health = SafetyNetHealth {
            checked_at: self.clock.now_millis(),
            accounts: accounts.into_values().collect(),
        };
        crate::services::detection_health::store_safety_net(self.store.as_ref(), &health).await?;
        for account in &health.accounts {
            let condition = Condition::SafetyNet {
                account_id: account.account_id.clone(),
                error: account.last_error.clone().filter(|_| account.errors > 0),
            };
            if let Err(e) = self.operator_alerts.report(condition).await {
                tracing::error!(
                    error = format!("{e:#}"),
                    "cannot report the safety net to the operator channel"
                );
            }
        }
        Ok(report)
    }

    /// Checks one key: asks IAM in its account, and records a hit when the last-used date moved
    /// with no CloudTrail hit to explain it.
    async fn check_key(&self, token: &TokenRecord) -> anyhow::Result<KeyOutcome> {
        let used = match self
            .usage_for(&token.account_id)
            .last_used(&token.access_key_id)
            .await
        {
            Ok(Some(used)) => used,
            Ok(None) => return Ok(KeyOutcome::NeverUsed),
            // Keys AWS does not know (the local minter's) have nothing to report.
            Err(AwsError::NotFound { .. }) => return Ok(KeyOutcome::NotAtAws),
            Err(e) => return Err(e.into()),
        };
        let key = format!("safety_net:last_used:{}", token.access_key_id);
        let seen: Option<i64> = self
            .store
            .get_setting(&key)
            .await?
            .and_then(|v| v.parse().ok());
        if seen.is_some_and(|s| used.at_millis <= s) {
            return Ok(KeyOutcome::Unchanged);
        }
        let explained = self
            .store
            .latest_hit_time(&token.id)
            .await?
            .is_some_and(|t| t >= used.at_millis - EXPLAINED_WITHIN_MS);
        let mut new_hits = 0;
        if !explained {
            let outcome = self
                .ingest
                .record(
                    &[token_record(token, &used)],
                    DeliveryPath::SafetyNet,
                    Some(NOTE),
                    false,
                )
                .await?;
            new_hits = outcome.new_hits;
        }
        // Stored after the hit is committed: a crash in between re-checks, and the
        // synthetic event id makes the second record a duplicate.
        self.store
            .put_setting(&key, &used.at_millis.to_string())
            .await?;
        Ok(KeyOutcome::Moved { new_hits })
    }
}

impl SafetyNet {
    /// Asks IAM for each live heartbeat key's last use; a new date goes through the pipeline,
    /// which stores it as the safety-net path's receipt (never a hit).
    async fn check_heartbeats(&self) -> anyhow::Result<()> {
        for key in self.store.heartbeat_keys().await? {
            if key.retired_at.is_some() {
                continue;
            }
            let used = match self
                .usage_for(&key.account_id)
                .last_used(&key.access_key_id)
                .await
            {
                Ok(Some(used)) => used,
                Ok(None) | Err(AwsError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let seen_key = format!("safety_net:last_used:{}", key.access_key_id);
            let seen: Option<i64> = self
                .store
                .get_setting(&seen_key)
                .await?
                .and_then(|v| v.parse().ok());
            if seen.is_some_and(|s| used.at_millis <= s) {
                continue;
            }
            let ids = (
                key.access_key_id.to_string(),
                key.username.to_string(),
                key.account_id.to_string(),
            );
            self.ingest
                .record(&[record(ids, &used)], DeliveryPath::SafetyNet, None, false)
                .await?;
            self.store
                .put_setting(&seen_key, &used.at_millis.to_string())
                .await?;
        }
        Ok(())
    }
}

/// A CloudTrail-shaped record of what IAM reports, so the hit takes the one pipeline.
fn token_record(token: &TokenRecord, used: &LastUsed) -> Record {
    let ids = (
        token.access_key_id.to_string(),
        token.username.to_string(),
        token.account_id.to_string(),
    );
    record(ids, used)
}

/// As `token_record`, for a key, user and account.
fn record((key, user, account): (String, String, String), used: &LastUsed) -> Record {
    let service = used.service.clone().unwrap_or_else(|| "unknown".into());
    let raw = json!({
        "source": "iam:GetAccessKeyLastUsed",
        "accessKeyId": key,
        "userName": user,
        "lastUsedDate": crate::render::rfc3339(used.at_millis),
        "serviceName": used.service,
        "region": used.region,
    });
    Record {
        event_id: format!("safety-net:{key}:{}", used.at_millis),
        event_time: Some(used.at_millis),
        fallbacks: Vec::new(),
        event_name: "(call not logged by CloudTrail)".into(),
        event_source: format!("{service}.amazonaws.com"),
        aws_region: used.region.clone(),
        source_ip: None,
        user_agent: None,
        error_code: None,
        error_message: None,
        recipient_account_id: Some(account.clone()),
        identity: Identity {
            kind: Some("IAMUser".into()),
            access_key_id: Some(key),
            user_name: Some(user),
            account_id: Some(account),
            arn: None,
            principal_id: None,
        },
        tls_host: None,
        vpc_endpoint_id: None,
        request_id: None,
        event_type: None,
        read_only: None,
        raw: raw.into(),
    }
}
