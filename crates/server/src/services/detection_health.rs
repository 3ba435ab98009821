//! How the detection paths are doing, beyond "the process is up": the safety net's last round
//! per decoy account (keys checked, errors and the last one). Kept in the settings table so
//! every replica, `/healthz/detail` and the console read the same.

use canarykeys_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

use super::IngestService;

const SAFETY_NET_KEY: &str = "health:safety_net";

/// One decoy account in the safety net's last round.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCheck {
    pub account_id: String,
    /// Keys of this account the round checked.
    pub keys: u64,
    /// Checks that failed (AWS unreachable, credentials or role refused, throttled).
    pub errors: u64,
    /// The last failure, as the AWS client reported it.
    pub last_error: Option<String>,
}

impl AccountCheck {
    pub fn new(account_id: String) -> Self {
        Self {
            account_id,
            ..Self::default()
        }
    }
}

/// The safety net's last round.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyNetHealth {
    /// When the round ended (unix ms).
    pub checked_at: i64,
    pub accounts: Vec<AccountCheck>,
}

/// The body of `GET /healthz/detail`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthDetail {
    /// "ok", or "degraded" when a detection path reports errors.
    pub status: String,
    /// `None` until the safety net has run (or when it is off).
    pub safety_net: Option<SafetyNetHealth>,
    /// The free-disk watermark of the SQLite data directory (`[storage] min_free`); absent on
    /// PostgreSQL or when it is off. Read from memory: this answer writes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<super::disk::DiskHealth>,
    /// The operator channel (`[operator_alerts]`): the watchdog's last `alive`, and operator
    /// deliveries pending or given up on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<super::operator_alerts::OperatorHealth>,
}

pub(crate) async fn store_safety_net(
    store: &dyn Store,
    health: &SafetyNetHealth,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(health).expect("health serialises");
    store.put_setting(SAFETY_NET_KEY, &text).await
}

impl IngestService {
    /// The detection paths' health. A stored value that no longer parses reads as "not run".
    pub async fn detection_health(&self) -> Result<HealthDetail, crate::services::ServiceError> {
        let safety_net: Option<SafetyNetHealth> = self
            .store()
            .get_setting(SAFETY_NET_KEY)
            .await?
            .and_then(|v| serde_json::from_str(&v).ok());
        let disk = self.disk().health();
        let degraded = safety_net
            .as_ref()
            .is_some_and(|h| h.accounts.iter().any(|a| a.errors > 0))
            || disk.as_ref().is_some_and(|d| d.low);
        Ok(HealthDetail {
            status: if degraded { "degraded" } else { "ok" }.into(),
            safety_net,
            disk,
            operator: self.operator_alerts().health().await?,
        })
    }
}
