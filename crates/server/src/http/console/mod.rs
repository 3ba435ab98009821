//! The operator console: overview, every token, the alert feed (live over server-sent events),
//! the audit log and API keys, behind the operator sign-in. Pages are server-rendered with
//! auto-escaping; every state-changing form carries the CSRF token.

mod alerts;
mod api_keys;
mod audit;
mod bulk;
mod login;
mod overview;
mod tokens;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use minijinja::{context, Value};

use super::auth::ConsoleOperator;
use super::ui::{fail, page, render, UiError};
use super::{csrf, AppState};
use crate::render::human_time;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login::login_page))
        .route("/console", get(overview::overview))
        .route("/console/tokens", get(tokens::list))
        .route("/console/tokens/bulk-create", post(bulk::create))
        .route("/console/tokens/bulk-delete", post(tokens::bulk_delete))
        .route("/console/alerts", get(alerts::feed))
        .route("/console/alerts/stream", get(alerts::stream))
        .route("/console/audit", get(audit::page))
        .route("/console/audit/export", get(audit::export))
        .route(
            "/console/api-keys",
            get(api_keys::list).post(api_keys::create),
        )
        .route("/console/api-keys/{id}/revoke", post(api_keys::revoke))
}

/// Renders a console page with what every one of them shows: the signed-in operator, the nav
/// (with `section` marked current) and the CSRF token for its forms and the sign-out button.
fn console_page(
    state: &AppState,
    headers: &HeaderMap,
    op: &ConsoleOperator,
    template: &str,
    section: &str,
    ctx: Value,
) -> Result<Response, UiError> {
    console_page_status(state, headers, op, template, section, ctx, StatusCode::OK)
}

fn console_page_status(
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

/// Checks a console form's CSRF field against the cookie.
fn check_csrf(state: &AppState, headers: &HeaderMap, submitted: &str) -> Result<(), UiError> {
    csrf::verify(headers, submitted).map_err(|e| fail(state, e))
}

/// `human_time`, or a dash for never.
fn when(millis: Option<i64>) -> String {
    millis.map_or_else(|| "never".to_owned(), human_time)
}

/// "3 h ago", for the overview's at-a-glance columns.
fn ago(now: i64, millis: i64) -> String {
    let secs = (now - millis).max(0) / 1000;
    format!("{} ago", crate::render::human_duration(secs))
}
