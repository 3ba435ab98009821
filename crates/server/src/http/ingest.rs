//! `POST /ingest/v1/cloudtrail`: CloudTrail data from the relay Lambda (HMAC-signed), from
//! EventBridge API destinations (a bearer token: they can send a fixed header but cannot sign), or
//! from anyone holding the ingest secret. Answers 2xx only once the hits are committed.
//!
//! Credentials are checked before a caller may queue: a bearer token in full, a signature header
//! for its shape and time (the tag needs the body). A signed request's body is then read in a
//! small pool of its own (per client address and in all; full means `429` at once), within
//! `[ingest] body_timeout`, and its signature checked. Only a proven request takes one of the
//! few parse slots, so forgers trickling bodies never hold a slot or wait ahead of the relay.

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use canarykeys_core::signing;
use subtle::ConstantTimeEq;

use super::extract::client::ClientAddr;
use super::{ApiError, AppState};
use crate::services::{DeliveryPath, IngestReport};

pub fn routes(state: AppState, max_body_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/ingest/v1/cloudtrail", post(ingest))
        // The same endpoint under a name that fits everything it takes (CloudTrail data and
        // AWS Health events); the old path stays for deployed relays and rules.
        .route("/ingest/v1/events", post(ingest))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // Strangers are turned away before they can send a body.
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
    client: ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestReport>, ApiError> {
    let metrics = state.ingest.metrics().clone();
    let result = async {
        let gate = &state.ingest_admission;
        // A bearer caller proved itself in `admit`; a signature can only be checked once the
        // body is here, so until then the request holds a place in the unverified pool.
        let unverified = if headers.contains_key(signing::HEADER) {
            // The place reserves the declared length, so the pool bounds memory as well.
            let declared = headers
                .get(axum::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(ApiError::LengthRequired)?;
            if declared > gate.max_body_bytes as u64 {
                return Err(ApiError::PayloadTooLarge);
            }
            let permit = gate.unverified.try_admit(client, declared);
            Some(permit.ok_or(ApiError::Busy)?)
        } else {
            None
        };
        let body = read_body(body, gate.max_body_bytes, gate.body_timeout).await?;
        authorize(&state, &headers, &body)?;
        drop(unverified);
        // Proven: wait for a parse slot (a parse holds several times its input in memory).
        let _slot = gate
            .slots
            .acquire()
            .await
            .map_err(|_| ApiError::Internal("the parse slots are closed".into()))?;
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

/// The whole body, at most `limit` bytes, within `deadline`.
async fn read_body(
    body: Body,
    limit: usize,
    deadline: std::time::Duration,
) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::BodyTimeout),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            // `to_bytes` reports its limit as a `LengthLimitError` somewhere in the chain.
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if s.is::<http_body_util::LengthLimitError>() {
                    return Err(ApiError::PayloadTooLarge);
                }
                source = s.source();
            }
            Err(ApiError::BadRequest("the body could not be read".into()))
        }
    }
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
