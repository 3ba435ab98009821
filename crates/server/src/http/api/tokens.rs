//! Tokens in the JSON API: create (anonymously in `open` mode, or as an operator), read, switch
//! channels, delete, and download credentials, each with the token's manage secret.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use canarykeys_core::{CredentialsFormat, NewToken, NewTokenInput};
use canarykeys_store::{ChannelSwitches, TokenRecord};
use serde::Deserialize;

use crate::http::extract::caller::MaybeApiCaller;
use crate::http::extract::client::ClientAddr;
use crate::http::extract::manage::{authorized, managed, Bearer};
use crate::http::extract::origin::{origin, UserAgent};
use crate::http::extract::ApiJson;
use crate::http::{ApiError, AppState};
use crate::services::{Actor, Scope};
use crate::views::{CreatedTokenView, ErrorBody, TokenView};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tokens", post(create))
        .route("/tokens/{id}", get(show).patch(update).delete(remove))
        .route("/tokens/{id}/credentials", get(credentials))
}

/// Creates a token and mints its key. With `[access] create = "operators"` (the default) this
/// needs an API key with `tokens:write` or a console session; with `"open"`, no credentials.
#[utoipa::path(
    post,
    path = "/tokens",
    operation_id = "createToken",
    tag = "tokens",
    request_body = NewTokenInput,
    security((), ("apiKey" = [])),
    responses(
        (status = 201, description = "Created; the manage secret is shown only in this answer", body = CreatedTokenView),
        (status = 400, description = "Not JSON, or a field of the wrong type", body = ErrorBody),
        (status = 401, description = "Creation needs an API key or a session", body = ErrorBody),
        (status = 403, description = "The API key lacks tokens:write", body = ErrorBody),
        (status = 409, description = "The user name is taken in the decoy account", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
        (status = 422, description = "Invalid fields, each named in `fields`", body = ErrorBody),
        (status = 429, description = "Too many creates: anonymous ones from this address, or the API key's budget (per minute or live tokens) is spent; `Retry-After` says when to try again", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait (the API key's budget)"))),
        (status = 502, description = "The key minting service refused", body = ErrorBody),
        (status = 503, description = "The key minting service is unavailable", body = ErrorBody),
        (status = 507, description = "The decoy account is within its headroom of the IAM user quota (`iam` minter); nothing was created", body = ErrorBody),
    )
)]
pub(super) async fn create(
    State(state): State<AppState>,
    client: ClientAddr,
    MaybeApiCaller(caller): MaybeApiCaller,
    ApiJson(input): ApiJson<NewTokenInput>,
) -> Result<Response, ApiError> {
    // Anonymous creation (open mode) is limited per address; an API key by its own create
    // budget (counted by the service); a signed-in operator is accountable.
    let actor = match (&caller, state.access.create_is_open()) {
        (Some(c), _) => {
            c.require(Scope::TokensWrite)?;
            c.actor()
        }
        (None, true) => {
            state.limiter.check(client)?;
            Actor::Anonymous
        }
        (None, false) => return Err(ApiError::NoCredentials),
    };
    let new = NewToken::parse(&input).map_err(ApiError::Invalid)?;
    let created = state.tokens.create(new, &actor).await?;
    let manage_url = state.manage_url(&created.token.id, created.manage_secret.expose());
    let body = CreatedTokenView {
        token: TokenView::full(
            &created.token,
            &created.credentials,
            state.tokens.minter(),
            0,
        ),
        manage_url,
        manage_secret: created.manage_secret.expose().to_owned(),
        refresh_secret: created
            .refresh_secret
            .as_ref()
            .map(|r| r.expose().to_owned()),
    };
    let location = format!("/api/v1/tokens/{}", created.token.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(body),
    )
        .into_response())
}

/// The token as GET and PATCH answer it: with its hit count and delivery state.
async fn full_json(state: &AppState, token: &TokenRecord) -> Result<TokenView, ApiError> {
    let creds = state.tokens.credentials(token).await?;
    let total = state.tokens.hit_count(token).await?;
    let deliveries = state.tokens.deliveries(token, 50).await?;
    Ok(TokenView::full(token, &creds, state.tokens.minter(), total).with_delivery(&deliveries))
}

#[utoipa::path(
    get,
    path = "/tokens/{id}",
    operation_id = "getToken",
    tag = "tokens",
    params(("id" = String, Path, description = "The token id")),
    security(("manageSecret" = [])),
    responses(
        (status = 200, description = "The token, with its secret key and delivery state", body = TokenView),
        (status = 401, description = "No manage secret sent", body = ErrorBody),
        (status = 404, description = "No such token, or a wrong secret", body = ErrorBody),
    )
)]
pub(super) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bearer: Bearer,
) -> Result<axum::Json<TokenView>, ApiError> {
    let token = authorized(&state, &id, &bearer).await?;
    Ok(axum::Json(full_json(&state, &token).await?))
}

/// Switches a channel on or off, or replaces the ignore list; fields left out stay as they are.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TokenPatch)]
pub(super) struct Patch {
    email_enabled: Option<bool>,
    webhook_enabled: Option<bool>,
    /// Addresses and CIDR ranges whose hits are recorded but not alerted; replaces the list.
    ignore_sources: Option<Vec<String>>,
}

#[utoipa::path(
    patch,
    path = "/tokens/{id}",
    operation_id = "updateToken",
    tag = "tokens",
    params(("id" = String, Path, description = "The token id")),
    request_body = Patch,
    security(("manageSecret" = [])),
    responses(
        (status = 200, description = "The token as it is now", body = TokenView),
        (status = 400, description = "Not JSON, an unknown field or a wrong type", body = ErrorBody),
        (status = 401, description = "No manage secret sent", body = ErrorBody),
        (status = 404, description = "No such token, or a wrong secret", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "The body is not application/json", body = ErrorBody),
        (status = 422, description = "A channel that is not set, or a bad ignore source", body = ErrorBody),
    )
)]
pub(super) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: ClientAddr,
    user_agent: UserAgent,
    bearer: Bearer,
    ApiJson(patch): ApiJson<Patch>,
) -> Result<axum::Json<TokenView>, ApiError> {
    let from = origin(client, user_agent, "api");
    let token = authorized(&state, &id, &bearer).await?;
    let switches = ChannelSwitches {
        email: patch.email_enabled,
        webhook: patch.webhook_enabled,
    };
    let actor = Actor::ManageSecret;
    // Both changes are told on the channels the token had before this request: the ignore
    // list's alert is planned from `before`, not from the token with a channel just switched off.
    let before = token;
    let mut token = state
        .tokens
        .set_channels_from(&before, switches, &actor, &from)
        .await?;
    if let Some(sources) = patch.ignore_sources {
        token = state
            .tokens
            .set_ignore_sources_from(&before, &sources, &actor, &from)
            .await?;
    }
    Ok(axum::Json(full_json(&state, &token).await?))
}

/// Deletes with the token's manage secret, or with an API key that has `tokens:write` whose
/// operator created the token (with any of its keys or in the console). Either way a tamper
/// alert goes to the token's channels.
#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    operation_id = "deleteToken",
    tag = "tokens",
    params(("id" = String, Path, description = "The token id")),
    security(("manageSecret" = []), ("apiKey" = [])),
    responses(
        (status = 204, description = "Deleted; its key is deleted at AWS too"),
        (status = 401, description = "No manage secret or API key sent", body = ErrorBody),
        (status = 403, description = "The API key lacks tokens:write", body = ErrorBody),
        (status = 404, description = "No such token, a wrong secret, or a token another operator created (an API key deletes only its own operator's tokens)", body = ErrorBody),
    )
)]
pub(super) async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: ClientAddr,
    user_agent: UserAgent,
    bearer: Bearer,
) -> Result<StatusCode, ApiError> {
    let (token, actor) = managed(&state, &id, &bearer).await?;
    let from = origin(client, user_agent, "api");
    state.tokens.delete_from(&token, &actor, &from).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct FormatQuery {
    /// `credentials` (the default: an `~/.aws/credentials` file), `config`, `csv` or `env`.
    #[param(pattern = "^(credentials|config|csv|env)$")]
    format: Option<String>,
}

/// The key as a file to plant.
#[utoipa::path(
    get,
    path = "/tokens/{id}/credentials",
    operation_id = "downloadCredentials",
    tag = "tokens",
    params(("id" = String, Path, description = "The token id"), FormatQuery),
    security(("manageSecret" = [])),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/plain"),
            (String = "text/csv"),
        )),
        (status = 400, description = "An unknown format", body = ErrorBody),
        (status = 401, description = "No manage secret sent", body = ErrorBody),
        (status = 404, description = "No such token, or a wrong secret", body = ErrorBody),
        (status = 503, description = "`key_unavailable`: the server's sealing key does not open this token's secret", body = ErrorBody),
    )
)]
pub(super) async fn credentials(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bearer: Bearer,
    q: Result<Query<FormatQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let format: CredentialsFormat = q
        .format
        .as_deref()
        .unwrap_or("credentials")
        .parse()
        .map_err(|e: canarykeys_core::Invalid| ApiError::BadRequest(e.to_string()))?;
    let token = authorized(&state, &id, &bearer).await?;
    Ok(crate::render::download(
        format,
        &state.tokens.credentials(&token).await?,
    ))
}
