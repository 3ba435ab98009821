//! Alert planning: turns new hits into messages. The first hit after a quiet period is sent at
//! once and opens a cooldown window; hits inside the window are counted into the window's row
//! (at commit, or here) and one summary is sent from that row when it closes; hits from ignored
//! sources are recorded and marked, not sent. Every message becomes one outbox row per enabled
//! channel, with its content frozen.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use canarykeys_core::{ids, TokenId};
use canarykeys_store::{
    AlertPlan, ChannelKind, EndCause, HitRecord, NewDelivery, Store, StoreError, TokenRecord,
    WindowHit, WindowSummary,
};
use ipnet::IpNet;

use crate::enrich::Enricher;
use crate::notify::{AlertKind, AlertView};
use crate::render::{human_time, rfc3339};
use crate::services::LateEvents;

/// Alerts planned per round (one transaction).
pub const PLAN_ROUND: u32 = 500;

#[derive(Clone)]
pub struct AlertService {
    store: Arc<dyn Store>,
    enricher: Enricher,
    public_url: Arc<str>,
    cooldown_ms: i64,
    /// False when no SMTP server is configured: email rows are written as failed, saying so.
    email_configured: bool,
    /// Tells a use before a token's end from a use of a retired key.
    late: LateEvents,
    /// `[streams]`: the operator's sinks that get every alert too.
    streams: crate::services::streams::StreamRouting,
}

/// Parses one ignore-list entry: an address or a CIDR range.
pub fn parse_source(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

fn ignored(token: &TokenRecord, source_ip: &str) -> Option<String> {
    let ip: IpAddr = source_ip.parse().ok()?;
    token
        .alerting
        .ignore_sources
        .iter()
        .find(|e| parse_source(e).is_some_and(|net| net.contains(&ip)))
        .map(|e| format!("source on the ignore list ({e})"))
}

/// The token an alert belongs to, live or deleted since its hit was recorded.
struct AlertToken {
    token: TokenRecord,
    /// When and how the token ended, for a tombstone.
    end: Option<(i64, EndCause)>,
}

/// What a message about a use of an ended token says: when it ended, and whether the use came
/// before (a late record) or after (a retired key: someone still holds it).
fn end_note(died_at: i64, cause: EndCause, retired: bool) -> String {
    let when = human_time(died_at);
    match (cause, retired) {
        (EndCause::Deleted, false) => format!(
            "This token was deleted after this use (at {when}); its key no longer works."
        ),
        (EndCause::Expired, false) => format!(
            "This token has expired and was deleted after this use (at {when}); its key no longer works."
        ),
        (EndCause::Deleted, true) => format!(
            "Retired key: this token was deleted at {when}, before this use. Someone still holds the key and tried it."
        ),
        (EndCause::Expired, true) => format!(
            "Retired key: this token expired and was deleted at {when}, before this use. Someone still holds the key and tried it."
        ),
    }
}

impl AlertService {
    /// A hit recorded before its token was deleted or expired is still alerted, from the
    /// tombstone the delete left behind; so is a late record, and a use of the retired key.
    async fn alert_token(&self, id: &TokenId) -> Result<Option<AlertToken>, StoreError> {
        if let Some(token) = self.store.get_token(id).await? {
            return Ok(Some(AlertToken { token, end: None }));
        }
        Ok(self.store.get_tombstone(id).await?.map(|t| AlertToken {
            token: t.token,
            end: Some((t.died_at, t.cause)),
        }))
    }

    /// Whether `hit` of a token that ended at `died_at` is a use of the retired key. A hit
    /// whose time is its arrival (a record with no usable time, or the sensor, which sees the
    /// call as it happens) arrived after the end, and counts as after it.
    fn is_retired(&self, died_at: i64, hit: &HitRecord) -> bool {
        let time = (hit.event_time != hit.received_at || hit.received_at < died_at)
            .then_some(hit.event_time);
        self.late.is_retired(died_at, time)
    }

    /// Says in `view` that the token is gone, when, and (for a use after that) that the key is
    /// retired: its own headline and the `retired` flag.
    fn mark_gone(view: &mut AlertView, end: Option<(i64, EndCause)>, retired: bool) {
        let Some((died_at, cause)) = end else {
            return;
        };
        let gone = end_note(died_at, cause, retired);
        view.note = Some(match view.note.take() {
            Some(note) => format!("{gone} {note}"),
            None => gone,
        });
        if retired {
            view.retired = true;
            view.headline = format!("Retired key used: {}", view.headline);
        }
    }

    /// `[detection] late_event_window` and `clock_skew` (default 7 days and 5 minutes).
    pub fn with_late_events(mut self, late: LateEvents) -> Self {
        self.late = late;
        self
    }

    pub fn new(
        store: Arc<dyn Store>,
        enricher: Enricher,
        public_url: Arc<str>,
        cooldown_ms: i64,
        email_configured: bool,
    ) -> Self {
        Self {
            store,
            enricher,
            public_url,
            cooldown_ms,
            email_configured,
            late: LateEvents::default(),
            streams: Default::default(),
        }
    }

    /// Streams the alerts too (`[streams]`).
    pub fn with_streams(mut self, streams: crate::services::streams::StreamRouting) -> Self {
        self.streams = streams;
        self
    }

    /// The rows of an alert: the token's own channels (`deliveries`), then the streams that
    /// take it.
    pub async fn all_deliveries(
        &self,
        token: &TokenRecord,
        view: &AlertView,
        now: i64,
    ) -> Result<Vec<NewDelivery>, StoreError> {
        let mut rows = self.deliveries(token, view, now);
        if !self.streams.is_empty() {
            let made = self
                .streams
                .operator_made(self.store.as_ref(), &token.id)
                .await?;
            rows.extend(self.streams.alert_rows(view, made, now));
        }
        Ok(rows)
    }

    /// The server's public address, for links in messages.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// What we know of a hit's source.
    pub fn enrichment(&self, hit: &HitRecord) -> crate::enrich::Enrichment {
        self.enricher.enrich(
            &hit.source_ip,
            &hit.user_agent,
            hit.vpc_endpoint_id.as_deref(),
            &hit.event_source,
        )
    }

    /// What a message about `hit` says.
    pub fn view(
        &self,
        kind: AlertKind,
        alert_id: &str,
        token: &TokenRecord,
        hit: &HitRecord,
    ) -> AlertView {
        let enrichment = self.enrichment(hit);
        let or = |s: &str, fallback: &str| {
            if s.is_empty() {
                fallback.to_owned()
            } else {
                s.to_owned()
            }
        };
        AlertView {
            headline: format!(
                "{} on {} in {} from {}",
                or(&hit.event_name, "an unnamed call"),
                or(&hit.event_source, "an unknown service"),
                or(&hit.region, "an unknown region"),
                or(&hit.source_ip, "an unknown address"),
            ),
            kind,
            alert_id: alert_id.to_owned(),
            token_id: token.id.to_string(),
            memo: token.memo.to_string(),
            event_name: hit.event_name.clone(),
            event_source: hit.event_source.clone(),
            region: hit.region.clone(),
            source_ip: hit.source_ip.clone(),
            user_agent: hit.user_agent.clone(),
            error_code: hit.error_code.clone(),
            error_message: hit.error_message.clone(),
            event_time: rfc3339(hit.event_time),
            received_at: rfc3339(hit.received_at),
            account_id: hit.account_id.clone(),
            access_key_id: hit.access_key_id.clone(),
            path: hit.path.clone(),
            note: hit.note.clone(),
            source_labels: enrichment.labels,
            country: enrichment.country,
            asn: enrichment.asn,
            manage_url: format!("{}/manage/{}", self.public_url, token.id),
            history_url: format!("{}/manage/{}#history", self.public_url, token.id),
            retired: false,
        }
    }

    /// One outbox row per enabled channel of the token.
    pub fn deliveries(&self, token: &TokenRecord, view: &AlertView, now: i64) -> Vec<NewDelivery> {
        let kind = view.kind.name();
        let payload = serde_json::to_string(view).expect("an AlertView serialises");
        let mut out = Vec::new();
        let mut push = |channel, target: String, unconfigured: Option<&str>| {
            out.push(NewDelivery {
                // Ordered: a token's deliveries planned in one round keep their order.
                id: ids::sequential_id(),
                token_id: Some(token.id.clone()),
                message_id: view.alert_id.clone(),
                kind: kind.to_owned(),
                channel,
                target,
                payload: payload.clone(),
                state: if unconfigured.is_some() {
                    "failed"
                } else {
                    "pending"
                }
                .to_owned(),
                last_error: unconfigured.map(str::to_owned),
                created_at: now,
            })
        };
        if let (Some(email), true) = (&token.email, token.email_enabled) {
            let missing = (!self.email_configured)
                .then_some("email is not configured on this server ([smtp] host)");
            push(ChannelKind::Email, email.to_string(), missing);
        }
        if let (Some(hook), true) = (&token.webhook, token.webhook_enabled) {
            push(ChannelKind::Webhook, hook.to_string(), None);
        }
        out
    }

    /// Plans a round of new alerts (every token's oldest first, see `OutboxStore::new_alerts`) and
    /// applies the plans in one transaction.
    /// Returns how many were planned; a full round means more may be waiting.
    #[tracing::instrument(skip_all, fields(now))]
    pub async fn plan_new(&self, now: i64) -> Result<usize, StoreError> {
        let alerts = self.store.new_alerts(PLAN_ROUND).await?;
        // Each token is read once per round; a plan that opens a window updates the copy, so
        // the token's later alerts in the round are grouped exactly as one by one. A deleted
        // token's copy still alerts, saying it is gone.
        let mut tokens: HashMap<TokenId, Option<AlertToken>> = HashMap::new();
        // Whose each token is, asked once per round and only when a stream needs to know.
        let mut made: HashMap<TokenId, bool> = HashMap::new();
        let mut plans = Vec::with_capacity(alerts.len());
        for alert in alerts {
            let id = &alert.hit.token_id;
            if !tokens.contains_key(id) {
                tokens.insert(id.clone(), self.alert_token(id).await?);
            }
            let Some(Some(AlertToken { token, end })) = tokens.get_mut(id) else {
                continue;
            };
            let gone = end.is_some();
            let plan = if let Some(reason) = ignored(token, &alert.hit.source_ip) {
                AlertPlan::Ignore { reason }
            } else if !gone && token.alerting.cooldown_until.is_some_and(|u| u > now) {
                // An open window: the cooldown's, or an expected-use window held until a
                // confirm (open whatever the cooldown is, even none).
                AlertPlan::Group(WindowHit::from(&alert.hit))
            } else {
                let mut view = self.view(AlertKind::Hit, &alert.alert_id, token, &alert.hit);
                let retired = end.is_some_and(|(died_at, _)| self.is_retired(died_at, &alert.hit));
                Self::mark_gone(&mut view, *end, retired);
                // A deleted token opens no window: nothing would close it.
                let cooldown_until =
                    (self.cooldown_ms > 0 && !gone).then_some(now + self.cooldown_ms);
                if cooldown_until.is_some() {
                    token.alerting.cooldown_until = cooldown_until;
                }
                let mut deliveries = self.deliveries(token, &view, now);
                if !self.streams.is_empty() {
                    let by_operator = match made.get(&token.id) {
                        Some(m) => *m,
                        None => {
                            let m = self
                                .streams
                                .operator_made(self.store.as_ref(), &token.id)
                                .await?;
                            made.insert(token.id.clone(), m);
                            m
                        }
                    };
                    deliveries.extend(self.streams.alert_rows(&view, by_operator, now));
                }
                AlertPlan::Send {
                    deliveries,
                    cooldown_until,
                }
            };
            plans.push((alert.alert_id, token.id.clone(), plan));
        }
        if plans.is_empty() {
            return Ok(0);
        }
        self.store.plan_alerts(&plans).await
    }

    /// Sends a summary for every window that closed with gathered hits, from the window's row
    /// alone. A summary opens the next window, so a steady stream of calls gives one message
    /// per window.
    #[tracing::instrument(skip_all, fields(now))]
    pub async fn close_windows(&self, now: i64) -> Result<usize, StoreError> {
        let mut sent = 0;
        for window in self.store.closed_windows(now).await? {
            let Some(AlertToken { token, end }) = self.alert_token(&window.token_id).await? else {
                continue;
            };
            // A window gathers only a live token's hits: its summary is of uses before the end.
            let mut view = self.summary_view(&window, &token);
            Self::mark_gone(&mut view, end, false);
            let deliveries = self.all_deliveries(&token, &view, now).await?;
            let next = (self.cooldown_ms > 0 && end.is_none()).then_some(now + self.cooldown_ms);
            // False when another replica summarized this window first, or a hit joined it
            // since it was read (the next round sends it, counted).
            if self.store.plan_summary(&window, &deliveries, next).await? {
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// What a window's summary says: the count, the span, a few addresses and events (and how
    /// many calls had others), and the details of its last call.
    fn summary_view(&self, w: &WindowSummary, token: &TokenRecord) -> AlertView {
        // Folded calls count in the total and widen the span; the addresses and events named
        // are the stored calls' (the folded tallies hold the rest, counted as "other").
        let folded = &w.folded;
        let total = w.hits + folded.count;
        let first = folded
            .first_event_time
            .map_or(w.first_event_time, |f| f.min(w.first_event_time));
        let last = folded
            .last_event_time
            .map_or(w.last_event_time, |l| l.max(w.last_event_time));
        let kind = AlertKind::Summary {
            count: total,
            folded: folded.count,
            addresses: w.addresses.values.clone(),
            events: w.events.values.clone(),
            first_event_time: rfc3339(first),
            last_event_time: rfc3339(last),
        };
        let last = w.last_hit_or_stand_in();
        let mut view = self.view(kind, &w.id, token, &last);
        let n = w.addresses.values.len();
        let addresses = if w.addresses.others == 0 {
            format!("{n} address{}", if n == 1 { "" } else { "es" })
        } else {
            format!("more than {n} addresses")
        };
        let mut events = w.events.values.join(", ");
        if w.events.others > 0 {
            let more = w.events.others;
            events.push_str(&format!(
                " and {more} more call{} of other kinds",
                if more == 1 { "" } else { "s" }
            ));
        }
        view.headline = format!(
            "{} more call{} from {addresses}: {events}",
            total,
            if total == 1 { "" } else { "s" },
        );
        if folded.count > 0 {
            let others = folded.addresses.counts.len();
            view.headline.push_str(&format!(
                " ({} of them past the stored-call budget, counted but not stored one by one, \
                 from {}{} address{})",
                folded.count,
                if folded.addresses.other > 0 {
                    "more than "
                } else {
                    ""
                },
                others,
                if others == 1 { "" } else { "es" },
            ));
        }
        view
    }

    /// Queues a test message through every enabled channel; returns the rows written.
    #[tracing::instrument(skip_all, fields(token = %token.id))]
    pub async fn test_alert(
        &self,
        token: &TokenRecord,
        now: i64,
    ) -> Result<Vec<NewDelivery>, StoreError> {
        let sample = HitRecord {
            id: String::new(),
            token_id: TokenId::clone(&token.id),
            event_id: String::new(),
            event_time: now,
            received_at: now,
            event_name: "GetCallerIdentity".into(),
            event_source: "sts.amazonaws.com".into(),
            region: token.region.to_string(),
            source_ip: "203.0.113.7".into(),
            user_agent: "canarykeys test alert".into(),
            error_code: None,
            error_message: None,
            account_id: Some(token.account_id.to_string()),
            access_key_id: Some(token.access_key_id.to_string()),
            tls_host: None,
            vpc_endpoint_id: None,
            request_id: None,
            path: "test".into(),
            note: Some("This is a test alert: the key was not used.".into()),
            suppressed: None,
            raw: "{}".into(),
        };
        let view = self.view(AlertKind::Test, &ids::random_id(), token, &sample);
        let deliveries = self.deliveries(token, &view, now);
        self.store.insert_deliveries(&deliveries).await?;
        Ok(deliveries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_entries() {
        assert!(parse_source("203.0.113.0/24").is_some());
        assert!(parse_source("198.51.100.7").is_some());
        assert!(parse_source("2001:db8::/32").is_some());
        assert!(parse_source("example.com").is_none());
        assert!(parse_source("10.0.0.0/33").is_none());
    }
}
