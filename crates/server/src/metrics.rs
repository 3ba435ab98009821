//! Counters of what detection saw, in Prometheus' text format at `/metrics`. Per replica, in
//! memory: they reset on restart, as Prometheus counters may.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use detection_metrics::DetectionSeries;

mod detection_metrics;

/// Counter name and label value (the delivery path) → count.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// Values that go up and down (the free disk), set rather than added to.
    gauges: Mutex<BTreeMap<&'static str, u64>>,
    /// The heartbeat's view of each detection path (`detection_metrics`).
    detection: Mutex<DetectionSeries>,
    /// The configured streams (`[streams]`), whose series show even at 0.
    streams: Mutex<Vec<&'static str>>,
}

/// The gauges, in render order. Set in memory only: reading them never touches the disk.
pub const GAUGE_HELP: &[(&str, &str)] = &[
    (
        "canarykeys_disk_low",
        "1 while the free disk of the SQLite data directory is below [storage] min_free",
    ),
    (
        "canarykeys_disk_free_bytes",
        "Free bytes of the SQLite data directory's filesystem at the last check",
    ),
    (
        "canarykeys_disk_min_free_bytes",
        "The free-disk watermark, [storage] min_free",
    ),
];

pub const HELP: &[(&str, &str)] = &[
    (
        "canarykeys_ingest_records_total",
        "CloudTrail records received, by delivery path",
    ),
    (
        "canarykeys_ingest_skipped_total",
        "Records skipped as unparseable, by delivery path",
    ),
    (
        "canarykeys_ingest_unknown_key_total",
        "Records of keys that belong to no token, by delivery path",
    ),
    (
        "canarykeys_ingest_matched_total",
        "Records matched to a token, by delivery path",
    ),
    (
        "canarykeys_ingest_new_hits_total",
        "New hits recorded, by delivery path",
    ),
    (
        "canarykeys_ingest_windowed_total",
        "New hits counted into an open cooldown window (logged once per token per minute, not \
         one line each), by delivery path",
    ),
    (
        "canarykeys_ingest_folded_total",
        "New hits folded into their window row past [alerts] stored_hits_per_window (counted, \
         not stored one by one), by delivery path",
    ),
    (
        "canarykeys_ingest_duplicates_total",
        "Matched records already recorded (same eventID), by delivery path",
    ),
    (
        "canarykeys_exposure_events_total",
        "AWS Health events received, by source",
    ),
    (
        "canarykeys_exposure_unknown_key_total",
        "AWS Health events naming a key that belongs to no token (never alerted), by source",
    ),
    (
        "canarykeys_exposure_new_total",
        "New exposures (a decoy key seen in public), by source",
    ),
    (
        "canarykeys_exposure_repeat_total",
        "Later sightings added to an existing exposure, by source",
    ),
    (
        "canarykeys_ingest_rejected_total",
        "Ingest requests refused (authorisation, size, not CloudTrail), by reason",
    ),
    (
        "canarykeys_heartbeat_calls_total",
        "Heartbeat calls (sts:GetCallerIdentity) this replica made, by result",
    ),
];

impl Metrics {
    pub fn add(&self, name: &'static str, label: &str, n: u64) {
        if n == 0 {
            return;
        }
        let mut c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        *c.entry((name, label.to_owned())).or_default() += n;
    }

    pub fn get(&self, name: &'static str, label: &str) -> u64 {
        let c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        c.get(&(name, label.to_owned())).copied().unwrap_or(0)
    }

    pub fn set_gauge(&self, name: &'static str, value: u64) {
        let mut g = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        g.insert(name, value);
    }

    pub fn gauge(&self, name: &'static str) -> Option<u64> {
        let g = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        g.get(name).copied()
    }

    /// Names the configured streams, so their series are there from the start.
    pub fn declare_streams(&self, names: Vec<&'static str>) {
        *self.streams.lock().unwrap_or_else(|e| e.into_inner()) = names;
    }

    /// `render`, plus each configured stream's failed sends (this replica's count) and
    /// backlog (`backlog`: rows waiting, by stream, from the database).
    pub fn render_with_streams(&self, backlog: &[(&'static str, u64)]) -> String {
        let mut out = self.render();
        let streams = self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if streams.is_empty() {
            return out;
        }
        let _ = writeln!(
            out,
            "# HELP canarykeys_stream_failures_total Failed sends to a stream (retried or given up), by stream\n# TYPE canarykeys_stream_failures_total counter"
        );
        for name in &streams {
            let n = self.get("canarykeys_stream_failures_total", name);
            let _ = writeln!(
                out,
                "canarykeys_stream_failures_total{{stream=\"{name}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP canarykeys_stream_backlog Alerts waiting to be sent to a stream, by stream\n# TYPE canarykeys_stream_backlog gauge"
        );
        for name in &streams {
            let n = backlog
                .iter()
                .find(|(s, _)| s == name)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "canarykeys_stream_backlog{{stream=\"{name}\"}} {n}");
        }
        out
    }

    pub fn render(&self) -> String {
        let c = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (name, help) in HELP {
            let label = if *name == "canarykeys_ingest_rejected_total" {
                "reason"
            } else if *name == "canarykeys_heartbeat_calls_total" {
                "result"
            } else if name.starts_with("canarykeys_exposure_") {
                "source"
            } else {
                "path"
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((n, value), count) in c.iter() {
                if n == name {
                    // Label values are our own fixed words, never request input.
                    let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
                }
            }
        }
        let g = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        for (name, help) in GAUGE_HELP {
            if let Some(value) = g.get(name) {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
                );
            }
        }
        self.render_detection(&mut out);
        out
    }
}
