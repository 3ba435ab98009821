//! Judging each detection path from its heartbeat receipts: `ok`, `late`, `silent` or `never`,
//! with its latency (received minus the call's `eventTime`): the last, p50 and p95 over a day.
//! Pure: the service reads the receipts and the clock, this decides. Also the typed answer of
//! `GET /api/v1/detection`.

use std::collections::{BTreeMap, BTreeSet};

use canarykeys_core::detection::{DetectionReport, PathState};
use canarykeys_store::Receipt;
use serde::Serialize;
use utoipa::ToSchema;

/// The window the usual latency (p50, p95) is measured over.
pub const LATENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// The heartbeat's side of `GET /api/v1/detection`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HeartbeatInfo {
    pub interval_seconds: u64,
    pub regions: Vec<String>,
    /// The live heartbeat keys (ids only; the secrets never leave the server).
    pub keys: Vec<HeartbeatKeyInfo>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HeartbeatKeyInfo {
    pub account_id: String,
    pub access_key_id: String,
}

/// `GET /api/v1/detection`: the heartbeat and every detection path's state.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DetectionOverview {
    pub heartbeat: HeartbeatInfo,
    pub paths: Vec<PathStatus>,
}

/// One detection path of one account and region, as `GET /api/v1/detection`, the console and
/// `canarykeys doctor` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct PathStatus {
    pub account_id: String,
    pub region: String,
    /// `eventbridge`, `cloudwatch-logs`, `s3`, `safety-net` or `sensor`.
    pub path: String,
    /// `ok`, `late`, `silent` or `never`.
    #[schema(value_type = String, example = "ok")]
    pub state: PathState,
    /// When the newest receipt arrived (RFC 3339), if one ever did.
    pub last_seen_at: Option<String>,
    /// The newest receipt's latency: received minus the call's `eventTime`.
    pub latency_ms: Option<i64>,
    /// Over the receipts of the last day.
    pub latency_p50_ms: Option<i64>,
    pub latency_p95_ms: Option<i64>,
    #[serde(skip)]
    pub last_seen_ms: Option<i64>,
}

impl PathStatus {
    /// What an operator alert carries about this path.
    pub fn report(&self) -> DetectionReport {
        DetectionReport {
            account_id: self.account_id.clone(),
            region: self.region.clone(),
            path: self.path.clone(),
            state: self.state,
            last_seen_at: self.last_seen_ms,
            latency_ms: self.latency_ms,
        }
    }
}

/// What the judgement needs besides the receipts. Times in ms.
pub struct Judge<'a> {
    pub now: i64,
    pub interval_ms: i64,
    pub silent_after_ms: i64,
    /// The accounts with a heartbeat, the regions called and the paths expected: each
    /// combination that never delivered reads `never`.
    pub accounts: &'a [String],
    pub regions: &'a [String],
    pub expect: &'a [String],
}

type PathKey = (String, String, String);

fn key_of(r: &Receipt) -> PathKey {
    (r.account_id.clone(), r.region.clone(), r.path.clone())
}

/// The value at fraction `q` of `sorted` (nearest rank).
fn percentile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl Judge<'_> {
    /// Every path that ever delivered (from `latest`, the newest receipt of each) and every
    /// expected one, with `recent` (the last day's receipts) for the percentiles. Sorted by
    /// account, region and path.
    pub fn judge(&self, latest: &[Receipt], recent: &[Receipt]) -> Vec<PathStatus> {
        let mut newest: BTreeMap<PathKey, &Receipt> = BTreeMap::new();
        for r in latest {
            let slot = newest.entry(key_of(r)).or_insert(r);
            if r.received_at > slot.received_at {
                *slot = r;
            }
        }
        let mut latencies: BTreeMap<PathKey, Vec<i64>> = BTreeMap::new();
        for r in recent {
            if r.received_at >= self.now - LATENCY_WINDOW_MS {
                latencies.entry(key_of(r)).or_default().push(r.latency_ms());
            }
        }
        let mut keys: BTreeSet<PathKey> = newest.keys().cloned().collect();
        for a in self.accounts {
            for r in self.regions {
                for p in self.expect {
                    keys.insert((a.clone(), r.clone(), p.clone()));
                }
            }
        }
        keys.into_iter()
            .map(|key| {
                let mut lat = latencies.remove(&key).unwrap_or_default();
                lat.sort_unstable();
                let n = newest.get(&key).copied();
                self.status(key, n, &lat)
            })
            .collect()
    }

    fn status(&self, key: PathKey, newest: Option<&Receipt>, sorted: &[i64]) -> PathStatus {
        let p50 = percentile(sorted, 0.5);
        let p95 = percentile(sorted, 0.95);
        let state = match newest {
            None => PathState::Never,
            Some(r) => {
                let age = self.now.saturating_sub(r.received_at);
                if age > self.silent_after_ms {
                    PathState::Silent
                } else if age > self.interval_ms.saturating_add(p95.unwrap_or(0)) {
                    PathState::Late
                } else {
                    PathState::Ok
                }
            }
        };
        let (account_id, region, path) = key;
        PathStatus {
            account_id,
            region,
            path,
            state,
            last_seen_at: newest.map(|r| crate::render::rfc3339(r.received_at)),
            latency_ms: newest.map(Receipt::latency_ms),
            latency_p50_ms: p50,
            latency_p95_ms: p95,
            last_seen_ms: newest.map(|r| r.received_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(path: &str, event_time: i64, received_at: i64) -> Receipt {
        Receipt {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
            path: path.into(),
            event_id: format!("{path}-{event_time}"),
            event_time,
            received_at,
        }
    }

    fn judge(now: i64) -> Judge<'static> {
        static ACCOUNTS: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec!["123456789012".into()]);
        static REGIONS: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec!["us-east-1".into()]);
        static EXPECT: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec!["eventbridge".into(), "s3".into()]);
        Judge {
            now,
            interval_ms: 3_600_000,
            silent_after_ms: 3 * 3_600_000,
            accounts: &ACCOUNTS,
            regions: &REGIONS,
            expect: &EXPECT,
        }
    }

    #[test]
    fn states_follow_the_newest_receipt_and_the_usual_latency() {
        let h = 3_600_000;
        let eb = receipt("eventbridge", 10 * h, 10 * h + 60_000);
        let recent = vec![eb.clone()];
        let at = |now| judge(now).judge(std::slice::from_ref(&eb), &recent);
        let s = at(10 * h + 120_000);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].path.as_str(), s[0].state),
            ("eventbridge", PathState::Ok)
        );
        assert_eq!(s[0].latency_ms, Some(60_000));
        assert_eq!(s[0].latency_p95_ms, Some(60_000));
        assert_eq!((s[1].path.as_str(), s[1].state), ("s3", PathState::Never));
        assert_eq!(s[1].last_seen_at, None);
        // Past the interval plus the p95: late; past silent_after: silent.
        assert_eq!(at(11 * h + 120_001)[0].state, PathState::Late);
        assert_eq!(at(13 * h + 60_001)[0].state, PathState::Silent);
    }

    #[test]
    fn percentiles_use_the_last_day() {
        let recent: Vec<Receipt> = (1..=20)
            .map(|i| receipt("s3", i * 1000, i * 1000 + i * 10_000))
            .collect();
        let s = judge(30 * 10_000).judge(&recent[19..], &recent);
        let s3 = s.iter().find(|p| p.path == "s3").unwrap();
        assert_eq!(s3.latency_p50_ms, Some(100_000));
        assert_eq!(s3.latency_p95_ms, Some(190_000));
        assert_eq!(s3.latency_ms, Some(200_000));
    }
}
