//! The sections of the configuration, one struct each, with their defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{account_id_text, ConfigError, Secret};

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
    /// The region of the server's own AWS calls (the safety net's IAM reads, the S3 poller).
    pub region: String,
    /// Another endpoint than AWS's (a local AWS stand-in, for tests).
    pub endpoint_url: Option<String>,
    /// Static credentials; unset means the SDK's default chain (environment, profile, instance
    /// role). Both or neither.
    pub access_key_id: Option<String>,
    /// The secret of `access_key_id`.
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

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectionConfig {
    pub s3: S3PollerConfig,
    pub safety_net: SafetyNetConfig,
    /// How long a deleted or expired token's tombstone is kept (and matched) for records that
    /// arrive late, even when it has no hits (`CANARYKEYS_DETECTION__LATE_EVENT_WINDOW`).
    #[serde(with = "humantime_serde")]
    pub late_event_window: std::time::Duration,
    /// How far a record's `eventTime` may be past a token's end and still count as a use
    /// before it (clocks differ); later is a use of a retired key
    /// (`CANARYKEYS_DETECTION__CLOCK_SKEW`).
    #[serde(with = "humantime_serde")]
    pub clock_skew: std::time::Duration,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            s3: S3PollerConfig::default(),
            safety_net: SafetyNetConfig::default(),
            late_event_window: std::time::Duration::from_secs(7 * 24 * 3600),
            clock_skew: std::time::Duration::from_secs(300),
        }
    }
}

impl DetectionConfig {
    /// The late-event window and the clock skew, in ms.
    pub fn late_events(&self) -> crate::services::LateEvents {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        crate::services::LateEvents {
            window_ms: ms(self.late_event_window),
            skew_ms: ms(self.clock_skew),
        }
    }
}

/// Proof of life (`[heartbeat]`, `CANARYKEYS_HEARTBEAT__*`): a key per decoy account that calls
/// `sts:GetCallerIdentity` every `interval` in each region, so each detection path shows it
/// still delivers, and how fast.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct HeartbeatConfig {
    /// On or off; unset: on with the `iam` and `gateway` minters, and with the `local` minter
    /// only when `endpoint_url` is set (its keys are unknown to AWS, so only the sensor can
    /// answer them).
    pub enabled: Option<bool>,
    /// How often each region is called (at least 1 s).
    #[serde(with = "humantime_serde")]
    pub interval: std::time::Duration,
    /// Where to call; empty: the minter's region (`[minter] region`). List every region the
    /// EventBridge stack runs in.
    pub regions: Vec<String>,
    /// The detection paths this deployment has (`eventbridge`, `cloudwatch-logs`, `s3`,
    /// `safety-net`, `sensor`): one that never delivered reads `never`.
    pub expect: Vec<String>,
    /// A path with no receipt for this long is `silent`.
    #[serde(with = "humantime_serde")]
    pub silent_after: std::time::Duration,
    /// Instead of each region's STS endpoint (the sensor, a VPC endpoint, moto).
    pub endpoint_url: Option<String>,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            interval: std::time::Duration::from_secs(3600),
            regions: Vec::new(),
            expect: Vec::new(),
            silent_after: std::time::Duration::from_secs(3 * 3600),
            endpoint_url: None,
        }
    }
}

impl HeartbeatConfig {
    /// Whether the heartbeat runs with `minter`.
    pub fn is_enabled(&self, minter: MinterKind) -> bool {
        self.enabled
            .unwrap_or(minter != MinterKind::Local || self.endpoint_url.is_some())
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let bad = |key, problem: &str| {
            Err(ConfigError::Value {
                key,
                problem: problem.into(),
            })
        };
        if self.interval < std::time::Duration::from_secs(1) {
            return bad("heartbeat.interval", "must be at least 1s");
        }
        if self.silent_after <= self.interval {
            return bad(
                "heartbeat.silent_after",
                "must be longer than heartbeat.interval",
            );
        }
        for p in &self.expect {
            if crate::services::DeliveryPath::parse(p).is_none() {
                return bad(
                    "heartbeat.expect",
                    "paths are eventbridge, cloudwatch-logs, s3, safety-net or sensor",
                );
            }
        }
        for r in &self.regions {
            if canarykeys_core::Region::parse(r).is_err() {
                return bad("heartbeat.regions", "not an AWS region name");
            }
        }
        if let Some(url) = &self.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return bad(
                    "heartbeat.endpoint_url",
                    "must start with http:// or https://",
                );
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct S3PollerConfig {
    /// The trail's bucket; unset turns the poller off.
    pub bucket: Option<String>,
    /// Where the trail writes (`AWSLogs/` unless the trail has a key prefix).
    pub prefix: String,
    /// How often the bucket is listed for new trail files, in seconds.
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
    /// Read each decoy key's IAM "last used" date and record a hit when it moves (the net under
    /// every other path; needs `iam:GetAccessKeyLastUsed` in the decoy accounts).
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
    /// How long a failing delivery keeps being retried. Three days: a channel down for a whole
    /// day loses nothing under the defaults.
    #[serde(with = "humantime_serde")]
    pub retry_horizon: std::time::Duration,
    /// The first retry's delay; each later one doubles, up to `retry_max_delay`.
    #[serde(with = "humantime_serde")]
    pub retry_base_delay: std::time::Duration,
    /// The longest delay between two retries of one delivery.
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
    /// Inside an open cooldown window, a token stores this many full hit rows; further uses are
    /// folded into the window row (counted, with capped tallies and their event ids' hashes),
    /// so a key holder replaying one request cannot fill the disk.
    pub stored_hits_per_window: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        use std::time::Duration;
        Self {
            allow_private_webhooks: false,
            cooldown: Duration::from_secs(300),
            retry_horizon: Duration::from_secs(72 * 3600),
            retry_base_delay: Duration::from_secs(30),
            retry_max_delay: Duration::from_secs(3600),
            claim_lease: Duration::from_secs(120),
            disable_after_failures: 5,
            history_retention_days: 0,
            webhook_signing_secret: None,
            stored_hits_per_window: canarykeys_store::DEFAULT_STORED_HITS_PER_WINDOW,
        }
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
    /// A request's whole body must arrive within this, or it is answered `408` and dropped.
    #[serde(with = "humantime_serde")]
    pub body_timeout: std::time::Duration,
    /// Signed requests whose body is still being read (the signature covers the body, so until
    /// it has arrived nobody knows whether the sender holds the secret): at most this many at
    /// once from one client address (an IPv6 /64)...
    pub unverified_per_address: usize,
    /// ...and this many in all...
    pub unverified_total: usize,
    /// ...holding at most this many bytes of declared bodies in all (a signed request must send
    /// `Content-Length`). A full pool answers `429` with `Retry-After` at once. Requests with the
    /// bearer secret are proven by their header and never use this pool.
    pub unverified_bytes: u64,
    /// Proven requests parsed and stored at once; more wait their turn (a parse holds several
    /// times its input in memory).
    pub parse_slots: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            secret: None,
            max_body_bytes: 16 * 1024 * 1024,
            max_decompressed_bytes: 32 * 1024 * 1024,
            body_timeout: std::time::Duration::from_secs(10),
            unverified_per_address: 4,
            unverified_total: 256,
            unverified_bytes: 128 * 1024 * 1024,
            parse_slots: 4,
        }
    }
}

/// Which minter makes keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum MinterKind {
    /// Keys in AWS's format that AWS does not know; only the sensor sees their use.
    #[default]
    Local,
    /// The server calls IAM in the decoy accounts.
    Iam,
    /// The minting service (a Lambda behind API Gateway) calls IAM.
    Gateway,
}

impl TryFrom<String> for MinterKind {
    type Error = String;

    /// By hand rather than derived, so the error names the setting and every choice.
    fn try_from(value: String) -> Result<Self, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "local" => Ok(Self::Local),
            "iam" => Ok(Self::Iam),
            "gateway" => Ok(Self::Gateway),
            _ => Err(format!(
                "unknown minter.kind {value:?}; use \"local\", \"iam\" or \"gateway\""
            )),
        }
    }
}

impl MinterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Iam => "iam",
            Self::Gateway => "gateway",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct MinterConfig {
    /// Which minter makes keys: `local` (AWS's format, unknown to AWS), `iam` (the server
    /// calls IAM in the decoy accounts) or `gateway` (the minting service does).
    pub kind: MinterKind,
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
    /// How long each session of an `aws_session` token lasts (15m to 36h, STS's range for
    /// `GetSessionToken`).
    #[serde(with = "humantime_serde")]
    pub session_duration: std::time::Duration,
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
    /// IAM users kept free below the account's user quota: creation stops (507) this many
    /// users short of it, leaving room for the heartbeat identity and rotation.
    pub user_headroom: u32,
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
            user_headroom: canarykeys_aws::DEFAULT_USER_HEADROOM,
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

impl Default for MinterConfig {
    fn default() -> Self {
        Self {
            kind: MinterKind::Local,
            names_file: None,
            accounts: Vec::new(),
            gateway: GatewayConfig::default(),
            account_id: None,
            region: "us-east-1".into(),
            output: "json".into(),
            session_duration: std::time::Duration::from_secs(12 * 3600),
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

impl SmtpConfig {
    /// Email is off without a host; with one, the rest must make a working sender.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
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

/// Who may use the server (`[access]`): operators, sessions and the token create gate.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct AccessConfig {
    /// Who may create tokens: `"operators"` (a signed-in operator or an API key with
    /// `tokens:write`) or `"open"` (anyone who can reach the server, within the rate limit).
    pub create: String,
    /// In reverse-proxy mode, the header that names the signed-in operator (e.g.
    /// `X-Forwarded-User`); trusted only from `trusted_proxies`.
    pub proxy_header: Option<String>,
    /// Addresses or CIDR ranges of the proxies whose `proxy_header` is believed.
    pub trusted_proxies: Vec<String>,
    /// How long a console session lasts after sign-in.
    #[serde(with = "humantime_serde")]
    pub session_ttl: std::time::Duration,
    /// Sign-in attempts allowed per client address (an IPv6 /64 counts as one) per minute.
    pub login_per_minute: u32,
    /// Password hashes (argon2id, 19 MiB each) run at once; a sign-in finding all busy is
    /// answered `429` with `Retry-After`. `0`: twice the CPU cores.
    pub hash_concurrency: usize,
    /// Keep audit log entries this many days; `0` keeps them forever.
    pub audit_retention_days: u32,
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            create: "operators".into(),
            proxy_header: None,
            trusted_proxies: Vec::new(),
            session_ttl: std::time::Duration::from_secs(12 * 3600),
            login_per_minute: 10,
            hash_concurrency: 0,
            audit_retention_days: 365,
        }
    }
}

impl AccessConfig {
    /// Password hashes run at once: `hash_concurrency`, or twice the cores when it is 0.
    pub fn hashing_slots(&self) -> usize {
        match self.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()) * 2,
            n => n,
        }
    }

    /// Whether anyone may create tokens (`create = "open"`).
    pub fn open(&self) -> bool {
        self.create == "open"
    }

    /// The trusted proxy ranges, parsed (a bare address is a one-address range).
    pub fn proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| ConfigError::Value {
                        key: "access.trusted_proxies",
                        problem: format!("{s:?} is not an address or CIDR range"),
                    })
            })
            .collect()
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if !matches!(self.create.as_str(), "operators" | "open") {
            return Err(ConfigError::Value {
                key: "access.create",
                problem: format!("{:?}: use \"operators\" or \"open\"", self.create),
            });
        }
        if self.proxy_header.is_some() && self.trusted_proxies.is_empty() {
            return Err(ConfigError::Value {
                key: "access.trusted_proxies",
                problem: "access.proxy_header needs at least one trusted proxy".into(),
            });
        }
        if self.session_ttl.is_zero() {
            return Err(ConfigError::Value {
                key: "access.session_ttl",
                problem: "must be above 0".into(),
            });
        }
        self.proxy_nets().map(|_| ())
    }
}

/// Bounds on every listener (`[listeners]`: the web UI and API, and the sensor), so a client
/// that stalls or hoards connections is dropped instead of waited on.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ListenersConfig {
    /// A request's headers must arrive within this. The clock starts whenever a connection waits
    /// for a request, so it also closes a keep-alive connection idle this long.
    #[serde(with = "humantime_serde")]
    pub header_timeout: std::time::Duration,
    /// From the end of the headers to the answer, the body included; a slower request is cut
    /// off (`408` on the web listener; the sensor treats the body as unread and still counts
    /// the hit).
    #[serde(with = "humantime_serde")]
    pub request_timeout: std::time::Duration,
    /// Open connections per listener; more wait in the kernel's queue until one closes. High
    /// enough that ten thousand idle connections (closed at `header_timeout`) leave room for
    /// real clients; each idle one costs a few KiB. `serve` raises its open-files limit to fit.
    pub max_connections: usize,
}

impl Default for ListenersConfig {
    fn default() -> Self {
        use std::time::Duration;
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_connections: 16_384,
        }
    }
}

impl ListenersConfig {
    /// Zero would close every connection at once; a server that answers nothing is no setting.
    pub fn check(&self) -> Result<(), ConfigError> {
        let problem = |key, problem: &str| ConfigError::Value {
            key,
            problem: problem.into(),
        };
        if self.header_timeout.is_zero() {
            return Err(problem("listeners.header_timeout", "must be more than 0s"));
        }
        if self.request_timeout.is_zero() {
            return Err(problem("listeners.request_timeout", "must be more than 0s"));
        }
        if self.max_connections == 0 {
            return Err(problem("listeners.max_connections", "must be at least 1"));
        }
        Ok(())
    }
}

/// Bounds on waiting for the database (`[database]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// A request (ingest, the sensor, an API hit write) waits at most this long for its group
    /// commit, then is answered `503` with `Retry-After` (the sensor: AWS's server error). The
    /// deadline is kept by this process, because a frozen link never delivers the database's own
    /// timeout; the stuck connection is dropped and the writer moves on.
    #[serde(with = "humantime_serde")]
    pub request_timeout: std::time::Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            request_timeout: std::time::Duration::from_secs(5),
        }
    }
}

/// The server process (`[server]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// A clean stop (SIGTERM, Ctrl-C) waits at most this long for open requests and the
    /// database to close, then exits anyway.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: std::time::Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            shutdown_grace: std::time::Duration::from_secs(10),
        }
    }
}

impl DatabaseConfig {
    /// Zero would fail every write at once.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.request_timeout.is_zero() {
            return Err(ConfigError::Value {
                key: "database.request_timeout",
                problem: "must be more than 0s".into(),
            });
        }
        Ok(())
    }
}

/// The local disk (`[storage]`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    /// The free-disk watermark of the SQLite data directory: below it, hits are stored without
    /// their raw record and extras are skipped, so the space left goes to detection. Bytes, or
    /// a size such as `"1GiB"` or `"512MiB"`; `0` turns it off. Unused on PostgreSQL.
    #[serde(deserialize_with = "byte_size")]
    pub min_free: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { min_free: 1 << 30 }
    }
}

/// A byte count: a number, or a number with a binary unit (`B`, `KiB`, `MiB`, `GiB`, `TiB`).
fn byte_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    let text = match Raw::deserialize(d)? {
        Raw::Number(n) => return Ok(n),
        Raw::Text(t) => t,
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        _ => u32::MAX,
    };
    digits
        .parse::<u64>()
        .ok()
        .filter(|_| shift != u32::MAX)
        .and_then(|n| n.checked_mul(1u64.checked_shl(shift)?))
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a size: use bytes or a number with B, KiB, MiB, GiB or TiB"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::{DatabaseConfig, ListenersConfig};

    #[test]
    fn a_request_timeout_of_zero_is_refused() {
        assert!(DatabaseConfig::default().check().is_ok());
        let zero = DatabaseConfig {
            request_timeout: std::time::Duration::ZERO,
        };
        assert!(zero.check().is_err());
    }

    #[test]
    fn sizes_read_as_bytes_or_with_a_binary_unit() {
        let read = |v: serde_json::Value| {
            serde_json::from_value::<super::StorageConfig>(serde_json::json!({ "min_free": v }))
                .map(|s| s.min_free)
        };
        assert_eq!(read(serde_json::json!(4096)).unwrap(), 4096);
        assert_eq!(read("1GiB".into()).unwrap(), 1 << 30);
        assert_eq!(read(" 512 MiB ".into()).unwrap(), 512 << 20);
        assert_eq!(read("0".into()).unwrap(), 0);
        assert_eq!(super::StorageConfig::default().min_free, 1 << 30);
        for bad in ["1GB", "lots", "-1GiB", "99999999999TiB", ""] {
            assert!(read(bad.into()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn listener_bounds_of_zero_are_refused() {
        assert!(ListenersConfig::default().check().is_ok());
        let zero = std::time::Duration::ZERO;
        for broken in [
            ListenersConfig {
                header_timeout: zero,
                ..Default::default()
            },
            ListenersConfig {
                request_timeout: zero,
                ..Default::default()
            },
            ListenersConfig {
                max_connections: 0,
                ..Default::default()
            },
        ] {
            assert!(broken.check().is_err(), "{broken:?}");
        }
    }
}

/// Backups (`[backup]`, `CANARYKEYS_BACKUP__*`): `canarykeys backup` records when it last ran,
/// and `doctor` warns when that is longer ago than `warn_after`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct BackupConfig {
    /// `canarykeys doctor` warns when no `canarykeys backup` ran for this long.
    #[serde(with = "humantime_serde")]
    pub warn_after: std::time::Duration,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            warn_after: std::time::Duration::from_secs(7 * 24 * 3600),
        }
    }
}
