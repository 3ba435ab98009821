//! What each piece of an input becomes: items (records, envelopes, Kinesis records, log events,
//! NDJSON lines) judged one by one and handed on in chunks, and the wrappers told apart by their
//! distinguishing keys. The top level of a JSON document is walked by `document.rs`.
//!
//! The rule that keeps errors meaningful: once a wrapper is recognised, bad items inside it are
//! skips; only an input in which nothing looks like CloudTrail is a whole-input error.

use std::ops::ControlFlow;

use serde_json::value::RawValue;
use serde_json::Value;

use super::decode::{Budget, Meter};
use super::fields::{self, Fields};
use super::gate::Gate;
use super::record::{self, Judged, Record};
use super::{Chunk, Format, ParseError, Skip};

const PLAIN_TEXT: &str = "log event is not a CloudTrail record (plain text)";
const NO_MESSAGE: &str = "log event has no message";
const MESSAGE_NOT_JSON: &str = "log event message is not valid JSON";
const KINESIS_NO_DATA: &str = "Kinesis record has no data";
const KINESIS_BASE64: &str = "Kinesis data is not valid base64";
const KINESIS_GZIP: &str = "Kinesis data is not valid gzip";
const KINESIS_NOT_JSON: &str = "Kinesis data is not JSON";

pub(super) fn not_cloudtrail(why: &str) -> ParseError {
    ParseError::NotCloudTrail(why.to_owned())
}

/// When a chunk is handed on: at this many records or bytes of record text, whichever first.
#[derive(Debug, Clone, Copy)]
pub(super) struct FlushAt {
    pub(super) records: usize,
    pub(super) bytes: usize,
}

/// The state of one input: the chunk being filled, the totals, and the bounds on work.
pub(super) struct Ctx<'a> {
    chunk: Chunk,
    chunk_bytes: usize,
    /// `None`: everything stays in one chunk until the input is done (in-memory parsing, where
    /// a whole-input error must leave nothing handed on).
    flush_at: Option<FlushAt>,
    sink: &'a mut dyn FnMut(Chunk) -> ControlFlow<()>,
    /// Which usable records are built and handed on; the rest are only counted.
    gate: &'a dyn Gate,
    /// Whether a chunk has been handed on: then the input can no longer be re-read as NDJSON.
    pub(super) flushed: bool,
    /// Usable records, those the gate refused included.
    pub(super) records: usize,
    pub(super) skipped: usize,
    /// Items that were CloudTrail records, usable or not: zero means "not CloudTrail at all".
    pub(super) cloudtrail_like: usize,
    pub(super) budget: Budget,
    /// The budget as it stood before the document was read, for a second reading as NDJSON.
    budget_start: Budget,
    /// Streams: the byte meter of the input, and the budget is per item, not per input.
    pub(super) meter: Option<&'a Meter>,
    /// Why the document visitor stopped, when it was not a JSON syntax error.
    pub(super) error: Option<ParseError>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(
        sink: &'a mut dyn FnMut(Chunk) -> ControlFlow<()>,
        gate: &'a dyn Gate,
        flush_at: Option<FlushAt>,
        budget: Budget,
        meter: Option<&'a Meter>,
    ) -> Self {
        Self {
            chunk: Chunk::default(),
            chunk_bytes: 0,
            flush_at,
            sink,
            gate,
            flushed: false,
            records: 0,
            skipped: 0,
            cloudtrail_like: 0,
            budget_start: budget.clone(),
            budget,
            meter,
            error: None,
        }
    }

    /// Forgets what the document reading found, before the input is read again as NDJSON.
    pub(super) fn restart(&mut self) {
        self.chunk = Chunk::default();
        self.chunk_bytes = 0;
        (self.records, self.skipped, self.cloudtrail_like) = (0, 0, 0);
        self.budget = self.budget_start.clone();
        self.error = None;
    }

    /// Keeps `e` as the reason the visitor stops, and gives serde an error to unwind with.
    pub(super) fn fail<E: serde::de::Error>(&mut self, e: ParseError) -> E {
        self.error.get_or_insert(e);
        E::custom("stopped")
    }

    /// Before each list item: the item is measured from here, and in a stream it gets a fresh
    /// budget for its own embedded payloads (a stream has no whole-input budget).
    pub(super) fn element(&mut self) {
        if let Some(meter) = self.meter {
            meter.mark(meter.record_cap);
            self.budget = self.budget_start.clone();
        }
    }

    /// Before a top-level member: measured against the whole-input budget instead.
    pub(super) fn member(&mut self) {
        if let Some(meter) = self.meter {
            meter.mark(self.budget.limit());
        }
    }

    pub(super) fn skip(&mut self, index: usize, reason: &str) -> Result<(), ParseError> {
        self.skipped += 1;
        self.chunk.skipped.push(Skip {
            index,
            reason: reason.to_owned(),
        });
        self.maybe_flush()
    }

    /// One item: a record, an EventBridge envelope around one, or anything else.
    pub(super) fn item(
        &mut self,
        index: usize,
        raw: &RawValue,
        f: Option<Fields<'_>>,
    ) -> Result<(), ParseError> {
        let verdict = Record::judge(raw, f, self.gate);
        self.cloudtrail_like += usize::from(verdict.cloudtrail_like);
        match verdict.record {
            Judged::Record(r) => {
                self.records += 1;
                self.chunk_bytes += r.raw.get().len();
                self.chunk.records.push(r);
                self.maybe_flush()
            }
            Judged::Gated => {
                self.records += 1;
                self.chunk.gated += 1;
                Ok(())
            }
            Judged::Refused(reason) => self.skip(index, reason),
        }
    }

    fn maybe_flush(&mut self) -> Result<(), ParseError> {
        match self.flush_at {
            Some(at) if self.chunk.records.len() >= at.records || self.chunk_bytes >= at.bytes => {
                self.flush()
            }
            _ => Ok(()),
        }
    }

    /// Hands the chunk on (also when it is empty, at the end of an input).
    pub(super) fn flush(&mut self) -> Result<(), ParseError> {
        let chunk = std::mem::take(&mut self.chunk);
        self.chunk_bytes = 0;
        self.flushed = true;
        match (self.sink)(chunk) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(ParseError::Interrupted),
        }
    }

    /// The end of a list: a non-empty list with no record in it is not ours.
    pub(super) fn end_list(&mut self, any: bool, why: &str) -> Result<(), ParseError> {
        if any && self.cloudtrail_like == 0 {
            return Err(not_cloudtrail(why));
        }
        Ok(())
    }

    /// One item of a log file's `Records`: a record, or a Kinesis record carrying a
    /// subscription payload. Kinesis batches and log files both say "Records"; only Kinesis
    /// items carry "kinesis" (they have eventSource/eventName/eventVersion too, so that key
    /// decides). `next` is the item's position: one per record, one per log event of Kinesis.
    pub(super) fn records_item(
        &mut self,
        next: &mut usize,
        raw: &RawValue,
        kinesis_seen: &mut bool,
    ) -> Result<(), ParseError> {
        let mut f = fields::read(raw.get());
        if let Some(kinesis) = f.as_mut().and_then(|f| f.kinesis.take()) {
            *kinesis_seen = true;
            return self.kinesis(next, kinesis);
        }
        self.item(*next, raw, f)?;
        *next += 1;
        Ok(())
    }

    /// A Kinesis Data Streams record, carrying a base64 gzip subscription payload. A record
    /// that cannot be decoded is a skip, so one bad record does not lose the rest of the batch;
    /// running out of budget still stops everything.
    fn kinesis(&mut self, next: &mut usize, kinesis: &RawValue) -> Result<(), ParseError> {
        let k: Value = serde_json::from_str(kinesis.get()).unwrap_or(Value::Null);
        let Some(data) = k.get("data").and_then(Value::as_str) else {
            *next += 1;
            return self.skip(*next - 1, KINESIS_NO_DATA);
        };
        let payload = match self.budget.base64_maybe_gzip(data) {
            Ok(payload) => payload,
            Err(e) if e.is_too_large() => return Err(e),
            Err(e) => {
                let reason = if e == ParseError::BadBase64 {
                    KINESIS_BASE64
                } else {
                    KINESIS_GZIP
                };
                *next += 1;
                return self.skip(*next - 1, reason);
            }
        };
        match serde_json::from_slice::<Value>(&payload) {
            Ok(v) if is_logs_payload(&v) => match self.logs_payload(v, next)? {
                Ok(()) => Ok(()),
                Err(reason) => {
                    *next += 1;
                    self.skip(*next - 1, reason)
                }
            },
            // A record (or EventBridge envelope) put on the stream directly, not via Logs.
            Ok(_) => {
                *next += 1;
                match serde_json::from_slice::<&RawValue>(&payload) {
                    Ok(raw) => {
                        let f = fields::read(raw.get());
                        self.item(*next - 1, raw, f)
                    }
                    Err(_) => self.skip(*next - 1, KINESIS_NOT_JSON),
                }
            }
            Err(_) => {
                *next += 1;
                self.skip(*next - 1, KINESIS_NOT_JSON)
            }
        }
    }

    /// The log events of a decoded subscription payload, numbered from `next` on. The inner
    /// error means the payload itself is unusable; nothing has been added then.
    fn logs_payload(
        &mut self,
        mut v: Value,
        next: &mut usize,
    ) -> Result<Result<(), &'static str>, ParseError> {
        match v.get("messageType") {
            // CloudWatch Logs' health check of the destination: expected, and carries no records.
            Some(Value::String(t)) if t == "CONTROL_MESSAGE" => return Ok(Ok(())),
            Some(Value::String(t)) if t == "DATA_MESSAGE" => {}
            // Replays and emulators sometimes leave messageType out; logEvents then decides.
            None => {}
            Some(_) => return Ok(Err("a CloudWatch Logs payload with an unknown messageType")),
        }
        let Some(Value::Array(events)) = v.get_mut("logEvents").map(Value::take) else {
            return Ok(Err("a CloudWatch Logs payload without a logEvents list"));
        };
        for event in events {
            self.log_event(*next, &event)?;
            *next += 1;
        }
        Ok(Ok(()))
    }

    /// One log event: its `message` is one record as a JSON string, or any other log line when
    /// the subscription is on a log group that is not (only) CloudTrail's.
    fn log_event(&mut self, index: usize, event: &Value) -> Result<(), ParseError> {
        let Some(message) = event.get("message").and_then(Value::as_str) else {
            return self.skip(index, NO_MESSAGE);
        };
        if !message.trim_start().starts_with('{') {
            return self.skip(index, PLAIN_TEXT);
        }
        match serde_json::from_str::<&RawValue>(message) {
            Ok(raw) => {
                let f = fields::read(raw.get());
                self.item(index, raw, f)
            }
            Err(_) => self.skip(index, MESSAGE_NOT_JSON),
        }
    }

    /// A top-level JSON object without `Records`, given as its members: a wrapper (told apart
    /// by its distinguishing keys) or a bare record.
    pub(super) fn object(
        &mut self,
        members: Vec<(String, Box<RawValue>)>,
    ) -> Result<Format, ParseError> {
        // A repeated key keeps its last value, as in a parsed map.
        let get = |key: &str| members.iter().rev().find(|(k, _)| k == key).map(|m| &m.1);
        let value = |key: &str| get(key).and_then(|raw| serde_json::from_str(raw.get()).ok());
        if let Some(awslogs) = value("awslogs") {
            let awslogs: Value = awslogs;
            let data = awslogs
                .get("data")
                .and_then(Value::as_str)
                .ok_or_else(|| not_cloudtrail("an awslogs event without a data string"))?;
            let payload = self.budget.base64_maybe_gzip(data)?;
            let inner: Value = serde_json::from_slice(&payload).map_err(|_| ParseError::NotJson)?;
            if !is_logs_payload(&inner) {
                return Err(not_cloudtrail(
                    "awslogs data that is not a CloudWatch Logs subscription payload",
                ));
            }
            self.logs_payload(inner, &mut 0)?.map_err(not_cloudtrail)?;
            return Ok(Format::LogsLambdaEvent);
        }
        if get("messageType").is_some() || get("logEvents").is_some() {
            let mut payload = serde_json::Map::new();
            for key in ["messageType", "logEvents"] {
                if let Some(v) = value(key) {
                    payload.insert(key.to_owned(), v);
                }
            }
            self.logs_payload(Value::Object(payload), &mut 0)?
                .map_err(not_cloudtrail)?;
            return Ok(Format::LogsSubscription);
        }
        let envelope = get("detail-type").is_some() && get("detail").is_some();
        let raw = rebuild(&members)?;
        let f = fields::read(raw.get());
        if envelope {
            if !f.as_ref().is_some_and(record::is_cloudtrail_envelope) {
                return Err(not_cloudtrail(
                    "an EventBridge event that is not from CloudTrail",
                ));
            }
            self.item(0, &raw, f)?;
            return Ok(Format::EventBridge);
        }
        let verdict = Record::judge(&raw, f, self.gate);
        if !verdict.cloudtrail_like {
            return Err(not_cloudtrail(
                "a JSON object that is not a CloudTrail record",
            ));
        }
        self.cloudtrail_like += 1;
        match verdict.record {
            Judged::Record(r) => {
                self.records += 1;
                self.chunk.records.push(r);
                Ok(Format::Record)
            }
            Judged::Gated => {
                self.records += 1;
                self.chunk.gated += 1;
                Ok(Format::Record)
            }
            Judged::Refused(reason) => self.skip(0, reason).map(|()| Format::Record),
        }
    }
}

/// A decoded CloudWatch Logs subscription payload has one of these; a CloudTrail record never
/// has either.
fn is_logs_payload(v: &Value) -> bool {
    v.get("messageType").is_some() || v.get("logEvents").is_some()
}

/// The object's text from its members (whitespace between them is not kept).
fn rebuild(members: &[(String, Box<RawValue>)]) -> Result<Box<RawValue>, ParseError> {
    let mut text = String::from("{");
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&serde_json::to_string(key).map_err(|_| ParseError::NotJson)?);
        text.push(':');
        text.push_str(value.get());
    }
    text.push('}');
    RawValue::from_string(text).map_err(|_| ParseError::NotJson)
}
