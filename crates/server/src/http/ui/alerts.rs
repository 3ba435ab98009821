//! Alert pieces of the manage page: the hits-per-day chart, delivery state per channel, the test
//! alert button, the source ignore list and the history export.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use canarykeys_store::TokenRecord;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{fail, form_token, UiError};
use crate::http::AppState;
use crate::render::human_time;

/// Days the chart covers, ending today.
const CHART_DAYS: i64 = 30;
const CHART_HEIGHT: u64 = 60;

/// Bars for an inline SVG: numbers only reach the template, so nothing needs escaping there.
pub(super) async fn chart(state: &AppState, token: &TokenRecord) -> Result<Value, UiError> {
    let today = state.clock.now_millis() / 86_400_000;
    let first = today - CHART_DAYS + 1;
    let counts = state
        .tokens
        .hits_per_day(token, first)
        .await
        .map_err(|e| fail(state, e))?;
    let max = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let bars: Vec<Value> = (first..=today)
        .enumerate()
        .map(|(i, day)| {
            let n = counts.iter().find(|(d, _)| *d == day).map_or(0, |(_, n)| *n);
            let h = if max == 0 { 0 } else { (n * CHART_HEIGHT).div_ceil(max) };
            json!({"x": i * 10, "y": CHART_HEIGHT - h, "h": h, "count": n, "day": &human_time(day * 86_400_000)[..10]})
        })
        .collect();
    Ok(json!({"bars": bars, "max": max, "height": CHART_HEIGHT, "width": CHART_DAYS * 10}))
}

/// What the manage page says about each channel's deliveries.
pub(super) async fn channel_states(
    state: &AppState,
    token: &TokenRecord,
) -> Result<Value, UiError> {
    let rows = state
        .tokens
        .deliveries(token, 50)
        .await
        .map_err(|e| fail(state, e))?;
    let mut summary = crate::render::delivery_summary(&rows);
    if let Some(obj) = summary.as_object_mut() {
        for v in obj.values_mut() {
            if let Some(t) = v.get("last_delivered_at").and_then(Value::as_str) {
                v["last_delivered_at"] = json!(t.replace('T', " ").replace('Z', " UTC"));
            }
        }
    }
    Ok(summary)
}

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
    headers: HeaderMap,
    form: Result<Form<SecretForm>, FormRejection>,
) -> Result<Response, UiError> {
    let Form(form) = form.map_err(|e| fail(&state, e))?;
    let token = form_token(&state, &headers, &id, &form.csrf, &form.s).await?;
    state
        .alerts
        .test_alert(&token, state.clock.now_millis())
        .await
        .map_err(|e| fail(&state, crate::services::ServiceError::from(e)))?;
    state
        .access
        .audit("manage-secret", "token.test_alert", token.id.as_str(), "")
        .await;
    Ok(back(token.id.as_str(), &form.s))
}

pub(super) async fn ignore(
    State(state): State<AppState>,
    Path(id): Path<String>,
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
        .set_ignore_sources(&token, &sources)
        .await
        .map_err(|e| fail(&state, e))?;
    state
        .access
        .audit(
            "manage-secret",
            "token.ignore_sources",
            token.id.as_str(),
            &sources.join(" "),
        )
        .await;
    Ok(back(token.id.as_str(), &form.s))
}

pub(super) async fn export(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<super::SecretFormatQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let Query(q) = q.map_err(|e| fail(&state, e))?;
    let token = state
        .tokens
        .authorize(&id, &q.s)
        .await
        .map_err(|e| fail(&state, e))?;
    crate::http::api_alerts::history_download(&state, &token, q.format.as_deref())
        .await
        .map_err(|e| fail(&state, e))
}
