//! The relay's settings, read once from the environment at cold start and checked there, so a
//! misconfigured function fails on its first invocation with a message that names the variable.

use std::fmt;
use std::time::Duration;

use url::Url;

pub const ENV_SERVER_URL: &str = "CANARYKEYS_SERVER_URL";
pub const ENV_INGEST_SECRET: &str = "CANARYKEYS_INGEST_SECRET";
pub const ENV_MAX_ATTEMPTS: &str = "CANARYKEYS_RELAY_MAX_ATTEMPTS";
pub const ENV_TIMEOUT_SECS: &str = "CANARYKEYS_RELAY_TIMEOUT_SECS";

/// The server route the relay posts to, below the configured server URL.
pub const INGEST_PATH: &str = "/ingest/v1/cloudtrail";

/// A configuration problem, naming the environment variable at fault. It never carries the
/// secret's value.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

impl ConfigError {
    fn new(var: &'static str, problem: impl Into<String>) -> Self {
        Self {
            var,
            problem: problem.into(),
        }
    }
}

/// The shared HMAC secret for signing ingest requests. `Debug` prints no part of it, so a
/// `{:?}` of the config in a log line is safe.
#[derive(Clone)]
pub struct IngestSecret(String);

impl IngestSecret {
    pub fn new(value: impl Into<String>) -> Result<Self, ConfigError> {
        let value = value.into();
        if value.is_empty() {
            return Err(ConfigError::new(ENV_INGEST_SECRET, "must not be empty"));
        }
        // A stray newline from `echo secret | ...` would make every signature fail with a 401 that
        // is hard to trace back; refusing it here names the cause.
        if value.trim() != value {
            return Err(ConfigError::new(
                ENV_INGEST_SECRET,
                "has leading or trailing whitespace",
            ));
        }
        Ok(Self(value))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for IngestSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IngestSecret(<redacted>)")
    }
}

/// How many records and bytes one POST may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_records: usize,
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_records: 500,
            max_bytes: 1024 * 1024,
        }
    }
}

/// Retry policy for one batch: exponential backoff with jitter between `base_delay` and
/// `max_delay`, at most `max_attempts` tries in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    /// The canarykeys server's base URL (http or https), without a trailing slash.
    pub server_url: Url,
    pub secret: IngestSecret,
    /// Timeout of one HTTP request, connect to last byte.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    pub batch: BatchLimits,
}

impl Config {
    /// Settings with the defaults for everything but the two required values.
    pub fn new(server_url: &str, secret: IngestSecret) -> Result<Self, ConfigError> {
        Ok(Self {
            server_url: parse_server_url(server_url)?,
            secret,
            request_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            batch: BatchLimits::default(),
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |var: &'static str| {
            lookup(var).ok_or_else(|| ConfigError::new(var, "is required but not set"))
        };
        let url = required(ENV_SERVER_URL)?;
        let secret = IngestSecret::new(required(ENV_INGEST_SECRET)?)?;
        let mut config = Self::new(&url, secret)?;
        if let Some(raw) = lookup(ENV_MAX_ATTEMPTS) {
            config.retry.max_attempts = parse_in_range(ENV_MAX_ATTEMPTS, &raw, 1, 20)?;
        }
        if let Some(raw) = lookup(ENV_TIMEOUT_SECS) {
            // Lambda's own ceiling is 900 s, so a longer request timeout could never fire.
            config.request_timeout =
                Duration::from_secs(parse_in_range(ENV_TIMEOUT_SECS, &raw, 1, 900)?.into());
        }
        Ok(config)
    }

    /// `{server_url}/ingest/v1/cloudtrail`, keeping any path prefix the server is mounted under.
    pub fn ingest_url(&self) -> String {
        format!(
            "{}{INGEST_PATH}",
            self.server_url.as_str().trim_end_matches('/')
        )
    }
}

fn parse_server_url(raw: &str) -> Result<Url, ConfigError> {
    let bad = |problem: &str| ConfigError::new(ENV_SERVER_URL, problem);
    let url = Url::parse(raw.trim()).map_err(|e| bad(&format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    // Credentials in the URL would end up in logs and are not how the server authenticates.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not contain a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "must not have a query or fragment; give the server's base URL",
        ));
    }
    Ok(url)
}

fn parse_in_range(var: &'static str, raw: &str, min: u32, max: u32) -> Result<u32, ConfigError> {
    match raw.trim().parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError::new(
            var,
            format!("must be a whole number from {min} to {max}, got {raw:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    const BASE: [(&str, &str); 2] = [
        (ENV_SERVER_URL, "https://keys.example.com/"),
        (ENV_INGEST_SECRET, "hunter2-hunter2"),
    ];

    #[test]
    fn defaults_and_ingest_url() {
        let c = load(&BASE).unwrap();
        assert_eq!(
            c.ingest_url(),
            "https://keys.example.com/ingest/v1/cloudtrail"
        );
        assert_eq!(c.retry, RetryPolicy::default());
        assert_eq!(c.retry.max_attempts, 4);
        assert_eq!(c.request_timeout, Duration::from_secs(10));
        assert_eq!(
            c.batch,
            BatchLimits {
                max_records: 500,
                max_bytes: 1 << 20
            }
        );

        let c = load(&[(ENV_SERVER_URL, "http://10.0.0.5:8080/canary"), BASE[1]]).unwrap();
        assert_eq!(
            c.ingest_url(),
            "http://10.0.0.5:8080/canary/ingest/v1/cloudtrail"
        );
    }

    #[test]
    fn optional_numbers() {
        let c = load(&[
            BASE[0],
            BASE[1],
            (ENV_MAX_ATTEMPTS, "7"),
            (ENV_TIMEOUT_SECS, " 3 "),
        ])
        .unwrap();
        assert_eq!(c.retry.max_attempts, 7);
        assert_eq!(c.request_timeout, Duration::from_secs(3));
        for (var, bad) in [
            (ENV_MAX_ATTEMPTS, "0"),
            (ENV_MAX_ATTEMPTS, "x"),
            (ENV_TIMEOUT_SECS, "-1"),
            (ENV_TIMEOUT_SECS, "901"),
        ] {
            let e = load(&[BASE[0], BASE[1], (var, bad)]).unwrap_err();
            assert_eq!(e.var, var, "{bad}");
        }
    }

    #[test]
    fn missing_and_bad_required_values_name_the_variable() {
        assert_eq!(load(&[BASE[1]]).unwrap_err().var, ENV_SERVER_URL);
        assert_eq!(load(&[BASE[0]]).unwrap_err().var, ENV_INGEST_SECRET);
        for url in [
            "",
            "keys.example.com",
            "ftp://keys.example.com",
            "https://u:p@keys.example.com",
            "https://k.example.com/?a=1",
        ] {
            let e = load(&[(ENV_SERVER_URL, url), BASE[1]]).unwrap_err();
            assert_eq!(e.var, ENV_SERVER_URL, "{url}");
        }
        for secret in ["", "abc\n", " abc"] {
            let e = load(&[BASE[0], (ENV_INGEST_SECRET, secret)]).unwrap_err();
            assert_eq!(e.var, ENV_INGEST_SECRET);
        }
    }

    #[test]
    fn the_secret_never_shows_in_debug_or_errors() {
        let c = load(&BASE).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
        let e = load(&[BASE[0], (ENV_INGEST_SECRET, "hunter2 ")]).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }
}
