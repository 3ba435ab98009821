//! `/console`: the overview. Keys AWS found in public, token counts by state, hit counts over
//! three windows, the top sources, hits per day, each detection path's heartbeat state and
//! latency, and whether each alert channel is alive.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use minijinja::{context, Value};
use serde_json::json;

use crate::http::extract::caller::ConsoleOperator;
use crate::http::html::{ago, chart, console_page, when};
use crate::http::html::{fail, UiError};
use crate::http::AppState;
use crate::render::human_time;
use canarykeys_core::detection::PathState;

const DAY: i64 = 86_400_000;
/// The newest exposures shown as banners; the alert feed lists the rest.
const EXPOSURE_BANNERS: u32 = 10;
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
    let now = state.clock.now_millis();
    let soon = now + 7 * DAY;
    let o = state
        .console
        .overview(now, chart::first_day(now), soon)
        .await
        .map_err(|e| fail(&state, e))?;
    let (exposures, exposure_total) = state
        .exposures
        .feed(None, EXPOSURE_BANNERS, 0)
        .await
        .map_err(|e| fail(&state, e))?;
    let windows: Vec<_> = o
        .windows
        .iter()
        .map(|(label, n)| json!({"label": label, "count": n}))
        .collect();
    let sources: Vec<_> = o
        .top_sources
        .iter()
        .map(|(ip, n)| {
            let ip_q: String = url::form_urlencoded::byte_serialize(ip.as_bytes()).collect();
            json!({"ip": ip, "ip_q": ip_q, "count": n})
        })
        .collect();
    let chart = chart::daily(&o.per_day, now);
    let health = &o.paths;
    let paths: Vec<_> = PATHS
        .iter()
        .map(|p| {
            let seen = health.iter().find(|h| h.path == *p);
            json!({
                "path": p,
                "last": seen.map_or_else(|| "never".to_owned(), |h| format!("{} ({})", human_time(h.last_received), ago(now, h.last_received))),
                "hits": seen.map_or(0, |h| h.hits),
            })
        })
        .collect();
    // Whether each path works is the heartbeat's to say: decoys are quiet in peacetime, so
    // the hits above prove nothing about a path that has none.
    let secs = |ms: Option<i64>| ms.map(|v| format!("{:.1} s", v as f64 / 1000.0));
    let proof: Vec<_> = state
        .heartbeat
        .paths()
        .await
        .map_err(|e| fail(&state, e))?
        .iter()
        .map(|p| {
            json!({
                "account": p.account_id,
                "region": p.region,
                "path": p.path,
                "state": p.state.as_str(),
                "alarm": matches!(p.state, PathState::Silent | PathState::Never),
                "last": p.last_seen_ms.map_or_else(|| "never".to_owned(), |t| format!("{} ({})", human_time(t), ago(now, t))),
                "p50": secs(p.latency_p50_ms),
                "p95": secs(p.latency_p95_ms),
            })
        })
        .collect();
    let heartbeat_on = state.heartbeat.settings().enabled;
    // The safety net's last round per decoy account: an account it cannot ask is a blind spot.
    let safety_net = state
        .ingest
        .detection_health()
        .await
        .map_err(|e| fail(&state, e))?
        .safety_net
        .map(|h| {
            let accounts: Vec<_> = h
                .accounts
                .iter()
                .map(|a| json!({"account": a.account_id, "keys": a.keys, "errors": a.errors, "last_error": a.last_error}))
                .collect();
            json!({"checked": format!("{} ({})", human_time(h.checked_at), ago(now, h.checked_at)), "accounts": accounts})
        });
    let channels: Vec<_> = o
        .channels
        .iter()
        .map(|c| {
            // A stream being retried says why now, before its last give-up.
            let retrying = o
                .streams
                .iter()
                .find(|s| c.channel.strip_prefix("stream:") == Some(s.stream.as_str()))
                .and_then(|s| s.retry_error.clone());
            json!({
                "channel": &c.channel,
                "retrying": retrying,
                "last_delivered": when(c.last_delivered_at),
                "delivered": c.delivered,
                "pending": c.pending,
                "failed_recent": c.failed_recent,
                "last_error": &c.last_error,
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
                total => o.counts.total,
                active => o.counts.active,
                expiring => o.counts.expiring,
                with_hits => o.with_hits,
            },
            exposures => Value::from_serialize(exposures),
            exposure_total => exposure_total,
            windows => Value::from_serialize(windows),
            sources => Value::from_serialize(sources),
            chart => Value::from_serialize(chart),
            paths => Value::from_serialize(paths),
            proof => Value::from_serialize(proof),
            heartbeat_on => heartbeat_on,
            safety_net => Value::from_serialize(safety_net),
            channels => Value::from_serialize(channels),
        },
    )
}
