//! From a decoded subscription payload to request bodies: pick out the log events that hold
//! CloudTrail records, then pack them into JSON-array bodies within the batch limits.

use aws_lambda_events::cloudwatch_logs::LogData;
use serde_json::Value;

use crate::config::BatchLimits;

pub const DATA_MESSAGE: &str = "DATA_MESSAGE";
pub const CONTROL_MESSAGE: &str = "CONTROL_MESSAGE";

/// One CloudTrail record taken from a log event.
#[derive(Debug, Clone)]
pub struct Record {
    /// The CloudWatch Logs event id, for log lines; the record itself is never logged.
    pub log_event_id: String,
    /// The message exactly as CloudTrail wrote it (trimmed), already checked to be a JSON object.
    /// It is forwarded as is rather than re-serialised from a `Value`, so key order and numbers
    /// beyond `f64` precision reach the server unchanged.
    pub json: String,
}

/// Why a log event was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    NotJson,
    NotAnObject,
    /// A JSON object without CloudTrail's `eventVersion`: an application's structured log line.
    NotCloudTrail,
}

#[derive(Debug, Default)]
pub struct Extracted {
    pub records: Vec<Record>,
    pub skipped: usize,
}

/// Checks one log message: `Ok` with the trimmed text when it is a CloudTrail record.
pub fn classify(message: &str) -> Result<&str, SkipReason> {
    let text = message.trim();
    let value: Value = serde_json::from_str(text).map_err(|_| SkipReason::NotJson)?;
    let object = value.as_object().ok_or(SkipReason::NotAnObject)?;
    // Every CloudTrail record, Insights events included, carries a string `eventVersion`; other
    // fields (eventName, eventSource, eventTime) are missing from some. Checking only this keeps
    // the relay from dropping an odd record, while JSON log lines from applications are still
    // recognised as not CloudTrail.
    match object.get("eventVersion") {
        Some(Value::String(_)) => Ok(text),
        _ => Err(SkipReason::NotCloudTrail),
    }
}

/// The CloudTrail records of a DATA_MESSAGE. Anything else is counted as skipped and logged by
/// its log event id only, since a message may hold secrets or attacker-controlled text.
pub fn extract(data: &LogData) -> Extracted {
    let mut out = Extracted::default();
    for event in &data.log_events {
        match classify(&event.message) {
            Ok(json) => out.records.push(Record {
                log_event_id: event.id.clone(),
                json: json.to_owned(),
            }),
            Err(reason) => {
                out.skipped += 1;
                tracing::warn!(
                    log_event_id = %event.id,
                    reason = ?reason,
                    message_bytes = event.message.len(),
                    log_group = %data.log_group,
                    "skipping a log event that is not a CloudTrail record"
                );
            }
        }
    }
    out
}

/// One request body: a JSON array of records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub body: Vec<u8>,
    pub records: usize,
}

/// Packs records, in order, into as few bodies as the limits allow. A record too big for any
/// batch on its own gets a batch to itself: the server, not the relay, decides whether to take it.
pub fn batches(records: &[Record], limits: BatchLimits) -> Vec<Batch> {
    let max_records = limits.max_records.max(1);
    let mut out = Vec::new();
    let mut current = Batch {
        body: Vec::new(),
        records: 0,
    };
    for record in records {
        // Adding a record costs its bytes plus a comma; the closing `]` is one more byte.
        let grown = current.body.len() + 1 + record.json.len() + 1;
        if current.records > 0 && (current.records >= max_records || grown > limits.max_bytes) {
            out.push(close(std::mem::replace(
                &mut current,
                Batch {
                    body: Vec::new(),
                    records: 0,
                },
            )));
        }
        current
            .body
            .push(if current.records == 0 { b'[' } else { b',' });
        current.body.extend_from_slice(record.json.as_bytes());
        current.records += 1;
    }
    if current.records > 0 {
        out.push(close(current));
    }
    out
}

fn close(mut batch: Batch) -> Batch {
    batch.body.push(b']');
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::cloudwatch_logs::LogEntry;

    fn record(i: usize, pad: usize) -> Record {
        Record {
            log_event_id: i.to_string(),
            json: format!(
                r#"{{"eventVersion":"1.08","eventID":"{i}","pad":"{}"}}"#,
                "x".repeat(pad)
            ),
        }
    }

    fn decode(batch: &Batch) -> Vec<Value> {
        serde_json::from_slice(&batch.body).expect("a batch body is a JSON array")
    }

    #[test]
    fn classify_accepts_cloudtrail_records_only() {
        let ct = r#"{"eventVersion":"1.09","eventName":"ListBuckets"}"#;
        assert_eq!(classify(ct), Ok(ct));
        assert_eq!(classify(&format!("  {ct}\n")), Ok(ct));
        assert_eq!(
            classify("[ERROR] First test message"),
            Err(SkipReason::NotJson)
        );
        assert_eq!(classify(""), Err(SkipReason::NotJson));
        assert_eq!(
            classify(r#"[{"eventVersion":"1.09"}]"#),
            Err(SkipReason::NotAnObject)
        );
        assert_eq!(classify("42"), Err(SkipReason::NotAnObject));
        assert_eq!(
            classify(r#"{"level":"INFO","message":"hi"}"#),
            Err(SkipReason::NotCloudTrail)
        );
        assert_eq!(
            classify(r#"{"eventVersion":1.09}"#),
            Err(SkipReason::NotCloudTrail)
        );
    }

    #[test]
    fn extract_keeps_records_in_order_and_counts_the_rest() {
        let mut data = LogData::default();
        for (id, message) in [
            ("a", r#"{"eventVersion":"1.08","n":1}"#),
            ("b", "START RequestId"),
            ("c", r#"{"eventVersion":"1.08","n":2}"#),
        ] {
            let mut entry = LogEntry::default();
            entry.id = id.into();
            entry.message = message.into();
            data.log_events.push(entry);
        }
        let got = extract(&data);
        assert_eq!(got.skipped, 1);
        let ids: Vec<_> = got
            .records
            .iter()
            .map(|r| r.log_event_id.as_str())
            .collect();
        assert_eq!(ids, ["a", "c"]);
    }

    #[test]
    fn splits_by_count() {
        let records: Vec<_> = (0..1200).map(|i| record(i, 0)).collect();
        let got = batches(&records, BatchLimits::default());
        assert_eq!(
            got.iter().map(|b| b.records).collect::<Vec<_>>(),
            [500, 500, 200]
        );
        let all: Vec<Value> = got.iter().flat_map(decode).collect();
        assert_eq!(all.len(), 1200);
        assert_eq!(all[1199]["eventID"], "1199");
    }

    #[test]
    fn splits_by_bytes_and_sends_an_oversized_record_alone() {
        let limits = BatchLimits {
            max_records: 500,
            max_bytes: 300,
        };
        let records = vec![
            record(0, 100),
            record(1, 100),
            record(2, 1000),
            record(3, 10),
            record(4, 10),
        ];
        let got = batches(&records, limits);
        assert_eq!(got.iter().map(|b| b.records).collect::<Vec<_>>(), [2, 1, 2]);
        for b in &got {
            assert!(
                b.body.len() <= limits.max_bytes || b.records == 1,
                "{} bytes",
                b.body.len()
            );
            decode(b);
        }
        // Exactly at the limit still fits.
        let one = record(0, 50);
        let exact = BatchLimits {
            max_records: 10,
            max_bytes: 2 * one.json.len() + 3,
        };
        assert_eq!(batches(&[one.clone(), one.clone()], exact).len(), 1);
        let under = BatchLimits {
            max_bytes: exact.max_bytes - 1,
            ..exact
        };
        assert_eq!(batches(&[one.clone(), one], under).len(), 2);
    }

    #[test]
    fn no_records_no_batches() {
        assert!(batches(&[], BatchLimits::default()).is_empty());
    }
}
