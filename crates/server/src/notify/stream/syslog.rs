//! `[streams.syslog]`: one RFC 5424 message per record, over UDP (RFC 5426, best effort), TCP
//! with octet counting (RFC 6587 §3.4.1) or TLS (RFC 5425, which frames the same way).
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [canarykeys@32473 alert_id="…" …] {json}
//! ```
//!
//! - Structured data carries the alert id, token id, key id, account, event and source address.
//!   Values are escaped per RFC 5424 §6.3.3 (`"`, `\` and `]` get a backslash), and every
//!   control character (and U+2028/U+2029, and bidi controls) is replaced first: no byte of a
//!   user agent can end the message, the element or the line.
//! - MSG is the record's generic JSON on one line, in ASCII only: controls and every non-ASCII
//!   character are `\u` escapes (JSON strings keep them exactly).
//! - 32473 is the enterprise number RFC 5612 reserves for documentation: we have none of our
//!   own, and the SD-ID must name one.

use async_trait::async_trait;

use super::{Sink, StreamRecord};
use crate::config::SyslogStream;
use crate::notify::webhook::escape::single_line;
use crate::notify::{AlertKind, Outcome};

pub use super::syslog_net::Target;
use super::syslog_net::Transport;

/// The structured data element's id.
pub const SD_ID: &str = "canarykeys@32473";

/// The numeric facility of a name (default `local0`).
pub fn facility(name: Option<&str>) -> Result<u8, String> {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "ntp", "security", "console", "clock", "local0", "local1", "local2",
        "local3", "local4", "local5", "local6", "local7",
    ];
    let name = name.unwrap_or("local0").trim().to_ascii_lowercase();
    let name = match name.as_str() {
        "audit" => "security",
        "alert" => "console",
        n => n,
    };
    NAMES
        .iter()
        .position(|n| *n == name)
        .map(|i| u8::try_from(i).unwrap_or(16))
        .ok_or_else(|| {
            format!("unknown facility {name:?} (local0…local7, auth, security, user, …)")
        })
}

/// How grave a record is, as a syslog severity.
fn severity(record: &StreamRecord) -> u8 {
    use crate::notify::operator::OperatorStatus;
    match record {
        StreamRecord::Alert(a) if a.kind == AlertKind::Test => 5,
        // Someone holds a decoy key: an intrusion in progress.
        StreamRecord::Alert(_) => 1,
        StreamRecord::Operator(o) if o.status == OperatorStatus::Problem => 3,
        StreamRecord::Operator(_) => 5,
        StreamRecord::Audit(_) => 6,
    }
}

/// A header field (HOSTNAME, APP-NAME, MSGID): printable ASCII without spaces, at most `max`
/// characters, `-` (NILVALUE) when empty.
fn header_field(s: &str, max: usize) -> String {
    let kept: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if kept.is_empty() {
        "-".into()
    } else {
        kept
    }
}

/// A PARAM-VALUE: one line, then `"`, `\` and `]` escaped (RFC 5424 §6.3.3).
pub fn sd_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in single_line(s).chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// JSON on one line in ASCII: every non-ASCII or control character as a `\u` escape. They can
/// only be inside strings (JSON's own syntax is ASCII), where the escape means the same.
pub fn ascii_json(value: &serde_json::Value) -> String {
    let text = serde_json::to_string(value).expect("a serde_json::Value always serialises");
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// The structured data's parameters for a record, in order.
fn params(record: &StreamRecord) -> Vec<(&'static str, String)> {
    let mut p = vec![("alert_id", record.id().to_owned())];
    match record {
        StreamRecord::Alert(a) => {
            p.push(("type", a.kind.name().to_owned()));
            p.push(("token_id", a.token_id.clone()));
            if let Some(k) = &a.access_key_id {
                p.push(("key_id", k.clone()));
            }
            if let Some(acct) = &a.account_id {
                p.push(("account", acct.clone()));
            }
            p.push(("event", a.event_name.clone()));
            p.push(("source_ip", a.source_ip.clone()));
        }
        StreamRecord::Operator(o) => {
            p.push(("type", "operator".into()));
            p.push((
                "status",
                serde_json::to_value(o.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            ));
        }
        StreamRecord::Audit(e) => {
            p.push(("type", "audit".into()));
            p.push(("actor", e.actor.clone()));
            p.push(("action", e.action.clone()));
        }
    }
    p
}

/// The message's fixed parts.
#[derive(Clone, Debug)]
pub struct Format {
    pub facility: u8,
    pub hostname: String,
    pub app_name: String,
}

impl Format {
    /// One RFC 5424 message (without framing).
    pub fn message(&self, record: &StreamRecord) -> String {
        let pri = u16::from(self.facility) * 8 + u16::from(severity(record));
        let time = time::OffsetDateTime::parse(
            record.time(),
            &time::format_description::well_known::Rfc3339,
        )
        .ok()
        .and_then(|t| {
            t.to_offset(time::UtcOffset::UTC)
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into());
        let mut sd = format!("[{SD_ID}");
        for (name, value) in params(record) {
            sd.push_str(&format!(" {name}=\"{}\"", sd_value(&value)));
        }
        sd.push(']');
        format!(
            "<{pri}>1 {time} {} {} - {} {sd} {}",
            header_field(&self.hostname, 255),
            header_field(&self.app_name, 48),
            header_field(record.type_name(), 32),
            ascii_json(&record.generic()),
        )
    }
}

/// The syslog stream: formats, then writes through one kept connection.
pub struct SyslogSink {
    format: Format,
    transport: Transport,
}

impl SyslogSink {
    pub fn new(config: &SyslogStream) -> Result<Self, String> {
        let target = Target::parse(&config.address)?;
        let hostname = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Self {
            format: Format {
                facility: facility(config.facility.as_deref())?,
                hostname,
                app_name: config
                    .app_name
                    .clone()
                    .unwrap_or_else(|| "canarykeys".into()),
            },
            transport: Transport::new(target, config.ca_file.as_deref())?,
        })
    }
}

#[async_trait]
impl Sink for SyslogSink {
    async fn send(&self, records: &[StreamRecord]) -> Vec<Outcome> {
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            out.push(self.transport.send(&self.format.message(r)).await);
        }
        out
    }

    async fn check(&self) -> Result<String, String> {
        self.transport.check().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_stays_inside_its_value() {
        assert_eq!(sd_value(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        assert_eq!(sd_value("x\ny\u{0085}z\u{2028}"), "x y z ");
        let mut alert = crate::notify::webhook::hostile_alert();
        alert.user_agent = "ua\"] [evil@1 x=\"y\"]\n<13>1 forged\u{7f}é".into();
        alert.source_ip = "1.2.3.4\"]".into();
        let f = Format {
            facility: 16,
            hostname: "canary host".into(),
            app_name: "canarykeys".into(),
        };
        let line = f.message(&StreamRecord::Alert(Box::new(alert)));
        assert!(line.starts_with("<129>1 2025-11-24T10:00:00Z canaryhost canarykeys - hit [canarykeys@32473 alert_id=\"al_0001\""), "{line}");
        assert!(line.contains(r#"source_ip="1.2.3.4\"\]""#), "{line}");
        assert!(line.is_ascii(), "{line}");
        assert!(!line.chars().any(|c| c.is_control()), "{line}");
        let json = line
            .split_once("\"] {")
            .map(|(_, j)| format!("{{{j}"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v["event"]["user_agent"],
            "ua\"] [evil@1 x=\"y\"]\n<13>1 forged\u{7f}é"
        );
    }

    #[test]
    fn facilities() {
        assert_eq!(facility(None), Ok(16));
        assert_eq!(facility(Some("auth")), Ok(4));
        assert_eq!(facility(Some("LOCAL7")), Ok(23));
        assert!(facility(Some("local8")).is_err());
    }
}
