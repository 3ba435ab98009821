//! `/console/alerts`: one feed of hits across all tokens, newest arrival first, filterable, or
//! with `kind=exposure` the exposures (keys AWS found in public), newest first; and
//! `/console/alerts/stream`, server-sent events that poll the database every second, so a hit
//! recorded by any replica reaches every open console.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use canarykeys_core::TokenId;
use canarykeys_store::{HitFilter, HitRecord};
use futures_util::stream::{self, Stream};
use minijinja::{context, Value};
use serde::{Deserialize, Serialize};

use crate::http::extract::caller::ConsoleOperator;
use crate::http::html::console_page;
use crate::http::html::{fail, UiError};
use crate::http::{ApiError, AppState};
use crate::render::human_time;
use crate::services::ExposureItem;

const PAGE: u32 = 50;
/// With a classification filter (computed here, not in SQL), this many rows are scanned.
const CLASS_SCAN: u32 = 2000;
/// A hit's `received_at` is set before its transaction commits, so one can become visible a
/// little after a later one: each poll looks back this far and skips what it already sent.
const LOOKBACK_MS: i64 = 10_000;
/// Hits read per poll at most: the newest of the look-back.
const LIVE_POLL: u32 = 500;
/// A stream ends after this long and the browser reconnects (with `Last-Event-ID`): graceful
/// shutdown waits for open responses, so a stream must not be endless.
/// The server's policy (`http/mod.rs`) plus `connect-src 'self'` for the live stream.
const FEED_CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const STREAM_LIFETIME: Duration = Duration::from_secs(15);

#[derive(Deserialize, Serialize, Default, Clone)]
#[serde(default)]
pub(super) struct FeedQuery {
    /// `hit` (or empty) or `exposure`.
    kind: String,
    token: String,
    /// `1h`, `24h`, `7d`, `30d`; empty: all time.
    range: String,
    ip: String,
    event: String,
    /// Substring of an enrichment label (`tor exit`, `cloud`, …), case-insensitive.
    class: String,
    page: u32,
    /// For the stream: only hits that arrived at or after this time (unix ms).
    after: Option<i64>,
}

impl FeedQuery {
    fn store_filter(&self, now: i64) -> HitFilter {
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let range_ms = match self.range.as_str() {
            "1h" => Some(3_600_000),
            "24h" => Some(86_400_000),
            "7d" => Some(7 * 86_400_000),
            "30d" => Some(30 * 86_400_000),
            _ => None,
        };
        HitFilter {
            token: TokenId::parse(self.token.trim()).ok(),
            since: range_ms.map(|r| now - r),
            until: None,
            source_ip: text(&self.ip),
            event_name: text(&self.event),
        }
    }

    /// The filters the stream applies in memory (the time range does not: live is "now").
    fn keeps_live(&self, h: &HitRecord) -> bool {
        // The range is left out below, so any time will do.
        let f = self.store_filter(0);
        f.token.as_ref().is_none_or(|t| *t == h.token_id)
            && f.source_ip.as_ref().is_none_or(|ip| *ip == h.source_ip)
            && f.event_name.as_ref().is_none_or(|e| *e == h.event_name)
    }
}

/// A hit as the feed shows it, in the page and in the stream alike.
#[derive(Serialize)]
struct FeedRow {
    id: String,
    token_id: String,
    token_url: String,
    memo: Option<String>,
    event_time: String,
    received_at: String,
    event_name: String,
    event_source: String,
    source_ip: String,
    user_agent: String,
    path: String,
    labels: Vec<String>,
    country: Option<String>,
}

fn row(state: &AppState, h: &HitRecord, memo: Option<&str>) -> FeedRow {
    let e = state.alerts.enrichment(h);
    FeedRow {
        id: h.id.clone(),
        token_id: h.token_id.as_str().to_owned(),
        token_url: format!("/console/tokens?token={}", h.token_id),
        memo: memo.map(str::to_owned),
        event_time: human_time(h.event_time),
        received_at: human_time(h.received_at),
        event_name: h.event_name.clone(),
        event_source: h.event_source.clone(),
        source_ip: h.source_ip.clone(),
        user_agent: h.user_agent.clone(),
        path: h.path.clone(),
        labels: e.labels,
        country: e.country,
    }
}

fn class_matches(state: &AppState, h: &HitRecord, class: &str) -> bool {
    let class = class.trim().to_lowercase();
    class.is_empty()
        || state
            .alerts
            .enrichment(h)
            .labels
            .iter()
            .any(|l| l.to_lowercase().contains(&class))
}

/// Which alerts the feed lists.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hit,
    Exposure,
}

impl Kind {
    fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "" | "hit" => Some(Self::Hit),
            "exposure" => Some(Self::Exposure),
            _ => None,
        }
    }
}

/// An exposure as the feed's table shows it. The location's link target is the one the service
/// checked (`location_url`, http(s) only); the template escapes every value.
#[derive(Serialize)]
struct ExposureRow {
    id: String,
    token_id: String,
    memo: Option<String>,
    source: &'static str,
    event_type: String,
    description: String,
    location: Option<String>,
    location_url: Option<String>,
    first_seen: String,
    last_seen: String,
    count: i64,
}

fn exposure_row(e: ExposureItem) -> ExposureRow {
    let shown = |t: &str| t.replace('T', " ").replace('Z', " UTC");
    ExposureRow {
        first_seen: shown(&e.first_seen),
        last_seen: shown(&e.last_seen),
        id: e.id,
        token_id: e.token_id,
        memo: e.token_memo,
        source: e.source,
        event_type: e.event_type,
        description: e.description,
        location: e.location,
        location_url: e.location_url,
        count: e.count,
    }
}

pub(super) async fn feed(
    State(state): State<AppState>,
    headers: HeaderMap,
    op: ConsoleOperator,
    Query(q): Query<FeedQuery>,
) -> Result<Response, UiError> {
    let err = |e| fail(&state, e);
    let Some(kind) = Kind::parse(&q.kind) else {
        let e = ApiError::BadRequest("kind must be hit or exposure".into());
        return Err(fail(&state, e));
    };
    if kind == Kind::Exposure {
        return exposures(&state, &headers, &op, &q).await;
    }
    let filter = q.store_filter(state.clock.now_millis());
    let offset = q.page.saturating_mul(PAGE);
    let hits: Vec<HitRecord> = if q.class.trim().is_empty() {
        state
            .console
            .feed(&filter, PAGE + 1, offset)
            .await
            .map_err(err)?
    } else {
        let scanned = state
            .console
            .feed(&filter, CLASS_SCAN, 0)
            .await
            .map_err(err)?;
        scanned
            .into_iter()
            .filter(|h| class_matches(&state, h, &q.class))
            .skip(offset as usize)
            .take(PAGE as usize + 1)
            .collect()
    };
    let more = hits.len() > PAGE as usize;
    let ids: Vec<_> = hits
        .iter()
        .take(PAGE as usize)
        .map(|h| h.token_id.clone())
        .collect();
    let memos: HashMap<String, String> = state.console.memos(&ids).await.map_err(err)?;
    let rows: Vec<_> = hits
        .iter()
        .take(PAGE as usize)
        .map(|h| {
            row(
                &state,
                h,
                memos.get(h.token_id.as_str()).map(String::as_str),
            )
        })
        .collect();
    // The stream carries the same filters, and starts where this page was read.
    let mut live = q.clone();
    live.page = 0;
    live.after = Some(state.clock.now_millis());
    let stream_qs = query_string(&live);
    let pager_qs = format!("{}&range={}", query_string(&q), enc(&q.range));
    let mut resp = console_page(
        &state,
        &headers,
        &op,
        "console/alerts.html",
        "alerts",
        context! {
            kind => "hit",
            hits => Value::from_serialize(rows),
            q => Value::from_serialize(&q),
            stream_url => format!("/console/alerts/stream?{stream_qs}"),
            pager_qs => pager_qs,
            next_page => more.then_some(q.page + 1),
            prev_page => q.page.checked_sub(1),
            live => q.page == 0,
        },
    )?;
    // The server-wide policy has `default-src 'none'`, which blocks EventSource; this page alone
    // may connect back to its own origin (the layer keeps a policy a handler already set).
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FEED_CSP),
    );
    Ok(resp)
}

/// The exposure feed: the token filter applies; the hit filters (address, call, label, time)
/// have no meaning for an exposure and are left out.
async fn exposures(
    state: &AppState,
    headers: &HeaderMap,
    op: &ConsoleOperator,
    q: &FeedQuery,
) -> Result<Response, UiError> {
    let token = TokenId::parse(q.token.trim()).ok();
    let offset = q.page.saturating_mul(PAGE);
    let (items, total) = state
        .exposures
        .feed(token.as_ref(), PAGE, offset)
        .await
        .map_err(|e| fail(state, e))?;
    let more = u64::from(offset) + u64::from(PAGE) < total;
    let rows: Vec<_> = items.into_iter().map(exposure_row).collect();
    console_page(
        state,
        headers,
        op,
        "console/alerts.html",
        "alerts",
        context! {
            kind => "exposure",
            exposures => Value::from_serialize(rows),
            total => total,
            q => Value::from_serialize(q),
            pager_qs => format!("kind=exposure&token={}", enc(&q.token)),
            next_page => more.then_some(q.page + 1),
            prev_page => q.page.checked_sub(1),
            live => false,
        },
    )
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The filters as a query string, for the stream and the pager links (percent-encoded here:
/// the templates only HTML-escape).
fn query_string(q: &FeedQuery) -> String {
    format!(
        "token={}&ip={}&event={}&class={}&after={}",
        enc(&q.token),
        enc(&q.ip),
        enc(&q.event),
        enc(&q.class),
        q.after.unwrap_or_default()
    )
}

/// What one open stream remembers between polls.
struct Cursor {
    state: AppState,
    q: FeedQuery,
    /// Arrival time from which the next poll reads (minus the look-back).
    from: i64,
    /// Ids already sent, with their arrival time, pruned as the look-back window moves.
    sent: HashMap<String, i64>,
    deadline: tokio::time::Instant,
}

impl Cursor {
    /// Polls until there is something new, and returns it as one event (a JSON array).
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        let console = self.state.console.clone();
        loop {
            if tokio::time::Instant::now() >= self.deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let hits = match console
                .hits_received_since(self.from - LOOKBACK_MS, LIVE_POLL)
                .await
            {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(error = %e, "alert stream poll failed");
                    continue;
                }
            };
            let mut rows = Vec::new();
            // The newest `LIVE_POLL` of the look-back, oldest of them first: a flood in the
            // window cannot hide what arrived last (it used to read oldest first and stall).
            for h in hits.into_iter().rev() {
                self.from = self.from.max(h.received_at);
                if self.sent.contains_key(&h.id) {
                    continue;
                }
                self.sent.insert(h.id.clone(), h.received_at);
                if !self.q.keeps_live(&h) || !class_matches(&self.state, &h, &self.q.class) {
                    continue;
                }
                let memo = console.token(&h.token_id).await.ok().flatten();
                rows.push(row(&self.state, &h, memo.as_ref().map(|t| t.memo.as_str())));
            }
            let horizon = self.from - LOOKBACK_MS;
            self.sent.retain(|_, at| *at >= horizon);
            if !rows.is_empty() {
                // The id is where a reconnecting browser resumes (`Last-Event-ID`).
                let event = Event::default()
                    .event("hits")
                    .id(self.from.to_string())
                    .retry(Duration::from_secs(1))
                    .data(serde_json::to_string(&rows).unwrap_or_default());
                return Some((Ok(event), self));
            }
        }
    }
}

pub(super) async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    _op: ConsoleOperator,
    Query(q): Query<FeedQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    // Never earlier than the look-back allows: a stale `after` must not replay history.
    let now = state.clock.now_millis();
    let from = resumed.or(q.after).unwrap_or(now).max(now - 60_000);
    // Hits the page already showed are not sent again: they arrived before `after`.
    let cursor = Cursor {
        state,
        q,
        from,
        sent: HashMap::new(),
        deadline: tokio::time::Instant::now() + STREAM_LIFETIME,
    };
    let start = from;
    let s = stream::unfold(cursor, move |mut c| async move {
        if c.sent.is_empty() && c.from == start {
            // Seed with what arrived in the look-back before `after`, which the page has shown.
            if let Ok(old) = c
                .state
                .console
                .hits_received_since(start - LOOKBACK_MS, LIVE_POLL)
                .await
            {
                for h in old.into_iter().filter(|h| h.received_at < start) {
                    c.sent.insert(h.id, h.received_at);
                }
            }
        }
        c.next().await
    });
    Sse::new(s).keep_alive(KeepAlive::default())
}
