//! The JSON API under `/api/v1`. Each token is managed with its own secret, sent as
//! `Authorization: Bearer <manage_secret>`; an unknown id and a wrong secret both answer 404.

use axum::extract::{FromRequest, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use canarykeys_core::{CredentialsFormat, NewToken, NewTokenInput};
use canarykeys_store::{ChannelSwitches, TokenRecord};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{is_api_key, MaybeApiCaller};
use super::client::ClientAddr;
use super::{ApiError, AppState};
use crate::export::hit_json;
use crate::render::{delivery_summary, token_json};
use crate::services::Scope;

const OPENAPI: &str = include_str!("openapi.json");

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/tokens", post(create))
        .route("/tokens/{id}", get(show).patch(update).delete(remove))
        .route("/tokens/{id}/alerts", get(alerts))
        .route("/tokens/{id}/credentials", get(credentials))
        .merge(super::api_alerts::routes())
        .merge(super::api_console::routes())
}

/// JSON bodies with our error mapping (400 / 413 / 415 / 422 as JSON) instead of axum's text.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
struct ApiJson<T>(T);

/// The bearer secret from the `Authorization` header.
pub(super) struct Bearer(pub(super) String);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|s| Self(s.trim().to_owned()))
            .ok_or(ApiError::Unauthenticated)
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn create(
    State(state): State<AppState>,
    client: ClientAddr,
    MaybeApiCaller(caller): MaybeApiCaller,
    ApiJson(input): ApiJson<NewTokenInput>,
) -> Result<Response, ApiError> {
    // Operators and keys are accountable, so only anonymous creation (open mode) is rate limited.
    let actor = match (&caller, state.access.create_is_open()) {
        (Some(c), _) => {
            c.require(Scope::TokensWrite)?;
            c.operator.name.clone()
        }
        (None, true) => {
            state.limiter.check(client)?;
            "anonymous".to_owned()
        }
        (None, false) => return Err(ApiError::NoCredentials),
    };
    let new = NewToken::parse(&input).map_err(ApiError::Invalid)?;
    let created = state.tokens.create(new).await?;
    let t = &created.token;
    state
        .access
        .audit(&actor, "token.create", t.id.as_str(), t.memo.as_str())
        .await;
    let manage_url = state.manage_url(&created.token.id, created.manage_secret.expose());
    let mut body = token_json(
        &created.token,
        &created.credentials,
        state.tokens.minter(),
        0,
    );
    body["manage_url"] = json!(manage_url);
    body["manage_secret"] = json!(created.manage_secret.expose());
    let location = format!("/api/v1/tokens/{}", created.token.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(body),
    )
        .into_response())
}

pub(super) async fn authorized(
    state: &AppState,
    id: &str,
    bearer: &Bearer,
) -> Result<TokenRecord, ApiError> {
    // An API key is no manage secret. One without tokens:read (a fleet's planting key) is told
    // so with 403: it may create and delete, never read other tokens.
    if is_api_key(&bearer.0) {
        let (_, scopes) = state
            .access
            .api_key(&bearer.0)
            .await
            .ok_or(ApiError::NoCredentials)?;
        if !scopes.contains(&Scope::TokensRead) {
            return Err(ApiError::MissingScope(Scope::TokensRead.as_str()));
        }
    }
    Ok(state.tokens.authorize(id, &bearer.0).await?)
}

/// The token as GET and PATCH answer it: with its alert count and delivery state.
async fn full_json(state: &AppState, token: &TokenRecord) -> Result<Value, ApiError> {
    let creds = state.tokens.credentials(token)?;
    let total = state.tokens.hit_count(token).await?;
    let mut v = token_json(token, &creds, state.tokens.minter(), total);
    v["delivery"] = delivery_summary(&state.tokens.deliveries(token, 50).await?);
    Ok(v)
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bearer: Bearer,
) -> Result<axum::Json<Value>, ApiError> {
    let token = authorized(&state, &id, &bearer).await?;
    Ok(axum::Json(full_json(&state, &token).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    email_enabled: Option<bool>,
    webhook_enabled: Option<bool>,
    /// Addresses and CIDR ranges whose hits are recorded but not alerted; replaces the list.
    ignore_sources: Option<Vec<String>>,
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bearer: Bearer,
    ApiJson(patch): ApiJson<Patch>,
) -> Result<axum::Json<Value>, ApiError> {
    let token = authorized(&state, &id, &bearer).await?;
    let switches = ChannelSwitches {
        email: patch.email_enabled,
        webhook: patch.webhook_enabled,
    };
    let mut token = state.tokens.set_channels(&token, switches).await?;
    if switches.email.is_some() || switches.webhook.is_some() {
        let details = format!("email={:?} webhook={:?}", switches.email, switches.webhook);
        state
            .access
            .audit(
                "manage-secret",
                "token.channels",
                token.id.as_str(),
                &details,
            )
            .await;
    }
    if let Some(sources) = patch.ignore_sources {
        token = state.tokens.set_ignore_sources(&token, &sources).await?;
        state
            .access
            .audit(
                "manage-secret",
                "token.ignore_sources",
                token.id.as_str(),
                &sources.join(" "),
            )
            .await;
    }
    Ok(axum::Json(full_json(&state, &token).await?))
}

/// Deletes with the token's manage secret, or with an API key that has `tokens:write`.
async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bearer: Bearer,
) -> Result<StatusCode, ApiError> {
    let (token, actor) = if is_api_key(&bearer.0) {
        let (operator, scopes) = state
            .access
            .api_key(&bearer.0)
            .await
            .ok_or(ApiError::NoCredentials)?;
        if !scopes.contains(&Scope::TokensWrite) {
            return Err(ApiError::MissingScope(Scope::TokensWrite.as_str()));
        }
        (state.tokens.get(&id).await?, operator.name)
    } else {
        (
            authorized(&state, &id, &bearer).await?,
            "manage-secret".to_owned(),
        )
    };
    state.tokens.delete(&token).await?;
    state
        .access
        .audit(
            &actor,
            "token.delete",
            token.id.as_str(),
            token.memo.as_str(),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct Page {
    limit: Option<u32>,
    offset: Option<u32>,
}

async fn alerts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    bearer: Bearer,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let Query(page) = page?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::BadRequest("limit is between 1 and 500".into()));
    }
    let offset = page.offset.unwrap_or(0);
    let token = authorized(&state, &id, &bearer).await?;
    let (hits, total) = state.tokens.hits(&token, limit, offset).await?;
    Ok(axum::Json(json!({
        "total": total,
        "limit": limit,
        "offset": offset,
        "alerts": hits.iter().map(hit_json).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
struct FormatQuery {
    format: Option<String>,
}

async fn credentials(
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
        &state.tokens.credentials(&token)?,
    ))
}
