//! The HTTP side shared by the JSON streams (Splunk HEC, Elastic, OCSF, PagerDuty): one client
//! per stream (kept-alive connections), no redirects, no proxy from the environment, the
//! webhook's timeout, and the webhook's reading of statuses. Streams are operator
//! configuration, so private addresses are allowed. Errors never quote the URL or a header.

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use url::Url;

use crate::notify::webhook::sender::{outcome_for_error, outcome_for_status, snippet};
use crate::notify::Outcome;

/// A stream's HTTP client and where it posts.
#[derive(Debug)]
pub struct Poster {
    client: reqwest::Client,
    pub url: Url,
}

/// A response read whole (bulk APIs say per item how it went).
pub struct Answer {
    pub outcome: Outcome,
    pub body: Vec<u8>,
}

/// The longest response body read (an Elastic bulk answer lists every item).
const BODY_MAX: usize = 4 << 20;

impl Poster {
    pub fn new(url: &str, headers: HeaderMap) -> Result<Self, String> {
        let url = Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
        let client = reqwest::Client::builder()
            .user_agent("canarykeys")
            .timeout(crate::config::WEBHOOK_SEND_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .default_headers(headers)
            .build()
            .map_err(|e| format!("could not make the HTTP client: {e}"))?;
        Ok(Self { client, url })
    }

    /// POSTs `body` (of `content_type`) to `url` (default the stream's), with `extra` headers.
    /// A success reads the body; a failure reads its start for the error.
    pub async fn post(
        &self,
        url: Option<&Url>,
        content_type: &'static str,
        body: Vec<u8>,
        extra: &[(&'static str, String)],
    ) -> Answer {
        let mut request = self
            .client
            .post(url.unwrap_or(&self.url).clone())
            .header(CONTENT_TYPE, content_type);
        for (name, value) in extra {
            request = request.header(*name, value);
        }
        match request.body(body).send().await {
            Ok(mut response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                if !status.is_success() {
                    let said = snippet(response).await;
                    return Answer {
                        outcome: outcome_for_status(status, None, retry_after.as_deref(), &said),
                        body: Vec::new(),
                    };
                }
                let mut body = Vec::new();
                while body.len() < BODY_MAX {
                    match response.chunk().await {
                        Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                        Ok(None) => break,
                        Err(e) => {
                            return Answer {
                                outcome: outcome_for_error(e),
                                body,
                            }
                        }
                    }
                }
                Answer {
                    outcome: Outcome::Delivered,
                    body,
                }
            }
            Err(e) => Answer {
                outcome: outcome_for_error(e),
                body: Vec::new(),
            },
        }
    }

    /// For `doctor`: resolves the host and opens a TCP connection to it.
    pub async fn check(&self) -> Result<String, String> {
        let host = self.url.host_str().ok_or("the URL has no host")?;
        let port = self
            .url
            .port_or_known_default()
            .ok_or("the URL has no port")?;
        connect_check(host, port).await
    }
}

/// Resolves `host` and connects to its first address that answers, within the send timeout.
pub async fn connect_check(host: &str, port: u16) -> Result<String, String> {
    let addrs: Vec<_> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{host} does not resolve: {e}"))?
        .collect();
    let mut last = format!("{host} has no address");
    for addr in addrs {
        match tokio::time::timeout(
            crate::config::WEBHOOK_SEND_TIMEOUT,
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(_)) => return Ok(format!("connected to {host} ({addr})")),
            Ok(Err(e)) => last = format!("could not connect to {addr}: {e}"),
            Err(_) => last = format!("no answer from {addr}"),
        }
    }
    Err(last)
}

/// A header value holding a secret, marked sensitive (kept out of `Debug`).
pub fn secret_header(value: &str) -> Result<HeaderValue, String> {
    let mut v =
        HeaderValue::from_str(value).map_err(|_| "the secret is not a valid header value")?;
    v.set_sensitive(true);
    Ok(v)
}

/// The same outcome for every record of a batch that failed whole.
pub fn all(outcome: &Outcome, n: usize) -> Vec<Outcome> {
    vec![outcome.clone(); n]
}
