//! Format detection: decides which wrapper a (gunzipped) input is from its shape alone, and walks
//! that wrapper down to record items.
//!
//! The rule that keeps errors meaningful: once a wrapper is recognised, bad items inside it are
//! skips; only an input in which nothing looks like CloudTrail is a whole-input error.

use serde_json::Value;

use super::decode::Budget;
use super::record::{self, Record, NOT_OBJECT};
use super::{Format, ParseError, Skip};

const NOT_JSON: &str = "not JSON";
const PLAIN_TEXT: &str = "log event is not a CloudTrail record (plain text)";
const NO_MESSAGE: &str = "log event has no message";
const MESSAGE_NOT_JSON: &str = "log event message is not valid JSON";
const KINESIS_NO_DATA: &str = "Kinesis record has no data";
const KINESIS_BASE64: &str = "Kinesis data is not valid base64";
const KINESIS_GZIP: &str = "Kinesis data is not valid gzip";
const KINESIS_NOT_JSON: &str = "Kinesis data is not JSON";

/// What one input yielded so far.
#[derive(Debug, Default)]
pub(super) struct Out {
    pub(super) records: Vec<Record>,
    pub(super) skipped: Vec<Skip>,
    /// Items that were CloudTrail records, usable or not: zero means "not CloudTrail at all".
    cloudtrail_like: usize,
}

impl Out {
    fn skip(&mut self, index: usize, reason: &str) {
        self.skipped.push(Skip {
            index,
            reason: reason.to_owned(),
        });
    }

    /// One item of a list: a record, an EventBridge envelope around one, or anything else.
    fn item(&mut self, index: usize, v: Value) {
        if record::looks_like_cloudtrail(&v) {
            self.cloudtrail_like += 1;
        }
        match Record::from_value(v) {
            Ok(r) => self.records.push(r),
            Err(reason) => self.skipped.push(Skip { index, reason }),
        }
    }
}

fn not_cloudtrail(why: &str) -> ParseError {
    ParseError::NotCloudTrail(why.to_owned())
}

/// Detects the format of a whole (already gunzipped) input and yields its items.
pub(super) fn document(data: &[u8], budget: &mut Budget) -> Result<(Format, Out), ParseError> {
    // A byte-order mark is not JSON, but Windows tools write one; it carries no meaning.
    let data = data
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(data)
        .trim_ascii();
    if data.is_empty() {
        return Err(ParseError::Empty);
    }
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Array(items)) => list(
            Format::Array,
            items,
            "a JSON array without CloudTrail records",
        ),
        Ok(v @ Value::Object(_)) => object(v, budget),
        Ok(_) => Err(not_cloudtrail(
            "a JSON value that is not an object or an array",
        )),
        // Not one JSON document: NDJSON is the only other text format.
        Err(_) => ndjson(data),
    }
}

/// A list of items (a log file's `Records`, or a JSON array).
fn list(format: Format, items: Vec<Value>, why: &str) -> Result<(Format, Out), ParseError> {
    let mut out = Out::default();
    let any = !items.is_empty();
    for (index, v) in items.into_iter().enumerate() {
        out.item(index, v);
    }
    // An empty list is a valid (if idle) delivery; a non-empty one with no record is not ours.
    if any && out.cloudtrail_like == 0 {
        return Err(not_cloudtrail(why));
    }
    Ok((format, out))
}

/// A decoded CloudWatch Logs subscription payload has one of these; a CloudTrail record never
/// has either.
fn is_logs_payload(v: &Value) -> bool {
    v.get("messageType").is_some() || v.get("logEvents").is_some()
}

/// A JSON object: a wrapper (told apart by its distinguishing keys) or a bare record.
fn object(mut v: Value, budget: &mut Budget) -> Result<(Format, Out), ParseError> {
    if let Some(awslogs) = v.get("awslogs") {
        let data = awslogs
            .get("data")
            .and_then(Value::as_str)
            .ok_or_else(|| not_cloudtrail("an awslogs event without a data string"))?;
        let payload = budget.base64_maybe_gzip(data)?;
        let inner: Value = serde_json::from_slice(&payload).map_err(|_| ParseError::NotJson)?;
        if !is_logs_payload(&inner) {
            return Err(not_cloudtrail(
                "awslogs data that is not a CloudWatch Logs subscription payload",
            ));
        }
        let mut out = Out::default();
        logs_payload(inner, &mut out, &mut 0).map_err(not_cloudtrail)?;
        return Ok((Format::LogsLambdaEvent, out));
    }
    if let Some(records) = v.get_mut("Records") {
        let Value::Array(items) = records.take() else {
            return Err(not_cloudtrail("a Records field that is not a list"));
        };
        // Kinesis batches and log files both say "Records"; only Kinesis items carry "kinesis"
        // (and they have eventSource/eventName/eventVersion too, so the key must decide).
        if items.iter().any(|item| item.get("kinesis").is_some()) {
            return kinesis(items, budget);
        }
        return list(
            Format::LogFile,
            items,
            "a log file whose Records are not CloudTrail records",
        );
    }
    let mut out = Out::default();
    if is_logs_payload(&v) {
        logs_payload(v, &mut out, &mut 0).map_err(not_cloudtrail)?;
        return Ok((Format::LogsSubscription, out));
    }
    if v.get("detail-type").is_some() && v.get("detail").is_some() {
        if !record::is_cloudtrail_envelope(&v) {
            return Err(not_cloudtrail(
                "an EventBridge event that is not from CloudTrail",
            ));
        }
        out.item(0, v);
        return Ok((Format::EventBridge, out));
    }
    if !record::looks_like_cloudtrail(&v) {
        return Err(not_cloudtrail(
            "a JSON object that is not a CloudTrail record",
        ));
    }
    out.item(0, v);
    Ok((Format::Record, out))
}

/// The log events of a decoded subscription payload, numbered from `next` on. An error means
/// the payload itself is unusable; nothing has been added to `out` then.
fn logs_payload(mut v: Value, out: &mut Out, next: &mut usize) -> Result<(), &'static str> {
    match v.get("messageType") {
        // CloudWatch Logs' health check of the destination: expected, and carries no records.
        Some(Value::String(t)) if t == "CONTROL_MESSAGE" => return Ok(()),
        Some(Value::String(t)) if t == "DATA_MESSAGE" => {}
        // Replays and emulators sometimes leave messageType out; logEvents then decides.
        None => {}
        Some(_) => return Err("a CloudWatch Logs payload with an unknown messageType"),
    }
    let Some(Value::Array(events)) = v.get_mut("logEvents").map(Value::take) else {
        return Err("a CloudWatch Logs payload without a logEvents list");
    };
    for event in events {
        log_event(*next, &event, out);
        *next += 1;
    }
    Ok(())
}

/// One log event: its `message` is one record as a JSON string, or any other log line when the
/// subscription is on a log group that is not (only) CloudTrail's.
fn log_event(index: usize, event: &Value, out: &mut Out) {
    let Some(message) = event.get("message").and_then(Value::as_str) else {
        out.skip(index, NO_MESSAGE);
        return;
    };
    if !message.trim_start().starts_with('{') {
        out.skip(index, PLAIN_TEXT);
        return;
    }
    match serde_json::from_str::<Value>(message) {
        Ok(v) => out.item(index, v),
        Err(_) => out.skip(index, MESSAGE_NOT_JSON),
    }
}

/// Kinesis Data Streams records, each carrying a base64 gzip subscription payload. A record
/// that cannot be decoded is a skip, so one bad record does not lose the rest of the batch;
/// running out of budget still stops everything.
fn kinesis(items: Vec<Value>, budget: &mut Budget) -> Result<(Format, Out), ParseError> {
    let mut out = Out::default();
    let mut next = 0;
    for item in items {
        let data = item
            .get("kinesis")
            .and_then(|k| k.get("data"))
            .and_then(Value::as_str);
        let Some(data) = data else {
            out.skip(
                next,
                if item.is_object() {
                    KINESIS_NO_DATA
                } else {
                    NOT_OBJECT
                },
            );
            next += 1;
            continue;
        };
        let payload = match budget.base64_maybe_gzip(data) {
            Ok(payload) => payload,
            Err(e) if e.is_too_large() => return Err(e),
            Err(e) => {
                let reason = if e == ParseError::BadBase64 {
                    KINESIS_BASE64
                } else {
                    KINESIS_GZIP
                };
                out.skip(next, reason);
                next += 1;
                continue;
            }
        };
        match serde_json::from_slice::<Value>(&payload) {
            Ok(v) if is_logs_payload(&v) => {
                if let Err(reason) = logs_payload(v, &mut out, &mut next) {
                    out.skip(next, reason);
                    next += 1;
                }
            }
            // A record (or EventBridge envelope) put on the stream directly, not via Logs.
            Ok(v) => {
                out.item(next, v);
                next += 1;
            }
            Err(_) => {
                out.skip(next, KINESIS_NOT_JSON);
                next += 1;
            }
        }
    }
    Ok((Format::KinesisLogs, out))
}

/// One JSON value per line. Chosen only when the input is not one JSON document, has at least
/// two lines, and at least one line is a JSON object; otherwise it is simply not JSON.
fn ndjson(data: &[u8]) -> Result<(Format, Out), ParseError> {
    let mut out = Out::default();
    let (mut lines, mut objects) = (0usize, 0usize);
    for (index, line) in data.split(|&b| b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        lines += 1;
        match serde_json::from_slice::<Value>(line) {
            Ok(v) => {
                objects += usize::from(v.is_object());
                out.item(index, v);
            }
            Err(_) => out.skip(index, NOT_JSON),
        }
    }
    if lines < 2 || objects == 0 {
        return Err(ParseError::NotJson);
    }
    if out.cloudtrail_like == 0 {
        return Err(not_cloudtrail(
            "NDJSON in which no line is a CloudTrail record",
        ));
    }
    Ok((Format::Ndjson, out))
}
