//! One CloudTrail record: what makes a JSON object a record, and the fields the detector needs,
//! lifted out of it with every type surprise turned into "missing" rather than an error. A record
//! that names an identity is never dropped over a field a hit can do without: a missing time or
//! id gets a stated stand-in instead (see [`Record::fallbacks`]).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A CloudTrail record with the fields detection and alerting use; everything else is in `raw`.
#[derive(Debug, Clone)]
pub struct Record {
    /// `eventID`, or `sha256:` and a hash of the record's content when it has none (so the same
    /// record from two paths is still one hit).
    pub event_id: String,
    /// `eventTime` (or a stand-in field) as unix milliseconds; `None` when no time field is
    /// usable, and the caller uses the arrival time.
    pub event_time: Option<i64>,
    pub event_name: String,
    pub event_source: String,
    pub aws_region: Option<String>,
    /// `sourceIPAddress`: an IP address, or a service name for calls AWS makes on your behalf.
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub recipient_account_id: Option<String>,
    pub identity: Identity,
    /// `tlsDetails.clientProvidedHostHeader`.
    pub tls_host: Option<String>,
    pub vpc_endpoint_id: Option<String>,
    /// `requestID`.
    pub request_id: Option<String>,
    pub event_type: Option<String>,
    pub read_only: Option<bool>,
    /// The whole record object as received (for an EventBridge event: its `detail`).
    pub raw: Value,
    /// Fixed texts saying what stood in for a missing or unusable field; kept with the hit.
    pub fallbacks: Vec<&'static str>,
}

/// `userIdentity`: who made the call. Absent fields (and a missing `userIdentity`) are `None`.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// `type`: `IAMUser`, `AssumedRole`, `Root`, `AWSService`, …
    pub kind: Option<String>,
    pub access_key_id: Option<String>,
    pub user_name: Option<String>,
    pub account_id: Option<String>,
    pub arn: Option<String>,
    pub principal_id: Option<String>,
}

pub(super) const NOT_OBJECT: &str = "not a JSON object";
const NO_EVENT_SOURCE: &str = "not a CloudTrail record (no eventSource)";
const NO_EVENT_NAME: &str = "not a CloudTrail record (no eventName)";
const LAMBDA_SOURCE: &str = "not a CloudTrail record (a Lambda event-source record such as aws:s3)";
const INSIGHT: &str = "CloudTrail Insights event, not an API call";
const NO_IDENTITY: &str = "CloudTrail record names no identity (no userIdentity)";
/// Fields SIEM exports put the time in when they rename or drop `eventTime`, tried in order.
/// Each is a string (RFC 3339) or a number (unix seconds or milliseconds).
const TIME_STAND_INS: [(&str, &str); 3] = [
    (
        "@timestamp",
        "eventTime missing or malformed: @timestamp used",
    ),
    (
        "timestamp",
        "eventTime missing or malformed: timestamp used",
    ),
    ("time", "eventTime missing or malformed: time used"),
];
const ENVELOPE_TIME: &str = "eventTime missing or malformed: the EventBridge event's time used";
const ARRIVAL_TIME: &str = "eventTime missing or malformed: arrival time used";
const HASHED_ID: &str = "eventID missing: deduplicated by a hash of the record";

/// The `detail-type`s EventBridge gives CloudTrail events ("AWS API Call via CloudTrail",
/// "AWS Service Event via CloudTrail", "AWS Console Sign In via CloudTrail", and the rarer
/// Insight and Console Action ones) all end like this; other EventBridge events never do.
const EVENTBRIDGE_SUFFIX: &str = " via CloudTrail";

/// Whether `v` is an EventBridge envelope around a CloudTrail record.
pub(super) fn is_cloudtrail_envelope(v: &Value) -> bool {
    v.get("detail-type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.ends_with(EVENTBRIDGE_SUFFIX))
        && v.get("detail").is_some()
}

/// The record inside an EventBridge envelope, or `v` itself.
pub(super) fn unwrap_envelope(mut v: Value) -> Value {
    if is_cloudtrail_envelope(&v) {
        v["detail"].take()
    } else {
        v
    }
}

/// Why `v` is not a CloudTrail record at all, or `None` if it is one (complete or not).
/// A record is an object with `eventVersion`, or with `eventSource` and `eventName`; Lambda
/// event-source records (S3 notifications, SQS, Kinesis) share those keys but name their source
/// `aws:…`, which CloudTrail never does.
fn not_cloudtrail(v: &Value) -> Option<&'static str> {
    let Some(obj) = v.as_object() else {
        return Some(NOT_OBJECT);
    };
    let source = obj.get("eventSource").and_then(Value::as_str);
    if source.is_some_and(|s| s.starts_with("aws:")) {
        return Some(LAMBDA_SOURCE);
    }
    if obj.contains_key("eventVersion") {
        return None;
    }
    match (source, obj.contains_key("eventName")) {
        (None, _) => Some(NO_EVENT_SOURCE),
        (Some(_), false) => Some(NO_EVENT_NAME),
        (Some(_), true) => None,
    }
}

/// Whether an item (after unwrapping an EventBridge envelope) is a CloudTrail record, complete
/// or not. Used to tell "some items are bad" from "this is not CloudTrail at all".
pub(super) fn looks_like_cloudtrail(v: &Value) -> bool {
    if is_cloudtrail_envelope(v) {
        return not_cloudtrail(&v["detail"]).is_none();
    }
    not_cloudtrail(v).is_none()
}

/// A non-empty string field; anything else (absent, null, a number, "") is missing.
fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// CloudTrail writes `readOnly` as a boolean; some re-serialisers turn it into a string.
fn flag(obj: &Map<String, Value>, key: &str) -> Option<bool> {
    match obj.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn identity(v: Option<&Value>) -> Identity {
    let Some(obj) = v.and_then(Value::as_object) else {
        return Identity::default();
    };
    Identity {
        kind: text(obj, "type"),
        access_key_id: text(obj, "accessKeyId"),
        user_name: text(obj, "userName"),
        account_id: text(obj, "accountId"),
        arn: text(obj, "arn"),
        principal_id: text(obj, "principalId"),
    }
}

/// A time as unix milliseconds: an RFC 3339 string (fractions and offsets honoured), or a number
/// of unix seconds or milliseconds (told apart by size) within years 1970..=9999.
fn millis(v: &Value) -> Option<i64> {
    let ms = match v {
        Value::String(s) => {
            let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()?
        }
        Value::Number(n) => {
            let n = n.as_f64()?;
            // Below 10^11 it is seconds (10^11 s is the year 5138; 10^11 ms is 1973).
            let ms = if n.abs() < 1e11 { n * 1000.0 } else { n };
            if !(0.0..=253_402_300_799_000.0).contains(&ms) {
                return None;
            }
            ms as i64
        }
        _ => return None,
    };
    Some(ms)
}

/// The record's time and what stood in for `eventTime`, if anything did.
fn event_time(
    obj: &Map<String, Value>,
    envelope_time: Option<&Value>,
) -> (Option<i64>, Option<&'static str>) {
    if let Some(t) = obj
        .get("eventTime")
        .and_then(|v| v.as_str().map(|_| v))
        .and_then(millis)
    {
        return (Some(t), None);
    }
    for (key, note) in TIME_STAND_INS {
        if let Some(t) = obj.get(key).and_then(millis) {
            return (Some(t), Some(note));
        }
    }
    if let Some(t) = envelope_time.and_then(millis) {
        return (Some(t), Some(ENVELOPE_TIME));
    }
    (None, Some(ARRIVAL_TIME))
}

/// Whether the record says who made the call: a non-empty `userIdentity` object. (Services
/// acting on their own name only themselves there; they are records, just never a token's.)
fn names_identity(v: Option<&Value>) -> bool {
    v.and_then(Value::as_object).is_some_and(|o| !o.is_empty())
}

/// A stand-in event id: the same record content always gives the same id.
fn content_id(v: &Value) -> String {
    let digest = Sha256::digest(v.to_string().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl Record {
    /// Turns one item (a record, or an EventBridge envelope around one) into a [`Record`], or
    /// says why it cannot: the reason is a fixed text, never a piece of the input. An item is
    /// refused only when it is not a CloudTrail API call or names no identity.
    pub(super) fn from_value(v: Value) -> Result<Record, String> {
        let envelope_time = is_cloudtrail_envelope(&v)
            .then(|| v.get("time").cloned())
            .flatten();
        let v = unwrap_envelope(v);
        if let Some(reason) = not_cloudtrail(&v) {
            return Err(reason.to_owned());
        }
        let Some(obj) = v.as_object() else {
            return Err(NOT_OBJECT.to_owned());
        };
        // Insights events name the API they are about inside insightDetails; they are CloudTrail,
        // but not a call anyone made, so they are told apart from merely broken records.
        if obj.get("eventType").and_then(Value::as_str) == Some("AwsCloudTrailInsight") {
            return Err(INSIGHT.to_owned());
        }
        if !names_identity(obj.get("userIdentity")) {
            return Err(NO_IDENTITY.to_owned());
        }
        let identity = identity(obj.get("userIdentity"));
        let mut fallbacks = Vec::new();
        let (event_time, time_note) = event_time(obj, envelope_time.as_ref());
        fallbacks.extend(time_note);
        let event_id = text(obj, "eventID").unwrap_or_else(|| {
            fallbacks.push(HASHED_ID);
            content_id(&v)
        });
        let tls_host = obj
            .get("tlsDetails")
            .and_then(Value::as_object)
            .and_then(|tls| text(tls, "clientProvidedHostHeader"));
        Ok(Record {
            event_id,
            event_time,
            // Empty when missing: the message says "an unnamed call" rather than drop the use.
            event_name: text(obj, "eventName").unwrap_or_default(),
            event_source: text(obj, "eventSource").unwrap_or_default(),
            aws_region: text(obj, "awsRegion"),
            source_ip: text(obj, "sourceIPAddress"),
            user_agent: text(obj, "userAgent"),
            error_code: text(obj, "errorCode"),
            error_message: text(obj, "errorMessage"),
            recipient_account_id: text(obj, "recipientAccountId"),
            identity,
            tls_host,
            vpc_endpoint_id: text(obj, "vpcEndpointId"),
            request_id: text(obj, "requestID"),
            event_type: text(obj, "eventType"),
            read_only: flag(obj, "readOnly"),
            fallbacks,
            raw: v,
        })
    }
}
