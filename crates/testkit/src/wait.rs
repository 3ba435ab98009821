//! Waiting for a condition with a deadline. Tests never sleep a fixed time and hope: they poll
//! for what they expect, at a short fixed interval, and fail with a message at the deadline.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Generous: a 2-core machine compiling in parallel can be slow to do anything.
pub const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it returns `Some`, and returns that; panics naming `what` after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < deadline,
            "{what}: not within {deadline:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits for a download to finish: Chromium writes `*.crdownload` and renames it when complete,
/// so the final name appearing is the signal. The panic lists what the directory holds.
pub async fn wait_for_file(path: &Path, deadline: Duration) -> PathBuf {
    let started = Instant::now();
    while !path.is_file() {
        if started.elapsed() > deadline {
            let dir = path.parent().expect("a file path has a parent");
            let found: Vec<_> = std::fs::read_dir(dir)
                .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            panic!(
                "{} did not appear within {deadline:?}; its directory holds {found:?}",
                path.display()
            );
        }
        tokio::time::sleep(POLL).await;
    }
    path.to_owned()
}
