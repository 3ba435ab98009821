//! `POST /ingest/v1/cloudtrail`: CloudTrail data from the relay Lambda (HMAC-signed), from
//! EventBridge API destinations (a bearer token: they can send a fixed header but cannot sign), or
//! from anyone holding the ingest secret. Answers 2xx only once the hits are committed.
//!
//! Credentials are checked before a caller may queue: a bearer token in full, a signature header
//! for its shape and time (the tag needs the body). Only then does the request take one of the
//! few ingest slots and have its body read, within the listener's request deadline.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use canarykeys_core::signing;
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::services::{DeliveryPath, IngestReport};

/// Parsing a large input holds several times its size in memory; a few at a time keeps a burst
/// of large deliveries within bounds. Others wait their turn rather than fail.
const CONCURRENT_INGESTS: usize = 4;

pub fn routes(state: AppState, max_body_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/ingest/v1/cloudtrail", post(ingest))
        // The same endpoint under a name that fits everything it takes (CloudTrail data and
        // AWS Health events); the old path stays for deployed relays and rules.
        .route("/ingest/v1/events", post(ingest))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(tower::limit::ConcurrencyLimitLayer::new(CONCURRENT_INGESTS))
        // Outside the limit: strangers are turned away before they can hold a slot.
        .layer(middleware::from_fn_with_state(state, admit))
}

/// Refuses a request whose credentials cannot be right, before it queues or sends its body.
async fn admit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match plausible_credentials(&state, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => {
            let metrics = state.ingest.metrics();
            metrics.add("canarykeys_ingest_rejected_total", e.code(), 1);
            e.into_response()
        }
    }
}

/// The checks that need no body: a secret is set; a bearer token is the secret; a signature
/// header reads `t=<unix>,v1=<64 hex>` with a time inside the signing tolerance.
fn plausible_credentials(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(secret) = &state.ingest_secret else {
        return Err(ApiError::IngestDisabled);
    };
    let Some(sig) = headers.get(signing::HEADER) else {
        return bearer_matches(secret.expose().as_bytes(), headers);
    };
    let sig = sig.to_str().map_err(|_| ApiError::IngestUnauthorized)?;
    let mut fresh = false;
    let mut tagged = false;
    for part in sig.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                fresh = t
                    .parse::<i64>()
                    .is_ok_and(|t| within_tolerance(state.clock.now_secs(), t));
            }
            Some(("v1", v)) => {
                tagged |= v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit());
            }
            _ => {}
        }
    }
    if fresh && tagged {
        Ok(())
    } else {
        Err(ApiError::IngestUnauthorized)
    }
}

/// Whether a signature's time `t` is within the signing tolerance of `now`. `abs_diff`: a `t`
/// near `i64::MIN` or `i64::MAX` must not overflow the subtraction (as in `signing::verify`).
fn within_tolerance(now: i64, t: i64) -> bool {
    now.abs_diff(t) <= signing::TOLERANCE_SECS.unsigned_abs()
}

fn bearer_matches(secret: &[u8], headers: &HeaderMap) -> Result<(), ApiError> {
    let bearer = super::extract::bearer(headers).ok_or(ApiError::IngestUnauthorized)?;
    if bool::from(bearer.as_bytes().ct_eq(secret)) {
        Ok(())
    } else {
        Err(ApiError::IngestUnauthorized)
    }
}

/// Accepts a valid signature over the exact body, or the secret as a bearer token.
fn authorize(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let Some(secret) = &state.ingest_secret else {
        return Err(ApiError::IngestDisabled);
    };
    let secret = secret.expose().as_bytes();
    if let Some(sig) = headers.get(signing::HEADER) {
        let sig = sig.to_str().map_err(|_| ApiError::IngestUnauthorized)?;
        return signing::verify(secret, sig, body, state.clock.now_secs())
            .map_err(|_| ApiError::IngestUnauthorized);
    }
    bearer_matches(secret, headers)
}

async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<IngestReport>, ApiError> {
    let metrics = state.ingest.metrics().clone();
    let result = async {
        let body = body.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("the body could not be read".into())
            }
        })?;
        authorize(&state, &headers, &body)?;
        let path = headers
            .get("x-canarykeys-path")
            .and_then(|v| v.to_str().ok())
            .and_then(DeliveryPath::parse);
        Ok::<_, ApiError>(Json(state.ingest.ingest(&body, path, false).await?))
    }
    .await;
    if let Err(e) = &result {
        metrics.add("canarykeys_ingest_rejected_total", e.code(), 1);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_signature_times_are_refused_not_overflowed() {
        let now = 1_764_000_000;
        for t in [i64::MIN, i64::MIN + 1, i64::MAX, -1] {
            assert!(!within_tolerance(now, t), "{t}");
        }
        // The clock itself at an extreme is no excuse to overflow either.
        assert!(!within_tolerance(i64::MIN, i64::MAX));
        assert!(!within_tolerance(i64::MAX, i64::MIN));
        assert!(within_tolerance(now, now - signing::TOLERANCE_SECS));
        assert!(within_tolerance(now, now + signing::TOLERANCE_SECS));
        assert!(!within_tolerance(now, now + signing::TOLERANCE_SECS + 1));
    }
}
