//! `[streams.<type>]`: operator-level sinks (a SIEM, a pager) that get every alert of every
//! token, each in an outbox lane of its own. One section per type; every key can also be set
//! as `CANARYKEYS_STREAMS__<TYPE>__<KEY>`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Secret};

/// What a stream gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Include {
    /// Every token's alerts: hits, summaries, exposures, tamper alerts (never `test`).
    Alerts,
    /// Alerts about the system (`[operator_alerts]`'s): detection, heartbeat, disk, …
    Operator,
    /// The audit log's entries (who created, changed or deleted what).
    Audit,
}

/// Whose tokens' alerts a stream gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Tokens created by operators (signed in, or with their API keys): in `open` mode a
    /// stranger's token cannot page the on-call.
    #[default]
    Operators,
    /// Every token, anonymous ones included.
    All,
}

/// The settings every stream has.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamCommon {
    /// What it gets; default alerts and operator alerts. One name, a list, or names separated
    /// by commas (`CANARYKEYS_STREAMS__SYSLOG__INCLUDE=alerts,audit`).
    #[serde(deserialize_with = "includes")]
    pub include: Vec<Include>,
    /// Whose tokens' alerts: `operators` (tokens made by operators and their API keys; in
    /// `open` mode a stranger's token cannot page the on-call) or `all`.
    pub tokens: TokenScope,
}

impl Default for StreamCommon {
    fn default() -> Self {
        Self {
            include: vec![Include::Alerts, Include::Operator],
            tokens: TokenScope::Operators,
        }
    }
}

/// `[streams.syslog]`: RFC 5424 over UDP (best effort), TCP (RFC 6587 octet counting) or TLS
/// (RFC 5425).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SyslogStream {
    #[serde(flatten)]
    pub common: StreamCommon,
    /// `udp://host:514`, `tcp://host:601` or `tls://host:6514`.
    pub address: String,
    /// The syslog facility by name (`local0` … `local7`, `auth`, `security`, `user`, …);
    /// default `local0`.
    pub facility: Option<String>,
    /// The APP-NAME field; default `canarykeys`.
    pub app_name: Option<String>,
    /// PEM file of the CA(s) that signed the receiver's TLS certificate; default the public
    /// web roots.
    pub ca_file: Option<PathBuf>,
}

/// `[streams.splunk_hec]`: Splunk's HTTP Event Collector.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SplunkHecStream {
    #[serde(flatten)]
    pub common: StreamCommon,
    /// `https://splunk.example.com:8088/services/collector/event`.
    pub url: String,
    /// The HEC token, sent as `Authorization: Splunk <token>`.
    pub token: Option<Secret>,
    /// The events' `index`; default the token's default index.
    pub index: Option<String>,
}

/// `[streams.elastic]`: `POST /_bulk` of ECS documents.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ElasticStream {
    #[serde(flatten)]
    pub common: StreamCommon,
    /// The cluster's base URL (`https://es.example.com:9200`).
    pub url: String,
    /// The index or data stream written to; default `logs-canarykeys.alert-default`.
    pub index: Option<String>,
    /// An API key (the base64 `encoded` form); or `username` and `password`.
    pub api_key: Option<Secret>,
    /// Basic auth user, instead of `api_key`.
    pub username: Option<String>,
    /// Basic auth password, with `username`.
    pub password: Option<Secret>,
}

/// `[streams.ocsf]`: OCSF Detection Findings posted as JSON.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OcsfStream {
    #[serde(flatten)]
    pub common: StreamCommon,
    /// Where each finding (or batch) is POSTed.
    pub url: String,
    /// `Authorization: Bearer <token>`.
    pub bearer_token: Option<Secret>,
    /// Signs each body as the generic webhook does (`X-Canarykeys-Signature`).
    pub hmac_secret: Option<Secret>,
    /// Send a batch as one JSON array (when the receiver takes arrays); default one object
    /// per request.
    pub batch: bool,
}

/// `[streams.pagerduty]`: PagerDuty Events API v2.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PagerdutyStream {
    #[serde(flatten)]
    pub common: StreamCommon,
    /// The Events API v2 integration's routing key.
    pub routing_key: Option<Secret>,
    /// The Events API v2 endpoint; default `https://events.pagerduty.com/v2/enqueue`.
    pub url: String,
    /// `critical`, `error`, `warning` or `info`.
    pub severity: String,
}

impl Default for PagerdutyStream {
    fn default() -> Self {
        Self {
            common: StreamCommon::default(),
            routing_key: None,
            url: "https://events.pagerduty.com/v2/enqueue".into(),
            severity: "critical".into(),
        }
    }
}

/// `[streams]`: each type at most once; unset: no such stream.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamsConfig {
    pub syslog: Option<SyslogStream>,
    pub splunk_hec: Option<SplunkHecStream>,
    pub elastic: Option<ElasticStream>,
    pub ocsf: Option<OcsfStream>,
    pub pagerduty: Option<PagerdutyStream>,
}

fn value(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        key,
        problem: problem.into(),
    }
}

fn http_url(key: &'static str, url: &str) -> Result<(), ConfigError> {
    let parsed = url::Url::parse(url).map_err(|e| value(key, e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(value(key, "must be an http or https URL"));
    }
    Ok(())
}

impl StreamsConfig {
    /// The configured streams' common settings, by type.
    pub fn enabled(&self) -> Vec<(canarykeys_store::StreamKind, &StreamCommon)> {
        use canarykeys_store::StreamKind as K;
        let mut out = Vec::new();
        if let Some(s) = &self.syslog {
            out.push((K::Syslog, &s.common));
        }
        if let Some(s) = &self.splunk_hec {
            out.push((K::SplunkHec, &s.common));
        }
        if let Some(s) = &self.elastic {
            out.push((K::Elastic, &s.common));
        }
        if let Some(s) = &self.ocsf {
            out.push((K::Ocsf, &s.common));
        }
        if let Some(s) = &self.pagerduty {
            out.push((K::Pagerduty, &s.common));
        }
        out
    }

    /// Settings that would fail every send are refused at start.
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(s) = &self.syslog {
            crate::notify::stream::syslog::Target::parse(&s.address)
                .map_err(|e| value("streams.syslog.address", e))?;
            crate::notify::stream::syslog::facility(s.facility.as_deref())
                .map_err(|e| value("streams.syslog.facility", e))?;
            if let Some(app) = &s.app_name {
                if app.is_empty() || app.len() > 48 || !app.bytes().all(|b| (33..=126).contains(&b))
                {
                    return Err(value(
                        "streams.syslog.app_name",
                        "1 to 48 printable ASCII characters, no spaces (RFC 5424)",
                    ));
                }
            }
        }
        if let Some(s) = &self.splunk_hec {
            http_url("streams.splunk_hec.url", &s.url)?;
            if s.token.is_none() {
                return Err(value("streams.splunk_hec.token", "is required"));
            }
        }
        if let Some(s) = &self.elastic {
            http_url("streams.elastic.url", &s.url)?;
            if s.api_key.is_some() == s.username.is_some()
                || s.username.is_some() != s.password.is_some()
            {
                return Err(value(
                    "streams.elastic.api_key",
                    "set api_key, or username and password",
                ));
            }
        }
        if let Some(s) = &self.ocsf {
            http_url("streams.ocsf.url", &s.url)?;
        }
        if let Some(s) = &self.pagerduty {
            http_url("streams.pagerduty.url", &s.url)?;
            if s.routing_key.is_none() {
                return Err(value("streams.pagerduty.routing_key", "is required"));
            }
            if !matches!(
                s.severity.as_str(),
                "critical" | "error" | "warning" | "info"
            ) {
                return Err(value(
                    "streams.pagerduty.severity",
                    "one of critical, error, warning, info",
                ));
            }
        }
        Ok(())
    }
}

/// One name, a list, or names separated by commas.
fn includes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Include>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    let all = match Raw::deserialize(d)? {
        Raw::One(s) => vec![s],
        Raw::Many(v) => v,
    };
    all.iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
                serde::de::Error::custom(format!(
                    "unknown include {s:?}: alerts, operator or audit"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_lists() {
        let s: StreamsConfig = serde_json::from_value(serde_json::json!({
            "syslog": {"address": "tcp://127.0.0.1:601", "include": "alerts, audit", "tokens": "all"},
            "pagerduty": {"routing_key": "R0123"},
        }))
        .unwrap();
        assert!(s.check().is_ok());
        let sys = s.syslog.as_ref().unwrap();
        assert_eq!(sys.common.include, [Include::Alerts, Include::Audit]);
        assert_eq!(sys.common.tokens, TokenScope::All);
        let pd = s.pagerduty.as_ref().unwrap();
        assert_eq!(pd.common.include, [Include::Alerts, Include::Operator]);
        assert_eq!(pd.severity, "critical");
        assert!(!format!("{s:?}").contains("R0123"), "secrets are redacted");
        for bad in [
            serde_json::json!({"syslog": {"address": "http://x:1"}}),
            serde_json::json!({"syslog": {"address": "udp://x:514", "facility": "nope"}}),
            serde_json::json!({"splunk_hec": {"url": "https://s/services/collector/event"}}),
            serde_json::json!({"pagerduty": {"routing_key": "k", "severity": "meh"}}),
            serde_json::json!({"elastic": {"url": "https://e:9200"}}),
        ] {
            let parsed: StreamsConfig = serde_json::from_value(bad.clone()).unwrap();
            assert!(parsed.check().is_err(), "{bad}");
        }
    }
}
