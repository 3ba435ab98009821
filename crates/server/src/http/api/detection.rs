//! `GET /api/v1/detection`: proof of life. The heartbeat (interval, regions, key ids) and every
//! detection path's state and latency, for an API key with `alerts:read` or an operator.

use axum::extract::State;
use axum::routing::get;
use axum::Router;

use crate::http::extract::caller::ApiCaller;
use crate::http::{ApiError, AppState};
use crate::services::heartbeat::DetectionOverview;
use crate::services::Scope;
use crate::views::ErrorBody;

pub fn routes() -> Router<AppState> {
    Router::new().route("/detection", get(detection))
}

/// The heartbeat and each (account, region, path): `ok`, `late`, `silent` or `never`, when its
/// last receipt arrived, and its latency (last, p50 and p95 over the last day).
#[utoipa::path(
    get,
    path = "/detection",
    operation_id = "detection",
    tag = "detection",
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "The heartbeat and every path's state", body = DetectionOverview),
        (status = 401, description = "No API key or session", body = ErrorBody),
        (status = 403, description = "The API key lacks alerts:read", body = ErrorBody),
    )
)]
pub(super) async fn detection(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<axum::Json<DetectionOverview>, ApiError> {
    caller.require(Scope::AlertsRead)?;
    Ok(axum::Json(state.heartbeat.overview().await?))
}
