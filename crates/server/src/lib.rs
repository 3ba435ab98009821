//! The canarykeys server as a library: `Application::build(config)` wires storage, sealing and
//! minting to the HTTP routes. `main` and the tests both start it this way.

pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod enrich;
pub mod export;
pub mod http;
pub mod jobs;
mod listen;
pub mod metrics;
mod minters;
pub mod notify;
pub mod render;
pub mod sensor;
pub mod services;
mod templates;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use canarykeys_aws::Minter;
use canarykeys_core::{OutputFormat, Region};
use canarykeys_store::{SqlStore, Store, StoreError};
use tokio::net::TcpListener;

use canarykeys_core::cloudtrail::Limits;
use clock::{SharedClock, SystemClock};
pub use config::Config;
use crypto::CryptoError;
use services::{IngestService, TokenService};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the database")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The sealing key is missing or is not the database's (the message names both).
    #[error(transparent)]
    KeyCheck(#[from] services::sealing::KeyCheckError),
    #[error("invalid setting {key}: {problem}")]
    Setting { key: &'static str, problem: String },
    #[error(transparent)]
    Enrich(#[from] enrich::EnrichError),
    #[error(transparent)]
    Email(#[from] notify::email::EmailSetupError),
    #[error("cannot build the HTTP client for webhooks")]
    WebhookClient(#[source] reqwest::Error),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The parts every entry point (server, CLI) shares: storage, sealing, minting.
pub struct Services {
    pub tokens: TokenService,
    pub access: services::AccessService,
    pub ingest: IngestService,
    /// Private: services are the only door to storage.
    store: Arc<SqlStore>,
    pub console: services::ConsoleService,
    pub metrics: Arc<metrics::Metrics>,
    pub enricher: enrich::Enricher,
    pub clock: SharedClock,
    /// Told when hits commit; the delivery worker waits on it.
    pub committed: Arc<tokio::sync::Notify>,
    /// The key index the token and ingest services share; `jobs::index_sync` keeps it exact.
    index: services::key_index::KeyIndex,
    /// Alerts about the system itself (`[operator_alerts]`).
    pub operator_alerts: services::operator_alerts::OperatorAlerts,
    /// Proof of life: the heartbeat identities, calls and path states (`[heartbeat]`).
    pub heartbeat: services::heartbeat::HeartbeatService,
}

impl Services {
    pub async fn open(config: &Config) -> Result<Self, StartError> {
        Self::open_with_clock(config, SystemClock::shared()).await
    }

    /// As `open`, with every service reading time from `clock`.
    pub async fn open_with_clock(config: &Config, clock: SharedClock) -> Result<Self, StartError> {
        Self::open_inner(config, clock, true).await
    }

    /// As `open`, with the key index left empty, for a command that ingests nothing (`token
    /// list` at a million tokens printed its first line after seconds of reading every key).
    /// An empty index is still exact, only slower: a miss in a decoy account is read from the
    /// database.
    pub async fn open_unindexed(config: &Config) -> Result<Self, StartError> {
        Self::open_inner(config, SystemClock::shared(), false).await
    }

    async fn open_inner(
        config: &Config,
        clock: SharedClock,
        read_index: bool,
    ) -> Result<Self, StartError> {
        create_data_dir(config)?;
        let store = Arc::new(SqlStore::connect(&config.database_url()).await?);
        store.set_stored_hits_per_window(config.alerts.stored_hits_per_window);
        let sealer = services::sealing::open_sealer(config, store.as_ref()).await?;
        let setting = |key: &'static str| {
            move |e: canarykeys_core::Invalid| StartError::Setting {
                key,
                problem: e.to_string(),
            }
        };
        let region = Region::parse(&config.minter.region).map_err(setting("minter.region"))?;
        let output: OutputFormat = config
            .minter
            .output
            .parse()
            .map_err(setting("minter.output"))?;
        let minter: Arc<dyn Minter> = minters::build(config, &store).await?;
        let accounts = minters::decoy_account_ids(config, &store).await?;
        let late = config.detection.late_events();
        let index = if read_index {
            services::key_index::KeyIndex::load(store.as_ref(), &accounts, late, clock.clone())
                .await?
        } else {
            services::key_index::KeyIndex::from_entries(&[], &accounts, late, clock.clone())
        };
        let committed = Arc::new(tokio::sync::Notify::new());
        let tokens = TokenService::new(
            store.clone() as Arc<dyn Store>,
            minter.clone(),
            sealer.clone(),
            region,
            output,
        )
        .with_sessions(
            minters::session_issuer(config)?,
            canarykeys_core::SessionDuration::from_secs(config.minter.session_duration.as_secs())
                .map_err(setting("minter.session_duration"))?,
        )
        .with_clock(clock.clone());
        let metrics = Arc::new(metrics::Metrics::default());
        metrics.declare_streams(
            config
                .streams
                .enabled()
                .iter()
                .map(|(k, _)| k.as_str())
                .collect(),
        );
        let limits = Limits {
            max_decompressed_bytes: config.ingest.max_decompressed_bytes,
            ..Limits::DEFAULT
        };
        let writer = services::ingest::HitWriter::start(
            store.clone(),
            committed.clone(),
            config.database.request_timeout,
        );
        // Read once now, so a server started on a full disk knows before its first request.
        let disk = services::disk::DiskWatch::for_config(config, metrics.clone());
        disk.check();
        let operator_alerts = services::operator_alerts::OperatorAlerts::new(
            config,
            store.clone() as Arc<dyn Store>,
            clock.clone(),
            config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.listen)),
        );
        let ingest = IngestService::new(store.clone() as Arc<dyn Store>, limits, metrics.clone())
            .with_clock(clock.clone())
            .with_fast_path(index.clone(), writer)
            .with_disk(disk.clone())
            .with_operator_alerts(operator_alerts.clone());
        let enricher = enrich::Enricher::load(&config.enrich)?;
        let tamper = alert_service(config, store.clone(), enricher.clone());
        let tokens = tokens
            .with_webhook_policy(config.alerts.allow_private_webhooks)
            .with_key_index(index.clone())
            .with_tamper_alerts(tamper)
            .with_streams(services::streams::StreamRouting::new(&config.streams));
        let streams = services::streams::StreamRouting::new(&config.streams);
        let access = services::AccessService::new(store.clone() as Arc<dyn Store>, &config.access)
            .with_streams(streams.clone())
            .with_clock(clock.clone())
            .with_disk(disk.clone());
        let heartbeat = services::heartbeat::HeartbeatService::new(
            store.clone() as Arc<dyn Store>,
            minter,
            sealer,
            Arc::new(canarykeys_aws::StsCallerIdentity),
            heartbeat_settings(config, &store).await?,
            index.clone(),
            clock.clone(),
            operator_alerts.clone(),
            metrics.clone(),
        );
        Ok(Self {
            heartbeat,
            tokens,
            access,
            ingest,
            console: services::ConsoleService::new(store.clone() as Arc<dyn Store>),
            store,
            metrics,
            enricher,
            clock,
            committed,
            index,
            operator_alerts,
        })
    }
}

impl Services {
    /// `canarykeys admin replace-lost-sealing-key`: opens the database without the key check
    /// (the check is what it replaces) and makes the configured key the database's.
    pub async fn replace_lost_sealing_key(
        config: &Config,
    ) -> Result<services::sealing::ReplacedKey, StartError> {
        create_data_dir(config)?;
        let store = SqlStore::connect(&config.database_url()).await?;
        let replaced = services::sealing::replace_lost_key(config, &store).await;
        store.close().await;
        Ok(replaced?)
    }

    /// Exposures for a process without the HTTP server (`canarykeys ingest`). Their alerts are
    /// queued in the outbox for a running server to send, and link to `public_url` (or the
    /// listen address), as the server's own would.
    pub fn exposures(&self, config: &Config) -> services::ExposureService {
        let alerts = alert_service(config, self.store.clone(), self.enricher.clone());
        services::ExposureService::new(self.store.clone(), alerts, self.metrics.clone())
            .with_clock(self.clock.clone())
    }

    /// When `canarykeys backup` last finished (ms), if ever: `doctor` warns when it is old.
    pub async fn last_backup(&self) -> anyhow::Result<Option<i64>> {
        services::backup::last_backup(self.store.as_ref()).await
    }

    /// Closes the database (the CLI, before it exits).
    pub async fn close(&self) {
        self.store.close().await;
    }
}

/// Alert planning for messages written outside the delivery worker (exposures, tamper alerts),
/// linking to `public_url` (or the listen address) as the server's own messages do.
fn alert_service(
    config: &Config,
    store: Arc<SqlStore>,
    enricher: enrich::Enricher,
) -> services::alerts::AlertService {
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    services::alerts::AlertService::new(
        store,
        enricher,
        public_url.trim_end_matches('/').into(),
        i64::try_from(config.alerts.cooldown.as_millis()).unwrap_or(i64::MAX),
        config.smtp.host.is_some(),
    )
    .with_late_events(config.detection.late_events())
    .with_streams(services::streams::StreamRouting::new(&config.streams))
}

/// `[heartbeat]` with its defaults filled in: the minter's region, the minter's accounts.
async fn heartbeat_settings(
    config: &Config,
    store: &SqlStore,
) -> Result<services::heartbeat::HeartbeatSettings, StartError> {
    let h = &config.heartbeat;
    let regions = if h.regions.is_empty() {
        vec![config.minter.region.clone()]
    } else {
        h.regions.clone()
    };
    Ok(services::heartbeat::HeartbeatSettings {
        enabled: h.is_enabled(config.minter.kind),
        interval: h.interval,
        regions,
        expect: h.expect.clone(),
        silent_after: h.silent_after,
        endpoint_url: h.endpoint_url.clone(),
        accounts: minters::heartbeat_accounts(config, store).await?,
    })
}

/// Email alerts without `[smtp] host` fail quietly in the outbox; say so once at startup.
async fn warn_unsent_email(tokens: &TokenService) {
    match tokens.email_alerting_tokens().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            tokens = n,
            "tokens ask for email alerts but no [smtp] host is set: their emails will not be sent"
        ),
        Err(e) => tracing::warn!(error = %e, "could not check which tokens alert by email"),
    }
}

fn create_data_dir(config: &Config) -> Result<(), StartError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = &config.data_dir;
    if dir.exists() {
        return Ok(());
    }
    // 0700: the directory holds the sealing key and the database.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StartError::DataDir {
            path: dir.display().to_string(),
            source,
        })
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    address: SocketAddr,
    public_url: String,
    limiter: http::extract::client::CreateLimiter,
    access: services::AccessService,
    jobs: jobs::Jobs,
    sensor: Option<sensor::Sensor>,
    limits: config::ListenersConfig,
    /// How long a clean stop waits for open requests and the database (`[server]
    /// shutdown_grace`).
    grace: std::time::Duration,
    /// Closed (and on SQLite, checkpointed) at a clean stop.
    store: Arc<SqlStore>,
}

impl Application {
    /// Opens storage and binds the listener (port 0 picks a free port), ready to `run`.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        Self::build_with_clock(config, SystemClock::shared()).await
    }

    /// As `build`, with all domain time (stamps, expiry, cooldowns, signature freshness) read
    /// from `clock`: tests pass a `clock::ManualClock` and advance it.
    pub async fn build_with_clock(config: Config, clock: SharedClock) -> Result<Self, StartError> {
        let mut services = Services::open_with_clock(&config, clock.clone()).await?;
        let disk = services.ingest.disk().clone();
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let address = listener.local_addr().map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
        if config.smtp.host.is_none() {
            warn_unsent_email(&services.tokens).await;
        }
        let sensor = sensor::Sensor::bind(
            &config.sensor,
            &config.listeners,
            &services,
            config.database.request_timeout,
        )
        .await?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"))
            .trim_end_matches('/')
            .to_owned();
        let limiter = http::extract::client::CreateLimiter::new(&config.rate_limit);
        let store: Arc<dyn Store> = services.store.clone();
        // Operator alerts name the address this server answers on, like its other alerts.
        services.operator_alerts = services::operator_alerts::OperatorAlerts::new(
            &config,
            store.clone(),
            clock.clone(),
            public_url.clone(),
        );
        services.ingest = services
            .ingest
            .with_operator_alerts(services.operator_alerts.clone());
        services.heartbeat = services
            .heartbeat
            .with_operator_alerts(services.operator_alerts.clone());
        let email: Option<Arc<dyn notify::Channel>> = match config.smtp.host {
            Some(_) => Some(Arc::new(notify::email::EmailChannel::new(&config.smtp)?)),
            None => None,
        };
        let alerts = services::alerts::AlertService::new(
            store.clone(),
            services.enricher.clone(),
            public_url.clone().into(),
            i64::try_from(config.alerts.cooldown.as_millis()).unwrap_or(i64::MAX),
            email.is_some(),
        )
        .with_late_events(config.detection.late_events())
        .with_streams(services::streams::StreamRouting::new(&config.streams));
        let webhook = notify::webhook::WebhookChannel::new(
            config.alerts.webhook_signing_secret.clone(),
            config.alerts.allow_private_webhooks,
        )
        .map_err(StartError::WebhookClient)?
        .with_clock(clock.clone());
        // `[operator_alerts] webhook_url` is the operator's own: private addresses allowed.
        let operator_webhook = notify::webhook::WebhookChannel::new(
            config.alerts.webhook_signing_secret.clone(),
            true,
        )
        .map_err(StartError::WebhookClient)?
        .with_clock(clock.clone());
        let deliverer = jobs::deliver::Deliverer {
            store: store.clone(),
            alerts: alerts.clone(),
            channels: jobs::deliver::Channels {
                email,
                webhook: Arc::new(webhook),
                operator_webhook: Arc::new(operator_webhook),
                streams: notify::stream::Streams::from_config(&config.streams).map_err(
                    |problem| StartError::Setting {
                        key: "streams",
                        problem,
                    },
                )?,
            },
            policy: jobs::deliver::DeliveryPolicy::from_config(&config.alerts),
            clock: clock.clone(),
            wake: services.committed.clone(),
            windows_checked: Default::default(),
            metrics: services.metrics.clone(),
        };
        let exposures =
            services::ExposureService::new(store.clone(), alerts.clone(), services.metrics.clone())
                .with_clock(clock.clone());
        let state = http::AppState::new(http::State {
            // Tamper alerts link to the address this server answers on, like its other alerts.
            tokens: services.tokens.with_tamper_alerts(alerts.clone()),
            access: services.access.clone(),
            ingest: services.ingest.with_exposures(exposures.clone()),
            alerts,
            exposures: exposures.clone(),
            console: services.console.clone(),
            ingest_secret: config.ingest.secret.clone(),
            templates: Arc::new(templates::environment()),
            secure_cookies: public_url.starts_with("https://"),
            public_url: public_url.clone().into(),
            limiter: limiter.clone(),
            clock: clock.clone(),
            ingest_admission: http::extract::admission::IngestAdmission::new(&config.ingest),
            heartbeat: services.heartbeat.clone(),
        });
        let pollers = jobs::pollers(
            &config,
            &services.store,
            &state.ingest,
            &state.exposures,
            &clock,
            &services.operator_alerts,
        )
        .await;
        let jobs = jobs::Jobs {
            deliverer: Arc::new(deliverer),
            tokens: state.tokens.clone(),
            exposures: state.exposures.clone(),
            clock,
            retention_days: config.alerts.history_retention_days,
            audit_retention_days: config.access.audit_retention_days,
            late: config.detection.late_events(),
            index: services.index.clone(),
            pollers,
            wake: (services.store.clone(), services.committed.clone()),
            disk,
            heartbeat: services.heartbeat.clone(),
            operator: services.operator_alerts.clone(),
        };
        let router = listen::with_request_timeout(
            http::router(state, config.max_body_bytes, config.ingest.max_body_bytes),
            &config.listeners,
        );
        Ok(Self {
            listener,
            router,
            address,
            public_url,
            limiter,
            access: services.access,
            jobs,
            sensor,
            limits: config.listeners.clone(),
            grace: config.server.shutdown_grace,
            store: services.store,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Where the AWS-compatible sensor listens, when `[sensor] listen` is set.
    pub fn sensor_address(&self) -> Option<SocketAddr> {
        self.sensor.as_ref().map(sensor::Sensor::address)
    }

    /// The background jobs, to run a round now (`deliver_once`, `expire_once`, ...) instead of
    /// waiting for their loops. Clones share the same workers.
    pub fn jobs(&self) -> jobs::Jobs {
        self.jobs.clone()
    }

    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let pruner = tokio::spawn(self.limiter.prune_forever());
        let login_pruner = tokio::spawn(self.access.prune_forever());
        let jobs = self.jobs.start();
        // One shutdown for both listeners: the sensor stops when the main listener is told to,
        // or when it fails (the sender is dropped).
        let (stop, stopped) = tokio::sync::watch::channel(());
        let grace = self.grace;
        let sensor = self.sensor.map(|sensor| {
            let mut stopped = stopped.clone();
            tokio::spawn(sensor.serve(
                async move {
                    let _ = stopped.changed().await;
                },
                grace,
            ))
        });
        let result = listen::serve(
            self.listener,
            self.router,
            &self.limits,
            async move {
                shutdown.await;
                let _ = stop.send(());
            },
            grace,
        )
        .await;
        let result = match sensor {
            Some(task) => result.and(task.await.unwrap_or_else(|e| Err(std::io::Error::other(e)))),
            None => result,
        };
        pruner.abort();
        login_pruner.abort();
        for job in jobs {
            job.abort();
        }
        // Closing waits for every pooled connection to come back; one stuck on a silent
        // database never would. The process is stopping: the grace bounds this too.
        if tokio::time::timeout(grace, self.store.close())
            .await
            .is_err()
        {
            tracing::warn!("stopping without closing the database: it did not answer in time");
        }
        result
    }
}
