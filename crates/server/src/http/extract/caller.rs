//! Who is calling: the console operator (session cookie, or a trusted SSO proxy's header) for
//! HTML pages, and the API caller (API key or session) for JSON.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};

use super::{bearer, cookie};
use crate::http::{ApiError, AppState};
use crate::services::access::{Operator, Scope, API_KEY_PREFIX};
use crate::services::{Actor, KeyActor};

pub const SESSION_COOKIE: &str = "ck_session";

/// A signed-in operator, for HTML pages. Without one the browser is sent to sign in.
pub struct ConsoleOperator(pub Operator);

/// The caller of the operator API: an API key's owner and scopes, or a signed-in operator with
/// every scope.
pub struct ApiCaller {
    pub operator: Operator,
    pub scopes: Vec<Scope>,
    /// The API key, when the caller used one (`None` for a session).
    pub key: Option<KeyActor>,
}

impl ApiCaller {
    /// The operator and scopes of an API key (`ck_…`); an unknown or revoked key is a 401.
    pub async fn from_key(state: &AppState, key: &str) -> Result<Self, ApiError> {
        let (operator, scopes, actor) = state
            .access
            .api_key_actor(key)
            .await
            .ok_or(ApiError::NoCredentials)?;
        Ok(Self {
            operator,
            scopes,
            key: Some(actor),
        })
    }

    /// Who the audit log and tamper alerts name: the API key, or the signed-in operator.
    pub fn actor(&self) -> Actor {
        match &self.key {
            Some(key) => Actor::ApiKey(key.clone()),
            None => Actor::Operator(self.operator.name.clone()),
        }
    }

    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::MissingScope(scope.as_str()))
        }
    }
}

/// Who may use the token create form: anyone in `open` mode (the operator, if signed in),
/// a signed-in operator otherwise; others are sent to sign in.
pub struct CreateGate(pub Option<Operator>);

impl FromRequestParts<AppState> for CreateGate {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let operator = current_operator(parts, state).await;
        if operator.is_none() && !state.access.create_is_open() {
            // After sign-in, back to the form (a POST cannot be replayed by a redirect).
            return Err(Redirect::to("/login?next=%2F").into_response());
        }
        Ok(Self(operator))
    }
}

/// An API caller if the request brings credentials; `None` if it brings none. A presented API
/// key that does not work is an error, never silently anonymous.
pub struct MaybeApiCaller(pub Option<ApiCaller>);

/// Whether a bearer value is an API key rather than a token's manage secret.
pub fn is_api_key(value: &str) -> bool {
    value.starts_with(API_KEY_PREFIX)
}

/// The operator of this request from the session cookie or, behind a trusted proxy, from the
/// proxy's header. The header counts only when the TCP peer itself is a trusted proxy: any
/// client can send the header, only the proxy can be the peer.
pub async fn current_operator(parts: &Parts, state: &AppState) -> Option<Operator> {
    if let Some(header_name) = state.access.proxy_header() {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if peer.is_some_and(|ip| state.access.is_trusted_proxy(ip)) {
            if let Some(name) = parts.headers.get(header_name).and_then(|v| v.to_str().ok()) {
                return state.access.operator_for_proxy(name).await;
            }
        }
    }
    let session = cookie(&parts.headers, SESSION_COOKIE)?;
    state.access.operator_for_session(&session).await
}

impl FromRequestParts<AppState> for ConsoleOperator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match current_operator(parts, state).await {
            Some(op) => Ok(Self(op)),
            None => {
                // A redirect turns a POST into a GET, so only GETs come back where they were.
                let here = match parts.uri.path_and_query() {
                    Some(p) if parts.method == axum::http::Method::GET => p.as_str(),
                    _ => "/console",
                };
                let next: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
                Err(Redirect::to(&format!("/login?next={next}")).into_response())
            }
        }
    }
}

impl FromRequestParts<AppState> for MaybeApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(key) = bearer(&parts.headers).filter(|b| is_api_key(b)) {
            return Ok(Self(Some(ApiCaller::from_key(state, key).await?)));
        }
        Ok(Self(current_operator(parts, state).await.map(|operator| {
            ApiCaller {
                operator,
                scopes: Scope::ALL.to_vec(),
                key: None,
            }
        })))
    }
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        MaybeApiCaller::from_request_parts(parts, state)
            .await?
            .0
            .ok_or(ApiError::NoCredentials)
    }
}
