//! The free-disk watermark on SQLite's data directory (`[storage] min_free`). A key holder who
//! replays a key as fast as they can, or a log that grows unchecked, can fill the disk, and a
//! full disk ends detection for everyone. Under the watermark the server stores only what
//! detection needs: hits keep every field an alert uses but not their raw record, and the
//! extras (an API key's last-used time, the per-hit log line) are skipped, so the space left
//! goes to hits and alerts.
//!
//! Free space is read with `statvfs` on a timer (`jobs`, every [`CHECK_EVERY`]) and kept in
//! memory: the hot path reads an atomic, never the filesystem. The condition is reported by
//! `/healthz/detail`, the `canarykeys_disk_*` gauges and an error log line, none of which writes
//! to the disk, and by the operator channel (`[operator_alerts]`), once when the disk goes low and
//! once when it recovers. On PostgreSQL the watch is off: the database's own
//! errors (disk full, 53100) stand in, and the data directory holds only the sealing key.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::services::operator_alerts::{Condition, OperatorAlerts};

/// How often the timer reads the free space.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);

/// What a hit stored under the watermark says in its note, in place of its raw record.
pub const RAW_DROPPED_NOTE: &str = "raw record not kept: free disk below [storage] min_free";

/// Reads the free space of a directory's filesystem. The real one is `statvfs`; tests inject
/// their own.
pub trait FreeSpace: Send + Sync {
    /// Bytes an unprivileged writer may still use.
    fn free_bytes(&self, dir: &Path) -> std::io::Result<u64>;
}

/// `statvfs(2)`: blocks available to unprivileged users times the fragment size.
pub struct Statvfs;

impl FreeSpace for Statvfs {
    fn free_bytes(&self, dir: &Path) -> std::io::Result<u64> {
        let s = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
        #[allow(clippy::unnecessary_cast)] // the widths differ between targets
        Ok((s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64))
    }
}

/// Whether the disk is low after reading `free` bytes. Once low, it stays low until an eighth
/// of the watermark more is free, so a disk hovering at the mark does not flap (each change is
/// a log line). `min_free` 0 turns the watermark off.
pub fn is_low(free: u64, min_free: u64, was_low: bool) -> bool {
    if min_free == 0 {
        return false;
    }
    let mark = if was_low {
        min_free.saturating_add(min_free / 8)
    } else {
        min_free
    };
    free < mark
}

/// The watermark's state, as `/healthz/detail` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskHealth {
    /// The directory watched (the SQLite database's).
    pub path: String,
    /// Free bytes at the last check.
    pub free_bytes: u64,
    /// `[storage] min_free`.
    pub min_free_bytes: u64,
    /// Under the watermark: hits are stored without their raw record.
    pub low: bool,
    /// The last check could not read the free space (the state is the one before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A cheap, cloneable handle on the watermark's state; `off()` never reports low.
#[derive(Clone, Default)]
pub struct DiskWatch {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    dir: PathBuf,
    min_free: u64,
    probe: Arc<dyn FreeSpace>,
    metrics: Arc<Metrics>,
    low: AtomicBool,
    free: AtomicU64,
    error: std::sync::Mutex<Option<String>>,
}

impl DiskWatch {
    /// No watermark (PostgreSQL, or `min_free = 0`).
    pub fn off() -> Self {
        Self::default()
    }

    /// Watches `dir` against `min_free` bytes with `probe`. Nothing is read until `check`.
    pub fn new(
        dir: PathBuf,
        min_free: u64,
        probe: Arc<dyn FreeSpace>,
        metrics: Arc<Metrics>,
    ) -> Self {
        if min_free == 0 {
            return Self::off();
        }
        metrics.set_gauge("canarykeys_disk_min_free_bytes", min_free);
        Self {
            inner: Some(Arc::new(Inner {
                dir,
                min_free,
                probe,
                metrics,
                low: AtomicBool::new(false),
                free: AtomicU64::new(0),
                error: std::sync::Mutex::new(None),
            })),
        }
    }

    /// The watch for a configuration: the SQLite database's directory, or off on PostgreSQL.
    pub fn for_config(config: &crate::Config, metrics: Arc<Metrics>) -> Self {
        match sqlite_dir(&config.database_url()) {
            Some(dir) => Self::new(dir, config.storage.min_free, Arc::new(Statvfs), metrics),
            None => Self::off(),
        }
    }

    /// Under the watermark at the last check (or since a write met a full disk).
    pub fn is_low(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| i.low.load(Ordering::Relaxed))
    }

    /// Reads the free space now and updates the state, the gauges and (on a change) the log.
    /// Blocking for a moment (one `statvfs`); the timer runs it off the async threads.
    pub fn check(&self) -> Option<DiskHealth> {
        let inner = self.inner.as_ref()?;
        match inner.probe.free_bytes(&inner.dir) {
            Ok(free) => {
                inner.free.store(free, Ordering::Relaxed);
                *inner.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                let was = inner.low.load(Ordering::Relaxed);
                self.set_low(is_low(free, inner.min_free, was));
                inner.metrics.set_gauge("canarykeys_disk_free_bytes", free);
            }
            Err(e) => {
                tracing::error!(dir = %inner.dir.display(), error = %e, "cannot read the free disk space");
                *inner.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
            }
        }
        self.health()
    }

    /// A write failed because the disk is full: low now, without waiting for the timer.
    pub fn note_full(&self) {
        self.set_low(true);
    }

    fn set_low(&self, low: bool) {
        let Some(inner) = &self.inner else { return };
        let was = inner.low.swap(low, Ordering::Relaxed);
        inner
            .metrics
            .set_gauge("canarykeys_disk_low", u64::from(low));
        let free = inner.free.load(Ordering::Relaxed);
        match (was, low) {
            (false, true) => tracing::error!(
                dir = %inner.dir.display(),
                free_bytes = free,
                min_free_bytes = inner.min_free,
                "free disk below [storage] min_free: storing hits without their raw record, \
                 skipping API-key last-used times and per-hit log lines until space is freed"
            ),
            (true, false) => tracing::warn!(
                dir = %inner.dir.display(),
                free_bytes = free,
                "free disk back above [storage] min_free: storing everything again"
            ),
            _ => {}
        }
    }

    /// The state as of the last check; `None` when the watch is off.
    pub fn health(&self) -> Option<DiskHealth> {
        let inner = self.inner.as_ref()?;
        Some(DiskHealth {
            path: inner.dir.display().to_string(),
            free_bytes: inner.free.load(Ordering::Relaxed),
            min_free_bytes: inner.min_free,
            low: inner.low.load(Ordering::Relaxed),
            error: inner
                .error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        })
    }

    /// Checks off the async threads (a hung filesystem must not stall a worker), then tells
    /// the operator channel the state; it alerts when the disk goes low and when it recovers,
    /// never while a state holds.
    pub async fn check_and_report(&self, operator: &OperatorAlerts) -> Option<DiskHealth> {
        let watch = self.clone();
        let health = tokio::task::spawn_blocking(move || watch.check())
            .await
            .ok()
            .flatten()?;
        if health.error.is_none() {
            let condition = Condition::Disk {
                low: health.low,
                free_bytes: health.free_bytes,
            };
            if let Err(e) = operator.report(condition).await {
                tracing::error!(
                    error = format!("{e:#}"),
                    "cannot report the disk to the operator channel"
                );
            }
        }
        Some(health)
    }

    /// The timer: a check every [`CHECK_EVERY`], reported to the operator channel.
    pub async fn run_forever(self, operator: OperatorAlerts) {
        if self.inner.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(CHECK_EVERY);
        loop {
            tick.tick().await;
            self.check_and_report(&operator).await;
        }
    }
}

/// The directory of a `sqlite:` database URL; `None` for PostgreSQL or an in-memory database.
fn sqlite_dir(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let parent = Path::new(path).parent()?;
    Some(if parent.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        parent.to_path_buf()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn low_below_the_mark_and_back_only_past_the_margin() {
        assert!(!is_low(2 * GIB, GIB, false));
        assert!(!is_low(GIB, GIB, false), "exactly the mark is not below it");
        assert!(is_low(GIB - 1, GIB, false));
        assert!(is_low(0, GIB, false));
        // Once low, a little freed space is not enough to leave.
        assert!(is_low(GIB + 1, GIB, true));
        assert!(is_low(GIB + GIB / 8 - 1, GIB, true));
        assert!(!is_low(GIB + GIB / 8, GIB, true));
        // 0 turns the watermark off, whatever the disk.
        assert!(!is_low(0, 0, false));
        assert!(!is_low(0, 0, true));
    }

    struct Fixed(std::sync::Mutex<std::io::Result<u64>>);
    impl FreeSpace for Fixed {
        fn free_bytes(&self, _: &Path) -> std::io::Result<u64> {
            match &*self.0.lock().unwrap() {
                Ok(n) => Ok(*n),
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            }
        }
    }

    #[test]
    fn the_watch_follows_its_probe_and_sets_the_gauges() {
        let probe = Arc::new(Fixed(std::sync::Mutex::new(Ok(10 * GIB))));
        let metrics = Arc::new(Metrics::default());
        let watch = DiskWatch::new("/data".into(), GIB, probe.clone(), metrics.clone());
        assert!(!watch.check().unwrap().low);
        assert_eq!(metrics.gauge("canarykeys_disk_low"), Some(0));
        *probe.0.lock().unwrap() = Ok(GIB / 2);
        let health = watch.check().unwrap();
        assert!(health.low && watch.is_low());
        assert_eq!(health.free_bytes, GIB / 2);
        assert_eq!(metrics.gauge("canarykeys_disk_low"), Some(1));
        assert_eq!(metrics.gauge("canarykeys_disk_free_bytes"), Some(GIB / 2));
        // A failed read keeps the last state and says why.
        *probe.0.lock().unwrap() = Err(std::io::Error::other("gone"));
        let health = watch.check().unwrap();
        assert!(health.low && health.error.is_some());
        *probe.0.lock().unwrap() = Ok(2 * GIB);
        assert!(!watch.check().unwrap().low);
        watch.note_full();
        assert!(watch.is_low(), "a full write is low at once");
        assert!(!DiskWatch::off().is_low() && DiskWatch::off().check().is_none());
    }

    #[test]
    fn only_a_sqlite_file_has_a_directory_to_watch() {
        let dir = |u: &str| sqlite_dir(u).map(|p| p.display().to_string());
        assert_eq!(
            dir("sqlite:/var/lib/ck/canarykeys.db").as_deref(),
            Some("/var/lib/ck")
        );
        assert_eq!(
            dir("sqlite:///var/lib/ck/c.db?mode=rwc").as_deref(),
            Some("/var/lib/ck")
        );
        assert_eq!(dir("sqlite:c.db").as_deref(), Some("."));
        assert_eq!(dir("sqlite::memory:"), None);
        assert_eq!(dir("postgres://u@h/db"), None);
    }
}
