//! How to reach AWS (or a local stand-in such as moto): the settings and the one place that turns
//! them into an SDK configuration, so every client in the process is built the same way.

use std::fmt;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use canarykeys_core::Invalid;

/// Name recorded on static credentials; the SDK shows it in its own debug output, so a reader of
/// a trace can tell these came from canarykeys' settings and not from the default chain.
const PROVIDER_NAME: &str = "canarykeys-settings";

/// How to reach AWS (or moto): region, optional endpoint URL, optional static credentials (else
/// the SDK's default chain: environment, profile, web identity, ECS/EC2 role).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    /// Region to call, e.g. `us-east-1`. Empty means "whatever the default chain says"
    /// (`AWS_REGION`, the profile, IMDS).
    pub region: String,
    /// Send every request here instead of AWS's endpoints (moto, a VPC endpoint, a proxy).
    pub endpoint_url: Option<String>,
    /// Static credentials; used only when both halves are set (see [`AwsSettings::validate`]).
    pub access_key_id: Option<String>,
    /// Never printed: `Debug` shows only whether it is set.
    pub secret_access_key: Option<String>,
}

impl AwsSettings {
    /// Refuses combinations `sdk_config` would otherwise quietly paper over: half a credential
    /// pair (which would fall back to the default chain, i.e. to whatever role the host has) and
    /// an endpoint that is not an http(s) URL. The config layer calls this at start-up.
    pub fn validate(&self) -> Result<(), Invalid> {
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(Invalid::new(
                    "set both access_key_id and secret_access_key, or neither to use the default credential chain",
                ));
            }
            _ => {}
        }
        if let Some(url) = &self.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Invalid::new(
                    "endpoint_url must start with http:// or https://",
                ));
            }
        }
        Ok(())
    }

    fn static_credentials(&self) -> Option<Credentials> {
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => Some(Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                PROVIDER_NAME,
            )),
            _ => None,
        }
    }
}

impl fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsSettings")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The SDK configuration for `s`. Retry, timeouts and the rest stay at the SDK's defaults for
/// the latest behavior version (standard retry, 3 attempts), which is what the pollers want.
pub async fn sdk_config(s: &AwsSettings) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if !s.region.is_empty() {
        loader = loader.region(Region::new(s.region.clone()));
    }
    if let Some(url) = &s.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(creds) = s.static_credentials() {
        loader = loader.credentials_provider(creds);
    }
    loader.load().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::config::ProvideCredentials;

    fn moto() -> AwsSettings {
        AwsSettings {
            region: "eu-west-2".into(),
            endpoint_url: Some("http://127.0.0.1:5055".into()),
            access_key_id: Some("AKIAEXAMPLEADMIN0001".into()),
            secret_access_key: Some("super-secret-value".into()),
        }
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let shown = format!("{:?}", moto());
        assert!(!shown.contains("super-secret-value"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(shown.contains("AKIAEXAMPLEADMIN0001"), "{shown}");
    }

    #[test]
    fn validate_refuses_half_a_credential_pair_and_odd_endpoints() {
        assert!(moto().validate().is_ok());
        assert!(AwsSettings::default().validate().is_ok());
        let half = AwsSettings {
            secret_access_key: None,
            ..moto()
        };
        assert!(half.validate().is_err());
        let odd = AwsSettings {
            endpoint_url: Some("127.0.0.1:5055".into()),
            ..moto()
        };
        assert!(odd.validate().is_err());
    }

    #[tokio::test]
    async fn sdk_config_carries_region_endpoint_and_static_credentials() {
        let cfg = sdk_config(&moto()).await;
        assert_eq!(cfg.region().map(|r| r.as_ref()), Some("eu-west-2"));
        assert_eq!(cfg.endpoint_url(), Some("http://127.0.0.1:5055"));
        let creds = cfg
            .credentials_provider()
            .expect("static credentials are set")
            .provide_credentials()
            .await
            .unwrap();
        assert_eq!(creds.access_key_id(), "AKIAEXAMPLEADMIN0001");
        assert_eq!(creds.secret_access_key(), "super-secret-value");
    }
}
