//! SQLite's hit groups, written by a thread of its own that owns one connection (rusqlite, on the
//! same libsqlite3 that sqlx links). A whole group (its hits, their alert rows, the cooldown
//! windows they count into, the commit) is one call: one hand-off between the async side and a
//! database thread, where sqlx's worker took one per statement, about ten a group. `perf` on a
//! loaded server put thread switches first (a fifth of its time in `finish_task_switch`).
//!
//! It takes the common cases only (`group`): every hit new or a use to fold (`fold`), every
//! window it counts into already open. Anything else (a repeat, a gone token, a window to open,
//! any error at all) rolls back and hands the group to the general path over sqlx (`batch`),
//! which it never replaces. What a 2xx means does not change: the group's transaction commits
//! with `synchronous = FULL` before any request is answered, inside the same write turn as
//! every other writer of this process.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use rusqlite::Connection;
use tokio::sync::{oneshot, OwnedMutexGuard};

use crate::{HitRecord, RecordedGroup};

mod fold;
mod group;

/// `sql` with `OR IGNORE` after its leading verb. Only the statement's own verb is touched
/// (never one inside a subquery), and the string is copied once: the windows' statement is built
/// for each group.
fn or_ignore(sql: String) -> String {
    for verb in ["INSERT", "UPDATE"] {
        if let Some(rest) = sql.strip_prefix(verb) {
            return format!("{verb} OR IGNORE{rest}");
        }
    }
    sql
}

/// The turn of the caller, held until the thread is done with the group.
type Turn = Option<OwnedMutexGuard<()>>;

/// What became of a group sent to the thread.
pub(crate) enum Outcome {
    Written(RecordedGroup),
    /// Nothing was written: the general path takes the group, with the turn and the packed
    /// records handed back.
    Declined {
        turn: Turn,
        packed: Vec<Vec<u8>>,
    },
}

struct Group {
    hits: Vec<HitRecord>,
    packed: Vec<Vec<u8>>,
    budget: i64,
    turn: Turn,
    reply: oneshot::Sender<Outcome>,
}

enum Msg {
    Group(Group),
    Stop(oneshot::Sender<()>),
}

/// The handle; clones share the one thread.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Msg>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (written, declined) = self.stats();
        f.debug_struct("Writer")
            .field("written", &written)
            .field("declined", &declined)
            .finish()
    }
}

/// Groups the thread wrote, and groups it handed to the general path.
#[derive(Default)]
struct Stats {
    written: AtomicU64,
    declined: AtomicU64,
}

impl Writer {
    /// Opens the database file at `path` (already migrated) on a new thread. `None` when it
    /// cannot (an in-memory database has no file to share); the general path then does it all.
    pub(crate) fn start(path: &Path) -> Option<Self> {
        let conn = open(path)
            .map_err(|e| tracing::warn!(error = %e, "the SQLite hit writer did not start"))
            .ok()?;
        let (jobs, queue) = mpsc::channel();
        let stats = Arc::new(Stats::default());
        let counted = stats.clone();
        std::thread::Builder::new()
            .name("sqlite-hits".into())
            .spawn(move || run(conn, queue, &counted))
            .map_err(|e| tracing::warn!(error = %e, "the SQLite hit writer did not start"))
            .ok()?;
        Some(Self { jobs, stats })
    }

    /// Writes a group on the thread, or hands it back (`Declined`).
    pub(crate) async fn write(
        &self,
        hits: &[HitRecord],
        packed: Vec<Vec<u8>>,
        budget: i64,
        turn: Turn,
    ) -> Outcome {
        let (reply, answer) = oneshot::channel();
        let group = Group {
            hits: hits.to_vec(),
            packed,
            budget,
            turn,
            reply,
        };
        let repack = || hits.iter().map(crate::packed::pack_hit).collect();
        match self.jobs.send(Msg::Group(group)) {
            Ok(()) => {}
            // Stopped: the general path answers (on a closed store, with its error).
            Err(mpsc::SendError(Msg::Group(g))) => {
                return Outcome::Declined {
                    turn: g.turn,
                    packed: g.packed,
                }
            }
            Err(mpsc::SendError(Msg::Stop(_))) => {
                return Outcome::Declined {
                    turn: None,
                    packed: repack(),
                }
            }
        }
        // The thread always answers a group it received; if it died meanwhile, nothing of the
        // group was committed by it and the turn went with it.
        answer.await.unwrap_or_else(|_| Outcome::Declined {
            turn: None,
            packed: repack(),
        })
    }

    /// Closes the thread's connection, so the store's last checkpoint can cut the WAL.
    pub(crate) async fn stop(&self) {
        let (ack, done) = oneshot::channel();
        if self.jobs.send(Msg::Stop(ack)).is_ok() {
            let _ = done.await;
        }
    }

    /// (groups written, groups handed to the general path).
    pub(crate) fn stats(&self) -> (u64, u64) {
        (
            self.stats.written.load(Ordering::Relaxed),
            self.stats.declined.load(Ordering::Relaxed),
        )
    }
}

/// The same settings as the pool's connections (`SqlStore::connect`), and room for every
/// statement shape the thread prepares.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

fn run(mut conn: Connection, queue: mpsc::Receiver<Msg>, stats: &Stats) {
    // One warning per run of failures, not one per group.
    let mut failing = false;
    for msg in queue {
        let Group {
            hits,
            packed,
            budget,
            turn,
            reply,
        } = match msg {
            Msg::Stop(ack) => {
                drop(conn);
                let _ = ack.send(());
                return;
            }
            Msg::Group(group) => group,
        };
        let outcome = match group::write(&mut conn, &hits, &packed, budget) {
            Ok(Some(group)) => {
                failing = false;
                stats.written.fetch_add(1, Ordering::Relaxed);
                drop(turn);
                Outcome::Written(group)
            }
            Ok(None) => {
                stats.declined.fetch_add(1, Ordering::Relaxed);
                Outcome::Declined { turn, packed }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "the SQLite hit writer failed a group; the general path takes it");
                }
                failing = true;
                stats.declined.fetch_add(1, Ordering::Relaxed);
                Outcome::Declined { turn, packed }
            }
        };
        // A caller past its deadline is gone; its group stands (a retry sees repeats).
        let _ = reply.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::batch::{alerts_sql, hits_sql};
    use crate::sql::fold;
    use crate::sql::windows::update_sql;
    use crate::sql::Backend;

    /// Each statement the thread runs is the `OR IGNORE` form; one that lost it would bring the
    /// statement journal back without failing anything else.
    #[test]
    fn every_statement_of_the_thread_is_an_or_ignore_form() {
        for n in [1, 3, 64] {
            for sql in [
                or_ignore(hits_sql(n, Backend::Sqlite)),
                or_ignore(alerts_sql(n, Backend::Sqlite)),
                or_ignore(update_sql(n, Backend::Sqlite)),
                // The folding's two writes (`fold.rs`).
                or_ignore(fold::insert_sql(n, Backend::Sqlite)),
                or_ignore(fold::update_sql(n, Backend::Sqlite)),
            ] {
                assert!(
                    sql.starts_with("INSERT OR IGNORE INTO ")
                        || sql.starts_with("UPDATE OR IGNORE alert_windows "),
                    "{sql}"
                );
                assert_eq!(sql.matches("OR IGNORE").count(), 1, "{sql}");
            }
        }
        assert_eq!(or_ignore("SELECT 1".into()), "SELECT 1");
    }
}
