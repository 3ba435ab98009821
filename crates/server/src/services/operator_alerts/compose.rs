//! What an operator alert says for a condition's state: its subject and level (`judge`), the
//! `canarykeys.operator/v1` message, and one outbox row per configured address.

use canarykeys_core::detection::PathState;
use canarykeys_core::ids;
use canarykeys_store::{ChannelKind, ConditionLevel, NewDelivery};

use super::{Condition, Inner};
use crate::notify::operator::{
    DetectionBody, DiskBody, HeartbeatBody, OperatorAlert, OperatorKind, OperatorStatus,
    SafetyNetBody, SCHEMA,
};
use crate::render::rfc3339;

/// The longest reported error an alert carries.
const ERROR_MAX: usize = 1000;

/// A condition's subject, state and what that state calls for.
pub(super) fn judge(condition: &Condition) -> (String, &'static str, ConditionLevel) {
    let good_or_bad = |bad: bool| {
        if bad {
            ConditionLevel::Bad
        } else {
            ConditionLevel::Good
        }
    };
    match condition {
        Condition::Detection(r) => (
            format!("detection/{}/{}/{}", r.account_id, r.region, r.path),
            r.state.as_str(),
            match r.state {
                PathState::Silent => ConditionLevel::Bad,
                PathState::Ok => ConditionLevel::Good,
                // Recorded, not alerted: `late` is normal jitter, `never` a path not set up yet.
                PathState::Late | PathState::Never => ConditionLevel::Quiet,
            },
        ),
        Condition::HeartbeatCall {
            account_id,
            region,
            refused,
        } => (
            format!("heartbeat/{account_id}/{region}"),
            if refused.is_some() { "refused" } else { "ok" },
            good_or_bad(refused.is_some()),
        ),
        Condition::Disk { low, .. } => (
            "disk".into(),
            if *low { "low" } else { "ok" },
            good_or_bad(*low),
        ),
        Condition::SafetyNet { account_id, error } => (
            format!("safety_net/{account_id}"),
            if error.is_some() { "error" } else { "ok" },
            good_or_bad(error.is_some()),
        ),
    }
}

fn cut(s: &str) -> String {
    s.chars().take(ERROR_MAX).collect()
}

impl Inner {
    pub(super) fn base(
        &self,
        kind: OperatorKind,
        status: OperatorStatus,
        now: i64,
    ) -> OperatorAlert {
        OperatorAlert {
            schema: SCHEMA.into(),
            kind,
            status,
            alert_id: format!("op_{}", ids::random_id()),
            headline: String::new(),
            server: self.server.clone(),
            at: rfc3339(now),
            detection: None,
            heartbeat: None,
            disk: None,
            safety_net: None,
            alive: None,
        }
    }

    /// The alert a condition's state would send.
    pub(super) fn alert(
        &self,
        condition: &Condition,
        level: ConditionLevel,
        now: i64,
    ) -> OperatorAlert {
        let status = match level {
            ConditionLevel::Bad => OperatorStatus::Problem,
            _ => OperatorStatus::Recovered,
        };
        let problem = status == OperatorStatus::Problem;
        match condition {
            Condition::Detection(r) => {
                let mut a = self.base(OperatorKind::Detection, status, now);
                let place = format!(
                    "The {} path in {} of account {}",
                    r.path, r.region, r.account_id
                );
                a.headline = match (r.state, r.last_seen_at) {
                    (PathState::Ok, _) => format!("{place} delivers heartbeats again"),
                    (_, Some(at)) => format!(
                        "{place} is {}: its last heartbeat came at {}",
                        r.state,
                        rfc3339(at)
                    ),
                    (_, None) => {
                        format!("{place} is {}: no heartbeat ever came through it", r.state)
                    }
                };
                a.detection = Some(DetectionBody {
                    account_id: r.account_id.clone(),
                    region: r.region.clone(),
                    path: r.path.clone(),
                    state: r.state,
                    last_seen_at: r.last_seen_at.map(rfc3339),
                    latency_ms: r.latency_ms,
                });
                a
            }
            Condition::HeartbeatCall {
                account_id,
                region,
                refused,
            } => {
                let mut a = self.base(OperatorKind::Heartbeat, status, now);
                a.headline = match refused {
                    Some(why) => format!(
                        "AWS refused the heartbeat call in {region} of account {account_id}: {}",
                        cut(why)
                    ),
                    None => format!(
                        "The heartbeat call in {region} of account {account_id} works again"
                    ),
                };
                a.heartbeat = Some(HeartbeatBody {
                    account_id: account_id.clone(),
                    region: region.clone(),
                    refused: refused.is_some(),
                    error: refused.as_deref().map(cut),
                });
                a
            }
            Condition::Disk { low, free_bytes } => {
                let mut a = self.base(OperatorKind::Disk, status, now);
                a.headline = if problem {
                    format!(
                        "Free disk is {free_bytes} bytes, under [storage] min_free ({} bytes): \
                         hits are stored without their raw record",
                        self.min_free
                    )
                } else {
                    format!("Free disk is back to {free_bytes} bytes: everything is stored again")
                };
                a.disk = Some(DiskBody {
                    low: *low,
                    free_bytes: *free_bytes,
                    min_free_bytes: self.min_free,
                });
                a
            }
            Condition::SafetyNet { account_id, error } => {
                let mut a = self.base(OperatorKind::SafetyNet, status, now);
                a.headline = match error {
                    Some(e) => format!(
                        "The safety net cannot check keys in account {account_id}: {}",
                        cut(e)
                    ),
                    None => format!("The safety net checks keys in account {account_id} again"),
                };
                a.safety_net = Some(SafetyNetBody {
                    account_id: account_id.clone(),
                    error: error.as_deref().map(cut),
                });
                a
            }
        }
    }

    /// One outbox row per configured address, in the operator lanes.
    pub(super) fn deliveries(&self, alert: &OperatorAlert, now: i64) -> Vec<NewDelivery> {
        let payload = serde_json::to_string(alert).expect("an operator alert serialises");
        let row = |n: usize, channel, target: &str, missing: Option<&str>| NewDelivery {
            id: ids::sequential_id(),
            token_id: None,
            // Unique per (message, channel): each address is a message of its own.
            message_id: if n == 0 {
                alert.alert_id.clone()
            } else {
                format!("{}-{n}", alert.alert_id)
            },
            kind: "operator".into(),
            channel,
            target: target.to_owned(),
            payload: payload.clone(),
            state: if missing.is_some() {
                "failed"
            } else {
                "pending"
            }
            .into(),
            last_error: missing.map(str::to_owned),
            created_at: now,
        };
        let mut out: Vec<NewDelivery> = self
            .email
            .iter()
            .enumerate()
            .map(|(n, to)| row(n, ChannelKind::Email, to, self.email_missing))
            .collect();
        if let Some(url) = &self.webhook {
            out.push(row(0, ChannelKind::Webhook, url, None));
        }
        out.extend(self.streams.operator_rows(alert, now));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canarykeys_core::detection::DetectionReport;

    #[test]
    fn only_silent_and_back_alert_for_a_detection_path() {
        let report = |state| {
            Condition::Detection(DetectionReport {
                account_id: "123456789012".into(),
                region: "us-east-1".into(),
                path: "eventbridge".into(),
                state,
                last_seen_at: None,
                latency_ms: None,
            })
        };
        let level = |s| judge(&report(s)).2;
        assert_eq!(level(PathState::Silent), ConditionLevel::Bad);
        assert_eq!(level(PathState::Ok), ConditionLevel::Good);
        assert_eq!(level(PathState::Late), ConditionLevel::Quiet);
        assert_eq!(level(PathState::Never), ConditionLevel::Quiet);
        assert_eq!(
            judge(&report(PathState::Ok)).0,
            "detection/123456789012/us-east-1/eventbridge"
        );
        // Silent alerts once; back to ok after silent alerts; a first ok does not.
        assert!(ConditionLevel::Bad.alerts_after(None));
        assert!(!ConditionLevel::Bad.alerts_after(Some("bad")));
        assert!(ConditionLevel::Good.alerts_after(Some("bad")));
        assert!(!ConditionLevel::Good.alerts_after(None));
        assert!(!ConditionLevel::Good.alerts_after(Some("good")));
    }
}
