//! Proof of life: the state of one detection path (account, region, path) as the heartbeat
//! sees it, and what an operator alert about it carries. Shared by the heartbeat (which judges
//! the state) and the operator channel (which tells people when it changes).

use std::fmt;

use serde::{Deserialize, Serialize};

/// How a detection path is doing, judged from its heartbeat receipts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathState {
    /// Receipts arrive as the heartbeat interval says they should.
    Ok,
    /// The newest receipt is older than the interval plus the path's usual latency.
    Late,
    /// No receipt for longer than `[heartbeat] silent_after`.
    Silent,
    /// Configured in `[heartbeat] expect`, but never heard from.
    Never,
}

impl PathState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Late => "late",
            Self::Silent => "silent",
            Self::Never => "never",
        }
    }
}

impl fmt::Display for PathState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One detection path's state, as an operator alert reports it (`canarykeys.operator/v1`,
/// `"type": "detection"`). Times are unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionReport {
    pub account_id: String,
    pub region: String,
    /// The delivery path's wire name (`eventbridge`, `cloudwatch-logs`, `s3`, `sensor`, ...).
    pub path: String,
    pub state: PathState,
    /// When the newest receipt arrived, if any ever did.
    pub last_seen_at: Option<i64>,
    /// The newest receipt's latency: the time we got it minus the call's `eventTime`.
    pub latency_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_have_stable_wire_names() {
        for (state, name) in [
            (PathState::Ok, "ok"),
            (PathState::Late, "late"),
            (PathState::Silent, "silent"),
            (PathState::Never, "never"),
        ] {
            assert_eq!(state.as_str(), name);
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{name}\"")
            );
        }
    }
}
