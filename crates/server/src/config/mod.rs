//! Settings: one declaration per setting, layered defaults < TOML file < environment < flags.
//! Every key `a.b` can be set by the variable `CANARYKEYS_A__B`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

mod operator_alerts;
mod sections;
mod streams;
pub use operator_alerts::OperatorAlertsConfig;
pub use sections::*;
pub use streams::{
    ElasticStream, Include, OcsfStream, PagerdutyStream, SplunkHecStream, StreamCommon,
    StreamsConfig, SyslogStream, TokenScope,
};

/// How long a webhook send may take (the HTTP client's whole-request timeout).
pub const WEBHOOK_SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How much longer than the longest send timeout a claim's lease must be.
const LEASE_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid setting")]
    Invalid(#[from] Box<figment::Error>),
    #[error("invalid setting {key}: {problem}")]
    Value { key: &'static str, problem: String },
}

/// The whole configuration. Field docs are the reference the book repeats (docs/book/src/settings.md; tests/settings_doc.rs keeps them in step).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address the web UI and API listen on.
    pub listen: SocketAddr,
    /// Where state lives: the SQLite file and the encryption key file.
    pub data_dir: PathBuf,
    /// `sqlite:PATH` or `postgres://…`; default `sqlite:<data_dir>/canarykeys.db`.
    pub database_url: Option<String>,
    /// Base of the links the server prints and mails; default `http://<listen>`.
    pub public_url: Option<String>,
    /// The key that seals secret access keys at rest: 32 bytes, base64. Overrides the key file.
    pub encryption_key: Option<Secret>,
    /// Where the sealing key is kept; created with mode 0600 on first start.
    pub encryption_key_file: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Log filter, in `tracing_subscriber::EnvFilter` syntax.
    pub log: String,
    /// `text` (one readable line per event; colours only on a terminal) or `json` (one JSON
    /// object per line, fields as keys, for log shippers).
    pub log_format: LogFormat,
    pub minter: MinterConfig,
    pub rate_limit: RateLimitConfig,
    pub ingest: IngestConfig,
    pub aws: AwsConfig,
    pub detection: DetectionConfig,
    pub heartbeat: HeartbeatConfig,
    pub alerts: AlertsConfig,
    pub smtp: SmtpConfig,
    pub enrich: EnrichConfig,
    pub sensor: SensorConfig,
    pub access: AccessConfig,
    pub listeners: ListenersConfig,
    pub database: DatabaseConfig,
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub operator_alerts: OperatorAlertsConfig,
    pub backup: BackupConfig,
    /// `[streams.<type>]`: SIEM and pager sinks that get every alert.
    pub streams: StreamsConfig,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A setting that must never reach a log line: `Debug` prints a placeholder.
#[derive(Clone, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

/// Environment values that look like numbers reach serde as numbers: a secret made only of
/// digits is taken as its digits (quote it to keep leading zeros).
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Unsigned(u64),
            Signed(i64),
        }
        Ok(Self(match Raw::deserialize(d)? {
            Raw::Text(s) => s,
            Raw::Unsigned(n) => n.to_string(),
            Raw::Signed(n) => n.to_string(),
        }))
    }
}

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Environment values that look like numbers reach serde as numbers, and a number cannot keep an
/// account id's leading zeros. Accept a number only when it has all 12 digits; otherwise the
/// value must be quoted (`CANARYKEYS_MINTER__ACCOUNT_ID='"012345678901"'`).
pub(super) fn account_id_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(u64),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Text(s)) => Ok(Some(s)),
        Some(Raw::Number(n)) if (100_000_000_000..=999_999_999_999).contains(&n) => {
            Ok(Some(n.to_string()))
        }
        Some(Raw::Number(_)) => Err(serde::de::Error::custom(
            "an account id is 12 digits; quote it if it starts with 0",
        )),
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            public_url: None,
            encryption_key: None,
            encryption_key_file: None,
            max_body_bytes: 64 * 1024,
            log: "info".into(),
            log_format: LogFormat::Text,
            minter: MinterConfig::default(),
            rate_limit: RateLimitConfig::default(),
            ingest: IngestConfig::default(),
            aws: AwsConfig::default(),
            detection: DetectionConfig::default(),
            heartbeat: HeartbeatConfig::default(),
            alerts: AlertsConfig::default(),
            smtp: SmtpConfig::default(),
            enrich: EnrichConfig::default(),
            sensor: SensorConfig::default(),
            access: AccessConfig::default(),
            listeners: ListenersConfig::default(),
            database: DatabaseConfig::default(),
            server: ServerConfig::default(),
            storage: StorageConfig::default(),
            backup: BackupConfig::default(),
            operator_alerts: OperatorAlertsConfig::default(),
            streams: StreamsConfig::default(),
        }
    }
}

/// Values given as command-line flags; they beat every other layer.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// Builds the configuration from the layers. A named file must exist; without one,
    /// `canarykeys.toml` in the working directory is read if present.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.into())),
            Some(path) => fig = fig.merge(Toml::file_exact(path)),
            None if Path::new("canarykeys.toml").exists() => {
                fig = fig.merge(Toml::file_exact("canarykeys.toml"))
            }
            None => {}
        }
        let fig = fig
            .merge(Env::prefixed("CANARYKEYS_").split("__").ignore(&["config"]))
            .merge(Serialized::globals(overrides));
        let config: Config = fig.extract().map_err(Box::new)?;
        config.check()?;
        Ok(config)
    }

    /// A claim's lease must outlast a send: a lease that ran out mid-send would let another
    /// worker (or replica) send the same alert again, at the same time. A lane's last send
    /// starts within its turn (200 ms) and its outcome is written right after; the margin
    /// covers both.
    fn check_lease(&self) -> Result<(), ConfigError> {
        let mut send = WEBHOOK_SEND_TIMEOUT;
        if self.smtp.host.is_some() {
            send = send.max(std::time::Duration::from_secs(self.smtp.timeout_secs));
        }
        let least = send + LEASE_MARGIN;
        if self.alerts.claim_lease < least {
            return Err(ConfigError::Value {
                key: "alerts.claim_lease",
                problem: format!(
                    "is {:?}; it must be at least {} s, the longest send timeout ({} s: \
                     webhooks {} s, smtp.timeout_secs {} when email is on) plus {} s, or a send \
                     could outlive its claim and be sent twice",
                    self.alerts.claim_lease,
                    least.as_secs(),
                    send.as_secs(),
                    WEBHOOK_SEND_TIMEOUT.as_secs(),
                    self.smtp.timeout_secs,
                    LEASE_MARGIN.as_secs(),
                ),
            });
        }
        Ok(())
    }

    /// Cross-field checks that serde cannot express.
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.public_url {
            let parsed = url::Url::parse(url).map_err(|e| ConfigError::Value {
                key: "public_url",
                problem: e.to_string(),
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::Value {
                    key: "public_url",
                    problem: "must be an http or https URL".into(),
                });
            }
        }
        canarykeys_core::SessionDuration::from_secs(self.minter.session_duration.as_secs())
            .map_err(|e| ConfigError::Value {
                key: "minter.session_duration",
                problem: e.to_string(),
            })?;
        match self.minter.kind {
            MinterKind::Local => {}
            MinterKind::Iam if self.minter.accounts.is_empty() => {
                return Err(ConfigError::Value {
                    key: "minter.accounts",
                    problem: "the iam minter needs at least one [[minter.accounts]] entry".into(),
                })
            }
            MinterKind::Iam => {
                if self.minter.accounts.iter().any(|a| a.account_id.is_none()) {
                    return Err(ConfigError::Value {
                        key: "minter.accounts",
                        problem: "every account needs its account_id".into(),
                    });
                }
                if self.minter.accounts.iter().all(|a| a.weight == 0) {
                    return Err(ConfigError::Value {
                        key: "minter.accounts",
                        problem: "at least one account needs a weight above 0".into(),
                    });
                }
            }
            MinterKind::Gateway => {
                if self.minter.gateway.url.is_none()
                    || self.minter.gateway.secret.is_none()
                    || self.minter.account_id.is_none()
                {
                    return Err(ConfigError::Value {
                        key: "minter.gateway",
                        problem: "the gateway minter needs minter.gateway.url, minter.gateway.secret and minter.account_id".into(),
                    });
                }
            }
        }
        self.listeners.check()?;
        self.database.check()?;
        if let Some(secret) = &self.ingest.secret {
            if secret.expose().len() < 16 {
                return Err(ConfigError::Value {
                    key: "ingest.secret",
                    problem: "must be at least 16 characters (use `openssl rand -hex 32`)".into(),
                });
            }
        }
        if self.aws.access_key_id.is_some() != self.aws.secret_access_key.is_some() {
            return Err(ConfigError::Value {
                key: "aws.access_key_id",
                problem: "set aws.access_key_id and aws.secret_access_key together".into(),
            });
        }
        if self.detection.s3.interval_secs == 0 || self.detection.safety_net.interval_secs == 0 {
            return Err(ConfigError::Value {
                key: "detection.*.interval_secs",
                problem: "must be at least 1".into(),
            });
        }
        self.heartbeat.check()?;
        self.smtp.check()?;
        self.operator_alerts.check()?;
        self.streams.check()?;
        self.access.check()?;
        self.check_lease()?;
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::Value {
                key: "max_body_bytes",
                problem: "must be at least 1024".into(),
            });
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", self.data_dir.join("canarykeys.db").display()))
    }

    pub fn encryption_key_file(&self) -> PathBuf {
        self.encryption_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secret.key"))
    }
}
