//! Background jobs inside `serve`: the alert outbox, token expiry, history retention and the
//! detection pollers. Each runs on its own interval, logs and keeps going when a round fails, and
//! stops with the server.
//!
//! `Jobs` is a cheap, cloneable handle (`Application::jobs()`): `start` spawns the loops, and the
//! `*_once` methods run one round now, so a test drives the jobs with its clock instead of
//! sleeping until a loop comes round.

pub mod deliver;
mod deliver_stream;
pub mod index_sync;
pub mod quarantine;
pub mod s3_poller;
pub mod safety_net;
pub mod wake;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use canarykeys_aws::{sdk_config, AwsSettings, IamKeyUsage, KeyUsage, S3TrailBucket};
use canarykeys_core::AccountId;
use canarykeys_store::{SqlStore, Store};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::services::{ExposureService, IngestService, TokenService};

const DAY_MS: i64 = 86_400_000;

/// How often the mint reconciler runs, and how old an intent must be before it acts: far
/// longer than a mint may take (30 s with retries), so it never races a create in flight.
const RECONCILE_EVERY: Duration = Duration::from_secs(300);
const MINT_GRACE_MS: i64 = 10 * 60 * 1000;

/// The detection pollers the configuration turns on.
#[derive(Clone, Default)]
pub struct Pollers {
    s3: Option<(Arc<Mutex<s3_poller::S3Poller>>, Duration)>,
    safety_net: Option<(Arc<safety_net::SafetyNet>, Duration)>,
}

/// What one retention round deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub hits: u64,
    pub exposures: u64,
    /// Tombstones past `[detection] late_event_window` with nothing left referring to them.
    pub tombstones: u64,
    /// Delivered and failed deliveries older than the history retention.
    pub deliveries: u64,
    /// Audit entries older than `[access] audit_retention_days`.
    pub audit: u64,
    /// Heartbeat receipts older than the history retention.
    pub receipts: u64,
}

/// Every job of one server, ready to start or to run once.
#[derive(Clone)]
pub struct Jobs {
    pub(crate) deliverer: Arc<deliver::Deliverer>,
    pub(crate) tokens: TokenService,
    pub(crate) exposures: ExposureService,
    pub(crate) clock: SharedClock,
    /// Days of hits and exposures to keep; 0 keeps them all.
    pub(crate) retention_days: u32,
    /// Days of audit log to keep; 0 keeps it all.
    pub(crate) audit_retention_days: u32,
    /// How long tombstones are kept for late records.
    pub(crate) late: crate::services::LateEvents,
    /// The key index, kept exact across processes by `index_sync`.
    pub(crate) index: crate::services::key_index::KeyIndex,
    pub(crate) pollers: Pollers,
    /// Relays other replicas' commits to the outbox worker (PostgreSQL LISTEN/NOTIFY).
    pub(crate) wake: (Arc<SqlStore>, Arc<tokio::sync::Notify>),
    /// The free-disk watermark, read on its own timer.
    pub(crate) disk: crate::services::disk::DiskWatch,
    /// Proof of life: the calls and the path states.
    pub(crate) heartbeat: crate::services::heartbeat::HeartbeatService,
    /// The operator channel: the disk watch reports to it, and its watchdog runs here.
    pub(crate) operator: crate::services::operator_alerts::OperatorAlerts,
}

impl Jobs {
    /// One outbox round: plans new alerts, closes cooldown windows, sends what is due. Returns
    /// how many deliveries were attempted.
    pub async fn deliver_once(&self) -> anyhow::Result<usize> {
        Ok(self.deliverer.run_once().await?)
    }

    /// Deletes the tokens (and their keys) whose expiry has come. Returns how many.
    pub async fn expire_once(&self) -> anyhow::Result<usize> {
        let now = self.clock.now_millis();
        let deleted = self.tokens.delete_expired(now).await?;
        for t in &deleted {
            tracing::info!(token = %t.id, "expired token deleted");
        }
        Ok(deleted.len())
    }

    /// Deletes hits, exposures and finished deliveries older than the retention (a hit by its
    /// event time, an exposure by when it was last reported; nothing when retention is off),
    /// audit entries older than the audit retention, then tombstones
    /// whose late-event window has passed and that no hit, pending delivery or window still
    /// needs (whatever the retention). Returns how many.
    pub async fn retention_once(&self) -> anyhow::Result<Pruned> {
        let now = self.clock.now_millis();
        let days = self.retention_days;
        let mut pruned = Pruned::default();
        if days > 0 {
            let before = now - i64::from(days) * DAY_MS;
            pruned.hits = self.tokens.delete_hits_before(before).await?;
            pruned.exposures = self.exposures.delete_before(before).await?;
            // The outbox's history goes with the hits it told about; pending rows stay.
            pruned.deliveries = self.tokens.delete_deliveries_before(before).await?;
            pruned.receipts = self.heartbeat.delete_receipts_before(before).await?;
        }
        if self.audit_retention_days > 0 {
            let before = now - i64::from(self.audit_retention_days) * DAY_MS;
            pruned.audit = self.tokens.delete_audit_before(before).await?;
        }
        pruned.tombstones = self
            .tokens
            .prune_tombstones(now.saturating_sub(self.late.window_ms))
            .await?;
        if pruned != Pruned::default() {
            tracing::info!(
                hits = pruned.hits,
                exposures = pruned.exposures,
                tombstones = pruned.tombstones,
                deliveries = pruned.deliveries,
                audit = pruned.audit,
                receipts = pruned.receipts,
                days,
                "old history deleted (history and audit retention, late-event window)"
            );
        }
        Ok(pruned)
    }

    /// Revokes keys that creates interrupted by a crash left behind (intents older than the
    /// grace period). Returns what it did.
    pub async fn reconcile_once(&self) -> anyhow::Result<crate::services::tokens::ReconcileReport> {
        let now = self.clock.now_millis();
        let report = self.tokens.reconcile_mints(now - MINT_GRACE_MS).await?;
        if report != Default::default() {
            tracing::info!(?report, "mint reconciler round");
        }
        Ok(report)
    }

    /// One round of each configured detection poller (S3, then the safety net).
    pub async fn poll_once(&self) -> anyhow::Result<()> {
        if let Some((poller, _)) = &self.pollers.s3 {
            let report = poller.lock().await.round().await?;
            tracing::debug!(?report, "s3 poller round");
        }
        if let Some((net, _)) = &self.pollers.safety_net {
            let report = net.round().await?;
            tracing::debug!(?report, "safety net round");
        }
        Ok(())
    }

    /// One heartbeat tick: the calls whose slot this replica takes, then every path judged
    /// and reported to the operator channel.
    pub async fn heartbeat_once(
        &self,
    ) -> anyhow::Result<(
        crate::services::heartbeat::BeatReport,
        Vec<crate::services::heartbeat::PathStatus>,
    )> {
        let beat = self.heartbeat.beat_once().await;
        // The paths are judged even when a call failed: that is when they matter most.
        let paths = self.heartbeat.evaluate().await?;
        Ok((beat?, paths))
    }

    /// Reads the free disk now (as the timer does every 10 s) and reports it to the operator
    /// channel; `None` when the watch is off.
    pub async fn disk_once(&self) -> Option<crate::services::disk::DiskHealth> {
        self.disk.check_and_report(&self.operator).await
    }

    /// The operator channel, for producers outside the jobs (the heartbeat) and tests.
    pub fn operator_alerts(&self) -> &crate::services::operator_alerts::OperatorAlerts {
        &self.operator
    }

    /// The operator watchdog's turn: queues `"type": "alive"` if this interval's is due and no
    /// replica queued it yet. Returns whether this call did.
    pub async fn alive_once(&self) -> anyhow::Result<bool> {
        Ok(self.operator.alive_once().await?)
    }

    /// Spawns every loop; abort the handles to stop them.
    pub fn start(&self) -> Vec<JoinHandle<()>> {
        let mut handles = vec![
            tokio::spawn(self.deliverer.clone().run_forever()),
            tokio::spawn(wake::relay_commits(
                self.wake.0.clone(),
                self.wake.1.clone(),
            )),
            tokio::spawn(index_sync::follow_tokens(
                self.wake.0.clone(),
                self.index.clone(),
            )),
            tokio::spawn(self.disk.clone().run_forever(self.operator.clone())),
            tokio::spawn(self.operator.clone().run_alive_forever()),
        ];
        let jobs = self.clone();
        handles.push(every("expiry", Duration::from_secs(60), move || {
            let jobs = jobs.clone();
            async move { jobs.expire_once().await.map(drop) }
        }));
        let jobs = self.clone();
        handles.push(every("reconcile", RECONCILE_EVERY, move || {
            let jobs = jobs.clone();
            async move { jobs.reconcile_once().await.map(drop) }
        }));
        // Always: tombstones age out whatever the history retention (daily, so a tombstone
        // outlives its window by a day at most, in the database and in the index).
        let jobs = self.clone();
        handles.push(every(
            "retention",
            Duration::from_secs(24 * 3600),
            move || {
                let jobs = jobs.clone();
                async move { jobs.retention_once().await.map(drop) }
            },
        ));
        if self.heartbeat.settings().enabled {
            let jobs = self.clone();
            let interval = self.heartbeat.settings().interval;
            handles.push(every("heartbeat", interval, move || {
                let jobs = jobs.clone();
                async move {
                    let (report, _) = jobs.heartbeat_once().await?;
                    tracing::debug!(?report, "heartbeat round");
                    Ok(())
                }
            }));
        }
        if let Some((poller, interval)) = self.pollers.s3.clone() {
            handles.push(every("s3-poller", interval, move || {
                let poller = poller.clone();
                async move {
                    let report = poller.lock().await.round().await?;
                    tracing::debug!(?report, "s3 poller round");
                    Ok(())
                }
            }));
        }
        if let Some((net, interval)) = self.pollers.safety_net.clone() {
            handles.push(every("safety-net", interval, move || {
                let net = net.clone();
                async move {
                    let report = net.round().await?;
                    tracing::debug!(?report, "safety net round");
                    Ok(())
                }
            }));
        }
        handles
    }
}

/// The detection pollers the configuration turns on.
pub async fn pollers(
    config: &Config,
    store: &Arc<SqlStore>,
    ingest: &IngestService,
    exposures: &crate::services::ExposureService,
    clock: &SharedClock,
    operator_alerts: &crate::services::operator_alerts::OperatorAlerts,
) -> Pollers {
    let d = &config.detection;
    if d.s3.bucket.is_none() && !d.safety_net.enabled {
        return Pollers::default();
    }
    let aws = sdk_config(&AwsSettings {
        region: config.aws.region.clone(),
        endpoint_url: config.aws.endpoint_url.clone(),
        access_key_id: config.aws.access_key_id.clone(),
        secret_access_key: config
            .aws
            .secret_access_key
            .as_ref()
            .map(|s| s.expose().to_owned()),
    })
    .await;
    let store: Arc<dyn Store> = store.clone();
    let mut jobs = Pollers::default();
    if let Some(bucket) = &d.s3.bucket {
        let poller = s3_poller::S3Poller::new(
            Arc::new(S3TrailBucket::new(&aws)),
            store.clone(),
            ingest.clone(),
            bucket.clone(),
            d.s3.prefix.clone(),
            config.ingest.max_body_bytes as u64,
        );
        jobs.s3 = Some((
            Arc::new(Mutex::new(poller)),
            Duration::from_secs(d.s3.interval_secs),
        ));
    }
    if d.safety_net.enabled {
        // Each decoy account is asked with its own credentials, as the iam minter reaches it.
        let mut accounts: HashMap<AccountId, Arc<dyn KeyUsage>> = HashMap::new();
        for account in crate::minters::decoy_accounts(config).unwrap_or_else(|e| {
            tracing::error!(error = %e, "safety net: decoy accounts unreadable; using [aws] only");
            Vec::new()
        }) {
            let usage = IamKeyUsage::for_account(&account).await;
            accounts.insert(account.account_id, Arc::new(usage));
        }
        let net = safety_net::SafetyNet {
            usage: Arc::new(IamKeyUsage::new(&aws)),
            accounts,
            store,
            ingest: ingest.clone(),
            exposures: exposures.clone(),
            clock: clock.clone(),
            operator_alerts: operator_alerts.clone(),
        };
        jobs.safety_net = Some((
            Arc::new(net),
            Duration::from_secs(d.safety_net.interval_secs),
        ));
    }
    jobs
}

/// Runs `round` now and then every `every`, until the task is aborted. A failed round is logged
/// with its cause chain; the next one runs on schedule.
pub fn every<F, Fut>(name: &'static str, every: Duration, mut round: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = round().await {
                tracing::error!(job = name, error = format!("{e:#}"), "job round failed");
            }
        }
    })
}
