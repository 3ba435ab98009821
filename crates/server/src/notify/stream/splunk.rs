//! `[streams.splunk_hec]`: Splunk's HTTP Event Collector. `POST …/services/collector/event` with
//! `Authorization: Splunk <token>`, and one HEC event object per record, several concatenated
//! in one body when several are due (HEC's batch form). Each event's `time` is the record's
//! own (epoch seconds), so a batch retried late still sorts right in Splunk.

use async_trait::async_trait;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use serde_json::{json, Value};

use super::http::{all, secret_header, Poster};
use super::{Sink, StreamRecord};
use crate::config::SplunkHecStream;
use crate::notify::Outcome;

/// The events' sourcetype.
pub const SOURCETYPE: &str = "canarykeys:alert";
/// Records per request at most.
const BATCH: usize = 100;

pub struct SplunkSink {
    poster: Poster,
    host: String,
    index: Option<String>,
}

/// One HEC event for `record`.
pub fn event(record: &StreamRecord, host: &str, index: Option<&str>) -> Value {
    // Seconds with milliseconds, as HEC reads `time`.
    let time = record.time_ms() as f64 / 1000.0;
    let mut e = json!({
        "time": time,
        "host": host,
        "source": "canarykeys",
        "sourcetype": SOURCETYPE,
        "event": record.generic(),
    });
    if let Some(index) = index {
        e["index"] = json!(index);
    }
    e
}

impl SplunkSink {
    pub fn new(config: &SplunkHecStream) -> Result<Self, String> {
        let token = config
            .token
            .as_ref()
            .ok_or("streams.splunk_hec.token is required")?;
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            secret_header(&format!("Splunk {}", token.expose()))?,
        );
        Ok(Self {
            poster: Poster::new(&config.url, headers)?,
            host: hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "canarykeys".into()),
            index: config.index.clone(),
        })
    }
}

#[async_trait]
impl Sink for SplunkSink {
    fn batch(&self) -> usize {
        BATCH
    }

    async fn send(&self, records: &[StreamRecord]) -> Vec<Outcome> {
        let mut body = Vec::new();
        for r in records {
            let e = event(r, &self.host, self.index.as_deref());
            body.extend(serde_json::to_vec(&e).expect("JSON serialises"));
            body.push(b'\n');
        }
        // HEC takes or refuses a request whole.
        let answer = self.poster.post(None, "application/json", body, &[]).await;
        all(&answer.outcome, records.len())
    }

    async fn check(&self) -> Result<String, String> {
        self.poster.check().await
    }
}
