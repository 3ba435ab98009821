//! The operator channel's records: a condition's reported state, which level of alert a state
//! calls for, and the channel's health for `/healthz/detail`.

/// What a state calls for, compared with the last alert sent about its subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionLevel {
    /// Something is wrong: alert unless the last alert about the subject already said so.
    Bad,
    /// It works: alert only when the last alert about the subject said it was wrong (a
    /// recovery). A first report that all is well sends nothing.
    Good,
    /// Recorded, never alerted (a detection path `late` or `never`).
    Quiet,
}

impl ConditionLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bad => "bad",
            Self::Good => "good",
            Self::Quiet => "quiet",
        }
    }

    /// Whether a state of this level alerts, given the level of the last alert sent about the
    /// subject (`None`: none ever was).
    pub fn alerts_after(self, last_alerted: Option<&str>) -> bool {
        match self {
            Self::Bad => last_alerted != Some("bad"),
            Self::Good => last_alerted == Some("bad"),
            Self::Quiet => false,
        }
    }
}

/// One report of a condition's current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorCondition {
    /// What it is about, e.g. `detection/123456789012/us-east-1/eventbridge` or `disk`.
    pub subject: String,
    /// The state, as compared with the last one (`silent`, `refused`, `low`, `ok`, ...).
    pub state: String,
    pub level: ConditionLevel,
    /// The report as JSON, kept with the state for people reading the table.
    pub detail: String,
    /// Unix ms.
    pub at: i64,
}

/// The operator channel's health, for `/healthz/detail`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorStatus {
    /// When the watchdog's last `alive` was queued (unix ms), by any replica.
    pub last_alive_at: Option<i64>,
    /// When the next one is due.
    pub next_alive_at: Option<i64>,
    /// Operator deliveries waiting to be sent (retries included).
    pub pending: u64,
    /// Operator deliveries given up on.
    pub failed: u64,
    /// The newest failed or retried operator delivery's error.
    pub last_error: Option<String>,
}
