//! `[operator_alerts]`: where alerts about the system itself go (a detection path gone silent,
//! the heartbeat refused, the disk low, safety-net rounds failing) and the `alive` watchdog.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The operator channel. Unset addresses: operator conditions are recorded (and shown in
/// `/healthz/detail`) but nobody is told.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OperatorAlertsConfig {
    /// Mail addresses (one, or a list; `CANARYKEYS_OPERATOR_ALERTS__EMAIL` may separate several
    /// with commas). Needs `[smtp]`.
    #[serde(deserialize_with = "one_or_many")]
    pub email: Vec<String>,
    /// A webhook in any flavour a token's webhook may be (generic `canarykeys.operator/v1`,
    /// Slack, Discord, Teams, Google Chat; `#flavour=` overrides). Operator configuration, so
    /// loopback and private addresses are allowed.
    pub webhook_url: Option<String>,
    /// Sends `"type": "alive"` this often (one per interval across replicas), for a
    /// dead-man's-switch; unset: off.
    #[serde(with = "humantime_serde")]
    pub alive_every: Option<std::time::Duration>,
}

impl OperatorAlertsConfig {
    /// Addresses and URLs that would fail every send are refused at start.
    pub fn check(&self) -> Result<(), ConfigError> {
        for address in &self.email {
            canarykeys_core::Email::parse(address).map_err(|e| ConfigError::Value {
                key: "operator_alerts.email",
                problem: e.to_string(),
            })?;
        }
        if let Some(url) = &self.webhook_url {
            let problem = |problem: String| ConfigError::Value {
                key: "operator_alerts.webhook_url",
                problem,
            };
            let parsed = url::Url::parse(url).map_err(|e| problem(e.to_string()))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(problem("must be an http or https URL".into()));
            }
            crate::notify::webhook::WebhookFlavour::for_url(&parsed).map_err(problem)?;
        }
        if self
            .alive_every
            .is_some_and(|d| d < std::time::Duration::from_secs(1))
        {
            return Err(ConfigError::Value {
                key: "operator_alerts.alive_every",
                problem: "must be at least 1s".into(),
            });
        }
        Ok(())
    }
}

/// A list, or one string (commas separate several).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
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
    Ok(all
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(v: serde_json::Value) -> OperatorAlertsConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn email_is_one_or_many_and_urls_may_be_private() {
        let one = read(serde_json::json!({"email": "ops@example.com"}));
        assert_eq!(one.email, ["ops@example.com"]);
        let many = read(serde_json::json!({"email": ["a@example.com", "b@example.com"]}));
        assert_eq!(many.email.len(), 2);
        let commas = read(serde_json::json!({"email": "a@example.com, b@example.com"}));
        assert_eq!(commas.email, ["a@example.com", "b@example.com"]);
        let lan = read(
            serde_json::json!({"webhook_url": "http://10.0.0.5:9000/hook", "alive_every": "1h"}),
        );
        assert!(lan.check().is_ok());
        assert_eq!(lan.alive_every, Some(std::time::Duration::from_secs(3600)));
        assert!(OperatorAlertsConfig::default().alive_every.is_none());
        for bad in [
            serde_json::json!({"email": "not an address"}),
            serde_json::json!({"webhook_url": "ftp://x.example/"}),
            serde_json::json!({"webhook_url": "https://x.example/#flavour=msn"}),
        ] {
            assert!(read(bad.clone()).check().is_err(), "{bad}");
        }
    }
}
