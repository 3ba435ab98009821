//! The home page: the token create form (open to anyone in `open` mode, to operators otherwise)
//! and the one-time result page with the credentials and the manage link.

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use canarykeys_core::{FieldError, NewToken, NewTokenInput, TokenKind};
use minijinja::context;
use serde::Deserialize;

use super::extract::caller::CreateGate;
use super::extract::client::ClientAddr;
use super::extract::csrf;
use super::html::token::{creds_ctx, notice, token_ctx};
use super::html::{fail, page, render, UiError};
use super::AppState;
use crate::services::Actor;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/tokens", post(create))
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
        .create(new, &Actor::operator_or_anonymous(operator.map(|o| o.name)))
        .await
        .map_err(|e| fail(&state, e))?;
    let secret = created.manage_secret.expose();
    let html = render(
        &state,
        "created.html",
        context! {
            token => token_ctx(&created.token),
            creds => creds_ctx(&created.token, &created.credentials, secret),
            manage_url => state.manage_url(&created.token.id, secret),
            notice => notice(&created.token),
            refresh_secret => created.refresh_secret.as_ref().map(|r| r.expose().to_owned()),
        },
    )?;
    Ok((StatusCode::CREATED, Html(html)).into_response())
}
