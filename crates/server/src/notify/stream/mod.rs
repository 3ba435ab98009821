//! Streams (`[streams.<type>]`): operator-level sinks that get every alert of every token, and
//! optionally operator alerts and audit entries, each through an outbox lane of its own
//! (`stream/<type>`). A [`StreamRecord`] is what a row carries; a [`Sink`] turns records into
//! its receiver's wire format and sends them, one at a time or in batches.
//!
//! Every string in a record that came from CloudTrail or a client is attacker-controlled: each
//! format keeps it data (JSON stays JSON; syslog escapes structured data and strips controls).

pub mod ecs;
pub mod elastic;
mod http;
pub mod ocsf;
pub mod pagerduty;
pub mod splunk;
pub mod syslog;
mod syslog_net;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use canarykeys_store::StreamKind;
use serde::{Deserialize, Serialize};

use super::operator::OperatorAlert;
use super::{AlertKind, AlertView, Outcome};
use crate::config::StreamsConfig;

/// An audit log entry, as a stream receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: String,
    /// RFC 3339, UTC.
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: String,
}

/// One thing a stream tells: the payload of its outbox row.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum StreamRecord {
    /// A token's alert (hit, summary, exposure, tamper; `test` only from `doctor --send-test`).
    Alert(Box<AlertView>),
    /// An alert about the system (`canarykeys.operator/v1`).
    Operator(Box<OperatorAlert>),
    Audit(AuditEntry),
}

impl StreamRecord {
    /// The alert's (or entry's) stable id: receivers drop repeats by it.
    pub fn id(&self) -> &str {
        match self {
            Self::Alert(a) => &a.alert_id,
            Self::Operator(o) => &o.alert_id,
            Self::Audit(e) => &e.id,
        }
    }

    /// When it happened, RFC 3339 (the event's time for an alert).
    pub fn time(&self) -> &str {
        match self {
            Self::Alert(a) => match &a.kind {
                AlertKind::Summary {
                    last_event_time, ..
                } => last_event_time,
                AlertKind::Exposure { last_seen, .. } => last_seen,
                _ => &a.event_time,
            },
            Self::Operator(o) => &o.at,
            Self::Audit(e) => &e.at,
        }
    }

    /// The time as unix milliseconds (0 when unreadable).
    pub fn time_ms(&self) -> i64 {
        time::OffsetDateTime::parse(self.time(), &time::format_description::well_known::Rfc3339)
            .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
            .unwrap_or(0)
    }

    /// Its type: the alert kind (`hit`, `summary`, …), `operator` or `audit`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Alert(a) => a.kind.name(),
            Self::Operator(_) => "operator",
            Self::Audit(_) => "audit",
        }
    }

    /// One sentence for people (our headline; may quote reported text).
    pub fn headline(&self) -> String {
        match self {
            Self::Alert(a) => a.headline.clone(),
            Self::Operator(o) => o.headline.clone(),
            Self::Audit(e) => format!("{} {} {}", e.actor, e.action, e.target),
        }
    }

    /// The record as the generic JSON a receiver documents: `canarykeys.alert/v1` for an
    /// alert, `canarykeys.operator/v1` for an operator alert, `canarykeys.audit/v1` for an entry.
    pub fn generic(&self) -> serde_json::Value {
        match self {
            Self::Alert(a) => super::webhook::generic::payload(a),
            Self::Operator(o) => serde_json::to_value(o).expect("an operator alert serialises"),
            Self::Audit(e) => serde_json::json!({
                "schema": AUDIT_SCHEMA,
                "type": "audit",
                "alert_id": e.id,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "details": e.details,
            }),
        }
    }
}

/// The generic schema of an audit entry sent to a stream.
pub const AUDIT_SCHEMA: &str = "canarykeys.audit/v1";

/// One receiver. `send` gets at most `batch()` records, oldest first, and says how each went
/// (same length, same order): a batch can fail in part.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// How many records one send may carry (1: one at a time, in order).
    fn batch(&self) -> usize {
        1
    }

    async fn send(&self, records: &[StreamRecord]) -> Vec<Outcome>;

    /// For `doctor`: resolves the address and connects (nothing is sent). Says where it
    /// connected, without secrets.
    async fn check(&self) -> Result<String, String>;
}

/// Every configured stream's sink.
#[derive(Clone, Default)]
pub struct Streams {
    sinks: BTreeMap<StreamKind, Arc<dyn Sink>>,
}

impl Streams {
    /// The sinks of `[streams]`. Fails on a setting that cannot work (a CA file that does not
    /// read).
    pub fn from_config(config: &StreamsConfig) -> Result<Self, String> {
        let mut sinks: BTreeMap<StreamKind, Arc<dyn Sink>> = BTreeMap::new();
        if let Some(s) = &config.syslog {
            sinks.insert(StreamKind::Syslog, Arc::new(syslog::SyslogSink::new(s)?));
        }
        if let Some(s) = &config.splunk_hec {
            sinks.insert(StreamKind::SplunkHec, Arc::new(splunk::SplunkSink::new(s)?));
        }
        if let Some(s) = &config.elastic {
            sinks.insert(StreamKind::Elastic, Arc::new(elastic::ElasticSink::new(s)?));
        }
        if let Some(s) = &config.ocsf {
            sinks.insert(StreamKind::Ocsf, Arc::new(ocsf::OcsfSink::new(s)?));
        }
        if let Some(s) = &config.pagerduty {
            sinks.insert(
                StreamKind::Pagerduty,
                Arc::new(pagerduty::PagerdutySink::new(s)?),
            );
        }
        Ok(Self { sinks })
    }

    pub fn get(&self, kind: StreamKind) -> Option<Arc<dyn Sink>> {
        self.sinks.get(&kind).cloned()
    }

    pub fn iter(&self) -> impl Iterator<Item = (StreamKind, &Arc<dyn Sink>)> {
        self.sinks.iter().map(|(k, s)| (*k, s))
    }
}

/// A test record for `doctor --send-test`: says plainly it is a test.
pub fn test_record(public_url: &str, now_rfc3339: &str) -> StreamRecord {
    StreamRecord::Alert(Box::new(AlertView {
        kind: AlertKind::Test,
        alert_id: format!("test-{}", canarykeys_core::ids::random_id()),
        token_id: "test".into(),
        memo: "canarykeys doctor --send-test".into(),
        headline: "Test alert from canarykeys doctor (not a real use of a key)".into(),
        event_name: "GetCallerIdentity".into(),
        event_source: "sts.amazonaws.com".into(),
        region: "us-east-1".into(),
        source_ip: "203.0.113.7".into(),
        user_agent: "canarykeys test alert".into(),
        error_code: None,
        error_message: None,
        event_time: now_rfc3339.into(),
        received_at: now_rfc3339.into(),
        account_id: None,
        access_key_id: None,
        path: "test".into(),
        note: Some("This is a test alert: no key was used.".into()),
        source_labels: Vec::new(),
        country: None,
        asn: None,
        manage_url: public_url.into(),
        history_url: public_url.into(),
        retired: false,
    }))
}

#[cfg(test)]
pub(crate) fn hostile_record() -> StreamRecord {
    StreamRecord::Alert(Box::new(super::webhook::hostile_alert()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_the_outbox_payload() {
        let r = hostile_record();
        let text = serde_json::to_string(&r).unwrap();
        let back: StreamRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back.id(), r.id());
        assert_eq!(back.generic(), r.generic());
        let op = StreamRecord::Operator(Box::new(super::super::operator::hostile()));
        let back: StreamRecord =
            serde_json::from_str(&serde_json::to_string(&op).unwrap()).unwrap();
        assert_eq!(back.type_name(), "operator");
        assert!(back.time_ms() > 0);
    }
}
