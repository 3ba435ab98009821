//! Where a request came from, for tamper alerts: the client address (`client::ClientAddr`) and
//! the `User-Agent` header. Both are the caller's word and attacker-controlled: the alert
//! channels escape them.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::client::ClientAddr;
use crate::services::tamper::RequestOrigin;

/// The longest user agent kept, in characters: enough to recognise any client, and a bound on
/// what a caller can make an alert carry.
const MAX_USER_AGENT: usize = 512;

/// The request's `User-Agent`, empty when absent; bytes that are not UTF-8 become U+FFFD.
#[derive(Clone, Debug, Default)]
pub struct UserAgent(pub String);

impl<S: Send + Sync> FromRequestParts<S> for UserAgent {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let ua = parts
            .headers
            .get(header::USER_AGENT)
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .chars()
                    .take(MAX_USER_AGENT)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self(ua))
    }
}

/// The origin a tamper alert names: the caller's address and user agent, and the way in
/// (`api`, `manage-page`).
pub fn origin(client: ClientAddr, user_agent: UserAgent, via: &'static str) -> RequestOrigin {
    RequestOrigin {
        address: client.0.to_string(),
        user_agent: user_agent.0,
        via,
    }
}
