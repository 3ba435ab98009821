//! Who is calling: the console operator (session cookie, or a trusted SSO proxy's header) for
//! HTML pages, and the API caller (API key or session) for JSON; plus sign-in and sign-out.

use std::net::SocketAddr;

use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Router};
use minijinja::context;
use serde::Deserialize;

use super::client::ClientAddr;
use super::{csrf, ApiError, AppState};
use crate::services::access::{AccessError, Operator, Scope, API_KEY_PREFIX};

pub const SESSION_COOKIE: &str = "ck_session";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
}

/// A signed-in operator, for HTML pages. Without one the browser is sent to sign in.
pub struct ConsoleOperator(pub Operator);

/// The caller of the operator API: an API key's owner and scopes, or a signed-in operator with
/// every scope.
pub struct ApiCaller {
    pub operator: Operator,
    pub scopes: Vec<Scope>,
}

impl ApiCaller {
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

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

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
            let (operator, scopes) = state
                .access
                .api_key(key)
                .await
                .ok_or(ApiError::NoCredentials)?;
            return Ok(Self(Some(ApiCaller { operator, scopes })));
        }
        Ok(Self(current_operator(parts, state).await.map(|operator| {
            ApiCaller {
                operator,
                scopes: Scope::ALL.to_vec(),
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

/// Only a path on this server: `//evil.example` and `/\evil.example` are other hosts to a
/// browser, so they are refused (open redirect).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control()) =>
        {
            n
        }
        _ => "/console",
    }
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    next: Option<String>,
}

/// The sign-in page again, with an error. The page is the console's template; if that is not
/// built in, a bare form keeps sign-in usable.
fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    next: &str,
    error: &str,
    status: StatusCode,
) -> Response {
    let token = csrf::token_for(headers, state.secure_cookies);
    let html = state
        .templates
        .get_template("console/login.html")
        .and_then(|t| t.render(context! { csrf => &token.value, next => next, error => error }))
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "console/login.html did not render; using the bare form");
            let esc = |s: &str| {
                s.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
                    .replace('"', "&quot;")
            };
            format!(
                "<!doctype html><title>Sign in</title><p>{}</p><form method=post action=/login>\
                 <input type=hidden name=csrf value=\"{}\"><input type=hidden name=next value=\"{}\">\
                 <input name=name><input type=password name=password><button>Sign in</button></form>",
                esc(error),
                esc(&token.value),
                esc(next)
            )
        });
    super::ui::page(html, status, &token)
}

fn session_cookie(state: &AppState, value: &str, max_age_secs: u64) -> HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .expect("session ids are base64url")
}

async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return login_page(
            &state,
            &headers,
            "/console",
            "the form could not be read",
            StatusCode::BAD_REQUEST,
        );
    };
    let next = safe_next(form.next.as_deref()).to_owned();
    if let Err(e) = csrf::verify(&headers, &form.csrf) {
        return login_page(&state, &headers, &next, &e.public_message(), e.status());
    }
    match state
        .access
        .login(&form.name, &form.password, client.0)
        .await
    {
        Ok((_, session)) => {
            // The browser's old session, if any, ends here: the new id replaces it.
            if let Some(old) = cookie(&headers, SESSION_COOKIE) {
                state.access.end_session_quietly(&old).await;
            }
            let mut resp = Redirect::to(&next).into_response();
            resp.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie(&state, &session, state.access.session_ttl_secs()),
            );
            resp
        }
        Err(e) => {
            let e = ApiError::Access(e);
            let message = match &e {
                ApiError::Access(AccessError::Locked) => {
                    "too many failed sign-ins: this operator is locked for 15 minutes".to_owned()
                }
                other => other.public_message(),
            };
            login_page(&state, &headers, &next, &message, e.status())
        }
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let Form(form) = form?;
    csrf::verify(&headers, &form.csrf)?;
    if let Some(session) = cookie(&headers, SESSION_COOKIE) {
        state.access.logout(&session).await;
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    Ok(resp)
}
