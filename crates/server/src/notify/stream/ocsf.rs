//! `[streams.ocsf]`: each record as an OCSF 1.1.0 Detection Finding (`class_uid` 2004, with the
//! `cloud` profile), POSTed as JSON: one object per request, or a batch as a JSON array when
//! `batch = true`. An optional bearer token, and an HMAC signature like the generic webhook's.
//!
//! The finding is validated in the tests against the JSON schema `ocsf-json-schema` generates
//! for 1.1.0 (written out in `tests/fixtures/webhooks/ocsf-1.1.0-detection_finding.schema.json`).
//! OCSF typed fields (`ip`) get a value only when it parses as one; the raw text and the
//! generic JSON are in `unmapped`.

use std::net::IpAddr;

use async_trait::async_trait;
use canarykeys_core::signing;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use serde_json::{json, Value};

use super::http::{all, secret_header, Poster};
use super::{Sink, StreamRecord};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{OcsfStream, Secret};
use crate::notify::operator::OperatorStatus;
use crate::notify::{AlertKind, Outcome};

/// The OCSF version the findings follow.
pub const OCSF_VERSION: &str = "1.1.0";
/// Detection Finding, in the Findings category; activity Create.
pub const CLASS_UID: u64 = 2004;
const CATEGORY_UID: u64 = 2;
const ACTIVITY_CREATE: u64 = 1;
const BATCH: usize = 100;

/// OCSF severity ids: 1 informational, 3 medium, 4 high, 5 critical.
fn severity(record: &StreamRecord) -> (u64, &'static str) {
    match record {
        StreamRecord::Alert(a) if a.kind == AlertKind::Test => (1, "Informational"),
        StreamRecord::Alert(_) => (5, "Critical"),
        StreamRecord::Operator(o) if o.status == OperatorStatus::Problem => (3, "Medium"),
        _ => (1, "Informational"),
    }
}

/// The Detection Finding for `record`.
pub fn finding(record: &StreamRecord) -> Value {
    let (severity_id, severity_name) = severity(record);
    let time = record.time_ms();
    let (title, types, first, last) = match record {
        StreamRecord::Alert(a) => {
            let (first, last) = match &a.kind {
                AlertKind::Summary {
                    first_event_time,
                    last_event_time,
                    ..
                } => (first_event_time.as_str(), last_event_time.as_str()),
                AlertKind::Exposure {
                    first_seen,
                    last_seen,
                    ..
                } => (first_seen.as_str(), last_seen.as_str()),
                _ => (a.event_time.as_str(), a.event_time.as_str()),
            };
            let title = match &a.kind {
                AlertKind::Hit | AlertKind::Summary { .. } => "Decoy AWS key used",
                AlertKind::Test => "Test alert (not a real use of a key)",
                AlertKind::Exposure { .. } => "Decoy AWS key exposed in public",
                AlertKind::Tamper { .. } => "Decoy changed with its manage secret or an API key",
            };
            (
                title.to_owned(),
                vec!["canarykeys/".to_owned() + a.kind.name()],
                ms(first),
                ms(last),
            )
        }
        StreamRecord::Operator(o) => (
            o.title().to_owned(),
            vec!["canarykeys/operator".into()],
            time,
            time,
        ),
        StreamRecord::Audit(e) => (
            format!("Audit: {}", e.action),
            vec!["canarykeys/audit".into()],
            time,
            time,
        ),
    };
    let mut f = json!({
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "type_name": "Detection Finding: Create",
        "time": time,
        "severity_id": severity_id,
        "severity": severity_name,
        "status_id": 1,
        "status": "New",
        "message": record.headline(),
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "canarykeys", "vendor_name": "canarykeys", "version": env!("CARGO_PKG_VERSION")},
            "uid": record.id(),
            "profiles": ["cloud"],
        },
        "finding_info": {
            "uid": record.id(),
            "title": title,
            "desc": record.headline(),
            "types": types,
            "first_seen_time": first,
            "last_seen_time": last,
        },
        "cloud": {"provider": "AWS"},
        "unmapped": {"canarykeys": record.generic()},
    });
    if let StreamRecord::Alert(a) = record {
        if !a.region.is_empty() {
            f["cloud"]["region"] = json!(a.region);
        }
        if let Some(acct) = &a.account_id {
            f["cloud"]["account"] = json!({"uid": acct, "type": "AWS Account", "type_id": 10});
        }
        // CloudTrail's source is an address, or a service's name ("ec2.amazonaws.com", "AWS
        // Internal"): only an address goes in `ip`, the rest in the free-text `name`.
        let src = match a.source_ip.parse::<IpAddr>() {
            Ok(ip) => json!({"ip": ip.to_string()}),
            Err(_) if a.source_ip.is_empty() => json!({"name": "unknown"}),
            Err(_) => json!({"name": a.source_ip}),
        };
        let mut src = src;
        if let Some(country) = &a.country {
            src["location"] = json!({"country": country});
        }
        // Whoever holds the key acts as the decoy account's user; OCSF wants an account,
        // name or uid of them.
        let mut user = json!({"type": "Other", "type_id": 99});
        match &a.account_id {
            Some(acct) => {
                user["account"] = json!({"uid": acct, "type": "AWS Account", "type_id": 10})
            }
            None => user["name"] = json!("unknown"),
        }
        if let Some(key) = &a.access_key_id {
            user["credential_uid"] = json!(key);
        }
        f["evidences"] = json!([{
            "actor": {"user": user},
            "api": {"operation": a.event_name, "service": {"name": a.event_source}},
            "src_endpoint": src,
            "data": {"user_agent": a.user_agent, "source_address": a.source_ip},
        }]);
        let mut resource = json!({"type": "AWS IAM Access Key", "uid": a.token_id, "name": a.memo});
        if let Some(key) = &a.access_key_id {
            resource["uid"] = json!(key);
            resource["data"] = json!({"token_id": a.token_id});
        }
        if !a.region.is_empty() {
            resource["region"] = json!(a.region);
        }
        f["resources"] = json!([resource]);
    }
    f
}

/// RFC 3339 to unix ms (0 when unreadable).
fn ms(t: &str) -> i64 {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
        .unwrap_or(0)
}

pub struct OcsfSink {
    poster: Poster,
    hmac: Option<Secret>,
    batch: bool,
    clock: SharedClock,
}

impl OcsfSink {
    pub fn new(config: &OcsfStream) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        if let Some(token) = &config.bearer_token {
            headers.insert(
                AUTHORIZATION,
                secret_header(&format!("Bearer {}", token.expose()))?,
            );
        }
        Ok(Self {
            poster: Poster::new(&config.url, headers)?,
            hmac: config.hmac_secret.clone(),
            batch: config.batch,
            clock: SystemClock::shared(),
        })
    }

    async fn post(&self, body: &Value) -> Outcome {
        let body = serde_json::to_vec(body).expect("JSON serialises");
        let mut extra = Vec::new();
        if let Some(secret) = &self.hmac {
            let signature = signing::sign(secret.expose().as_bytes(), self.clock.now_secs(), &body);
            extra.push((signing::HEADER, signature));
        }
        self.poster
            .post(None, "application/json", body, &extra)
            .await
            .outcome
    }
}

#[async_trait]
impl Sink for OcsfSink {
    fn batch(&self) -> usize {
        if self.batch {
            BATCH
        } else {
            1
        }
    }

    async fn send(&self, records: &[StreamRecord]) -> Vec<Outcome> {
        if self.batch {
            let array = Value::Array(records.iter().map(finding).collect());
            let outcome = self.post(&array).await;
            return all(&outcome, records.len());
        }
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            out.push(self.post(&finding(r)).await);
        }
        out
    }

    async fn check(&self) -> Result<String, String> {
        self.poster.check().await
    }
}
