//! The canarykeys relay Lambda: CloudTrail → CloudWatch Logs → subscription filter → this
//! function → signed HTTPS POST to the canarykeys server's `/ingest/v1/cloudtrail`.
//!
//! The handler answers `Ok` only when every batch of the event got a 2xx. Any failure returns
//! `Err`, so Lambda retries the whole event; batches that did get through are then sent again,
//! which the server absorbs because it records each CloudTrail `eventID` once.

pub mod config;
pub mod post;
pub mod records;

use aws_lambda_events::cloudwatch_logs::{LogData, LogsEvent};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use tracing::Instrument;

pub use config::{BatchLimits, Config, ConfigError, IngestSecret, RetryPolicy};
pub use post::{IngestCounts, PostError, Poster};

/// What one invocation did; returned to Lambda and logged.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub message_type: String,
    /// Log events examined (0 for a control message).
    pub records_seen: usize,
    /// CloudTrail records the server accepted.
    pub posted: usize,
    /// Log events that were not CloudTrail records.
    pub skipped: usize,
    /// Requests that got a 2xx.
    pub batches: usize,
    /// The server's counts, summed over the batches.
    pub server: IngestCounts,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// CloudWatch Logs sends only DATA_MESSAGE and CONTROL_MESSAGE; anything else is refused loudly
    /// rather than guessed at.
    #[error("unknown subscription messageType {0:?}")]
    UnknownMessageType(String),
    #[error("batch {batch} of {batches} ({records} records) not delivered, after {posted} records were: {source}")]
    Post {
        batch: usize,
        batches: usize,
        records: usize,
        posted: usize,
        source: PostError,
    },
}

impl From<RelayError> for Diagnostic {
    fn from(error: RelayError) -> Self {
        let error_type = match &error {
            RelayError::Config(_) => "RelayConfigError",
            RelayError::Client(_) => "RelayClientError",
            RelayError::UnknownMessageType(_) => "RelayUnknownMessageType",
            RelayError::Post {
                source: PostError::Rejected { .. },
                ..
            } => "RelayRejected",
            RelayError::Post {
                source: PostError::GaveUp { .. },
                ..
            } => "RelayGaveUp",
        };
        Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// The relay, built once per cold start and shared by every invocation.
#[derive(Debug, Clone)]
pub struct Relay {
    config: Config,
    poster: Poster,
}

impl Relay {
    pub fn new(config: Config) -> Result<Self, RelayError> {
        let poster = Poster::new(&config)?;
        Ok(Self { config, poster })
    }

    /// From the environment variables described in [`config`].
    pub fn from_env() -> Result<Self, RelayError> {
        Self::new(Config::from_env()?)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Relays one decoded subscription payload.
    pub async fn relay(&self, data: &LogData) -> Result<Summary, RelayError> {
        let mut summary = Summary {
            message_type: data.message_type.clone(),
            ..Summary::default()
        };
        match data.message_type.as_str() {
            records::CONTROL_MESSAGE => {
                // CloudWatch Logs' health check of the destination: nothing to forward.
                tracing::info!(
                    log_events = data.log_events.len(),
                    "control message, nothing to relay"
                );
                return Ok(summary);
            }
            records::DATA_MESSAGE => {}
            other => {
                return Err(RelayError::UnknownMessageType(
                    other.chars().take(64).collect(),
                ))
            }
        }
        summary.records_seen = data.log_events.len();
        let extracted = records::extract(data);
        summary.skipped = extracted.skipped;
        let batches = records::batches(&extracted.records, self.config.batch);
        for (i, batch) in batches.iter().enumerate() {
            let counts = self
                .poster
                .post(batch)
                .await
                .map_err(|source| RelayError::Post {
                    batch: i + 1,
                    batches: batches.len(),
                    records: batch.records,
                    posted: summary.posted,
                    source,
                })?;
            summary.posted += batch.records;
            summary.batches += 1;
            summary.server.add(counts);
        }
        tracing::info!(
            log_group = %data.log_group,
            records_seen = summary.records_seen,
            posted = summary.posted,
            skipped = summary.skipped,
            batches = summary.batches,
            new_hits = summary.server.new_hits,
            "relayed"
        );
        Ok(summary)
    }
}

/// The Lambda handler: `service_fn(|event| handler(&relay, event))`.
pub async fn handler(relay: &Relay, event: LambdaEvent<LogsEvent>) -> Result<Summary, RelayError> {
    let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
    async {
        let result = relay.relay(&event.payload.aws_logs.data).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, "relay failed; Lambda will retry the event");
        }
        result
    }
    .instrument(span)
    .await
}
