//! `POST /ingest/v1/cloudtrail`: CloudTrail data from the relay Lambda (HMAC-signed), from
//! EventBridge API destinations (a bearer token: they can send a fixed header but cannot sign), or
//! from anyone holding the ingest secret. Answers 2xx only once the hits are committed.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use canarykeys_core::signing;
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::services::{DeliveryPath, IngestReport};

/// Parsing a large input holds several times its size in memory; a few at a time keeps a burst
/// of large deliveries within bounds. Others wait their turn rather than fail.
const CONCURRENT_INGESTS: usize = 4;

pub fn routes(max_body_bytes: usize) -> Router<AppState> {
    Router::new()
        .route("/ingest/v1/cloudtrail", post(ingest))
        // The same endpoint under a name that fits everything it takes (CloudTrail data and
        // AWS Health events); the old path stays for deployed relays and rules.
        .route("/ingest/v1/events", post(ingest))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(tower::limit::ConcurrencyLimitLayer::new(CONCURRENT_INGESTS))
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
    let bearer = super::extract::bearer(headers).ok_or(ApiError::IngestUnauthorized)?;
    if bool::from(bearer.as_bytes().ct_eq(secret)) {
        Ok(())
    } else {
        Err(ApiError::IngestUnauthorized)
    }
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
