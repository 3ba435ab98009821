//! Signed POSTs of one batch to the server's ingest route, with retries. Transient failures
//! (network, timeouts, 5xx, 408, 429) are retried with exponential backoff and jitter; any other
//! refusal fails at once, since sending the same request again would get the same answer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::config::{Config, IngestSecret, RetryPolicy};
use crate::records::Batch;

/// Tells the server which detection path the records came through.
pub const PATH_HEADER: &str = "x-canarykeys-path";
pub const PATH_VALUE: &str = "cloudwatch-logs";
/// How much of a server's error message is kept in the error.
pub const MAX_ERROR_CHARS: usize = 500;

/// The server's answer to an accepted batch. Fields it leaves out count as 0, so a server that
/// adds or drops a count does not turn a delivered batch into a failure.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestCounts {
    pub records: u64,
    pub matched: u64,
    pub new_hits: u64,
    pub duplicates: u64,
    pub skipped: u64,
}

impl IngestCounts {
    pub fn add(&mut self, other: IngestCounts) {
        self.records += other.records;
        self.matched += other.matched;
        self.new_hits += other.new_hits;
        self.duplicates += other.duplicates;
        self.skipped += other.skipped;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The server refused the batch for a reason a retry will not fix (400, 401, 413, a redirect…).
    #[error("the server refused the batch with HTTP {status}: {message}")]
    Rejected { status: u16, message: String },
    /// Every attempt failed transiently; `last` is the final attempt's failure.
    #[error("gave up after {attempts} attempts; last failure: {last}")]
    GaveUp { attempts: u32, last: String },
}

enum Outcome {
    Delivered(IngestCounts),
    Transient {
        why: String,
        retry_after: Option<Duration>,
    },
    Refused(PostError),
}

/// Posts batches to one server. Cheap to share: it holds one pooled HTTP client.
#[derive(Debug, Clone)]
pub struct Poster {
    client: reqwest::Client,
    url: String,
    secret: IngestSecret,
    retry: RetryPolicy,
}

impl Poster {
    pub fn new(config: &Config) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            // A 301/302 would make reqwest resend the POST as a bodyless GET, and a 200 for that
            // GET would look like a delivered batch. Redirects are refused instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("canarykeys-relay/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            url: config.ingest_url(),
            secret: config.secret.clone(),
            retry: config.retry,
        })
    }

    /// Sends one batch until it is accepted, refused, or out of attempts.
    pub async fn post(&self, batch: &Batch) -> Result<IngestCounts, PostError> {
        let attempts = self.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match self.attempt(batch).await {
                Outcome::Delivered(counts) => return Ok(counts),
                Outcome::Refused(e) => return Err(e),
                Outcome::Transient { why, .. } if attempt >= attempts => {
                    return Err(PostError::GaveUp {
                        attempts,
                        last: why,
                    });
                }
                Outcome::Transient { why, retry_after } => {
                    let delay = backoff(&self.retry, attempt, retry_after, &mut rand::thread_rng());
                    tracing::warn!(attempt, of = attempts, delay_ms = delay.as_millis() as u64, %why, "ingest POST failed, retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn attempt(&self, batch: &Batch) -> Outcome {
        // Signed per attempt, so a retry late in a long backoff still carries a fresh timestamp
        // within the server's five-minute window.
        let signature =
            canarykeys_core::signing::sign(self.secret.expose(), unix_now(), &batch.body);
        let sent = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .header(PATH_HEADER, PATH_VALUE)
            .header(canarykeys_core::signing::HEADER, signature)
            .body(batch.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) => judge(response).await,
            Err(e) => Outcome::Transient {
                why: error_chain(&e),
                retry_after: None,
            },
        }
    }
}

async fn judge(response: Response) -> Outcome {
    let status = response.status();
    if status.is_success() {
        // The batch is in once the server says 2xx; a body we cannot read is logged, not retried,
        // because resending would only produce duplicates.
        let counts = match response.json::<IngestCounts>().await {
            Ok(counts) => counts,
            Err(e) => {
                tracing::warn!(status = status.as_u16(), error = %error_chain(&e), "batch accepted, but the counts in the answer were unreadable");
                IngestCounts::default()
            }
        };
        return Outcome::Delivered(counts);
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    if status.is_redirection() {
        let to = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?")
            .to_owned();
        let message = truncate(&format!(
            "redirected to {to}; set CANARYKEYS_SERVER_URL to the server's final URL"
        ));
        return Outcome::Refused(PostError::Rejected {
            status: status.as_u16(),
            message,
        });
    }
    let message = server_message(response).await;
    if is_transient(status) {
        Outcome::Transient {
            why: format!("HTTP {}: {message}", status.as_u16()),
            retry_after,
        }
    } else {
        Outcome::Refused(PostError::Rejected {
            status: status.as_u16(),
            message,
        })
    }
}

/// Statuses worth retrying: the server or something in front of it may recover.
pub fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// The delay before attempt `attempt + 1`: `base * 2^(attempt-1)`, capped, with "equal jitter"
/// (half fixed, half random) so many relays retrying together spread out yet never retry at
/// once. A server's `Retry-After` is honoured up to the same cap.
pub fn backoff(
    policy: &RetryPolicy,
    attempt: u32,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Duration {
    let exp = policy
        .base_delay
        .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(20));
    let ceiling = exp.min(policy.max_delay);
    let half = ceiling / 2;
    let jittered = half + rng.gen_range(Duration::ZERO..=half);
    jittered
        .max(retry_after.unwrap_or_default())
        .min(policy.max_delay)
}

/// The server's error text: `error.message` from its JSON error body when there is one, else the
/// raw body; on one line and at most [`MAX_ERROR_CHARS`] characters.
async fn server_message(response: Response) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let from_json = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            let message = v
                .pointer("/error/message")
                .or_else(|| v.get("error"))
                .or_else(|| v.get("message"))?;
            message.as_str().map(str::to_owned)
        });
    let text = from_json.unwrap_or(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        status.canonical_reason().unwrap_or("no message").to_owned()
    } else {
        truncate(&text)
    }
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// reqwest's top-level message ("error sending request") hides the cause; the chain names it
/// ("Connection refused", "operation timed out").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
    fn transient_statuses() {
        for s in [500, 502, 503, 504, 408, 429] {
            assert!(is_transient(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 415, 422] {
            assert!(!is_transient(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        let mut rng = rand::thread_rng();
        for _ in 0..200 {
            let d1 = backoff(&p, 1, None, &mut rng);
            assert!(
                d1 >= Duration::from_millis(250) && d1 <= Duration::from_millis(500),
                "{d1:?}"
            );
            let d3 = backoff(&p, 3, None, &mut rng);
            assert!(
                d3 >= Duration::from_secs(1) && d3 <= Duration::from_secs(2),
                "{d3:?}"
            );
            let d30 = backoff(&p, 30, None, &mut rng);
            assert!(
                d30 >= Duration::from_secs(4) && d30 <= Duration::from_secs(8),
                "{d30:?}"
            );
            assert_eq!(
                backoff(&p, 1, Some(Duration::from_secs(3)), &mut rng),
                Duration::from_secs(3)
            );
            assert_eq!(
                backoff(&p, 1, Some(Duration::from_secs(60)), &mut rng),
                Duration::from_secs(8)
            );
        }
    }

    #[test]
    fn truncates_on_a_char_boundary() {
        assert_eq!(truncate("short"), "short");
        let long = "é".repeat(MAX_ERROR_CHARS + 10);
        let cut = truncate(&long);
        assert_eq!(cut.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn counts_tolerate_missing_and_extra_fields() {
        let c: IngestCounts =
            serde_json::from_str(r#"{"records":4,"matched":1,"extra":true}"#).unwrap();
        assert_eq!(
            c,
            IngestCounts {
                records: 4,
                matched: 1,
                ..Default::default()
            }
        );
    }
}
