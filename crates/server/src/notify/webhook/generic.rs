//! The generic webhook payload: a documented, versioned JSON schema for receivers we do not know
//! (SOAR tools, scripts, relays).
//!
//! # Schema `canarykeys.alert/v1`
//!
//! Also written out, field by field, in `tests/fixtures/webhooks/generic.schema.md`; the
//! example is `tests/fixtures/webhooks/generic.json`. Operator alerts (about the system, not a
//! token) have their own schema, `canarykeys.operator/v1` (`notify::operator`,
//! `tests/fixtures/webhooks/operator.schema.md`).
//!
//! ```text
//! {
//!   "schema":   "canarykeys.alert/v1",          always this string for this version
//!   "type":     "hit" | "summary" | "test" | "exposure" | "tamper",
//!   "alert_id": string,                          stable per alert; equal on every retry
//!   "headline": string,                          one sentence, for people
//!   "retired":  boolean,                         a use of a retired key (after its token
//!                                                was deleted or expired): someone still holds it
//!   "token":   { "id", "memo", "manage_url", "history_url" }         all strings
//!   "event":   { "event_name", "event_source", "region", "source_ip", "user_agent",
//!                "event_time", "received_at", "path"                   strings
//!                "error_code", "error_message", "account_id",
//!                "access_key_id", "note"                               string or null }
//!   "summary": null, or for "summary" alerts
//!              { "count": integer, "folded": integer (of count, the calls counted but
//!                not stored one by one), "addresses": [string], "events": [string],
//!                "first_event_time": string, "last_event_time": string }
//!   "exposure": null, or for "exposure" alerts
//!              { "source": "health"|"quarantine", "event_type": string,
//!                "description": string, "location": string|null,
//!                "first_seen": string, "last_seen": string, "count": integer }
//!   "tamper":  null, or for "tamper" alerts (a change made with the manage secret or an API key)
//!              { "action": "channel_off"|"delete"|"ignore_list", "change": string,
//!                "by": "manage_secret"|"api_key", "api_key_id": string|null,
//!                "api_key_name": string|null, "operator": string|null }
//!   "source":  { "labels": [string], "country": string|null, "asn": string|null }
//! }
//! ```
//!
//! For a tamper alert, `event` is the API request: `event_name` the action (`token.channels`,
//! `token.delete`, `token.ignore_sources`), `source_ip` and `user_agent` the caller's.
//! For a summary, `event` is the window's last call. Times are RFC 3339 in UTC. Every key is always present (absent values are `null`), so a
//! receiver with a strict schema needs no optional keys. Strings are passed as CloudTrail had
//! them, unescaped: the user agent and event fields are written by whoever holds the key, and
//! the receiver must escape them for wherever it shows them.
//!
//! Versioning: new keys may be added within v1; renaming or removing a key, or changing a
//! value's type or meaning, makes `canarykeys.alert/v2`.
//!
//! The request carries `Idempotency-Key` (equal on every retry of one alert) and, when a signing
//! secret is configured, `X-Canarykeys-Signature: t=<unix>,v1=<hex>`: HMAC-SHA256 over
//! `"<t>.<body>"`, as `canarykeys_core::signing` makes and checks it.

use serde_json::{json, Value};

use crate::notify::{AlertKind, AlertView};

/// The value of the `schema` key.
pub const SCHEMA: &str = "canarykeys.alert/v1";

/// The `canarykeys.alert/v1` body for `alert`.
pub fn payload(alert: &AlertView) -> Value {
    let kind = alert.kind.name();
    let summary = match &alert.kind {
        AlertKind::Summary {
            count,
            folded,
            addresses,
            events,
            first_event_time,
            last_event_time,
        } => json!({
            "count": count,
            "folded": folded,
            "addresses": addresses,
            "events": events,
            "first_event_time": first_event_time,
            "last_event_time": last_event_time,
        }),
        _ => Value::Null,
    };
    let exposure = match &alert.kind {
        AlertKind::Exposure {
            source,
            event_type,
            description,
            location,
            first_seen,
            last_seen,
            count,
        } => json!({
            "source": source,
            "event_type": event_type,
            "description": description,
            "location": location,
            "first_seen": first_seen,
            "last_seen": last_seen,
            "count": count,
        }),
        _ => Value::Null,
    };
    let tamper = match &alert.kind {
        AlertKind::Tamper {
            action,
            change,
            by,
            api_key_id,
            api_key_name,
            operator,
        } => json!({
            "action": action,
            "change": change,
            "by": by,
            "api_key_id": api_key_id,
            "api_key_name": api_key_name,
            "operator": operator,
        }),
        _ => Value::Null,
    };
    json!({
        "schema": SCHEMA,
        "type": kind,
        "alert_id": alert.alert_id,
        "headline": alert.headline,
        "retired": alert.retired,
        "token": {
            "id": alert.token_id,
            "memo": alert.memo,
            "manage_url": alert.manage_url,
            "history_url": alert.history_url,
        },
        "event": {
            "event_name": alert.event_name,
            "event_source": alert.event_source,
            "region": alert.region,
            "source_ip": alert.source_ip,
            "user_agent": alert.user_agent,
            "error_code": alert.error_code,
            "error_message": alert.error_message,
            "event_time": alert.event_time,
            "received_at": alert.received_at,
            "account_id": alert.account_id,
            "access_key_id": alert.access_key_id,
            "path": alert.path,
            "note": alert.note,
        },
        "summary": summary,
        "exposure": exposure,
        "tamper": tamper,
        "source": {
            "labels": alert.source_labels,
            "country": alert.country,
            "asn": alert.asn,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::webhook::hostile_alert;

    #[test]
    fn carries_every_field_unescaped() {
        let alert = hostile_alert();
        let v = payload(&alert);
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["type"], "hit");
        assert_eq!(v["event"]["user_agent"], alert.user_agent.as_str());
        assert_eq!(v["token"]["memo"], alert.memo.as_str());
        assert_eq!(v["event"]["error_code"], Value::Null);
        assert_eq!(v["summary"], Value::Null);
        assert_eq!(v["source"]["labels"], json!([]));
    }

    #[test]
    fn summary_and_test_types() {
        let mut alert = hostile_alert();
        alert.kind = AlertKind::Summary {
            count: 12,
            folded: 0,
            addresses: vec!["203.0.113.7".into(), "198.51.100.2".into()],
            events: vec!["ListBuckets".into()],
            first_event_time: "2025-11-24T10:00:00Z".into(),
            last_event_time: "2025-11-24T10:59:00Z".into(),
        };
        let v = payload(&alert);
        assert_eq!(v["type"], "summary");
        assert_eq!(v["summary"]["count"], 12);
        assert_eq!(v["summary"]["addresses"][1], "198.51.100.2");
        alert.kind = AlertKind::Test;
        assert_eq!(payload(&alert)["type"], "test");
    }

    #[test]
    fn a_retired_key_is_flagged_in_every_channel() {
        let mut alert = hostile_alert();
        assert_eq!(payload(&alert)["retired"], false);
        alert.retired = true;
        assert_eq!(payload(&alert)["retired"], true);
        assert!(crate::notify::webhook::title(&alert).starts_with("Retired decoy AWS key used"));
        assert!(crate::notify::email::subject(&alert).contains("Retired decoy key used"));
        let mail = crate::notify::email::render(&alert).unwrap();
        assert!(
            mail.text.contains("A RETIRED decoy AWS key was used"),
            "{}",
            mail.text
        );
        assert!(
            mail.html.contains("A retired decoy AWS key was used."),
            "{}",
            mail.html
        );
    }

    #[test]
    fn every_key_is_present() {
        let v = payload(&hostile_alert());
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for key in [
            "schema", "type", "alert_id", "headline", "retired", "token", "event", "summary",
            "exposure", "tamper", "source",
        ] {
            assert!(keys.contains(&key), "{key}");
        }
        assert_eq!(v["event"].as_object().unwrap().len(), 13);
        assert_eq!(v["token"].as_object().unwrap().len(), 4);
    }
}
