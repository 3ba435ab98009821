//! Alert routes of the JSON API: send a test alert, see each delivery, export the history.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{authorized, Bearer};
use super::{ApiError, AppState};
use crate::export;
use crate::render::delivery_json;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tokens/{id}/test-alert", post(test_alert))
        .route("/tokens/{id}/deliveries", get(deliveries))
        .route("/tokens/{id}/alerts/export", get(export_history))
}

/// Queues a test message through every enabled channel: 202, with the outbox rows to follow.
async fn test_alert(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bearer: Bearer,
) -> Result<Response, ApiError> {
    let token = authorized(&state, &id, &bearer).await?;
    let rows = state
        .alerts
        .test_alert(&token, state.clock.now_millis())
        .await
        .map_err(crate::services::ServiceError::from)?;
    state
        .access
        .audit("manage-secret", "token.test_alert", token.id.as_str(), "")
        .await;
    if rows.is_empty() {
        return Err(ApiError::Invalid(vec![canarykeys_core::FieldError::new(
            "channels",
            "no alert channel is switched on",
        )]));
    }
    let body = json!({
        "deliveries": rows.iter().map(|d| json!({"id": d.id, "channel": d.channel.as_str(), "state": d.state})).collect::<Vec<_>>()
    });
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bearer: Bearer,
) -> Result<axum::Json<Value>, ApiError> {
    let token = authorized(&state, &id, &bearer).await?;
    let rows = state.tokens.deliveries(&token, 200).await?;
    Ok(axum::Json(
        json!({ "deliveries": rows.iter().map(delivery_json).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
struct ExportQuery {
    format: Option<String>,
}

/// The whole history (within retention), as JSON or CSV.
async fn export_history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bearer: Bearer,
    q: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let token = authorized(&state, &id, &bearer).await?;
    history_download(&state, &token, q.format.as_deref()).await
}

/// Shared with the UI's export links.
pub async fn history_download(
    state: &AppState,
    token: &canarykeys_store::TokenRecord,
    format: Option<&str>,
) -> Result<Response, ApiError> {
    let (hits, _) = state.tokens.hits(token, u32::MAX, 0).await?;
    let (body, content_type, ext) = match format.unwrap_or("json") {
        "json" => (export::to_json(&hits), "application/json", "json"),
        "csv" => (export::to_csv(&hits), "text/csv; charset=utf-8", "csv"),
        _ => return Err(ApiError::BadRequest("format is json or csv".into())),
    };
    let disposition = format!("attachment; filename=\"history-{}.{ext}\"", token.id);
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
