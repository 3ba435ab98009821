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
    AlertPlan, ChannelKind, HitRecord, NewDelivery, Store, StoreError, TokenRecord, WindowHit,
    WindowSummary,
};
use ipnet::IpNet;

use crate::enrich::Enricher;
use crate::notify::{AlertKind, AlertView};
use crate::render::rfc3339;

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
    /// Why the token is gone, said in every message about it.
    gone: Option<&'static str>,
}

fn gone_note(token: &TokenRecord, now: i64) -> &'static str {
    if token.expires_at.is_some_and(|e| e <= now) {
        "This token has expired and was deleted after this use; its key no longer works."
    } else {
        "This token was deleted after this use; its key no longer works."
    }
}

impl AlertService {
    /// A hit recorded before its token was deleted or expired is still alerted, from the copy
    /// the delete left behind.
    async fn alert_token(&self, id: &TokenId, now: i64) -> Result<Option<AlertToken>, StoreError> {
        if let Some(token) = self.store.get_token(id).await? {
            return Ok(Some(AlertToken { token, gone: None }));
        }
        Ok(self
            .store
            .get_deleted_token(id)
            .await?
            .map(|token| AlertToken {
                gone: Some(gone_note(&token, now)),
                token,
            }))
    }

    fn mark_gone(view: &mut AlertView, gone: Option<&str>) {
        if let Some(gone) = gone {
            view.note = Some(match view.note.take() {
                Some(note) => format!("{gone} {note}"),
                None => gone.to_owned(),
            });
        }
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
        }
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
                token_id: token.id.clone(),
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
        let mut plans = Vec::with_capacity(alerts.len());
        for alert in alerts {
            let id = &alert.hit.token_id;
            if !tokens.contains_key(id) {
                tokens.insert(id.clone(), self.alert_token(id, now).await?);
            }
            let Some(Some(AlertToken { token, gone })) = tokens.get_mut(id) else {
                continue;
            };
            let plan = if let Some(reason) = ignored(token, &alert.hit.source_ip) {
                AlertPlan::Ignore { reason }
            } else if gone.is_none()
                && self.cooldown_ms > 0
                && token.alerting.cooldown_until.is_some_and(|u| u > now)
            {
                AlertPlan::Group(WindowHit::from(&alert.hit))
            } else {
                let mut view = self.view(AlertKind::Hit, &alert.alert_id, token, &alert.hit);
                Self::mark_gone(&mut view, *gone);
                // A deleted token opens no window: nothing would close it.
                let cooldown_until =
                    (self.cooldown_ms > 0 && gone.is_none()).then_some(now + self.cooldown_ms);
                if cooldown_until.is_some() {
                    token.alerting.cooldown_until = cooldown_until;
                }
                AlertPlan::Send {
                    deliveries: self.deliveries(token, &view, now),
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
            let Some(AlertToken { token, gone }) = self.alert_token(&window.token_id, now).await?
            else {
                continue;
            };
            let mut view = self.summary_view(&window, &token);
            Self::mark_gone(&mut view, gone);
            let deliveries = self.deliveries(&token, &view, now);
            let next = (self.cooldown_ms > 0 && gone.is_none()).then_some(now + self.cooldown_ms);
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
        let kind = AlertKind::Summary {
            count: w.hits,
            addresses: w.addresses.values.clone(),
            events: w.events.values.clone(),
            first_event_time: rfc3339(w.first_event_time),
            last_event_time: rfc3339(w.last_event_time),
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
            w.hits,
            if w.hits == 1 { "" } else { "s" },
        );
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
