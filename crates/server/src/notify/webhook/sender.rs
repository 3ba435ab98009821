//! Sends one alert to one webhook and says how it went, as an [`Outcome`] the outbox worker
//! turns into "done", "try again later" or "give up".
//!
//! The URL is checked against private addresses just before sending, and the client's own
//! resolver checks again at connect time, so the connection only ever goes to an address that
//! passed. Redirects are not followed (a public URL could otherwise bounce the POST to a private
//! one), no proxy from the environment is used (a proxy resolves the name itself, out of reach
//! of the check), and errors are described without the URL, whose path is often the secret.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use canarykeys_core::signing;
use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{redirect, StatusCode};
use url::Url;

use super::escape::single_line;
use super::ssrf::{self, CheckError, CheckedResolver, REFUSED};
use super::{payload, WebhookFlavour};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Secret;
use crate::notify::{AlertView, Channel, Outcome};

/// The receiver's own words kept in an error message, at most.
const SNIPPET_MAX: usize = 200;

/// The webhook channel. One per server: it holds the HTTP client, so connections are reused.
#[derive(Debug)]
pub struct WebhookChannel {
    client: reqwest::Client,
    /// Signs generic payloads (`X-Canarykeys-Signature`) when set.
    signing_secret: Option<Secret>,
    /// Lets loopback and private addresses through: for tests, or a receiver on the LAN.
    allow_private: bool,
    /// Stamps signatures; tests pass their own.
    clock: SharedClock,
}

impl WebhookChannel {
    /// How long one request may take, from connecting to the end of the response.
    pub const TIMEOUT: Duration = crate::config::WEBHOOK_SEND_TIMEOUT;

    pub fn new(
        signing_secret: Option<Secret>,
        allow_private: bool,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent("canarykeys")
            .timeout(Self::TIMEOUT)
            .redirect(redirect::Policy::none())
            .no_proxy()
            .dns_resolver(std::sync::Arc::new(CheckedResolver { allow_private }))
            .build()?;
        Ok(Self {
            client,
            signing_secret,
            allow_private,
            clock: SystemClock::shared(),
        })
    }

    /// Signs with `clock`'s time instead of the wall clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sends `alert` to `url` in `flavour`'s format, whatever the URL would be detected as.
    /// `idempotency_key` must be the same on every retry of one alert, so the receiver can
    /// drop duplicates when a response was lost.
    pub async fn send_as(
        &self,
        flavour: WebhookFlavour,
        alert: &AlertView,
        url: &Url,
        idempotency_key: &str,
    ) -> Outcome {
        match ssrf::check(url, self.allow_private).await {
            Ok(_) => {}
            Err(CheckError::Refused) => return Outcome::Permanent(REFUSED.into()),
            Err(CheckError::BadUrl(m)) => return Outcome::Permanent(m),
            // DNS failing now may be an outage of ours or theirs.
            Err(CheckError::Unresolved(m)) => return Outcome::Retry(m),
        }
        self.post(flavour, alert, url, idempotency_key).await
    }

    /// The POST itself, after the check; the resolver still refuses private addresses.
    async fn post(
        &self,
        flavour: WebhookFlavour,
        alert: &AlertView,
        url: &Url,
        idempotency_key: &str,
    ) -> Outcome {
        self.post_body(flavour, &payload(flavour, alert), url, idempotency_key)
            .await
    }

    /// POSTs `body`, signed when it is a generic payload and a secret is set.
    async fn post_body(
        &self,
        flavour: WebhookFlavour,
        body: &serde_json::Value,
        url: &Url,
        idempotency_key: &str,
    ) -> Outcome {
        let body = serde_json::to_vec(body).expect("a serde_json::Value always serialises");
        let mut url = url.clone();
        // Only ever ours (the `#flavour=` override); never part of a request anyway.
        url.set_fragment(None);
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", idempotency_key);
        if let (WebhookFlavour::Generic, Some(secret)) = (flavour, &self.signing_secret) {
            let now = self.clock.now_secs();
            let signature = signing::sign(secret.expose().as_bytes(), now, &body);
            request = request.header(signing::HEADER, signature);
        }
        match request.body(body).send().await {
            Ok(response) => {
                let status = response.status();
                let header = |name| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let (location, retry_after) = (header(LOCATION), header(RETRY_AFTER));
                let said = if status.is_success() || status.is_redirection() {
                    String::new()
                } else {
                    snippet(response).await
                };
                outcome_for_status(status, location.as_deref(), retry_after.as_deref(), &said)
            }
            Err(e) => outcome_for_error(e),
        }
    }
}

#[async_trait]
impl Channel for WebhookChannel {
    async fn send(&self, alert: &AlertView, target: &str, idempotency_key: &str) -> Outcome {
        let url = match Url::parse(target) {
            Ok(url) => url,
            Err(e) => return Outcome::Permanent(format!("not a valid webhook URL: {e}")),
        };
        match WebhookFlavour::for_url(&url) {
            Ok(flavour) => self.send_as(flavour, alert, &url, idempotency_key).await,
            Err(e) => Outcome::Permanent(e),
        }
    }

    /// The operator's own URL, in its flavour (the operator channel's instance lets private
    /// addresses through: it is operator configuration, not a token owner's input).
    async fn send_operator(
        &self,
        alert: &crate::notify::operator::OperatorAlert,
        target: &str,
        idempotency_key: &str,
    ) -> Outcome {
        let url = match Url::parse(target) {
            Ok(url) => url,
            Err(e) => return Outcome::Permanent(format!("not a valid webhook URL: {e}")),
        };
        let flavour = match WebhookFlavour::for_url(&url) {
            Ok(flavour) => flavour,
            Err(e) => return Outcome::Permanent(e),
        };
        match ssrf::check(&url, self.allow_private).await {
            Ok(_) => {}
            Err(CheckError::Refused) => return Outcome::Permanent(REFUSED.into()),
            Err(CheckError::BadUrl(m)) => return Outcome::Permanent(m),
            Err(CheckError::Unresolved(m)) => return Outcome::Retry(m),
        }
        let body = crate::notify::operator::payload(flavour, alert);
        self.post_body(flavour, &body, &url, idempotency_key).await
    }
}

/// The start of the response body, on one line: Slack and Discord say what was wrong there
/// (`invalid_payload`, `no_service`).
pub(crate) async fn snippet(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < SNIPPET_MAX {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = single_line(&String::from_utf8_lossy(&bytes));
    text.trim().chars().take(SNIPPET_MAX).collect()
}

/// What a response's status means for the alert.
pub(crate) fn outcome_for_status(
    status: StatusCode,
    location: Option<&str>,
    retry_after: Option<&str>,
    said: &str,
) -> Outcome {
    let mut message = format!("HTTP {status}");
    if let Some(after) = retry_after {
        message.push_str(&format!(" (Retry-After: {})", single_line(after)));
    }
    if !said.is_empty() {
        message.push_str(&format!(": {said}"));
    }
    match status.as_u16() {
        200..=299 => Outcome::Delivered,
        300..=399 => Outcome::Permanent(match location {
            Some(to) => {
                let to: String = single_line(to).chars().take(SNIPPET_MAX).collect();
                format!("redirect to {to} not followed (HTTP {status})")
            }
            None => format!("redirect (HTTP {status}) not followed"),
        }),
        408 | 429 | 500..=599 => {
            match retry_after.and_then(|v| retry_delay(v, SystemTime::now())) {
                Some(after) => Outcome::RetryAfter(message, after),
                None => Outcome::Retry(message),
            }
        }
        _ => Outcome::Permanent(message),
    }
}

/// A `Retry-After` value as a delay from `now`: seconds, or an HTTP date (a date in the past
/// is no delay). Anything else is ignored and the worker's own backoff applies.
fn retry_delay(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// What a failed request means: refused addresses never work; everything on the way there
/// (timeouts, refused or reset connections, DNS) may work later.
pub(crate) fn outcome_for_error(e: reqwest::Error) -> Outcome {
    let refused = causes(&e).any(|s| s.downcast_ref::<CheckError>() == Some(&CheckError::Refused));
    if refused {
        return Outcome::Permanent(REFUSED.into());
    }
    if e.is_builder() {
        return Outcome::Permanent(format!("could not make the request: {}", describe(e)));
    }
    if e.is_timeout() {
        return Outcome::Retry(format!(
            "timed out after {} s",
            WebhookChannel::TIMEOUT.as_secs()
        ));
    }
    if e.is_connect() {
        return Outcome::Retry(format!("could not connect: {}", describe(e)));
    }
    Outcome::Retry(describe(e))
}

/// The errors under `e`, nearest first.
fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(e.source(), |s: &&'a (dyn std::error::Error + 'static)| {
        s.source()
    })
}

/// The error and its causes on one line, without the URL.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut parts = vec![e.to_string()];
    parts.extend(causes(&e).map(|s| s.to_string()));
    parts.dedup();
    parts.join(": ").chars().take(SNIPPET_MAX * 2).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::webhook::hostile_alert;

    #[test]
    fn statuses() {
        let s = |code| StatusCode::from_u16(code).unwrap();
        let outcome = |code| outcome_for_status(s(code), None, None, "");
        assert_eq!(outcome(200), Outcome::Delivered);
        assert_eq!(outcome(204), Outcome::Delivered);
        for code in [408, 429, 500, 502, 503, 599] {
            assert!(matches!(outcome(code), Outcome::Retry(_)), "{code}");
        }
        for code in [400, 401, 403, 404, 410, 413, 422] {
            assert!(matches!(outcome(code), Outcome::Permanent(_)), "{code}");
        }
        assert_eq!(
            outcome_for_status(s(404), None, None, "no_service"),
            Outcome::Permanent("HTTP 404 Not Found: no_service".into())
        );
        assert_eq!(
            outcome_for_status(s(429), None, Some("30"), ""),
            Outcome::RetryAfter(
                "HTTP 429 Too Many Requests (Retry-After: 30)".into(),
                Duration::from_secs(30)
            )
        );
        assert_eq!(
            outcome_for_status(s(503), None, Some("soon"), ""),
            Outcome::Retry("HTTP 503 Service Unavailable (Retry-After: soon)".into())
        );
        assert_eq!(
            outcome_for_status(s(302), Some("http://10.0.0.1/\nx"), None, ""),
            Outcome::Permanent(
                "redirect to http://10.0.0.1/ x not followed (HTTP 302 Found)".into()
            )
        );
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(retry_delay(" 120 ", now), Some(Duration::from_secs(120)));
        // 784,111,777 is Sun, 06 Nov 1994 08:49:37 GMT.
        let date = "Sun, 06 Nov 1994 08:51:37 GMT";
        assert_eq!(retry_delay(date, now), Some(Duration::from_secs(120)));
        let past = "Sun, 06 Nov 1994 08:00:00 GMT";
        assert_eq!(retry_delay(past, now), Some(Duration::ZERO));
        assert_eq!(retry_delay("-5", now), None);
        assert_eq!(retry_delay("later", now), None);
    }

    #[tokio::test]
    async fn a_name_the_resolver_refuses_is_permanent_even_past_the_first_check() {
        // `post` skips the first check, as if the name had changed since: the client's
        // resolver must still refuse it, and the worker must give up rather than retry.
        let channel = WebhookChannel::new(None, false).unwrap();
        let url = Url::parse("http://localhost:1/hook").unwrap();
        let outcome = channel
            .post(WebhookFlavour::Generic, &hostile_alert(), &url, "k")
            .await;
        assert_eq!(outcome, Outcome::Permanent(REFUSED.into()));
    }

    #[tokio::test]
    async fn timeouts_retry() {
        // A receiver that accepts and never answers; a short client timeout stands in for 10 s.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(100))
            .build()
            .unwrap();
        let e = client
            .post(format!("http://{addr}/"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            outcome_for_error(e),
            Outcome::Retry("timed out after 10 s".into())
        );
    }

    #[tokio::test]
    async fn connection_errors_retry_and_do_not_show_the_url() {
        // Nothing listens on port 1; loopback is allowed here so the connect is attempted.
        let channel = WebhookChannel::new(None, true).unwrap();
        let url = Url::parse("http://127.0.0.1:1/hook-secret-path").unwrap();
        match channel
            .send_as(WebhookFlavour::Slack, &hostile_alert(), &url, "k")
            .await
        {
            Outcome::Retry(m) => {
                assert!(m.starts_with("could not connect"), "{m}");
                assert!(!m.contains("hook-secret-path"), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }
}
