//! The manage page's alert actions: the test alert button, the source ignore list and the
//! history export.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use crate::http::extract::client::ClientAddr;
use crate::http::extract::manage::{form_token, SecretFormatQuery};
use crate::http::extract::origin::{origin, UserAgent};
use crate::http::html::{fail, UiError};
use crate::http::AppState;
use crate::services::{Actor, AuditAction};

#[derive(Deserialize)]
pub(super) struct SecretForm {
    #[serde(default)]
    s: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    sources: String,
}

fn back(id: &str, secret: &str) -> Response {
    Redirect::to(&format!("/manage/{id}?s={secret}")).into_response()
}

pub(super) async fn test_alert(
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: ClientAddr,
    headers: HeaderMap,
    form: Result<Form<SecretForm>, FormRejection>,
) -> Result<Response, UiError> {
    let Form(form) = form.map_err(|e| fail(&state, e))?;
    let token = form_token(&state, &headers, &id, &form.csrf, &form.s).await?;
    state
        .limiter
        .test_alerts
        .check(token.id.as_str(), client)
        .map_err(|e| fail(&state, e))?;
    state
        .alerts
        .test_alert(&token, state.clock.now_millis())
        .await
        .map_err(|e| fail(&state, crate::services::ServiceError::from(e)))?;
    state
        .tokens
        .record_action(
            &Actor::ManageSecret,
            AuditAction::TokenTestAlert,
            token.id.as_str(),
            "",
        )
        .await
        .map_err(|e| fail(&state, e))?;
    Ok(back(token.id.as_str(), &form.s))
}

pub(super) async fn ignore(
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: ClientAddr,
    user_agent: UserAgent,
    headers: HeaderMap,
    form: Result<Form<SecretForm>, FormRejection>,
) -> Result<Response, UiError> {
    let Form(form) = form.map_err(|e| fail(&state, e))?;
    let token = form_token(&state, &headers, &id, &form.csrf, &form.s).await?;
    let sources: Vec<String> = form
        .sources
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    state
        .tokens
        .set_ignore_sources_from(
            &token,
            &sources,
            &Actor::ManageSecret,
            &origin(client, user_agent, "manage-page"),
        )
        .await
        .map_err(|e| fail(&state, e))?;
    Ok(back(token.id.as_str(), &form.s))
}

pub(super) async fn export(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<SecretFormatQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let Query(q) = q.map_err(|e| fail(&state, e))?;
    let token = state
        .tokens
        .authorize(&id, &q.s)
        .await
        .map_err(|e| fail(&state, e))?;
    crate::http::respond::history_download(&state, &token, q.format.as_deref())
        .await
        .map_err(|e| fail(&state, e))
}
