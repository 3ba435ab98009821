//! The manage page reached by a token's secret link: channel switches, history, delete and
//! downloads. Every action checks the secret; every form also checks the CSRF token.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use canarykeys_core::CredentialsFormat;
use canarykeys_store::{ChannelSwitches, TokenRecord};
use minijinja::context;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::extract::client::ClientAddr;
use crate::http::extract::csrf;
use crate::http::extract::manage::{form_token, SecretFormatQuery};
use crate::http::extract::origin::{origin, UserAgent};
use crate::http::html::token::{creds_ctx, notice, token_ctx};
use crate::http::html::{chart, fail, page, render, UiError};
use crate::http::{ApiError, AppState};
use crate::render::human_time;
use crate::services::Actor;

const HISTORY_PAGE: u32 = 50;

#[derive(Deserialize)]
pub(super) struct ManageQuery {
    #[serde(default)]
    s: String,
    #[serde(default)]
    page: u32,
}

pub(super) async fn manage(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<ManageQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let Query(q) = q.map_err(|e| fail(&state, e))?;
    if q.s.is_empty() {
        // Alerts link here without the secret (we never store it): ask for it.
        let html = render(&state, "unlock.html", context! { id => id })?;
        return Ok(Html(html).into_response());
    }
    let token = state
        .tokens
        .authorize(&id, &q.s)
        .await
        .map_err(|e| fail(&state, e))?;
    let creds = state
        .tokens
        .credentials(&token)
        .await
        .map_err(|e| fail(&state, e))?;
    let offset = q.page.saturating_mul(HISTORY_PAGE);
    let (hits, total) = state
        .tokens
        .hits(&token, HISTORY_PAGE, offset)
        .await
        .map_err(|e| fail(&state, e))?;
    let hits: Vec<_> = hits
        .iter()
        .map(|h| {
            serde_json::json!({
                "event_time": human_time(h.event_time),
                "received_at": human_time(h.received_at),
                "event_name": h.event_name, "event_source": h.event_source, "region": h.region,
                "source_ip": h.source_ip, "user_agent": h.user_agent, "path": h.path,
                "error_code": h.error_code, "tls_host": h.tls_host, "vpc_endpoint_id": h.vpc_endpoint_id,
                "note": h.note,
                "delay": crate::render::human_duration((h.received_at - h.event_time) / 1000),
                "labels": state.alerts.enrichment(h).labels,
                "suppressed": h.suppressed,
            })
        })
        .collect();
    let csrf = csrf::token_for(&headers, state.secure_cookies);
    let more = u64::from(offset) + u64::from(HISTORY_PAGE) < total;
    let chart = chart(&state, &token).await?;
    let deliveries = channel_states(&state, &token).await?;
    let exposures = state.exposures.for_token(&token).await;
    let exposures = exposures.map_err(|e| fail(&state, e))?;
    let html = render(
        &state,
        "manage.html",
        context! {
            token => token_ctx(&token),
            creds => creds_ctx(&token, &creds, &q.s),
            secret => q.s,
            csrf => csrf.value.clone(),
            hits => minijinja::Value::from_serialize(hits),
            total => total,
            page => q.page,
            next_page => more.then_some(q.page + 1),
            prev_page => q.page.checked_sub(1),
            notice => notice(&token),
            chart => chart,
            deliveries => deliveries,
            exposures => minijinja::Value::from_serialize(exposures),
            ignore_sources => token.alerting.ignore_sources.join("\n"),
        },
    )?;
    Ok(page(html, StatusCode::OK, &csrf))
}

#[derive(Deserialize)]
pub(super) struct ChannelsForm {
    #[serde(default)]
    s: String,
    #[serde(default)]
    csrf: String,
    email_enabled: Option<String>,
    webhook_enabled: Option<String>,
}

pub(super) async fn channels(
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: ClientAddr,
    user_agent: UserAgent,
    headers: HeaderMap,
    form: Result<Form<ChannelsForm>, FormRejection>,
) -> Result<Response, UiError> {
    let Form(form) = form.map_err(|e| fail(&state, e))?;
    let token = form_token(&state, &headers, &id, &form.csrf, &form.s).await?;
    // A checkbox that is not ticked is not sent; only channels the token has are switched.
    let switches = ChannelSwitches {
        email: token
            .email
            .is_some()
            .then_some(form.email_enabled.is_some()),
        webhook: token
            .webhook
            .is_some()
            .then_some(form.webhook_enabled.is_some()),
    };
    state
        .tokens
        .set_channels_from(
            &token,
            switches,
            &Actor::ManageSecret,
            &origin(client, user_agent, "manage-page"),
        )
        .await
        .map_err(|e| fail(&state, e))?;
    Ok(Redirect::to(&format!("/manage/{}?s={}", token.id, form.s)).into_response())
}

#[derive(Deserialize)]
pub(super) struct DeleteForm {
    #[serde(default)]
    s: String,
    #[serde(default)]
    csrf: String,
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: ClientAddr,
    user_agent: UserAgent,
    headers: HeaderMap,
    form: Result<Form<DeleteForm>, FormRejection>,
) -> Result<Response, UiError> {
    let Form(form) = form.map_err(|e| fail(&state, e))?;
    let token = form_token(&state, &headers, &id, &form.csrf, &form.s).await?;
    state
        .tokens
        .delete_from(
            &token,
            &Actor::ManageSecret,
            &origin(client, user_agent, "manage-page"),
        )
        .await
        .map_err(|e| fail(&state, e))?;
    let html = render(
        &state,
        "deleted.html",
        context! { memo => token.memo.as_str() },
    )?;
    Ok(Html(html).into_response())
}

pub(super) async fn download(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<SecretFormatQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let Query(q) = q.map_err(|e| fail(&state, e))?;
    let format: CredentialsFormat = q
        .format
        .as_deref()
        .unwrap_or("credentials")
        .parse()
        .map_err(|e: canarykeys_core::Invalid| fail(&state, ApiError::BadRequest(e.to_string())))?;
    let token = state
        .tokens
        .authorize(&id, &q.s)
        .await
        .map_err(|e| fail(&state, e))?;
    let creds = state
        .tokens
        .credentials(&token)
        .await
        .map_err(|e| fail(&state, e))?;
    Ok(crate::render::download(format, &creds))
}

/// The hits-per-day chart of the manage page.
async fn chart(state: &AppState, token: &TokenRecord) -> Result<Value, UiError> {
    let now = state.clock.now_millis();
    let counts = state
        .tokens
        .hits_per_day(token, chart::first_day(now))
        .await
        .map_err(|e| fail(state, e))?;
    Ok(chart::daily(&counts, now))
}

/// What the manage page says about each channel's deliveries.
async fn channel_states(state: &AppState, token: &TokenRecord) -> Result<Value, UiError> {
    let rows = state
        .tokens
        .deliveries(token, 50)
        .await
        .map_err(|e| fail(state, e))?;
    let mut summary = serde_json::to_value(crate::views::delivery_summary(&rows))
        .map_err(|e| fail(state, ApiError::Internal(format!("delivery summary: {e}"))))?;
    if let Some(obj) = summary.as_object_mut() {
        for v in obj.values_mut() {
            if let Some(t) = v.get("last_delivered_at").and_then(Value::as_str) {
                v["last_delivered_at"] = json!(t.replace('T', " ").replace('Z', " UTC"));
            }
        }
    }
    Ok(summary)
}
