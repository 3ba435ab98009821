//! The heartbeat's call: `sts:GetCallerIdentity` signed with a heartbeat key, in one region, at
//! that region's STS endpoint (or an override: the sensor, moto). It needs no permission, so
//! only a key that AWS no longer knows (or throttling, or an outage) makes it fail, and
//! CloudTrail logs it like any other management event.

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_sts::config::retry::RetryConfig;
use aws_sdk_sts::config::Credentials;
use aws_smithy_async::time::StaticTimeSource;

use crate::error::{classify, AwsError};

/// Who AWS says the caller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: Option<String>,
    pub arn: Option<String>,
}

/// One heartbeat call.
#[derive(Clone, Copy, Debug)]
pub struct IdentityCall<'a> {
    pub access_key_id: &'a str,
    /// Never printed.
    pub secret_access_key: &'a str,
    pub region: &'a str,
    /// Instead of `https://sts.<region>.amazonaws.com`.
    pub endpoint_url: Option<&'a str>,
    /// The time to sign with: the server's clock, so the request is as fresh as the server
    /// says (and a test clock is honoured).
    pub now: std::time::SystemTime,
}

#[async_trait]
pub trait CallerIdentityApi: Send + Sync + 'static {
    /// STS GetCallerIdentity. `Denied` when AWS does not know the key (deleted user or key).
    async fn get_caller_identity(&self, call: IdentityCall<'_>)
        -> Result<CallerIdentity, AwsError>;
}

/// [`CallerIdentityApi`] over the AWS SDK's STS client, one client per call (the key and region
/// change; a call an hour does not need a pool).
#[derive(Clone, Debug, Default)]
pub struct StsCallerIdentity;

/// Name recorded on the heartbeat's static credentials in the SDK's own debug output.
const PROVIDER_NAME: &str = "canarykeys-heartbeat";

#[async_trait]
impl CallerIdentityApi for StsCallerIdentity {
    async fn get_caller_identity(
        &self,
        call: IdentityCall<'_>,
    ) -> Result<CallerIdentity, AwsError> {
        const OP: &str = "STS GetCallerIdentity";
        let mut conf = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(call.region.to_owned()))
            .credentials_provider(Credentials::new(
                call.access_key_id,
                call.secret_access_key,
                None,
                None,
                PROVIDER_NAME,
            ))
            // One try: the next interval is the retry, and a refused key should say so now.
            .retry_config(RetryConfig::disabled())
            .time_source(StaticTimeSource::new(call.now));
        if let Some(url) = call.endpoint_url {
            conf = conf.endpoint_url(url);
        }
        let client = aws_sdk_sts::Client::from_conf(conf.build());
        let out = client
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        Ok(CallerIdentity {
            account: out.account().map(str::to_owned),
            arn: out.arn().map(str::to_owned),
        })
    }
}
