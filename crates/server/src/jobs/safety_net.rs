//! The safety net: some calls never reach CloudTrail, but IAM still moves the key's "last used"
//! date. For every token this asks IAM `GetAccessKeyLastUsed`; when the date moves and no
//! CloudTrail hit explains it, it records a hit marked as a call CloudTrail did not log, with the
//! service and region AWS reports.

use std::sync::Arc;

use canarykeys_aws::{AwsError, KeyUsage, LastUsed};
use canarykeys_core::cloudtrail::{Identity, Record};
use canarykeys_store::{Store, TokenRecord};
use serde_json::json;

use crate::services::{DeliveryPath, IngestService};

pub const NOTE: &str = "used through a call CloudTrail did not log (seen by IAM's last-used date)";
/// A CloudTrail hit this close before the last-used time explains it: IAM's date and the
/// event's time come from different clocks and IAM's lags.
const EXPLAINED_WITHIN_MS: i64 = 15 * 60 * 1000;

pub struct SafetyNet {
    pub usage: Arc<dyn KeyUsage>,
    pub store: Arc<dyn Store>,
    pub ingest: IngestService,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundReport {
    pub checked: usize,
    pub not_at_aws: usize,
    pub moved: usize,
    pub new_hits: usize,
}

impl SafetyNet {
    pub async fn round(&self) -> anyhow::Result<RoundReport> {
        let mut report = RoundReport::default();
        for token in self.store.list_tokens().await? {
            report.checked += 1;
            let used = match self.usage.last_used(&token.access_key_id).await {
                Ok(Some(used)) => used,
                Ok(None) => continue,
                // Keys AWS does not know (the local minter's) have nothing to report.
                Err(AwsError::NotFound { .. }) => {
                    report.not_at_aws += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let key = format!("safety_net:last_used:{}", token.access_key_id);
            let seen: Option<i64> = self
                .store
                .get_setting(&key)
                .await?
                .and_then(|v| v.parse().ok());
            if seen.is_some_and(|s| used.at_millis <= s) {
                continue;
            }
            report.moved += 1;
            let explained = self
                .store
                .latest_hit_time(&token.id)
                .await?
                .is_some_and(|t| t >= used.at_millis - EXPLAINED_WITHIN_MS);
            if !explained {
                let outcome = self
                    .ingest
                    .record(
                        &[record(&token, &used)],
                        DeliveryPath::SafetyNet,
                        Some(NOTE),
                        false,
                    )
                    .await?;
                report.new_hits += outcome.new_hits;
            }
            // Stored after the hit is committed: a crash in between re-checks, and the
            // synthetic event id makes the second record a duplicate.
            self.store
                .put_setting(&key, &used.at_millis.to_string())
                .await?;
        }
        Ok(report)
    }
}

/// A CloudTrail-shaped record of what IAM reports, so the hit takes the one pipeline.
fn record(token: &TokenRecord, used: &LastUsed) -> Record {
    let service = used.service.clone().unwrap_or_else(|| "unknown".into());
    let raw = json!({
        "source": "iam:GetAccessKeyLastUsed",
        "accessKeyId": token.access_key_id.as_str(),
        "userName": token.username.as_str(),
        "lastUsedDate": crate::render::rfc3339(used.at_millis),
        "serviceName": used.service,
        "region": used.region,
    });
    Record {
        event_id: format!("safety-net:{}:{}", token.access_key_id, used.at_millis),
        event_time: Some(used.at_millis),
        fallbacks: Vec::new(),
        event_name: "(call not logged by CloudTrail)".into(),
        event_source: format!("{service}.amazonaws.com"),
        aws_region: used.region.clone(),
        source_ip: None,
        user_agent: None,
        error_code: None,
        error_message: None,
        recipient_account_id: Some(token.account_id.to_string()),
        identity: Identity {
            kind: Some("IAMUser".into()),
            access_key_id: Some(token.access_key_id.to_string()),
            user_name: Some(token.username.to_string()),
            account_id: Some(token.account_id.to_string()),
            arn: None,
            principal_id: None,
        },
        tls_host: None,
        vpc_endpoint_id: None,
        request_id: None,
        event_type: None,
        read_only: None,
        raw,
    }
}
