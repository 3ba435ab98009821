//! The one clock for domain time (unix milliseconds, as every stored time is). Everything that
//! stamps, compares or expires a stored time asks an `Arc<dyn Clock>`; tokio timers that only pace
//! loops do not. `SystemClock` is the real one; `ManualClock` lets tests set and advance time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix time in milliseconds.
    fn now_millis(&self) -> i64;

    /// Unix time in whole seconds (signatures and their freshness windows use seconds).
    fn now_secs(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }

    /// The current time as a date, in UTC.
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.now_millis()) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// A clock handle every part of the server shares.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    pub fn shared() -> SharedClock {
        Arc::new(Self)
    }
}

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        let now = OffsetDateTime::now_utc();
        i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }
}

/// A clock that moves only when told to. Clones share one time, so a test keeps a clone and
/// hands another to the application.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock stopped at `millis` since the epoch.
    pub fn at(millis: i64) -> Self {
        Self(Arc::new(AtomicI64::new(millis)))
    }

    /// A clock stopped at the current wall-clock time, so stored times still look recent.
    pub fn starting_now() -> Self {
        Self::at(SystemClock.now_millis())
    }

    pub fn set(&self, millis: i64) {
        self.0.store(millis, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(by, Ordering::SeqCst);
    }

    /// A shared handle on the same time, for `Application::build_with_clock`.
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let clock = ManualClock::at(1_000);
        let handle = clock.shared();
        assert_eq!(handle.now_millis(), 1_000);
        clock.advance(Duration::from_secs(2));
        assert_eq!(handle.now_millis(), 3_000);
        assert_eq!(handle.now_secs(), 3);
        clock.set(0);
        assert_eq!(handle.now(), OffsetDateTime::UNIX_EPOCH);
    }
}
