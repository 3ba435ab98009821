//! AWS Health events about exposed keys: recognising them among ingest input and reading the
//! few fields an exposure needs (the key ids, the description, where the key was found, times).
//!
//! AWS sends `AWS_RISK_CREDENTIALS_EXPOSED` when it (or a partner scanning public code) finds an
//! access key in public, and `AWS_RISK_IAM_QUARANTINE` when it attaches its quarantine policy.
//! Both arrive as EventBridge events with `source: aws.health`. Every field is treated as
//! attacker-influenced text: the description quotes the place the key was published, and that
//! place is chosen by whoever published it.

use serde_json::Value;
use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::OffsetDateTime;

use crate::text::without_nul;
use crate::{AccessKeyId, Invalid};

/// The event type AWS sends when it finds one of the account's keys in public.
pub const CREDENTIALS_EXPOSED: &str = "AWS_RISK_CREDENTIALS_EXPOSED";
/// The event type AWS sends when it quarantines a user whose key was exposed.
pub const IAM_QUARANTINE: &str = "AWS_RISK_IAM_QUARANTINE";
/// The event types that become exposures; other Health events are recognised and skipped.
pub const EXPOSURE_EVENT_TYPES: [&str; 2] = [CREDENTIALS_EXPOSED, IAM_QUARANTINE];
/// Names of the AWS managed quarantine policies (`…V2`, `…V3` and whatever version comes next).
pub const QUARANTINE_POLICY_PREFIX: &str = "AWSCompromisedKeyQuarantine";

/// The longest description and location kept; AWS's texts are a few hundred characters.
const MAX_DESCRIPTION_CHARS: usize = 4000;
const MAX_LOCATION_CHARS: usize = 1000;

/// Whether an IAM policy name is one of AWS's quarantine policies.
pub fn is_quarantine_policy(name: &str) -> bool {
    name.starts_with(QUARANTINE_POLICY_PREFIX)
}

/// One AWS Health event about exposed keys.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthEvent {
    /// `detail.eventArn`: the same for every copy AWS delivers (primary and backup region).
    pub event_arn: String,
    pub event_type_code: String,
    /// The English `latestDescription` (or the first one), bounded.
    pub description: String,
    /// Where the key was found, if the description names a place.
    pub location: Option<String>,
    /// The affected entities that are access key ids; anything else is dropped.
    pub keys: Vec<AccessKeyId>,
    /// `detail.startTime`, unix ms.
    pub start_time: Option<i64>,
    /// `detail.lastUpdatedTime`, unix ms.
    pub last_updated_time: Option<i64>,
    /// The envelope's `time`: when AWS handed the event to EventBridge, unix ms.
    pub sent_at: Option<i64>,
    /// The whole envelope, as received.
    pub raw: Value,
}

impl HealthEvent {
    /// Whether this event type becomes an exposure.
    pub fn is_exposure(&self) -> bool {
        EXPOSURE_EVENT_TYPES.contains(&self.event_type_code.as_str())
    }
}

/// Whether a JSON value is an EventBridge event from AWS Health.
pub fn is_health_envelope(v: &Value) -> bool {
    v.get("source").and_then(Value::as_str) == Some("aws.health")
        && v.get("detail-type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.starts_with("AWS Health"))
        && v.get("detail").is_some_and(Value::is_object)
}

/// The Health events in an ingest body, when it is one envelope or a JSON array of them.
/// `None` means the body is not Health input (it is left to the CloudTrail parser).
pub fn recognise(bytes: &[u8]) -> Option<Vec<Result<HealthEvent, Invalid>>> {
    // Cheap test first: most bodies are CloudTrail and never mention the source.
    if !bytes.windows(10).any(|w| w == b"aws.health") {
        return None;
    }
    let v: Value = serde_json::from_slice(bytes).ok()?;
    match &v {
        Value::Object(_) if is_health_envelope(&v) => Some(vec![parse_event(&v)]),
        Value::Array(items) if !items.is_empty() && items.iter().all(is_health_envelope) => {
            Some(items.iter().map(parse_event).collect())
        }
        _ => None,
    }
}

/// Reads one Health envelope.
pub fn parse_event(v: &Value) -> Result<HealthEvent, Invalid> {
    if !is_health_envelope(v) {
        return Err(Invalid::new("not an AWS Health event"));
    }
    let detail = &v["detail"];
    let text = |key: &str| {
        detail
            .get(key)
            .and_then(Value::as_str)
            .map(|s| without_nul(s.to_owned()))
    };
    let event_arn = text("eventArn").ok_or_else(|| Invalid::new("detail.eventArn is missing"))?;
    let event_type_code =
        text("eventTypeCode").ok_or_else(|| Invalid::new("detail.eventTypeCode is missing"))?;
    let descriptions = detail
        .get("eventDescription")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let description = descriptions
        .iter()
        .find(|d| d.get("language").and_then(Value::as_str) == Some("en_US"))
        .or_else(|| descriptions.first())
        .and_then(|d| d.get("latestDescription"))
        .and_then(Value::as_str)
        .map(|d| bounded(d, MAX_DESCRIPTION_CHARS))
        .unwrap_or_default();
    let keys = detail
        .get("affectedEntities")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.get("entityValue").and_then(Value::as_str))
        .filter_map(|k| AccessKeyId::parse(k.trim()).ok())
        .collect();
    let time_of = |s: Option<&str>| s.and_then(parse_time);
    Ok(HealthEvent {
        location: location_in(&description),
        description,
        event_arn,
        event_type_code,
        keys,
        start_time: time_of(detail.get("startTime").and_then(Value::as_str)),
        last_updated_time: time_of(detail.get("lastUpdatedTime").and_then(Value::as_str)),
        sent_at: time_of(v.get("time").and_then(Value::as_str)),
        raw: v.clone(),
    })
}

/// AWS writes Health times as RFC 1123 dates (`Sat, 05 Jun 2016 15:10:09 GMT`) and envelope
/// times as RFC 3339; both are taken.
fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    // `time`'s RFC 2822 parser wants a numeric zone; AWS writes `GMT`.
    let numeric = s.strip_suffix(" GMT").map(|d| format!("{d} +0000"));
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .or_else(|| OffsetDateTime::parse(s, &Rfc2822).ok())
        .or_else(|| OffsetDateTime::parse(numeric.as_deref()?, &Rfc2822).ok())?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The place a description names: the first word that looks like an address (`scheme://…`,
/// `www.…`, or a known code host's path). Trailing sentence punctuation is dropped. The result
/// is text, not a trusted URL: whoever published the key chose it.
pub fn location_in(description: &str) -> Option<String> {
    const HOSTS: [&str; 4] = [
        "github.com/",
        "gitlab.com/",
        "bitbucket.org/",
        "pastebin.com/",
    ];
    description
        .split_whitespace()
        .find(|w| {
            let lower = w.to_ascii_lowercase();
            lower.contains("://")
                || lower.starts_with("www.")
                || HOSTS.iter().any(|h| lower.starts_with(h))
        })
        .map(|w| w.trim_end_matches(['.', ',', ';', ':', ')', ']', '>', '"', '\'']))
        .filter(|w| !w.is_empty())
        .map(|w| bounded(w, MAX_LOCATION_CHARS))
}

/// At most `max` characters, with NUL replaced (`text::without_nul`).
fn bounded(s: &str, max: usize) -> String {
    without_nul(s.chars().take(max).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_both_forms() {
        assert_eq!(
            parse_time("Sat, 05 Jun 2016 15:10:09 GMT"),
            Some(1_465_139_409_000)
        );
        assert_eq!(parse_time("2016-06-05T15:10:09Z"), Some(1_465_139_409_000));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn nul_in_health_text_becomes_the_replacement_character() {
        let v: Value = serde_json::json!({
            "source": "aws.health", "detail-type": "AWS Health Event",
            "detail": {"eventArn": "arn\u{0}x", "eventTypeCode": "AWS_RISK_CREDENTIALS_EXPOSED",
                       "eventDescription": [{"language": "en_US",
                                             "latestDescription": "at https://x.test/\u{0}a"}]}
        });
        let e = parse_event(&v).unwrap();
        assert_eq!(e.event_arn, "arn\u{FFFD}x");
        assert_eq!(e.description, "at https://x.test/\u{FFFD}a");
        assert_eq!(e.location.as_deref(), Some("https://x.test/\u{FFFD}a"));
    }

    #[test]
    fn locations() {
        assert_eq!(
            location_in("found at https://github.com/o/r/blob/x/.env. Rotate it").as_deref(),
            Some("https://github.com/o/r/blob/x/.env")
        );
        assert_eq!(
            location_in("seen on github.com/o/r, please act").as_deref(),
            Some("github.com/o/r")
        );
        assert_eq!(
            location_in("at javascript://x%0Aalert(1) now").as_deref(),
            Some("javascript://x%0Aalert(1")
        );
        assert_eq!(location_in("no place given"), None);
    }

    #[test]
    fn quarantine_policy_names() {
        assert!(is_quarantine_policy("AWSCompromisedKeyQuarantineV2"));
        assert!(is_quarantine_policy("AWSCompromisedKeyQuarantineV3"));
        assert!(is_quarantine_policy("AWSCompromisedKeyQuarantine"));
        assert!(!is_quarantine_policy("ReadOnlyAccess"));
    }

    #[test]
    fn cloudtrail_is_not_health() {
        assert!(recognise(br#"{"Records":[]}"#).is_none());
        assert!(recognise(br#"{"source":"aws.health"}"#).is_none());
        let other = br#"{"source":"aws.health","detail-type":"AWS Health Event","detail":{}}"#;
        let parsed = recognise(other).unwrap();
        assert!(parsed[0].is_err(), "no eventArn");
    }
}
