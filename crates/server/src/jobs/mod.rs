//! Background jobs inside `serve`: the detection pollers. Each is off unless configured, runs on
//! its own interval, logs and keeps going when a round fails, and stops with the server.

pub mod deliver;
pub mod s3_poller;
pub mod safety_net;
pub mod wake;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use canarykeys_aws::{sdk_config, AwsSettings, IamKeyUsage, S3TrailBucket};
use canarykeys_store::{SqlStore, Store};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::services::IngestService;

/// A configured job, not yet running.
pub enum Job {
    S3(s3_poller::S3Poller, Duration),
    SafetyNet(safety_net::SafetyNet, Duration),
    /// The alert outbox worker; always runs.
    Deliver(deliver::Deliverer),
    /// Relays other replicas' commits to the outbox worker (PostgreSQL only).
    Wake(Arc<SqlStore>, Arc<tokio::sync::Notify>),
    /// Deletes hits older than the retention (days), daily.
    Retention(Arc<dyn Store>, u32),
    /// Deletes tokens (and their keys) whose expiry has come; every minute. The expiry time is
    /// in the database, so a restart loses nothing.
    Expiry(
        crate::services::TokenService,
        crate::services::access::AccessService,
    ),
}

impl Job {
    pub fn start(self) -> JoinHandle<()> {
        match self {
            Self::S3(poller, interval) => {
                let poller = Arc::new(Mutex::new(poller));
                every("s3-poller", interval, move || {
                    let poller = poller.clone();
                    async move {
                        let report = poller.lock().await.round().await?;
                        tracing::debug!(?report, "s3 poller round");
                        Ok(())
                    }
                })
            }
            Self::Deliver(deliverer) => tokio::spawn(deliverer.run_forever()),
            Self::Wake(store, wake) => tokio::spawn(wake::relay_commits(store, wake)),
            Self::Expiry(tokens, access) => every("expiry", Duration::from_secs(60), move || {
                let (tokens, access) = (tokens.clone(), access.clone());
                async move {
                    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
                    for t in tokens.delete_expired(now).await? {
                        tracing::info!(token = %t.id, "expired token deleted");
                        access
                            .audit("expiry", "token.delete", t.id.as_str(), t.memo.as_str())
                            .await;
                    }
                    Ok(())
                }
            }),
            Self::Retention(store, days) => {
                every("retention", Duration::from_secs(24 * 3600), move || {
                    let store = store.clone();
                    async move {
                        let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
                        let before = now - i64::from(days) * 86_400_000;
                        let n = store.delete_hits_before(before).await?;
                        if n > 0 {
                            tracing::info!(
                                deleted = n,
                                days,
                                "old hits deleted (history retention)"
                            );
                        }
                        Ok(())
                    }
                })
            }
            Self::SafetyNet(net, interval) => {
                let net = Arc::new(net);
                every("safety-net", interval, move || {
                    let net = net.clone();
                    async move {
                        let report = net.round().await?;
                        tracing::debug!(?report, "safety net round");
                        Ok(())
                    }
                })
            }
        }
    }
}

/// The jobs the configuration turns on.
pub async fn configure(config: &Config, store: &Arc<SqlStore>, ingest: &IngestService) -> Vec<Job> {
    let d = &config.detection;
    if d.s3.bucket.is_none() && !d.safety_net.enabled {
        return Vec::new();
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
    let mut jobs = Vec::new();
    if let Some(bucket) = &d.s3.bucket {
        let poller = s3_poller::S3Poller::new(
            Arc::new(S3TrailBucket::new(&aws)),
            store.clone(),
            ingest.clone(),
            bucket.clone(),
            d.s3.prefix.clone(),
            config.ingest.max_body_bytes as u64,
        );
        jobs.push(Job::S3(poller, Duration::from_secs(d.s3.interval_secs)));
    }
    if d.safety_net.enabled {
        let net = safety_net::SafetyNet {
            usage: Arc::new(IamKeyUsage::new(&aws)),
            store,
            ingest: ingest.clone(),
        };
        jobs.push(Job::SafetyNet(
            net,
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
