//! `[streams.pagerduty]`: PagerDuty Events API v2. One `trigger` event per record, with the
//! alert id as `dedup_key` (a repeat is folded into the same incident) and the generic JSON as
//! `custom_details`. Audit entries and recoveries page nobody: they are sent as `info`.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::http::Poster;
use super::{Sink, StreamRecord};
use crate::config::{PagerdutyStream, Secret};
use crate::notify::operator::OperatorStatus;
use crate::notify::webhook::escape::single_line;
use crate::notify::{AlertKind, Outcome};

/// PagerDuty cuts `summary` at 1024 characters; we cut first, on a character boundary.
const SUMMARY_MAX: usize = 1024;

pub struct PagerdutySink {
    poster: Poster,
    routing_key: Secret,
    severity: String,
    source: String,
}

/// The event for `record`.
pub fn event(record: &StreamRecord, routing_key: &str, severity: &str, source: &str) -> Value {
    let severity = match record {
        StreamRecord::Alert(a) if a.kind == AlertKind::Test => "info",
        StreamRecord::Alert(_) => severity,
        StreamRecord::Operator(o) if o.status == OperatorStatus::Problem => "error",
        _ => "info",
    };
    let summary: String = single_line(&record.headline())
        .chars()
        .take(SUMMARY_MAX)
        .collect();
    let component = match record {
        StreamRecord::Alert(a) => a.token_id.clone(),
        _ => record.type_name().to_owned(),
    };
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": record.id(),
        "client": "canarykeys",
        "payload": {
            "summary": summary,
            "source": source,
            "severity": severity,
            "timestamp": record.time(),
            "component": component,
            "group": "canarykeys",
            "class": record.type_name(),
            "custom_details": record.generic(),
        },
    })
}

impl PagerdutySink {
    pub fn new(config: &PagerdutyStream) -> Result<Self, String> {
        Ok(Self {
            poster: Poster::new(&config.url, Default::default())?,
            routing_key: config
                .routing_key
                .clone()
                .ok_or("streams.pagerduty.routing_key is required")?,
            severity: config.severity.clone(),
            source: hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "canarykeys".into()),
        })
    }
}

#[async_trait]
impl Sink for PagerdutySink {
    async fn send(&self, records: &[StreamRecord]) -> Vec<Outcome> {
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let e = event(r, self.routing_key.expose(), &self.severity, &self.source);
            let body = serde_json::to_vec(&e).expect("JSON serialises");
            out.push(
                self.poster
                    .post(None, "application/json", body, &[])
                    .await
                    .outcome,
            );
        }
        out
    }

    async fn check(&self) -> Result<String, String> {
        self.poster.check().await
    }
}
