//! The heartbeat's series: `canarykeys_detection_path_up{region,path}` and the
//! `canarykeys_detection_latency_seconds` histogram. `/metrics` is unauthenticated, so no decoy
//! account id goes in a label: a region's path is up only while it is up in every account.

use std::collections::BTreeMap;
use std::fmt::Write;

use canarykeys_core::detection::PathState;

use super::Metrics;
use crate::services::heartbeat::PathStatus;

/// Upper bounds of the latency buckets, in seconds: EventBridge's seconds to minutes up to S3's
/// five-minute batches and CloudTrail's documented worst cases.
const BUCKETS: [f64; 10] = [
    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
];

#[derive(Default)]
pub struct DetectionSeries {
    /// (region, path) → up.
    up: BTreeMap<(String, String), bool>,
    /// Count per bucket (not cumulative), the overflow last.
    buckets: [u64; BUCKETS.len() + 1],
    sum_seconds: f64,
    count: u64,
}

impl Metrics {
    /// Sets `canarykeys_detection_path_up` from the latest judgement: 1 while receipts arrive
    /// (`ok` or `late`), 0 when `silent` or `never`.
    pub fn set_paths(&self, paths: &[PathStatus]) {
        let mut d = self.detection.lock().unwrap_or_else(|e| e.into_inner());
        d.up.clear();
        for p in paths {
            let up = matches!(p.state, PathState::Ok | PathState::Late);
            let slot = d.up.entry((p.region.clone(), p.path.clone())).or_insert(up);
            *slot &= up;
        }
    }

    /// Counts one receipt's latency into the histogram.
    pub fn observe_latency(&self, latency_ms: i64) {
        let seconds = latency_ms.max(0) as f64 / 1000.0;
        let mut d = self.detection.lock().unwrap_or_else(|e| e.into_inner());
        let i = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        d.buckets[i] += 1;
        d.sum_seconds += seconds;
        d.count += 1;
    }

    pub(super) fn render_detection(&self, out: &mut String) {
        let d = self.detection.lock().unwrap_or_else(|e| e.into_inner());
        if !d.up.is_empty() {
            let _ = writeln!(
                out,
                "# HELP canarykeys_detection_path_up 1 while the path delivers heartbeat \
                 receipts (ok or late), 0 when silent or never heard from\n\
                 # TYPE canarykeys_detection_path_up gauge"
            );
            // A receipt's region is the record's `awsRegion`: input, so escaped as the text
            // format asks (backslash, quote, newline), never trusted to be a region name.
            for ((region, path), up) in &d.up {
                let _ = writeln!(
                    out,
                    "canarykeys_detection_path_up{{region=\"{}\",path=\"{}\"}} {}",
                    label(region),
                    label(path),
                    u8::from(*up)
                );
            }
        }
        let name = "canarykeys_detection_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Heartbeat receipts' latency: received minus the call's eventTime\n\
             # TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += d.buckets[i];
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", d.count);
        let _ = writeln!(out, "{name}_sum {}", d.sum_seconds);
        let _ = writeln!(out, "{name}_count {}", d.count);
    }
}

/// A Prometheus label value: `\`, `"` and line feeds escaped, other control characters dropped.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod label_tests {
    #[test]
    fn label_values_cannot_break_the_text_format() {
        assert_eq!(super::label("us-east-1"), "us-east-1");
        assert_eq!(
            super::label("a\"} 1\nfake_metric 9\\\r"),
            "a\\\"} 1\\nfake_metric 9\\\\"
        );
    }
}
