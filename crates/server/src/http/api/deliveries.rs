//! Alert routes of the JSON API: send a test alert, see each delivery, export the history.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::http::extract::client::ClientAddr;
use crate::http::extract::manage::{authorized, Bearer};
use crate::http::{respond, ApiError, AppState};
use crate::services::{Actor, AuditAction};
use crate::views::{
    DeliveriesView, DeliveryView, ErrorBody, HitsExport, QueuedDelivery, TestAlertView,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tokens/{id}/test-alert", post(test_alert))
        .route("/tokens/{id}/deliveries", get(deliveries))
        .route("/tokens/{id}/alerts/export", get(export_history))
}

/// Queues a test message through every enabled channel: 202, with the outbox rows to follow.
#[utoipa::path(
    post,
    path = "/tokens/{id}/test-alert",
    operation_id = "sendTestAlert",
    tag = "alerts",
    params(("id" = String, Path, description = "The token id")),
    security(("manageSecret" = [])),
    responses(
        (status = 202, description = "Queued, one delivery per enabled channel", body = TestAlertView),
        (status = 401, description = "No manage secret sent", body = ErrorBody),
        (status = 404, description = "No such token, or a wrong secret", body = ErrorBody),
        (status = 422, description = "No alert channel is switched on", body = ErrorBody),
        (status = 429, description = "Too many test alerts for this token or from this address; see `Retry-After`", body = ErrorBody),
    )
)]
pub(super) async fn test_alert(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bearer: Bearer,
    client: ClientAddr,
) -> Result<Response, ApiError> {
    let token = authorized(&state, &id, &bearer).await?;
    state.limiter.test_alerts.check(token.id.as_str(), client)?;
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
    let body = TestAlertView {
        deliveries: rows
            .iter()
            .map(|d| QueuedDelivery {
                id: d.id.clone(),
                channel: d.channel.as_str().to_owned(),
                state: d.state.clone(),
            })
            .collect(),
    };
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

/// The token's 200 most recent deliveries, newest first.
#[utoipa::path(
    get,
    path = "/tokens/{id}/deliveries",
    operation_id = "listDeliveries",
    tag = "alerts",
    params(("id" = String, Path, description = "The token id")),
    security(("manageSecret" = [])),
    responses(
        (status = 200, description = "The deliveries", body = DeliveriesView),
        (status = 401, description = "No manage secret sent", body = ErrorBody),
        (status = 404, description = "No such token, or a wrong secret", body = ErrorBody),
    )
)]
pub(super) async fn deliveries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bearer: Bearer,
) -> Result<axum::Json<DeliveriesView>, ApiError> {
    let token = authorized(&state, &id, &bearer).await?;
    let rows = state.tokens.deliveries(&token, 200).await?;
    Ok(axum::Json(DeliveriesView {
        deliveries: rows.iter().map(DeliveryView::of).collect(),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ExportQuery {
    /// `json` (the default) or `csv`.
    #[param(pattern = "^(json|csv)$")]
    format: Option<String>,
}

/// The whole history (within retention), as JSON or CSV.
#[utoipa::path(
    get,
    path = "/tokens/{id}/alerts/export",
    operation_id = "exportHits",
    tag = "hits",
    params(("id" = String, Path, description = "The token id"), ExportQuery),
    security(("manageSecret" = [])),
    responses(
        (status = 200, description = "Every hit, as a download", content(
            (HitsExport = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "An unknown format", body = ErrorBody),
        (status = 401, description = "No manage secret sent", body = ErrorBody),
        (status = 404, description = "No such token, or a wrong secret", body = ErrorBody),
    )
)]
pub(super) async fn export_history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bearer: Bearer,
    q: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let token = authorized(&state, &id, &bearer).await?;
    respond::history_download(&state, &token, q.format.as_deref()).await
}
