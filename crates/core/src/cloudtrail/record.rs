//! One CloudTrail record: what makes a JSON object a record, and the fields the detector needs,
//! lifted out of it with every type surprise turned into "missing" rather than an error. A record
//! that names an identity is never dropped over a field a hit can do without: a missing time or
//! id gets a stated stand-in instead (see [`Record::fallbacks`]).

use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::fields::{self, Fields, IdentityFields, Loose};
use super::gate::{Gate, Who};
use super::raw::RawJson;

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
    pub raw: RawJson,
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

const NOT_OBJECT: &str = "not a JSON object";
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

/// Whether an object is an EventBridge envelope around a CloudTrail record.
pub(super) fn is_cloudtrail_envelope(f: &Fields<'_>) -> bool {
    f.detail_type
        .as_ref()
        .and_then(Loose::as_str)
        .is_some_and(|t| t.ends_with(EVENTBRIDGE_SUFFIX))
        && f.detail.is_some()
}

/// Why an object is not a CloudTrail record at all, or `None` if it is one (complete or not).
/// A record is an object with `eventVersion`, or with `eventSource` and `eventName`; Lambda
/// event-source records (S3 notifications, SQS, Kinesis) share those keys but name their source
/// `aws:…`, which CloudTrail never does.
fn not_cloudtrail(f: &Fields<'_>) -> Option<&'static str> {
    let source = f.event_source.as_ref().and_then(Loose::as_str);
    if source.is_some_and(|s| s.starts_with("aws:")) {
        return Some(LAMBDA_SOURCE);
    }
    if f.event_version {
        return None;
    }
    match (source, f.event_name.is_some()) {
        (None, _) => Some(NO_EVENT_SOURCE),
        (Some(_), false) => Some(NO_EVENT_NAME),
        (Some(_), true) => None,
    }
}

fn text(v: &Option<Loose<'_>>) -> Option<String> {
    v.as_ref().and_then(Loose::text)
}

/// CloudTrail writes `readOnly` as a boolean; some re-serialisers turn it into a string.
fn flag(v: &Option<Loose<'_>>) -> Option<bool> {
    match v.as_ref()? {
        Loose::Bool(b) => Some(*b),
        Loose::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Loose::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn identity(v: Option<&IdentityFields<'_>>) -> Identity {
    let Some(id) = v else {
        return Identity::default();
    };
    Identity {
        kind: text(&id.kind),
        access_key_id: text(&id.access_key_id),
        user_name: text(&id.user_name),
        account_id: text(&id.account_id),
        arn: text(&id.arn),
        principal_id: text(&id.principal_id),
    }
}

/// A time as unix milliseconds: an RFC 3339 string (fractions and offsets honoured), or a number
/// of unix seconds or milliseconds (told apart by size) within years 1970..=9999.
fn millis(v: &Loose<'_>) -> Option<i64> {
    let ms = match v {
        Loose::Str(s) => {
            let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
            i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()?
        }
        Loose::Num(n) => {
            // Below 10^11 it is seconds (10^11 s is the year 5138; 10^11 ms is 1973).
            let ms = if n.abs() < 1e11 { n * 1000.0 } else { *n };
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
    f: &Fields<'_>,
    envelope_time: Option<&Loose<'_>>,
) -> (Option<i64>, Option<&'static str>) {
    // eventTime itself must be a string; a number there is a malformed field, not a time.
    if let Some(t) = f
        .event_time
        .as_ref()
        .filter(|v| matches!(v, Loose::Str(_)))
        .and_then(millis)
    {
        return (Some(t), None);
    }
    for (value, (_, note)) in f.stand_ins.iter().zip(TIME_STAND_INS) {
        if let Some(t) = value.as_ref().and_then(millis) {
            return (Some(t), Some(note));
        }
    }
    if let Some(t) = envelope_time.and_then(millis) {
        return (Some(t), Some(ENVELOPE_TIME));
    }
    (None, Some(ARRIVAL_TIME))
}

/// A stand-in event id: the same record content always gives the same id. The hash is of the
/// canonical form (serde_json's compact, key-sorted text), so whitespace and member order do
/// not matter and ids stay those of earlier versions.
fn content_id(raw: &RawValue) -> String {
    let canonical = serde_json::from_str::<serde_json::Value>(raw.get())
        .map(|v| v.to_string())
        // Nested too deep for a tree: the text itself is the content.
        .unwrap_or_else(|_| raw.get().to_owned());
    let digest = Sha256::digest(canonical.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// What one item became. Held only on the way into a chunk, where the record is moved anyway:
/// boxing it would add an allocation per record to save a copy of a few hundred bytes.
#[allow(clippy::large_enum_variant)]
pub(super) enum Judged {
    Record(Record),
    /// A usable record the gate said could not be wanted: counted, not built.
    Gated,
    /// Why the item cannot be a record (a fixed text).
    Refused(&'static str),
}

/// What one item is: whether it is a CloudTrail record at all (usable or not), and what it
/// became.
pub(super) struct Verdict {
    pub(super) cloudtrail_like: bool,
    pub(super) record: Judged,
}

impl Verdict {
    fn refuse(cloudtrail_like: bool, reason: &'static str) -> Self {
        Self {
            cloudtrail_like,
            record: Judged::Refused(reason),
        }
    }
}

impl Record {
    /// Judges one item (a record, or an EventBridge envelope around one), read from its text
    /// with `fields` already lifted out of it. The reason for a refusal is a fixed text, never a
    /// piece of the input. An item is refused only when it is not a CloudTrail API call or names
    /// no identity. A usable record that `gate` refuses is not built.
    pub(super) fn judge(raw: &RawValue, f: Option<Fields<'_>>, gate: &dyn Gate) -> Verdict {
        let Some(mut f) = f else {
            return Verdict::refuse(false, NOT_OBJECT);
        };
        if is_cloudtrail_envelope(&f) {
            let envelope_time = f.stand_ins[2].take();
            let Some(detail) = f.detail.take() else {
                return Verdict::refuse(false, NOT_OBJECT);
            };
            let inner = fields::read(detail.get());
            return Self::build(detail, inner, envelope_time.as_ref(), gate);
        }
        Self::build(raw, Some(f), None, gate)
    }

    /// The record of `raw`, whose members were lifted into `f`. Only a record that is built
    /// copies its text.
    fn build(
        raw: &RawValue,
        f: Option<Fields<'_>>,
        envelope_time: Option<&Loose<'_>>,
        gate: &dyn Gate,
    ) -> Verdict {
        let Some(f) = f else {
            return Verdict::refuse(false, NOT_OBJECT);
        };
        if let Some(reason) = not_cloudtrail(&f) {
            return Verdict::refuse(false, reason);
        }
        // Insights events name the API they are about inside insightDetails; they are CloudTrail,
        // but not a call anyone made, so they are told apart from merely broken records.
        if f.event_type.as_ref().and_then(Loose::as_str) == Some("AwsCloudTrailInsight") {
            return Verdict::refuse(true, INSIGHT);
        }
        // Whether the record says who made the call: a non-empty `userIdentity` object.
        // (Services acting on their own name only themselves there; they are records, just
        // never a token's.)
        let who = match &f.user_identity {
            Some(Some(id)) if id.any => id,
            _ => return Verdict::refuse(true, NO_IDENTITY),
        };
        if !gate.may_match(&Who::of(&f, who)) {
            return Verdict {
                cloudtrail_like: true,
                record: Judged::Gated,
            };
        }
        let identity = identity(Some(who));
        let mut fallbacks = Vec::new();
        let (event_time, time_note) = event_time(&f, envelope_time);
        fallbacks.extend(time_note);
        let event_id = text(&f.event_id).unwrap_or_else(|| {
            fallbacks.push(HASHED_ID);
            content_id(raw)
        });
        let record = Record {
            event_id,
            event_time,
            // Empty when missing: the message says "an unnamed call" rather than drop the use.
            event_name: text(&f.event_name).unwrap_or_default(),
            event_source: text(&f.event_source).unwrap_or_default(),
            aws_region: text(&f.aws_region),
            source_ip: text(&f.source_ip),
            user_agent: text(&f.user_agent),
            error_code: text(&f.error_code),
            error_message: text(&f.error_message),
            recipient_account_id: text(&f.recipient_account_id),
            identity,
            tls_host: text(&f.tls_host),
            vpc_endpoint_id: text(&f.vpc_endpoint_id),
            request_id: text(&f.request_id),
            event_type: text(&f.event_type),
            read_only: flag(&f.read_only),
            fallbacks,
            raw: RawJson::new(raw.to_owned()),
        };
        Verdict {
            cloudtrail_like: true,
            record: Judged::Record(record),
        }
    }
}
