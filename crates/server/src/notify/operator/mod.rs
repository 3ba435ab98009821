//! Operator alerts: messages about the system rather than a token, in their own versioned
//! schema, `canarykeys.operator/v1` (`canarykeys.alert/v1` promises a token and an event in
//! every message, which these do not have).
//!
//! # Schema `canarykeys.operator/v1`
//!
//! Also written out, field by field, in `tests/fixtures/webhooks/operator.schema.md`, with one
//! example per type in `tests/fixtures/webhooks/operator.*.json`.
//!
//! ```text
//! {
//!   "schema":     "canarykeys.operator/v1",
//!   "type":       "detection" | "heartbeat" | "disk" | "safety_net" | "alive",
//!   "status":     "problem" | "recovered" | "alive",
//!   "alert_id":   string,           stable per alert; equal on every retry
//!   "headline":   string,           one sentence, for people
//!   "server":     string,           the server's public URL
//!   "at":         string,           when the change was recorded (RFC 3339, UTC)
//!   "detection":  null | { "account_id", "region", "path", "state": "ok"|"late"|"silent"|"never",
//!                          "last_seen_at": string|null, "latency_ms": integer|null }
//!   "heartbeat":  null | { "account_id", "region", "refused": boolean, "error": string|null }
//!   "disk":       null | { "low": boolean, "free_bytes": integer, "min_free_bytes": integer }
//!   "safety_net": null | { "account_id", "error": string|null }
//!   "alive":      null | { "every_seconds": integer }
//! }
//! ```
//!
//! Every key is always present (the objects of the other types are `null`). Account ids,
//! regions, paths and errors are passed unescaped; an error may quote AWS or a receiver, so a
//! receiver must escape them. New keys may be added within v1.

mod chat;
mod email;

use serde::{Deserialize, Serialize};

pub use chat::payload;
pub use email::{build as email_message, render as render_email, OperatorEmail};

/// The value of the `schema` key.
pub const SCHEMA: &str = "canarykeys.operator/v1";

/// What an operator alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorKind {
    Detection,
    Heartbeat,
    Disk,
    SafetyNet,
    Alive,
}

/// Whether it reports a problem, its end, or the watchdog's beat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorStatus {
    Problem,
    Recovered,
    Alive,
}

/// A detection path's state (`"type": "detection"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionBody {
    pub account_id: String,
    pub region: String,
    pub path: String,
    pub state: canarykeys_core::detection::PathState,
    pub last_seen_at: Option<String>,
    pub latency_ms: Option<i64>,
}

/// The heartbeat call in one account and region (`"type": "heartbeat"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatBody {
    pub account_id: String,
    pub region: String,
    pub refused: bool,
    pub error: Option<String>,
}

/// The free-disk watermark (`"type": "disk"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskBody {
    pub low: bool,
    pub free_bytes: u64,
    pub min_free_bytes: u64,
}

/// The safety net's rounds in one account (`"type": "safety_net"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyNetBody {
    pub account_id: String,
    pub error: Option<String>,
}

/// The watchdog's beat (`"type": "alive"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliveBody {
    pub every_seconds: u64,
}

/// One operator alert, exactly as the generic webhook receives it (and as the outbox keeps it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorAlert {
    pub schema: String,
    #[serde(rename = "type")]
    pub kind: OperatorKind,
    pub status: OperatorStatus,
    pub alert_id: String,
    pub headline: String,
    pub server: String,
    pub at: String,
    pub detection: Option<DetectionBody>,
    pub heartbeat: Option<HeartbeatBody>,
    pub disk: Option<DiskBody>,
    pub safety_net: Option<SafetyNetBody>,
    pub alive: Option<AliveBody>,
}

impl OperatorAlert {
    /// The title every channel shows: our own words only, no reported value.
    pub fn title(&self) -> &'static str {
        use OperatorKind as K;
        use OperatorStatus as S;
        match (self.kind, self.status) {
            (_, S::Alive) | (K::Alive, _) => "canarykeys is alive",
            (K::Detection, S::Problem) => "Detection path silent",
            (K::Detection, S::Recovered) => "Detection path works again",
            (K::Heartbeat, S::Problem) => "Heartbeat call refused by AWS",
            (K::Heartbeat, S::Recovered) => "Heartbeat call works again",
            (K::Disk, S::Problem) => "Free disk below [storage] min_free",
            (K::Disk, S::Recovered) => "Free disk back above [storage] min_free",
            (K::SafetyNet, S::Problem) => "Safety-net rounds failing",
            (K::SafetyNet, S::Recovered) => "Safety-net rounds work again",
        }
    }

    /// What to do, in our own words.
    pub fn advice(&self) -> Option<&'static str> {
        use OperatorKind as K;
        if self.status != OperatorStatus::Problem {
            return None;
        }
        Some(match self.kind {
            K::Detection => {
                "Uses of decoy keys through this path are not reaching the server. Check the \
                 EventBridge rule and API destination, the relay Lambda, the trail and the \
                 bucket for this account and region."
            }
            K::Heartbeat => {
                "The heartbeat identity was deleted or AWS throttled the call. The server makes \
                 a new identity when the old one is gone."
            }
            K::Disk => {
                "Hits are stored without their raw record until space is freed. Free space on \
                 the data directory's disk."
            }
            K::SafetyNet => {
                "Uses CloudTrail did not log cannot be seen in this account. Check the \
                 credentials or role the safety net uses there."
            }
            K::Alive => return None,
        })
    }

    /// Labelled values, raw (each channel escapes them), in the order they are shown.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(d) = &self.detection {
            out.push(("Account", d.account_id.clone()));
            out.push(("Region", d.region.clone()));
            out.push(("Path", d.path.clone()));
            out.push(("State", d.state.to_string()));
            let seen = d.last_seen_at.clone().unwrap_or_else(|| "never".into());
            out.push(("Last receipt", seen));
            if let Some(ms) = d.latency_ms {
                out.push(("Latency", format!("{ms} ms")));
            }
        }
        if let Some(h) = &self.heartbeat {
            out.push(("Account", h.account_id.clone()));
            out.push(("Region", h.region.clone()));
            if let Some(e) = &h.error {
                out.push(("AWS said", e.clone()));
            }
        }
        if let Some(d) = &self.disk {
            out.push(("Free", bytes(d.free_bytes)));
            out.push(("Watermark", bytes(d.min_free_bytes)));
        }
        if let Some(s) = &self.safety_net {
            out.push(("Account", s.account_id.clone()));
            if let Some(e) = &s.error {
                out.push(("Error", e.clone()));
            }
        }
        if let Some(a) = &self.alive {
            out.push(("Next one within", format!("{} s", a.every_seconds)));
        }
        out.push(("Server", self.server.clone()));
        out.push(("Time", self.at.clone()));
        out
    }
}

/// A byte count for people (MiB above a mebibyte).
fn bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// A fixed alert with hostile reported text, for the unit tests.
#[cfg(test)]
pub(crate) fn hostile() -> OperatorAlert {
    OperatorAlert {
        schema: SCHEMA.into(),
        kind: OperatorKind::SafetyNet,
        status: OperatorStatus::Problem,
        alert_id: "op_1".into(),
        headline: "Safety net failing in <b>1234</b> @everyone".into(),
        server: "https://canary.example.com".into(),
        at: "2025-11-24T10:00:00Z".into(),
        detection: None,
        heartbeat: None,
        disk: None,
        safety_net: Some(SafetyNetBody {
            account_id: "123456789012".into(),
            error: Some("<script>x</script> <!channel> *b* [l](http://e)\nForged: line".into()),
        }),
        alive: None,
    }
}
