//! The `gateway` minter: real AWS keys made by the mint service (`lambdas/mint`, a Lambda behind
//! API Gateway in the decoy account), so the server holds no IAM credentials, only the secret
//! that signs its requests.
//!
//! The wire protocol is [`canarykeys_core::mint_protocol`], the same module the service serves:
//! `POST /users` `{"username"}` → `201` with the key, or `409` `name_taken`;
//! `DELETE /users/{username}/keys/{access_key_id}` → `204`; every request signed over
//! `<METHOD> <path>\n<body>`, the path from the service's root whatever prefix the URL has.
//! `crates/aws/tests/gateway.rs` runs this client against that service.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use canarykeys_core::mint_protocol::{self as protocol, codes, CreateUser, CreatedUser, ErrorBody};
use canarykeys_core::{names, AccessKeyId, AccountId, IamUserName, Invalid, SecretAccessKey};
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use url::Url;

use crate::{KeyRef, MintError, MintRequest, MintedKey, Minter};

/// How many generated names are tried when each turns out to be taken.
const NAME_TRIES: usize = 5;
/// The shortest secret the mint service accepts.
const MIN_SECRET_LEN: usize = 16;

/// Retries of one request on network errors, timeouts, 408, 429 and 5xx: exponential backoff
/// from `base_delay`, capped at `max_delay` (a `Retry-After` is honoured up to the cap), at most
/// `max_attempts` tries. With the defaults and a 10 s timeout a call gives up within about 42 s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayRetry {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for GatewayRetry {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// The final answer to one request, after any retries.
struct Answer {
    status: StatusCode,
    body: String,
    /// An earlier attempt failed in a way that leaves open whether the service acted on it (the
    /// answer was lost), so a `409` for our own name may be our own earlier create.
    ambiguous: bool,
}

impl Answer {
    /// `code` and `message` of the service's `{"error":{"code","message"}}`, else the raw body.
    fn error(&self) -> (String, String) {
        match serde_json::from_str::<ErrorBody>(&self.body) {
            Ok(body) => (body.error.code, body.error.message),
            Err(_) => (String::new(), self.body.chars().take(300).collect()),
        }
    }

    fn refused(&self) -> MintError {
        let (code, message) = self.error();
        let status = self.status.as_u16();
        MintError::Refused(format!(
            "the minting service answered {status} {code}: {message}"
        ))
    }
}

/// The service kept failing transiently; kept as `MintError::Unavailable`'s source.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct GatewayDown(String);

fn unavailable(why: String) -> MintError {
    MintError::Unavailable(Box::new(GatewayDown(why)))
}

enum Outcome {
    Made(MintedKey),
    Taken { ambiguous: bool },
}

/// Cheap to clone: the HTTP client is shared.
#[derive(Clone)]
pub struct GatewayMinter {
    client: reqwest::Client,
    /// The service's base URL without a trailing slash; routes are appended to it.
    base: String,
    secret: String,
    account: AccountId,
    retry: GatewayRetry,
}

impl fmt::Debug for GatewayMinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayMinter")
            .field("base", &self.base)
            .field("secret", &"<redacted>")
            .field("account", &self.account)
            .field("retry", &self.retry)
            .finish()
    }
}

impl GatewayMinter {
    /// `url` is the API's invoke URL (with its stage, if not `$default`); `secret` the value of
    /// the function's `CANARYKEYS_MINT_SECRET`; `account_id` the decoy account the service runs
    /// in; `timeout` bounds each request. Plain http is only accepted to a loopback address,
    /// because the answer to a create carries a secret access key.
    pub fn new(
        url: Url,
        secret: String,
        account_id: AccountId,
        timeout: Duration,
    ) -> Result<Self, Invalid> {
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(Invalid::new("the minting service URL must be https")),
        }
        let extras = [url.query(), url.fragment(), url.password()];
        if !url.username().is_empty() || extras.iter().any(Option::is_some) {
            return Err(Invalid::new(
                "the minting service URL takes no credentials, query or fragment",
            ));
        }
        if secret.len() < MIN_SECRET_LEN || secret.trim() != secret {
            return Err(Invalid::new(
                "the minting service secret is at least 16 characters, without surrounding spaces",
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // A redirected POST would be resent as a GET; the service never redirects, so a
            // redirect means a wrong URL, and is reported as such.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("canarykeys/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Invalid::new(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            base: url.as_str().trim_end_matches('/').to_owned(),
            secret,
            account: account_id,
            retry: GatewayRetry::default(),
        })
    }

    pub fn with_retry(mut self, retry: GatewayRetry) -> Self {
        self.retry = retry;
        self
    }

    /// Sends one signed request, retrying transient failures; `Err` once they are used up.
    async fn call(&self, method: Method, path: &str, body: Vec<u8>) -> Result<Answer, MintError> {
        let mut ambiguous = false;
        let mut last = String::new();
        for attempt in 1..=self.retry.max_attempts.max(1) {
            // Signed afresh each time: a retry long after the first try stays within the
            // service's 5-minute window.
            let signature = protocol::sign(
                self.secret.as_bytes(),
                unix_now(),
                method.as_str(),
                path,
                &body,
            );
            let sent = self
                .client
                .request(method.clone(), format!("{}{path}", self.base))
                .header(protocol::SIGNATURE_HEADER, signature)
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let mut retry_after = None;
            match sent {
                Ok(r) if !transient(r.status()) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    return Ok(Answer {
                        status,
                        body,
                        ambiguous,
                    });
                }
                Ok(r) => {
                    retry_after = r
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok()?.trim().parse().ok())
                        .map(Duration::from_secs);
                    // A 5xx from the gateway may come after the function ran (a timeout).
                    ambiguous |= r.status().is_server_error();
                    last = format!("HTTP {}", r.status().as_u16());
                }
                Err(e) => {
                    // Refused connections never reached the service; anything else may have.
                    ambiguous |= !e.is_connect();
                    last = error_chain(&e);
                }
            }
            if attempt < self.retry.max_attempts {
                tokio::time::sleep(backoff(&self.retry, attempt, retry_after)).await;
            }
        }
        Err(unavailable(format!(
            "{method} {path}: gave up after {} attempts; last: {last}",
            self.retry.max_attempts.max(1)
        )))
    }

    async fn create(&self, name: &IamUserName) -> Result<Outcome, MintError> {
        let request = CreateUser {
            username: Some(name.as_str().to_owned()),
            path: None,
        };
        let body = serde_json::to_vec(&request).expect("a plain struct serialises");
        let answer = self.call(Method::POST, protocol::USERS_PATH, body).await?;
        match answer.status {
            StatusCode::CREATED => self.accept(name, &answer.body).await.map(Outcome::Made),
            StatusCode::CONFLICT if answer.error().0 == codes::NAME_TAKEN => Ok(Outcome::Taken {
                ambiguous: answer.ambiguous,
            }),
            _ => Err(answer.refused()),
        }
    }

    /// Checks a `201` answer. A key we cannot use (another account, another name) is deleted
    /// again rather than left behind.
    async fn accept(&self, name: &IamUserName, body: &str) -> Result<MintedKey, MintError> {
        let created: CreatedUser = serde_json::from_str(body).map_err(|e| {
            MintError::Refused(format!("the minting service's answer is unreadable: {e}"))
        })?;
        let odd = |_| MintError::Refused("the minting service answered an odd key".into());
        let access_key_id = AccessKeyId::parse(&created.access_key_id).map_err(odd)?;
        let secret_access_key = SecretAccessKey::parse(&created.secret_access_key).map_err(odd)?;
        let account_id = AccountId::parse(&created.account_id).map_err(odd)?;
        if account_id != self.account || created.username != name.as_str() {
            let why = format!(
                "the minting service made {} in account {account_id}, asked for {name} in {}; \
                 deleted it again",
                created.username, self.account
            );
            if let Ok(username) = IamUserName::parse(&created.username) {
                let _ = self.delete(&username, &access_key_id).await;
            }
            return Err(MintError::Refused(why));
        }
        Ok(MintedKey {
            access_key_id,
            secret_access_key,
            username: name.clone(),
            account_id,
        })
    }

    async fn delete(&self, username: &IamUserName, key: &AccessKeyId) -> Result<(), MintError> {
        let path = protocol::key_path(username.as_str(), key.as_str());
        let answer = self.call(Method::DELETE, &path, Vec::new()).await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(answer.refused())
        }
    }

    async fn mint_now(&self, request: &MintRequest) -> Result<MintedKey, MintError> {
        self.check_account(request.account)?;
        if let Some(name) = &request.username {
            return match self.create(name).await? {
                Outcome::Made(key) => Ok(key),
                Outcome::Taken { ambiguous: false } => Err(MintError::Conflict(name.to_string())),
                // Our own lost create may have taken it; a Conflict would blame the caller.
                Outcome::Taken { ambiguous: true } => Err(unavailable(format!(
                    "{name} exists, perhaps made by an earlier attempt whose answer was lost; \
                     check that user in account {}",
                    self.account
                ))),
            };
        }
        for _ in 0..NAME_TRIES {
            let name = names::ordinary_user_name();
            match self.create(&name).await? {
                Outcome::Made(key) => return Ok(key),
                Outcome::Taken { ambiguous } => {
                    if ambiguous {
                        tracing::warn!(user = %name, account = %self.account, "name taken after a lost answer; that user may be an orphan of ours");
                    }
                }
            }
        }
        Err(MintError::Refused(format!(
            "{NAME_TRIES} generated user names were all taken in account {}",
            self.account
        )))
    }

    fn check_account(&self, account: Option<AccountId>) -> Result<(), MintError> {
        match account {
            Some(a) if a != self.account => Err(MintError::UnknownAccount(a)),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Minter for GatewayMinter {
    fn name(&self) -> &'static str {
        "gateway"
    }

    fn keys_valid_at_aws(&self) -> bool {
        true
    }

    /// Runs in a task of its own: when the caller goes away mid-mint (a dropped request), the
    /// exchange still completes, and a key nobody will receive is deleted again instead of being
    /// left in the account.
    async fn mint(&self, request: &MintRequest) -> Result<MintedKey, MintError> {
        let (this, request) = (self.clone(), request.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let result = this.mint_now(&request).await;
            if let Err(Ok(orphan)) = tx.send(result) {
                tracing::warn!(user = %orphan.username, "the caller went away during the mint; deleting the new key and user");
                let _ = this.delete(&orphan.username, &orphan.access_key_id).await;
            }
        });
        rx.await
            .unwrap_or_else(|_| Err(unavailable("the mint task ended without an answer".into())))
    }

    async fn revoke(&self, key: &KeyRef<'_>) -> Result<(), MintError> {
        self.check_account(Some(key.account_id))?;
        self.delete(key.username, key.access_key_id).await
    }
}

/// `base_delay * 2^(attempt-1)`, or the server's `Retry-After` if longer, capped at `max_delay`.
fn backoff(retry: &GatewayRetry, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exp = retry.base_delay.saturating_mul(1 << (attempt - 1).min(16));
    exp.max(retry_after.unwrap_or_default())
        .min(retry.max_delay)
}

fn transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// reqwest's top-level message ("error sending request") hides the cause; the chain names it.
fn error_chain(error: &dyn std::error::Error) -> String {
    let chain = std::iter::successors(Some(error), |e| e.source());
    chain.map(|e| e.to_string()).collect::<Vec<_>>().join(": ")
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_honours_retry_after_and_is_capped() {
        let r = GatewayRetry::default();
        let ms = |attempt, after: Option<u64>| {
            backoff(&r, attempt, after.map(Duration::from_secs)).as_millis()
        };
        assert_eq!((ms(1, None), ms(2, None), ms(10, None)), (250, 500, 2000));
        assert_eq!((ms(1, Some(1)), ms(1, Some(60))), (1000, 2000));
    }
}
