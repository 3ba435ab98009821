//! Sessions for `aws_session` tokens: temporary credentials issued for a decoy user's long-term
//! key. `sts:GetSessionToken` signed with that key where keys are real (`iam`, `gateway`
//! minters); made here, in STS's exact shapes, where they are not (`local`).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_sts::config::Credentials;
use aws_smithy_async::time::StaticTimeSource;
use canarykeys_core::{
    AccessKeyId, AccountId, SecretAccessKey, SessionDuration, SessionPart, SessionToken,
};

use crate::error::{classify, AwsError};
use crate::MintError;

/// A session just issued.
#[derive(Clone, Debug)]
pub struct IssuedSession {
    pub access_key_id: AccessKeyId,
    pub secret_access_key: SecretAccessKey,
    pub session: SessionPart,
}

/// What one issue needs: the decoy user's long-term key (never handed out) and when it is.
#[derive(Clone, Copy, Debug)]
pub struct SessionCall<'a> {
    pub access_key_id: &'a AccessKeyId,
    pub secret_access_key: &'a SecretAccessKey,
    pub account_id: AccountId,
    pub duration: SessionDuration,
    /// The server's clock: a local session expires by it, and STS requests are signed with it.
    pub now: SystemTime,
}

#[async_trait]
pub trait SessionIssuer: Send + Sync + 'static {
    async fn issue(&self, call: SessionCall<'_>) -> Result<IssuedSession, MintError>;
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The `local` minter's sessions: an `ASIA` id encoding the account, a fresh secret and a
/// token in STS's shape, valid (at the sensor) for the configured duration.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalSessions;

#[async_trait]
impl SessionIssuer for LocalSessions {
    async fn issue(&self, call: SessionCall<'_>) -> Result<IssuedSession, MintError> {
        Ok(IssuedSession {
            access_key_id: AccessKeyId::generate_session_for(call.account_id),
            secret_access_key: SecretAccessKey::generate(),
            session: SessionPart {
                token: SessionToken::generate(),
                expires_at: millis(call.now) + call.duration.as_millis(),
            },
        })
    }
}

/// `sts:GetSessionToken` with the decoy user's key, at STS's endpoint for `region` or an
/// override per account (moto in tests; the `[[minter.accounts]]` `endpoint_url`).
#[derive(Clone, Debug)]
pub struct StsSessions {
    region: String,
    endpoints: HashMap<AccountId, String>,
    /// Attempts while a key just created is not yet known to STS (IAM is eventually consistent).
    attempts: u32,
}

impl StsSessions {
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            endpoints: HashMap::new(),
            attempts: 5,
        }
    }

    /// Sends `account`'s calls to `url` instead of AWS.
    pub fn with_endpoint(mut self, account: AccountId, url: impl Into<String>) -> Self {
        self.endpoints.insert(account, url.into());
        self
    }

    async fn call(&self, call: &SessionCall<'_>) -> Result<IssuedSession, AwsError> {
        const OP: &str = "STS GetSessionToken";
        let mut conf = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(Credentials::new(
                call.access_key_id.as_str(),
                call.secret_access_key.expose(),
                None,
                None,
                "canarykeys-session",
            ))
            .time_source(StaticTimeSource::new(call.now));
        if let Some(url) = self.endpoints.get(&call.account_id) {
            conf = conf.endpoint_url(url);
        }
        let client = aws_sdk_sts::Client::from_conf(conf.build());
        let out = client
            .get_session_token()
            .duration_seconds(i32::try_from(call.duration.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| classify(OP, e))?;
        let bad = |why: &str| AwsError::refused(OP, why.to_owned());
        let c = out.credentials().ok_or_else(|| bad("no credentials"))?;
        let expires = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(c.expiration().secs()).unwrap_or(0));
        Ok(IssuedSession {
            access_key_id: AccessKeyId::parse(c.access_key_id())
                .map_err(|_| bad("not an access key id"))?,
            secret_access_key: SecretAccessKey::parse_issued(c.secret_access_key())
                .map_err(|_| bad("not a secret access key"))?,
            session: SessionPart {
                token: SessionToken::parse(c.session_token())
                    .map_err(|_| bad("not a session token"))?,
                expires_at: millis(expires),
            },
        })
    }
}

#[async_trait]
impl SessionIssuer for StsSessions {
    async fn issue(&self, call: SessionCall<'_>) -> Result<IssuedSession, MintError> {
        let mut wait = Duration::from_secs(1);
        let mut tries = 0;
        loop {
            tries += 1;
            match self.call(&call).await {
                Ok(s) => return Ok(s),
                // A key minted a moment ago is not known to STS everywhere yet.
                Err(e @ AwsError::Denied { .. }) if tries < self.attempts => {
                    tracing::info!(error = %e, "GetSessionToken refused; the new key may not have propagated yet");
                }
                Err(e) => return Err(MintError::Unavailable(Box::new(e))),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(8));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_sessions_encode_the_account_and_expire() {
        let account = AccountId::parse("123456789012").unwrap();
        let key = AccessKeyId::generate_for(account);
        let secret = SecretAccessKey::generate();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let s = LocalSessions
            .issue(SessionCall {
                access_key_id: &key,
                secret_access_key: &secret,
                account_id: account,
                duration: SessionDuration::DEFAULT,
                now,
            })
            .await
            .unwrap();
        assert!(s.access_key_id.is_session());
        assert_eq!(s.access_key_id.account_id(), account);
        assert_eq!(s.session.expires_at, 1_000_000 + 12 * 3_600_000);
    }
}
