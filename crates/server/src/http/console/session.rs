//! Sign-in and sign-out: the sign-in form, checking the password, and the session cookie.

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use minijinja::context;
use serde::Deserialize;

use crate::http::extract::caller::SESSION_COOKIE;
use crate::http::extract::client::ClientAddr;
use crate::http::extract::{cookie, csrf, safe_next};
use crate::http::html::{page, render, UiError};
use crate::http::{ApiError, AppState};
use crate::services::access::AccessError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, UiError> {
    let token = csrf::token_for(&headers, state.secure_cookies);
    let html = render(
        &state,
        "console/login.html",
        context! {
            csrf => token.value.clone(),
            next => safe_next(q.next.as_deref()),
            error => None::<String>,
        },
    )?;
    Ok(page(html, StatusCode::OK, &token))
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
    page(html, status, &token)
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
                    "too many failed sign-ins: this operator is backing off (30 s, doubling with \
                     each wrong password, at most 15 minutes), except from an address it has \
                     signed in from before"
                        .to_owned()
                }
                other => other.public_message(),
            };
            let mut resp = login_page(&state, &headers, &next, &message, e.status());
            if matches!(e, ApiError::Access(AccessError::Busy)) {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
            }
            resp
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
