//! What every HTML page shares, importing no router: rendering a template into a page (with the
//! CSRF cookie when new), errors as pages, the console frame, a token's view for templates, and
//! the one hits-per-day chart. Templates auto-escape everything.

pub mod chart;
pub mod token;

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{context, Value};

use super::extract::caller::ConsoleOperator;
use super::extract::csrf;
use super::{ApiError, AppState};
use crate::render::human_time;

/// An error shown as an HTML page, with the status the one mapping in `error.rs` gives it.
pub struct UiError {
    templates: Arc<minijinja::Environment<'static>>,
    error: ApiError,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        self.error.log();
        let status = self.error.status();
        let body = self
            .templates
            .get_template("error.html")
            .and_then(|t| {
                t.render(
                    context! { status => status.as_u16(), message => self.error.public_message() },
                )
            })
            .unwrap_or_else(|_| "error".into());
        (status, Html(body)).into_response()
    }
}

/// Any error as an HTML error page.
pub fn fail(state: &AppState, e: impl Into<ApiError>) -> UiError {
    UiError {
        templates: state.templates.clone(),
        error: e.into(),
    }
}

/// Renders template `name`; a template that fails is a 500 page.
pub fn render(state: &AppState, name: &str, ctx: Value) -> Result<String, UiError> {
    state
        .templates
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| fail(state, ApiError::Internal(format!("template {name}: {e:#}"))))
}

/// A rendered page, setting the CSRF cookie if the browser had none.
pub fn page(html: String, status: StatusCode, csrf: &csrf::CsrfToken) -> Response {
    let mut resp = (status, Html(html)).into_response();
    if let Some(cookie) = &csrf.set_cookie {
        resp.headers_mut()
            .insert(header::SET_COOKIE, cookie.clone());
    }
    resp
}

/// Renders a console page with what every one of them shows: the signed-in operator, the nav
/// (with `section` marked current) and the CSRF token for its forms and the sign-out button.
pub fn console_page(
    state: &AppState,
    headers: &HeaderMap,
    op: &ConsoleOperator,
    template: &str,
    section: &str,
    ctx: Value,
) -> Result<Response, UiError> {
    console_page_status(state, headers, op, template, section, ctx, StatusCode::OK)
}

pub fn console_page_status(
    state: &AppState,
    headers: &HeaderMap,
    op: &ConsoleOperator,
    template: &str,
    section: &str,
    ctx: Value,
    status: StatusCode,
) -> Result<Response, UiError> {
    let token = csrf::token_for(headers, state.secure_cookies);
    let html = render(
        state,
        template,
        context! {
            operator => op.0.name.to_string(),
            section => section,
            csrf => token.value.clone(),
            ..ctx
        },
    )?;
    Ok(page(html, status, &token))
}

/// Checks a form's CSRF field against the cookie, failing as a page.
pub fn check_csrf(state: &AppState, headers: &HeaderMap, submitted: &str) -> Result<(), UiError> {
    csrf::verify(headers, submitted).map_err(|e| fail(state, e))
}

/// `human_time`, or "never".
pub fn when(millis: Option<i64>) -> String {
    millis.map_or_else(|| "never".to_owned(), human_time)
}

/// "3 h ago", for the overview's at-a-glance columns.
pub fn ago(now: i64, millis: i64) -> String {
    let secs = (now - millis).max(0) / 1000;
    format!("{} ago", crate::render::human_duration(secs))
}
