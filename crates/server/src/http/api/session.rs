//! `POST /tokens/{id}/session`: fresh session credentials for an `aws_session` token, with the
//! token's refresh secret as the bearer. That secret can do nothing else (no read, no change,
//! no delete), so a planted machine may keep it for its refresh timer. And `POST
//! /tokens/{id}/confirm`, which closes a decoy's expected-use window (a CI run's).

use axum::extract::{Path, State};
use axum::routing::post;
use axum::Router;

use crate::http::extract::manage::{managed, Bearer};
use crate::http::{ApiError, AppState};
use crate::views::{ConfirmView, ErrorBody, SessionView, TokenView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tokens/{id}/session", post(refresh))
        .route("/tokens/{id}/confirm", post(confirm))
}

/// Closes the token's expected-use window (`expected_use: until_confirm`): the uses held so
/// far go out as one digest, and every later use alerts. With the manage secret, or the API key
/// (`tokens:write`, its own operator's tokens) that planted it.
#[utoipa::path(
    post,
    path = "/tokens/{id}/confirm",
    operation_id = "confirmExpectedUse",
    tag = "tokens",
    params(("id" = String, Path, description = "The token id")),
    security(("manageSecret" = []), ("apiKey" = [])),
    responses(
        (status = 200, description = "`confirmed`: whether a window was open and is now closed", body = ConfirmView),
        (status = 401, description = "No manage secret or API key sent", body = ErrorBody),
        (status = 403, description = "The API key lacks tokens:write", body = ErrorBody),
        (status = 404, description = "No such token, or a wrong secret", body = ErrorBody),
    )
)]
pub(super) async fn confirm(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bearer: Bearer,
) -> Result<axum::Json<ConfirmView>, ApiError> {
    let (token, actor) = managed(&state, &id, &bearer).await?;
    let confirmed = state.tokens.confirm(&token, &actor).await?;
    Ok(axum::Json(ConfirmView {
        id: token.id.to_string(),
        confirmed,
    }))
}

/// Issues a new session; the ones issued before keep working until they expire (and keep
/// alerting after: every key issued stays the token's).
#[utoipa::path(
    post,
    path = "/tokens/{id}/session",
    operation_id = "refreshSession",
    tag = "tokens",
    params(("id" = String, Path, description = "The token id")),
    security(("refreshSecret" = [])),
    responses(
        (status = 200, description = "A new session", body = SessionView),
        (status = 401, description = "No refresh secret sent", body = ErrorBody),
        (status = 404, description = "No such session token, or a wrong secret", body = ErrorBody),
        (status = 503, description = "STS is unavailable", body = ErrorBody),
    )
)]
pub(super) async fn refresh(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bearer: Bearer,
) -> Result<axum::Json<SessionView>, ApiError> {
    let (token, credentials) = state.tokens.refresh_session(&id, &bearer.0).await?;
    let view = TokenView::full(&token, &credentials, state.tokens.minter(), 0);
    Ok(axum::Json(SessionView {
        id: token.id.to_string(),
        aws: view.aws,
    }))
}
