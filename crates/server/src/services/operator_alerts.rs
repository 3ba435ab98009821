//! Alerts about the system rather than a token (`[operator_alerts]`, schema
//! `canarykeys.operator/v1`): a detection path gone silent or back, a heartbeat call refused,
//! the disk under its watermark, safety-net rounds failing, and the `alive` watchdog.
//!
//! Producers (the heartbeat, the disk watch, the safety net) call [`OperatorAlerts::report`]
//! with a condition's *current* state as often as they like; the service sends an alert only
//! when that state differs from the last one recorded for the same subject, so nothing repeats
//! while a state holds. The store compares and writes the subject's row in the transaction that
//! queues the alert's deliveries (the operator lanes of the outbox), so replicas reporting the
//! same change send it once.

use std::sync::Arc;
use std::time::Duration;

mod compose;

use canarykeys_core::detection::DetectionReport;
use canarykeys_store::{OperatorCondition, Store};
use serde::{Deserialize, Serialize};

use super::ServiceError;
use crate::clock::SharedClock;
use crate::notify::operator::{AliveBody, OperatorKind, OperatorStatus};
use crate::render::rfc3339;

/// The watchdog's timer row.
const ALIVE: &str = "alive";

/// A condition an operator should hear about, in its current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// A detection path's state (subject: account, region and path).
    Detection(DetectionReport),
    /// The heartbeat call itself, in one account and region: `None` when it worked, or why
    /// AWS refused it (user or key deleted, throttled).
    HeartbeatCall {
        account_id: String,
        region: String,
        refused: Option<String>,
    },
    /// Free space on the data directory against `[storage] min_free`.
    Disk { low: bool, free_bytes: u64 },
    /// The safety net's last round in one account: `None` when it worked.
    SafetyNet {
        account_id: String,
        error: Option<String>,
    },
}

/// The operator channel. Cheap to clone; `default()` is off (reports are dropped).
#[derive(Clone, Default)]
pub struct OperatorAlerts {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: SharedClock,
    email: Vec<String>,
    /// Why email rows cannot be sent (no `[smtp] host`), if so.
    email_missing: Option<&'static str>,
    webhook: Option<String>,
    /// The server's public URL, named in every alert.
    server: String,
    min_free: u64,
    alive_every: Option<Duration>,
    /// `[streams]` that take operator alerts get them in the same transaction.
    streams: crate::services::streams::StreamRouting,
}

/// The operator channel's state, as `/healthz/detail` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorHealth {
    /// Channels configured: `email`, `webhook`.
    pub channels: Vec<String>,
    /// `[operator_alerts] alive_every` in seconds; `null` when the watchdog is off.
    pub alive_every_seconds: Option<u64>,
    /// When the last `alive` was queued, by any replica (RFC 3339).
    pub last_alive_at: Option<String>,
    pub next_alive_at: Option<String>,
    /// Operator deliveries waiting (retries included), and given up on.
    pub pending: u64,
    pub failed: u64,
    pub last_error: Option<String>,
}

impl OperatorAlerts {
    /// The channel `[operator_alerts]` describes. `email_configured`: whether `[smtp]` can
    /// send; `server`: the public URL alerts name.
    pub fn new(
        config: &crate::Config,
        store: Arc<dyn Store>,
        clock: SharedClock,
        server: String,
    ) -> Self {
        let c = &config.operator_alerts;
        let email_missing = (config.smtp.host.is_none() && !c.email.is_empty())
            .then_some("email is not configured on this server ([smtp] host)");
        if email_missing.is_some() {
            tracing::warn!("[operator_alerts] email is set but no [smtp] host: operator mails will not be sent");
        }
        Self {
            inner: Some(Arc::new(Inner {
                store,
                clock,
                email: c.email.clone(),
                email_missing,
                webhook: c.webhook_url.clone(),
                server,
                min_free: config.storage.min_free,
                alive_every: c.alive_every,
                streams: crate::services::streams::StreamRouting::new(&config.streams),
            })),
        }
    }

    /// Records `condition`'s current state and queues an operator alert, in the same
    /// transaction, when it differs from the last state recorded for its subject.
    pub async fn report(&self, condition: Condition) -> Result<(), ServiceError> {
        let Some(inner) = &self.inner else {
            tracing::debug!(?condition, "operator condition (no operator channel)");
            return Ok(());
        };
        let now = inner.clock.now_millis();
        let (subject, state, level) = compose::judge(&condition);
        let alert = inner.alert(&condition, level, now);
        let record = OperatorCondition {
            subject,
            state: state.to_owned(),
            level,
            detail: serde_json::to_string(&alert).expect("an operator alert serialises"),
            at: now,
        };
        let sent = inner
            .store
            .record_condition(&record, &inner.deliveries(&alert, now))
            .await?;
        if sent {
            tracing::warn!(subject = %record.subject, state, alert = %alert.alert_id, "operator alert queued");
        }
        Ok(())
    }

    /// The watchdog's interval, when it is on.
    pub fn alive_every(&self) -> Option<Duration> {
        self.inner.as_ref().and_then(|i| i.alive_every)
    }

    /// Queues `"type": "alive"` if this interval's is due and no replica queued it yet.
    /// Returns whether this call queued it.
    pub async fn alive_once(&self) -> Result<bool, ServiceError> {
        let Some(inner) = &self.inner else {
            return Ok(false);
        };
        let Some(every) = inner.alive_every else {
            return Ok(false);
        };
        let now = inner.clock.now_millis();
        let mut alert = inner.base(OperatorKind::Alive, OperatorStatus::Alive, now);
        alert.alive = Some(AliveBody {
            every_seconds: every.as_secs(),
        });
        alert.headline = format!(
            "canarykeys at {} is alive; the next beat comes within {}",
            inner.server,
            humantime_serde::re::humantime::format_duration(every)
        );
        let every_ms = i64::try_from(every.as_millis()).unwrap_or(i64::MAX);
        Ok(inner
            .store
            .take_timer(ALIVE, now, every_ms, &inner.deliveries(&alert, now))
            .await?)
    }

    /// The watchdog: looks every few seconds (the store says when a beat is due, across
    /// replicas). Returns at once when it is off.
    pub async fn run_alive_forever(self) {
        let Some(every) = self.alive_every() else {
            return;
        };
        let look = (every / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
        loop {
            if let Err(e) = self.alive_once().await {
                tracing::error!(error = format!("{e:#}"), "operator watchdog round failed");
            }
            tokio::time::sleep(look).await;
        }
    }

    /// The channel's state for `/healthz/detail`; `None` when off.
    pub async fn health(&self) -> Result<Option<OperatorHealth>, ServiceError> {
        let Some(inner) = &self.inner else {
            return Ok(None);
        };
        let s = inner.store.operator_status().await?;
        let mut channels = Vec::new();
        if !inner.email.is_empty() {
            channels.push("email".to_owned());
        }
        if inner.webhook.is_some() {
            channels.push("webhook".to_owned());
        }
        Ok(Some(OperatorHealth {
            channels,
            alive_every_seconds: inner.alive_every.map(|d| d.as_secs()),
            last_alive_at: s.last_alive_at.map(rfc3339),
            next_alive_at: s
                .next_alive_at
                .filter(|_| inner.alive_every.is_some())
                .map(rfc3339),
            pending: s.pending,
            failed: s.failed,
            last_error: s.last_error,
        }))
    }
}
