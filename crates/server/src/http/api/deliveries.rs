//! Alert routes of the JSON API: send a test alert, see each delivery, export the history.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::extract::manage::{authorized, Bearer};
use crate::http::{respond, ApiError, AppState};
use crate::render::delivery_json;
use crate::services::{Actor, AuditAction};

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
        .tokens
        .record_action(
            &Actor::ManageSecret,
            AuditAction::TokenTestAlert,
            token.id.as_str(),
            "",
        )
        .await?;
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
    respond::history_download(&state, &token, q.format.as_deref()).await
}
