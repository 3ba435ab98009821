//! Which streams get which record (`[streams.<type>] include` and `tokens`), as outbox rows
//! the callers write in the same transaction as the alert itself. A stream's rows have no
//! token (the lane is the stream's: `stream/<type>`), and no secret: the sink reads its
//! settings when it sends.

use std::sync::Arc;

use canarykeys_core::{ids, TokenId};
use canarykeys_store::{AuditRecord, ChannelKind, NewDelivery, Store, StoreError, StreamKind};

use crate::config::{Include, StreamsConfig, TokenScope};
use crate::notify::operator::OperatorAlert;
use crate::notify::stream::{AuditEntry, StreamRecord};
use crate::notify::{AlertKind, AlertView};

/// One configured stream's choices.
#[derive(Clone, Debug)]
struct Route {
    kind: StreamKind,
    include: Vec<Include>,
    tokens: TokenScope,
}

/// The streams' routing. Cheap to clone; `default()` routes nothing.
#[derive(Clone, Default)]
pub struct StreamRouting {
    routes: Arc<Vec<Route>>,
}

impl StreamRouting {
    pub fn new(config: &StreamsConfig) -> Self {
        Self {
            routes: Arc::new(
                config
                    .enabled()
                    .into_iter()
                    .map(|(kind, c)| Route {
                        kind,
                        include: c.include.clone(),
                        tokens: c.tokens,
                    })
                    .collect(),
            ),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Whether any stream takes only operators' tokens: then the caller must say whose a
    /// token is.
    pub fn needs_owner(&self) -> bool {
        self.routes
            .iter()
            .any(|r| r.include.contains(&Include::Alerts) && r.tokens == TokenScope::Operators)
    }

    /// Whether a stream takes audit entries.
    pub fn audit_streams(&self) -> Vec<StreamKind> {
        self.routes
            .iter()
            .filter(|r| r.include.contains(&Include::Audit))
            .map(|r| r.kind)
            .collect()
    }

    /// The rows for a token's alert. `operator_made`: whether an operator (or their API key)
    /// made the token. Test alerts are never streamed.
    pub fn alert_rows(&self, view: &AlertView, operator_made: bool, now: i64) -> Vec<NewDelivery> {
        if view.kind == AlertKind::Test {
            return Vec::new();
        }
        let record = StreamRecord::Alert(Box::new(view.clone()));
        let wanted = |r: &&Route| {
            r.include.contains(&Include::Alerts) && (r.tokens == TokenScope::All || operator_made)
        };
        self.rows(&record, view.kind.name(), wanted, now)
    }

    /// The rows for an operator alert.
    pub fn operator_rows(&self, alert: &OperatorAlert, now: i64) -> Vec<NewDelivery> {
        let record = StreamRecord::Operator(Box::new(alert.clone()));
        self.rows(
            &record,
            "operator",
            |r| r.include.contains(&Include::Operator),
            now,
        )
    }

    /// The rows for an audit entry.
    pub fn audit_rows(&self, entry: &AuditRecord, now: i64) -> Vec<NewDelivery> {
        let record = StreamRecord::Audit(AuditEntry {
            id: entry.id.clone(),
            at: crate::render::rfc3339(entry.at),
            actor: entry.actor.clone(),
            action: entry.action.clone(),
            target: entry.target.clone(),
            details: entry.details.clone(),
        });
        self.rows(
            &record,
            "audit",
            |r| r.include.contains(&Include::Audit),
            now,
        )
    }

    fn rows(
        &self,
        record: &StreamRecord,
        kind: &str,
        wanted: impl Fn(&&Route) -> bool,
        now: i64,
    ) -> Vec<NewDelivery> {
        let mut chosen = self.routes.iter().filter(wanted).peekable();
        if chosen.peek().is_none() {
            return Vec::new();
        }
        let payload = serde_json::to_string(record).expect("a stream record serialises");
        chosen
            .map(|r| NewDelivery {
                // Ordered: the stream's lane sends in the order rows were written.
                id: ids::sequential_id(),
                token_id: None,
                message_id: record.id().to_owned(),
                kind: kind.to_owned(),
                channel: ChannelKind::Stream(r.kind),
                target: r.kind.as_str().to_owned(),
                payload: payload.clone(),
                state: "pending".into(),
                last_error: None,
                created_at: now,
            })
            .collect()
    }

    /// Whether `token` was made by an operator, asked only when a stream needs to know.
    pub async fn operator_made(
        &self,
        store: &dyn Store,
        token: &TokenId,
    ) -> Result<bool, StoreError> {
        if !self.needs_owner() {
            return Ok(true);
        }
        Ok(store.token_owner(token).await?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(v: serde_json::Value) -> StreamRouting {
        StreamRouting::new(&serde_json::from_value(v).unwrap())
    }

    #[test]
    fn include_and_tokens_choose_the_rows() {
        let r = routing(serde_json::json!({
            "syslog": {"address": "udp://127.0.0.1:514"},
            "pagerduty": {"routing_key": "k", "tokens": "all", "include": "alerts"},
            "splunk_hec": {"url": "https://s/", "token": "t", "include": ["audit"]},
        }));
        let mut view = crate::notify::webhook::hostile_alert();
        let kinds =
            |rows: Vec<NewDelivery>| rows.iter().map(|d| d.channel.as_str()).collect::<Vec<_>>();
        assert_eq!(
            kinds(r.alert_rows(&view, true, 1)),
            ["stream:syslog", "stream:pagerduty"]
        );
        assert_eq!(kinds(r.alert_rows(&view, false, 1)), ["stream:pagerduty"]);
        view.kind = AlertKind::Test;
        assert!(r.alert_rows(&view, true, 1).is_empty());
        let op = crate::notify::operator::hostile();
        assert_eq!(kinds(r.operator_rows(&op, 1)), ["stream:syslog"]);
        assert_eq!(r.audit_streams(), [StreamKind::SplunkHec]);
        let row = &r.operator_rows(&op, 1)[0];
        assert_eq!(row.token_id, None);
        assert_eq!(row.message_id, op.alert_id);
        assert!(routing(serde_json::json!({}))
            .alert_rows(&view, true, 1)
            .is_empty());
    }
}
