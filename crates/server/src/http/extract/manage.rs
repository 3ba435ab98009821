//! The manage secret: sent as `Authorization: Bearer <secret>` to the API, or as the `s` field
//! of a manage-page form or link. Both resolve to the token or to one "not found".

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use canarykeys_store::TokenRecord;
use serde::Deserialize;

use super::csrf;
use crate::http::html::{fail, UiError};
use crate::http::{ApiError, AppState};
use crate::services::{Actor, Scope};

/// The bearer credential of an API request (a manage secret or an API key).
pub struct Bearer(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        super::bearer(&parts.headers)
            .map(|s| Self(s.to_owned()))
            .ok_or(ApiError::Unauthenticated)
    }
}

/// The token whose manage secret the request bears.
pub async fn authorized(
    state: &AppState,
    id: &str,
    bearer: &Bearer,
) -> Result<TokenRecord, ApiError> {
    // An API key is no manage secret. One without tokens:read (a fleet's planting key) is told
    // so with 403: it may create and delete, never read other tokens.
    if super::caller::is_api_key(&bearer.0) {
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

/// The token a change acts on, and who makes it: an API key with `tokens:write` reaches only its
/// own operator's tokens (404 otherwise, as for a token that does not exist), a manage secret
/// only its own token.
pub async fn managed(
    state: &AppState,
    id: &str,
    bearer: &Bearer,
) -> Result<(TokenRecord, Actor), ApiError> {
    if super::caller::is_api_key(&bearer.0) {
        let caller = super::caller::ApiCaller::from_key(state, &bearer.0).await?;
        caller.require(Scope::TokensWrite)?;
        let token = state.tokens.get_owned(id, &caller.operator.id).await?;
        Ok((token, caller.actor()))
    } else {
        Ok((authorized(state, id, bearer).await?, Actor::ManageSecret))
    }
}

/// A manage-page download's query: the manage secret and the file format.
#[derive(Deserialize)]
pub struct SecretFormatQuery {
    #[serde(default)]
    pub s: String,
    pub format: Option<String>,
}

/// The token a manage-page form acts on, once the form's CSRF token and manage secret are both
/// checked.
pub async fn form_token(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    csrf_token: &str,
    secret: &str,
) -> Result<TokenRecord, UiError> {
    csrf::verify(headers, csrf_token).map_err(|e| fail(state, e))?;
    state
        .tokens
        .authorize(id, secret)
        .await
        .map_err(|e| fail(state, e))
}
