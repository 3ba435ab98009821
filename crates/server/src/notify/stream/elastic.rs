//! `[streams.elastic]`: `POST <url>/_bulk` with a `create` action per record (its `_id` the
//! alert id, so a repeat is refused as a conflict rather than stored twice) and the ECS
//! document (`ecs.rs`). Bulk answers say per item how it went: a partly failed bulk retries
//! only its failed items.

use async_trait::async_trait;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use serde_json::{json, Value};

use super::http::{all, secret_header, Poster};
use super::{ecs, Sink, StreamRecord};
use crate::config::ElasticStream;
use crate::notify::Outcome;

/// The default data stream (the `logs-*-*` template makes it on first write).
pub const DEFAULT_INDEX: &str = "logs-canarykeys.alert-default";
const BATCH: usize = 200;

pub struct ElasticSink {
    poster: Poster,
    bulk: url::Url,
    index: String,
}

/// The `_bulk` body (NDJSON, ending with a newline) for `records`.
pub fn bulk_body(records: &[StreamRecord], index: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for r in records {
        let action = json!({"create": {"_index": index, "_id": r.id()}});
        body.extend(serde_json::to_vec(&action).expect("JSON serialises"));
        body.push(b'\n');
        body.extend(serde_json::to_vec(&ecs::document(r)).expect("JSON serialises"));
        body.push(b'\n');
    }
    body
}

/// Each item's outcome from a bulk answer. An item whose answer is missing or unreadable is
/// retried; a conflict (409) means the document is there already: delivered.
pub fn item_outcomes(answer: &[u8], n: usize) -> Vec<Outcome> {
    let unread = || vec![Outcome::Retry("unreadable bulk answer".into()); n];
    let Ok(v) = serde_json::from_slice::<Value>(answer) else {
        return unread();
    };
    let Some(items) = v.get("items").and_then(Value::as_array) else {
        return unread();
    };
    (0..n)
        .map(|i| {
            let Some(item) = items.get(i).and_then(|it| it.get("create")) else {
                return Outcome::Retry("the bulk answer lacks this item".into());
            };
            let status = item.get("status").and_then(Value::as_u64).unwrap_or(0);
            let why = || {
                let e = item.get("error");
                let kind = e
                    .and_then(|e| e.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let reason = e
                    .and_then(|e| e.get("reason"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let text = format!("bulk item HTTP {status}: {kind}: {reason}");
                crate::notify::webhook::escape::single_line(&text)
                    .chars()
                    .take(300)
                    .collect::<String>()
            };
            match status {
                200..=299 | 409 => Outcome::Delivered,
                429 | 500..=599 | 0 => Outcome::Retry(why()),
                _ => Outcome::Permanent(why()),
            }
        })
        .collect()
}

impl ElasticSink {
    pub fn new(config: &ElasticStream) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        if let Some(key) = &config.api_key {
            headers.insert(
                AUTHORIZATION,
                secret_header(&format!("ApiKey {}", key.expose()))?,
            );
        } else if let (Some(user), Some(password)) = (&config.username, &config.password) {
            use base64::Engine;
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:{}", password.expose()));
            headers.insert(AUTHORIZATION, secret_header(&format!("Basic {basic}"))?);
        }
        let poster = Poster::new(&config.url, headers)?;
        let mut bulk = poster.url.clone();
        let path = format!("{}/_bulk", bulk.path().trim_end_matches('/'));
        bulk.set_path(&path);
        Ok(Self {
            poster,
            bulk,
            index: config.index.clone().unwrap_or_else(|| DEFAULT_INDEX.into()),
        })
    }
}

#[async_trait]
impl Sink for ElasticSink {
    fn batch(&self) -> usize {
        BATCH
    }

    async fn send(&self, records: &[StreamRecord]) -> Vec<Outcome> {
        let body = bulk_body(records, &self.index);
        let answer = self
            .poster
            .post(Some(&self.bulk), "application/x-ndjson", body, &[])
            .await;
        match answer.outcome {
            Outcome::Delivered => item_outcomes(&answer.body, records.len()),
            other => all(&other, records.len()),
        }
    }

    async fn check(&self) -> Result<String, String> {
        self.poster.check().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_failures_are_read_per_item() {
        let answer = br#"{"took":3,"errors":true,"items":[
            {"create":{"_index":"i","_id":"a","status":201}},
            {"create":{"_index":"i","_id":"b","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
            {"create":{"_index":"i","_id":"c","status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},
            {"create":{"_index":"i","_id":"d","status":400,"error":{"type":"mapper_parsing_exception","reason":"bad\nfield"}}}]}"#;
        let out = item_outcomes(answer, 5);
        assert_eq!(out[0], Outcome::Delivered);
        assert!(matches!(&out[1], Outcome::Retry(m) if m.contains("queue full")));
        assert_eq!(out[2], Outcome::Delivered);
        assert!(matches!(&out[3], Outcome::Permanent(m) if !m.contains('\n')));
        assert!(matches!(out[4], Outcome::Retry(_)));
    }

    #[test]
    fn the_body_is_ndjson_pairs() {
        let r = super::super::hostile_record();
        let body = String::from_utf8(bulk_body(&[r.clone(), r], "idx")).unwrap();
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(body.ends_with('\n'));
        let action: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(action["create"]["_id"], "al_0001");
    }
}
