//! Settings: one declaration per setting, layered defaults < TOML file < environment < flags.
//! Every key `a.b` can be set by the variable `CANARYKEYS_A__B`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid setting")]
    Invalid(#[from] Box<figment::Error>),
    #[error("invalid setting {key}: {problem}")]
    Value { key: &'static str, problem: String },
}

/// The whole configuration. Field docs are the reference the README repeats.
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
    pub minter: MinterConfig,
    pub rate_limit: RateLimitConfig,
    pub ingest: IngestConfig,
    pub aws: AwsConfig,
    pub detection: DetectionConfig,
    pub alerts: AlertsConfig,
    pub smtp: SmtpConfig,
    pub enrich: EnrichConfig,
    pub sensor: SensorConfig,
}

/// The AWS-compatible sensor (`[sensor]`): a second listener that answers like AWS and turns
/// every request made with a decoy key into a hit.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SensorConfig {
    /// Address of the sensor, e.g. `127.0.0.1:4566`; unset: no sensor.
    pub listen: Option<SocketAddr>,
    /// Largest request body the sensor reads, in bytes; a larger one is cut off unread.
    pub max_body_bytes: usize,
}

impl Default for SensorConfig {
    fn default() -> Self {
        Self {
            listen: None,
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// How the server reaches AWS for the pollers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct AwsConfig {
    pub region: String,
    /// Another endpoint than AWS's (a local AWS stand-in, for tests).
    pub endpoint_url: Option<String>,
    /// Static credentials; unset means the SDK's default chain (environment, profile, instance
    /// role). Both or neither.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            endpoint_url: None,
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectionConfig {
    pub s3: S3PollerConfig,
    pub safety_net: SafetyNetConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct S3PollerConfig {
    /// The trail's bucket; unset turns the poller off.
    pub bucket: Option<String>,
    /// Where the trail writes (`AWSLogs/` unless the trail has a key prefix).
    pub prefix: String,
    pub interval_secs: u64,
}

impl Default for S3PollerConfig {
    fn default() -> Self {
        Self {
            bucket: None,
            prefix: "AWSLogs/".into(),
            interval_secs: 60,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SafetyNetConfig {
    pub enabled: bool,
    /// IAM updates last-used dates hours late; checking more often than hourly buys little.
    pub interval_secs: u64,
}

impl Default for SafetyNetConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 3600,
        }
    }
}

/// The SMTP server that email alerts go through (`[smtp]`, `CANARYKEYS_SMTP__*`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SmtpConfig {
    /// SMTP server host name; unset turns email alerts off.
    pub host: Option<String>,
    /// SMTP server port: 587 for `starttls`, 465 for `tls`, 25 for a relay without TLS.
    pub port: u16,
    /// Connection security: `starttls` (upgrade after connecting), `tls` (TLS from the first
    /// byte) or `none` (plain text; only for a relay on the same host or network).
    pub tls: SmtpTls,
    /// User name for SMTP AUTH; unset sends without authenticating.
    pub username: Option<String>,
    /// Password for SMTP AUTH; set together with `username`.
    pub password: Option<Secret>,
    /// Sender of alert mails, `alerts@example.com` or `canarykeys <alerts@example.com>`;
    /// required when `host` is set.
    pub from: Option<String>,
    /// Seconds a whole send may take (connect, TLS, login, the mail) before it is retried later.
    pub timeout_secs: u64,
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: None,
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            from: None,
            timeout_secs: 15,
        }
    }
}

/// Offline enrichment of hits: local files only, nothing is looked up over the network. Every
/// file is optional and read once at start; a set path that cannot be read stops the start.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EnrichConfig {
    /// A user-agent rule list (`substring<TAB>label` lines) that replaces the built-in one
    /// (`crates/server/data/user-agents.txt`).
    pub user_agents_file: Option<PathBuf>,
    /// A local copy of the Tor Project's bulk exit list, one address per line; unset: no Tor
    /// check.
    pub tor_exit_list_file: Option<PathBuf>,
    /// A MaxMind GeoLite2-City or -Country database (`.mmdb`) for the country of a source.
    pub geoip_city_db: Option<PathBuf>,
    /// A MaxMind GeoLite2-ASN database for the network owner; may be the same file as
    /// `geoip_city_db` if that one holds both.
    pub geoip_asn_db: Option<PathBuf>,
}

/// How alerts are sent: noise control and the outbox's retry policy.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertsConfig {
    /// Allow webhooks to loopback and private addresses (tests, or a receiver on your own network).
    pub allow_private_webhooks: bool,
    /// After an alert, later hits of the token within this long are gathered into one summary
    /// sent when the window closes; `0s` sends every hit at once.
    #[serde(with = "humantime_serde")]
    pub cooldown: std::time::Duration,
    /// How long a failing delivery keeps being retried.
    #[serde(with = "humantime_serde")]
    pub retry_horizon: std::time::Duration,
    /// The first retry's delay; each later one doubles, up to `retry_max_delay`.
    #[serde(with = "humantime_serde")]
    pub retry_base_delay: std::time::Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max_delay: std::time::Duration,
    /// A worker that dies mid-send loses its claim after this long; another sends again.
    #[serde(with = "humantime_serde")]
    pub claim_lease: std::time::Duration,
    /// Consecutive permanent failures that switch a token's channel off.
    pub disable_after_failures: u32,
    /// Keep hits this many days; `0` keeps them forever.
    pub history_retention_days: u32,
    /// Signs generic webhooks (`X-Canarykeys-Signature`, as the ingest endpoint checks); unset
    /// sends them unsigned.
    pub webhook_signing_secret: Option<Secret>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        use std::time::Duration;
        Self {
            allow_private_webhooks: false,
            cooldown: Duration::from_secs(300),
            retry_horizon: Duration::from_secs(24 * 3600),
            retry_base_delay: Duration::from_secs(30),
            retry_max_delay: Duration::from_secs(3600),
            claim_lease: Duration::from_secs(120),
            disable_after_failures: 5,
            history_retention_days: 0,
            webhook_signing_secret: None,
        }
    }
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

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestConfig {
    /// Shared secret of `POST /ingest/v1/cloudtrail`: the HMAC key of signed requests (the relay
    /// Lambda) and the bearer token of unsigned ones (EventBridge API destinations). Unset: the
    /// endpoint answers 503.
    pub secret: Option<Secret>,
    /// Largest ingest request body, in bytes (compressed, as sent).
    pub max_body_bytes: usize,
    /// Largest size any input may expand to when gunzipped or base64-decoded.
    pub max_decompressed_bytes: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            secret: None,
            max_body_bytes: 16 * 1024 * 1024,
            max_decompressed_bytes: 32 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct MinterConfig {
    /// Which minter makes keys: `local` (AWS's format, unknown to AWS), `iam` (the server
    /// calls IAM in the decoy accounts) or `gateway` (the minting service does).
    pub kind: String,
    /// `local`: the account its keys encode (default: one chosen at random on first start and
    /// kept in the database). `gateway`: the account the minting service works in.
    #[serde(deserialize_with = "account_id_text")]
    pub account_id: Option<String>,
    /// The region written into downloaded `config` files and shown with the keys.
    pub region: String,
    /// The AWS CLI `output` written into downloaded `config` files.
    pub output: String,
    /// A replacement for the built-in user-name templates and word lists (TOML).
    pub names_file: Option<PathBuf>,
    /// `iam`: the decoy accounts; each token is minted in one of them (weighted random, or
    /// chosen on create).
    pub accounts: Vec<DecoyAccountConfig>,
    /// `gateway`: the minting service.
    pub gateway: GatewayConfig,
}

/// One decoy account of the `iam` minter.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct DecoyAccountConfig {
    #[serde(deserialize_with = "account_id_text")]
    pub account_id: Option<String>,
    /// A role to assume in the account; unset uses the server's own credentials (the SDK's
    /// default chain, or the static keys below).
    pub role_arn: Option<String>,
    pub region: String,
    /// Relative share of new tokens.
    pub weight: u32,
    /// The IAM path of new users (`/` unless set; no path that names the product).
    pub path: String,
    /// A permissions boundary ARN for new users.
    pub permissions_boundary: Option<String>,
    /// Another IAM endpoint (a local stand-in, for tests); the SDK's `AWS_ENDPOINT_URL_IAM`
    /// works too.
    pub endpoint_url: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
}

impl Default for DecoyAccountConfig {
    fn default() -> Self {
        Self {
            account_id: None,
            role_arn: None,
            region: "us-east-1".into(),
            weight: 1,
            path: "/".into(),
            permissions_boundary: None,
            endpoint_url: None,
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

/// The minting service of the `gateway` minter.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayConfig {
    /// The service's base URL (API Gateway's invoke URL).
    pub url: Option<String>,
    /// The shared secret that signs requests to it.
    pub secret: Option<Secret>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    /// Token creations allowed per client address per minute (web and API); 0 turns it off.
    pub create_per_minute: u32,
    /// How many creations may come at once before the per-minute rate applies.
    pub create_burst: u32,
    /// Take the client address from the last `X-Forwarded-For` entry (set only behind a proxy).
    pub trust_forwarded_for: bool,
}

/// Environment values that look like numbers reach serde as numbers, and a number cannot keep an
/// account id's leading zeros. Accept a number only when it has all 12 digits; otherwise the
/// value must be quoted (`CANARYKEYS_MINTER__ACCOUNT_ID='"012345678901"'`).
fn account_id_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
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
            minter: MinterConfig::default(),
            rate_limit: RateLimitConfig::default(),
            ingest: IngestConfig::default(),
            aws: AwsConfig::default(),
            detection: DetectionConfig::default(),
            alerts: AlertsConfig::default(),
            smtp: SmtpConfig::default(),
            enrich: EnrichConfig::default(),
            sensor: SensorConfig::default(),
        }
    }
}

impl Default for MinterConfig {
    fn default() -> Self {
        Self {
            kind: "local".into(),
            names_file: None,
            accounts: Vec::new(),
            gateway: GatewayConfig::default(),
            account_id: None,
            region: "us-east-1".into(),
            output: "json".into(),
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            create_per_minute: 10,
            create_burst: 5,
            trust_forwarded_for: false,
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

impl SmtpConfig {
    /// Email is off without a host; with one, the rest must make a working sender.
    fn check(&self) -> Result<(), ConfigError> {
        let Some(host) = &self.host else {
            return Ok(());
        };
        let value = |key, problem: &str| ConfigError::Value {
            key,
            problem: problem.into(),
        };
        if host.trim().is_empty() {
            return Err(value(
                "smtp.host",
                "is empty; leave it unset to turn email off",
            ));
        }
        match &self.from {
            None => {
                return Err(value(
                    "smtp.from",
                    "is required when smtp.host is set (e.g. \"canarykeys <alerts@example.com>\")",
                ))
            }
            Some(from) => {
                if let Err(e) = from.parse::<lettre::message::Mailbox>() {
                    return Err(ConfigError::Value {
                        key: "smtp.from",
                        problem: format!("{from:?} is not a mail address ({e})"),
                    });
                }
            }
        }
        if self.username.is_some() != self.password.is_some() {
            return Err(value(
                "smtp.username",
                "set smtp.username and smtp.password together",
            ));
        }
        if self.port == 0 {
            return Err(value("smtp.port", "must be between 1 and 65535"));
        }
        if self.timeout_secs == 0 {
            return Err(value("smtp.timeout_secs", "must be at least 1"));
        }
        Ok(())
    }
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
        match self.minter.kind.as_str() {
            "local" => {}
            "iam" if self.minter.accounts.is_empty() => {
                return Err(ConfigError::Value {
                    key: "minter.accounts",
                    problem: "the iam minter needs at least one [[minter.accounts]] entry".into(),
                })
            }
            "iam" => {
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
            "gateway" => {
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
            other => {
                return Err(ConfigError::Value {
                    key: "minter.kind",
                    problem: format!(
                        "unknown minter {other:?}; use \"local\", \"iam\" or \"gateway\""
                    ),
                })
            }
        }
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
        self.smtp.check()?;
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
