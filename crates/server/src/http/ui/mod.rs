//! The web UI: the create form and the one-time result page, plus what every page shares (errors
//! as pages, template rendering, the CSRF cookie). Templates auto-escape everything.

mod alerts;
mod manage;

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use canarykeys_core::{
    AwsCredentials, CredentialsFormat, FieldError, NewToken, NewTokenInput, TokenKind,
};
use canarykeys_store::TokenRecord;
use minijinja::context;
use serde::Deserialize;

use super::auth::CreateGate;
use super::client::ClientAddr;
use super::{csrf, ApiError, AppState};
use crate::render::{human_time, user_arn, LOCAL_KEYS_NOTICE};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/tokens", post(create))
        .route("/manage/{id}", get(manage::manage))
        .route("/manage/{id}/channels", post(manage::channels))
        .route("/manage/{id}/delete", post(manage::delete))
        .route("/manage/{id}/download", get(manage::download))
        .route("/manage/{id}/test-alert", post(alerts::test_alert))
        .route("/manage/{id}/ignore", post(alerts::ignore))
        .route("/manage/{id}/export", get(alerts::export))
        .route(
            "/static/app.css",
            get(|| static_file("text/css", include_str!("../../../static/app.css"))),
        )
        .route(
            "/static/app.js",
            get(|| static_file("text/javascript", include_str!("../../../static/app.js"))),
        )
        .route(
            "/static/console.js",
            get(|| {
                static_file(
                    "text/javascript",
                    include_str!("../../../static/console.js"),
                )
            }),
        )
}

async fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// An error shown as an HTML page, with the status the one mapping in `error.rs` gives it.
pub(super) struct UiError {
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

pub(super) fn fail(state: &AppState, e: impl Into<ApiError>) -> UiError {
    UiError {
        templates: state.templates.clone(),
        error: e.into(),
    }
}

pub(super) fn render(
    state: &AppState,
    name: &str,
    ctx: minijinja::Value,
) -> Result<String, UiError> {
    state
        .templates
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| fail(state, ApiError::Internal(format!("template {name}: {e:#}"))))
}

/// A manage-page download's query: the manage secret and the file format.
#[derive(serde::Deserialize)]
pub(super) struct SecretFormatQuery {
    #[serde(default)]
    pub(super) s: String,
    pub(super) format: Option<String>,
}

/// The token a manage-page form acts on, once the form's CSRF token and manage secret are both
/// checked.
pub(super) async fn form_token(
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

pub(super) fn page(html: String, status: StatusCode, csrf: &csrf::CsrfToken) -> Response {
    let mut resp = (status, Html(html)).into_response();
    if let Some(cookie) = &csrf.set_cookie {
        resp.headers_mut()
            .insert(header::SET_COOKIE, cookie.clone());
    }
    resp
}

fn kinds() -> Vec<minijinja::Value> {
    TokenKind::ALL
        .iter()
        .map(|k| {
            minijinja::Value::from_serialize(
                serde_json::json!({"value": k.as_str(), "label": k.label()}),
            )
        })
        .collect()
}

fn home_page(
    state: &AppState,
    headers: &HeaderMap,
    input: &NewTokenInput,
    errors: &[FieldError],
    status: StatusCode,
) -> Result<Response, UiError> {
    let token = csrf::token_for(headers, state.secure_cookies);
    let errors: Vec<_> = errors
        .iter()
        .map(|e| serde_json::json!({"field": e.field, "message": e.problem}))
        .collect();
    let html = render(
        state,
        "home.html",
        context! {
            csrf => token.value,
            kinds => kinds(),
            kind => input.kind.clone().unwrap_or_else(|| "aws_keys".into()),
            memo => input.memo.clone().unwrap_or_default(),
            email => input.email.clone().unwrap_or_default(),
            webhook_url => input.webhook_url.clone().unwrap_or_default(),
            errors => errors,
            local_minter => !state.tokens.minter().keys_valid_at_aws(),
        },
    )?;
    Ok(page(html, status, &token))
}

async fn home(
    State(state): State<AppState>,
    _gate: CreateGate,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    home_page(
        &state,
        &headers,
        &NewTokenInput::default(),
        &[],
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    input: NewTokenInput,
}

async fn create(
    State(state): State<AppState>,
    client: ClientAddr,
    CreateGate(operator): CreateGate,
    headers: HeaderMap,
    form: Result<Form<CreateForm>, FormRejection>,
) -> Result<Response, UiError> {
    let Form(form) = form.map_err(|e| fail(&state, e))?;
    csrf::verify(&headers, &form.csrf).map_err(|e| fail(&state, e))?;
    // Only anonymous creation (open mode) is rate limited: operators are accountable.
    if operator.is_none() {
        state.limiter.check(client).map_err(|e| fail(&state, e))?;
    }
    let new = match NewToken::parse(&form.input) {
        Ok(new) => new,
        Err(errors) => {
            return home_page(
                &state,
                &headers,
                &form.input,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    };
    let created = state
        .tokens
        .create(new)
        .await
        .map_err(|e| fail(&state, e))?;
    let actor = operator.map_or_else(|| "anonymous".to_owned(), |o| o.name);
    let t = &created.token;
    state
        .access
        .audit(&actor, "token.create", t.id.as_str(), t.memo.as_str())
        .await;
    let secret = created.manage_secret.expose();
    let html = render(
        &state,
        "created.html",
        context! {
            token => token_ctx(&created.token),
            creds => creds_ctx(&created.token, &created.credentials, secret),
            manage_url => state.manage_url(&created.token.id, secret),
            notice => notice(&created.token),
        },
    )?;
    Ok((StatusCode::CREATED, Html(html)).into_response())
}

pub(super) fn notice(t: &TokenRecord) -> Option<&'static str> {
    (t.minter == "local").then_some(LOCAL_KEYS_NOTICE)
}

pub(super) fn token_ctx(t: &TokenRecord) -> minijinja::Value {
    context! {
        id => t.id.as_str(),
        memo => t.memo.as_str(),
        kind => t.kind.label(),
        created_at => human_time(t.created_at),
        minter => t.minter.clone(),
        email => t.email.as_ref().map(|e| e.as_str().to_owned()),
        email_enabled => t.email_enabled,
        email_disabled_reason => t.alerting.email_disabled_reason.clone(),
        webhook_disabled_reason => t.alerting.webhook_disabled_reason.clone(),
        webhook_url => t.webhook.as_ref().map(|w| w.as_str().to_owned()),
        webhook_enabled => t.webhook_enabled,
    }
}

pub(super) fn creds_ctx(t: &TokenRecord, c: &AwsCredentials, secret: &str) -> minijinja::Value {
    let downloads: Vec<_> = CredentialsFormat::ALL
        .iter()
        .map(|f| {
            serde_json::json!({
                "format": f.as_str(),
                "file": f.file_name(&c.username),
                "href": format!("/manage/{}/download?format={}&s={secret}", t.id, f.as_str()),
            })
        })
        .collect();
    context! {
        access_key_id => c.access_key_id.as_str(),
        secret_access_key => c.secret_access_key.expose(),
        region => c.region.as_str(),
        output => c.output.as_str(),
        username => c.username.as_str(),
        account_id => c.account_id.to_string(),
        arn => user_arn(c),
        downloads => minijinja::Value::from_serialize(downloads),
    }
}
