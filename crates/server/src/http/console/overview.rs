//! `/console`: the overview. Token counts by state, hit counts over three windows, the top
//! sources, hits per day, and whether each detection path and alert channel is alive.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use minijinja::{context, Value};
use serde_json::json;

use super::super::auth::ConsoleOperator;
use super::super::ui::{fail, UiError};
use super::super::AppState;
use super::{ago, console_page, when};
use crate::clock::now_millis;
use crate::render::human_time;

const DAY: i64 = 86_400_000;
/// A path or channel with nothing for this long is flagged: detection may have gone quiet.
const QUIET_AFTER: i64 = DAY;
const CHART_DAYS: i64 = 30;
const CHART_HEIGHT: u64 = 60;
/// Every way a hit can reach us, so a path that never delivered anything shows up too.
pub(super) const PATHS: [&str; 7] = [
    "cloudwatch-logs",
    "eventbridge",
    "s3",
    "safety-net",
    "sensor",
    "api",
    "cli",
];

pub(super) async fn overview(
    State(state): State<AppState>,
    headers: HeaderMap,
    op: ConsoleOperator,
) -> Result<Response, UiError> {
    let store = state.tokens.store().clone();
    let now = now_millis();
    let err = |e| fail(&state, crate::services::ServiceError::Store(e));
    let tokens = store.list_tokens().await.map_err(err)?;
    let stats = store.token_hit_stats().await.map_err(err)?;
    let soon = now + 7 * DAY;
    let expiring = tokens
        .iter()
        .filter(|t| t.expires_at.is_some_and(|e| e <= soon))
        .count();
    let mut windows = Vec::new();
    for (label, days) in [("24 h", 1), ("7 d", 7), ("30 d", 30)] {
        let n = store
            .count_hits_since(now - days * DAY)
            .await
            .map_err(err)?;
        windows.push(json!({"label": label, "count": n}));
    }
    let sources: Vec<_> = store
        .top_sources(now - 30 * DAY, 10)
        .await
        .map_err(err)?
        .into_iter()
        .map(|(ip, n)| {
            let ip_q: String = url::form_urlencoded::byte_serialize(ip.as_bytes()).collect();
            json!({"ip": ip, "ip_q": ip_q, "count": n})
        })
        .collect();
    let chart = chart(
        &store
            .all_hits_per_day(now / DAY - CHART_DAYS + 1)
            .await
            .map_err(err)?,
        now,
    );
    let health = store.path_health().await.map_err(err)?;
    let paths: Vec<_> = PATHS
        .iter()
        .map(|p| {
            let seen = health.iter().find(|h| h.path == *p);
            json!({
                "path": p,
                "last": seen.map_or_else(|| "never".to_owned(), |h| format!("{} ({})", human_time(h.last_received), ago(h.last_received))),
                "hits": seen.map_or(0, |h| h.hits),
                // Never seen is not "quiet": most installations use one or two paths.
                "quiet": seen.is_some_and(|h| now - h.last_received > QUIET_AFTER),
                "never": seen.is_none(),
            })
        })
        .collect();
    // The safety net's last round per decoy account: an account it cannot ask is a blind spot.
    let safety_net = state
        .ingest
        .detection_health()
        .await
        .map_err(err)?
        .safety_net
        .map(|h| {
            let accounts: Vec<_> = h
                .accounts
                .iter()
                .map(|a| json!({"account": a.account_id, "keys": a.keys, "errors": a.errors, "last_error": a.last_error}))
                .collect();
            json!({"checked": format!("{} ({})", human_time(h.checked_at), ago(h.checked_at)), "accounts": accounts})
        });
    let channels: Vec<_> = store
        .channel_health(now - DAY)
        .await
        .map_err(err)?
        .into_iter()
        .map(|c| {
            json!({
                "channel": c.channel,
                "last_delivered": when(c.last_delivered_at),
                "delivered": c.delivered,
                "pending": c.pending,
                "failed_recent": c.failed_recent,
                "last_error": c.last_error,
                "last_failed": when(c.last_failed_at),
                "alarm": c.failed_recent > 0,
            })
        })
        .collect();
    console_page(
        &state,
        &headers,
        &op,
        "console/overview.html",
        "overview",
        context! {
            counts => context! {
                total => tokens.len(),
                active => tokens.iter().filter(|t| t.expires_at.is_none_or(|e| e > now)).count(),
                expiring => expiring,
                with_hits => stats.len(),
            },
            windows => Value::from_serialize(windows),
            sources => Value::from_serialize(sources),
            chart => Value::from_serialize(chart),
            paths => Value::from_serialize(paths),
            safety_net => Value::from_serialize(safety_net),
            channels => Value::from_serialize(channels),
        },
    )
}

/// Bars for the last `CHART_DAYS` days, scaled to the busiest day (as the manage page draws).
fn chart(counts: &[(i64, u64)], now: i64) -> serde_json::Value {
    let today = now / DAY;
    let first = today - CHART_DAYS + 1;
    let max = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let bars: Vec<_> = (first..=today)
        .enumerate()
        .map(|(i, day)| {
            let n = counts.iter().find(|(d, _)| *d == day).map_or(0, |(_, n)| *n);
            let h = if max == 0 { 0 } else { (n * CHART_HEIGHT).div_ceil(max) };
            json!({"x": i * 10, "y": CHART_HEIGHT - h, "h": h, "count": n, "day": &human_time(day * DAY)[..10]})
        })
        .collect();
    json!({"bars": bars, "max": max, "height": CHART_HEIGHT, "width": CHART_DAYS * 10})
}
