//! Operations endpoints: `/healthz` ("ok" for load balancers), `/healthz/detail` (each detection
//! path's last round, for operators) and `/metrics` (Prometheus text).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::http::extract::caller::ApiCaller;
use crate::http::{ApiError, AppState};
use crate::services::detection_health::HealthDetail;
use crate::services::Scope;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/healthz/detail", get(health_detail))
        .route("/metrics", get(metrics))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // A database that does not answer leaves the backlog out rather than the page.
    let backlog = state.console.stream_backlog().await.unwrap_or_default();
    let backlog: Vec<(&'static str, u64)> = backlog
        .iter()
        .map(|b| (b.stream.as_str(), b.pending))
        .collect();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.ingest.metrics().render_with_streams(&backlog),
    )
}

/// Per-path detail for operators and monitoring. It names the decoy accounts, so it needs an
/// operator (a session, or an API key with `alerts:read`).
async fn health_detail(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<HealthDetail>, ApiError> {
    caller.require(Scope::AlertsRead)?;
    Ok(Json(state.ingest.detection_health().await?))
}
