//! `POST /tokens/{id}/manage-secret`: replaces a token's manage secret, so a secret that may have
//! been copied (one an older `plant` kept on a planted machine) stops working.

use axum::extract::{Path, State};
use axum::routing::post;
use axum::Router;

use crate::http::extract::manage::{managed, Bearer};
use crate::http::{ApiError, AppState};
use crate::services::Actor;
use crate::views::{ErrorBody, ManageSecretView};

pub fn routes() -> Router<AppState> {
    Router::new().route("/tokens/{id}/manage-secret", post(rotate))
}

/// With the current manage secret, or an API key with `tokens:write`. The new secret is shown
/// to the holder of the old one only: an API key gets `null`, so a planting key never obtains a
/// secret that reads or silences a token.
#[utoipa::path(
    post,
    path = "/tokens/{id}/manage-secret",
    operation_id = "rotateManageSecret",
    tag = "tokens",
    params(("id" = String, Path, description = "The token id")),
    security(("manageSecret" = []), ("apiKey" = [])),
    responses(
        (status = 200, description = "Replaced; the old secret no longer works", body = ManageSecretView),
        (status = 401, description = "No manage secret or API key sent", body = ErrorBody),
        (status = 403, description = "The API key lacks tokens:write", body = ErrorBody),
        (status = 404, description = "No such token, or a wrong secret", body = ErrorBody),
    )
)]
pub(super) async fn rotate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bearer: Bearer,
) -> Result<axum::Json<ManageSecretView>, ApiError> {
    let (token, actor) = managed(&state, &id, &bearer).await?;
    let secret = state.tokens.rotate_manage_secret(&token, &actor).await?;
    let shown = matches!(actor, Actor::ManageSecret).then(|| secret.expose().to_owned());
    Ok(axum::Json(ManageSecretView {
        id: token.id.to_string(),
        manage_secret: shown,
    }))
}
