//! Records as Elastic Common Schema (ECS 8.x) documents. ECS fields hold what ECS has a name
//! for; everything else is under `canarykeys.*` (the generic JSON, whole). Fields typed `ip` or
//! `long` in ECS get a value only when it parses as one: CloudTrail's "source address" can be a
//! service name (`ec2.amazonaws.com`), which would make Elastic refuse the whole document.

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::StreamRecord;
use crate::notify::AlertKind;

/// The ECS version the documents follow.
pub const ECS_VERSION: &str = "8.11.0";

/// The ECS document for `record`.
pub fn document(record: &StreamRecord) -> Value {
    let mut doc = json!({
        "@timestamp": record.time(),
        "ecs": {"version": ECS_VERSION},
        "message": record.headline(),
        "observer": {"vendor": "canarykeys", "product": "canarykeys", "type": "deception"},
        "canarykeys": record.generic(),
    });
    let o = doc.as_object_mut().expect("an object");
    match record {
        StreamRecord::Alert(a) => {
            let category = match a.kind {
                AlertKind::Tamper { .. } => "configuration",
                _ => "intrusion_detection",
            };
            let event_type = match a.kind {
                AlertKind::Tamper { .. } => "change",
                _ => "info",
            };
            o.insert(
                "event".into(),
                json!({
                    "kind": "alert",
                    "category": [category],
                    "type": [event_type],
                    "action": a.event_name,
                    "id": a.alert_id,
                    "created": a.received_at,
                    "provider": a.event_source,
                    "dataset": "canarykeys.alert",
                    "module": "canarykeys",
                    "reason": a.headline,
                    "outcome": if a.error_code.is_some() { "failure" } else { "success" },
                }),
            );
            let mut source = Map::new();
            source.insert("address".into(), json!(a.source_ip));
            let ip = a.source_ip.parse::<IpAddr>().ok();
            if let Some(ip) = ip {
                source.insert("ip".into(), json!(ip.to_string()));
            } else if !a.source_ip.is_empty() {
                source.insert("domain".into(), json!(a.source_ip));
            }
            if let Some(country) = &a.country {
                let geo = if country.len() == 2 && country.chars().all(|c| c.is_ascii_alphabetic())
                {
                    json!({"country_iso_code": country.to_ascii_uppercase()})
                } else {
                    json!({"country_name": country})
                };
                source.insert("geo".into(), geo);
            }
            if let Some(asn) = &a.asn {
                let digits: String = asn
                    .trim_start_matches("AS")
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let mut as_ = Map::new();
                if let Ok(n) = digits.parse::<u64>() {
                    as_.insert("number".into(), json!(n));
                }
                as_.insert("organization".into(), json!({"name": asn}));
                source.insert("as".into(), Value::Object(as_));
            }
            o.insert("source".into(), Value::Object(source));
            o.insert("user_agent".into(), json!({"original": a.user_agent}));
            let mut cloud = json!({
                "provider": "aws",
                "region": a.region,
                "service": {"name": a.event_source},
            });
            if let Some(acct) = &a.account_id {
                cloud["account"] = json!({"id": acct});
            }
            o.insert("cloud".into(), cloud);
            let mut related = Map::new();
            if let Some(ip) = ip {
                related.insert("ip".into(), json!([ip.to_string()]));
            }
            let mut users = Vec::new();
            if let Some(key) = &a.access_key_id {
                users.push(key.clone());
                o.insert("user".into(), json!({"name": key}));
            }
            if let AlertKind::Tamper {
                operator: Some(op), ..
            } = &a.kind
            {
                users.push(op.clone());
            }
            if !users.is_empty() {
                related.insert("user".into(), json!(users));
            }
            o.insert("related".into(), Value::Object(related));
        }
        StreamRecord::Operator(op) => {
            o.insert(
                "event".into(),
                json!({
                    "kind": "event",
                    "category": ["configuration"],
                    "type": ["info"],
                    "action": record.type_name(),
                    "id": op.alert_id,
                    "created": op.at,
                    "dataset": "canarykeys.operator",
                    "module": "canarykeys",
                    "reason": op.headline,
                }),
            );
        }
        StreamRecord::Audit(e) => {
            o.insert(
                "event".into(),
                json!({
                    "kind": "event",
                    "category": ["configuration"],
                    "type": ["change"],
                    "action": e.action,
                    "id": e.id,
                    "created": e.at,
                    "dataset": "canarykeys.audit",
                    "module": "canarykeys",
                }),
            );
            o.insert("user".into(), json!({"name": e.actor}));
            o.insert("related".into(), json!({"user": [e.actor]}));
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_fields_only_get_values_of_their_type() {
        let mut alert = crate::notify::webhook::hostile_alert();
        alert.source_ip = "ec2.amazonaws.com".into();
        alert.asn = Some("AS16509 Amazon".into());
        alert.country = Some("us".into());
        let d = document(&StreamRecord::Alert(Box::new(alert)));
        assert_eq!(d["event"]["kind"], "alert");
        assert!(d["source"].get("ip").is_none());
        assert_eq!(d["source"]["domain"], "ec2.amazonaws.com");
        assert_eq!(d["source"]["as"]["number"], 16509);
        assert_eq!(d["source"]["geo"]["country_iso_code"], "US");
        assert_eq!(d["cloud"]["account"]["id"], "123456789012");
        assert_eq!(d["canarykeys"]["schema"], "canarykeys.alert/v1");
        let d = document(&super::super::hostile_record());
        assert_eq!(d["source"]["ip"], "203.0.113.7");
        assert_eq!(d["related"]["ip"][0], "203.0.113.7");
        assert_eq!(
            d["user_agent"]["original"],
            d["canarykeys"]["event"]["user_agent"]
        );
    }
}
