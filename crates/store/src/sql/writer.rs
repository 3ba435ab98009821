//! SQLite's hit groups, written by a thread of its own that owns one connection (rusqlite, on the
//! same libsqlite3 that sqlx links). A whole group (its hits, their alert rows, the cooldown
//! windows they count into, the commit) is one call: one hand-off between the async side and a
//! database thread, where sqlx's worker took one per statement, about ten a group. `perf` on a
//! loaded server put thread switches first (a fifth of its time in `finish_task_switch`).
//!
//! It takes the common cases only: every hit new or a use to fold (`writer_fold`), every window
//! it counts into already open. Anything else (a repeat, a gone token, a window to open, any
//! error at all) rolls back and hands the group to the general path over sqlx (`batch`), which
//! it never replaces. What a 2xx
//! means does not change: the group's transaction commits with `synchronous = FULL` before any
//! request is answered, inside the same write turn as every other writer of this process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use rusqlite::{Connection, ToSql, TransactionBehavior};
use tokio::sync::{oneshot, OwnedMutexGuard};

use super::batch::{
    alerts_sql, chunks, cooling_sql, gathered, hits_sql, not_gathered, window_hits, ChunkSql,
    HIT_PARAMS,
};
use super::windows::{read_sql, update_sql, WindowUpdate, GATHER_CHUNK};
use super::{writer_fold, Backend};
use crate::{event_hash, Distinct, HitRecord, RecordedGroup, WindowHit};

/// The thread's own forms of the group's writes: `OR IGNORE`, so that no constraint can abort a
/// statement halfway. A statement that could must keep a journal of every page it changes in
/// case it does (`perf`: a tenth of this thread's time went to that journal, and each one over
/// 64 KiB was a temporary file created and unlinked). A row it leaves out (a repeat, a `NULL`
/// where none may be) shows as a short count and declines the group, as a conflict did before,
/// and the general path, with the plain statements, meets it.
static HITS: ChunkSql = ChunkSql::new();
static ALERTS: ChunkSql = ChunkSql::new();

/// `sql` with `OR IGNORE` after its leading verb. Only the statement's own verb is touched
/// (never one inside a subquery), and the string is copied once: the windows' statement is built
/// for each group.
pub(super) fn or_ignore(sql: String) -> String {
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
        let outcome = match write(&mut conn, &hits, &packed, budget) {
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

/// The group in one transaction, or `None` (rolled back) when it is not the common case.
fn write(
    conn: &mut Connection,
    hits: &[HitRecord],
    packed: &[Vec<u8>],
    budget: i64,
) -> rusqlite::Result<Option<RecordedGroup>> {
    // IMMEDIATE: the write lock from the start, so what is read below is what this commit
    // writes over (the general path gets the same by reading after its first insert).
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let Some(stored) = insert_hits(&tx, hits, packed, budget)? else {
        return Ok(None);
    };
    let n = hits.len();
    let left: Vec<(usize, &HitRecord)> = (hits.iter().enumerate())
        .filter(|(i, _)| !stored[*i])
        .collect();
    let mut folded = vec![false; n];
    if !left.is_empty() {
        let Some(indexes) = writer_fold::fold_all(&tx, budget, &left)? else {
            return Ok(None);
        };
        for i in indexes {
            folded[i] = true;
        }
    }
    let fresh_at: Vec<usize> = (0..n).filter(|i| stored[*i]).collect();
    let fresh: Vec<&HitRecord> = fresh_at.iter().map(|i| &hits[*i]).collect();
    let tokens: Vec<&str> = fresh
        .iter()
        .map(|h| h.token_id.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut cooling: HashMap<String, i64> = HashMap::new();
    for chunk in tokens.chunks(GATHER_CHUNK) {
        let mut stmt = tx.prepare_cached(&cooling_sql(chunk.len(), Backend::Sqlite))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(chunk), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (id, until) = row?;
            cooling.insert(id, until);
        }
    }
    let gathered = gathered(fresh.iter().copied(), &cooling);
    if !insert_alerts(&tx, &fresh, &gathered)? {
        return Ok(None);
    }
    let windows = window_hits(fresh.iter().copied(), &gathered);
    if !gather(&tx, &windows)? {
        return Ok(None);
    }
    tx.commit()?;
    // As the general path reports it: a folded use is new, and its window reports it.
    let mut windowed = folded.clone();
    for (i, g) in fresh_at.iter().zip(&gathered) {
        windowed[*i] = *g;
    }
    Ok(Some(RecordedGroup {
        new: vec![true; n],
        gone: vec![false; n],
        to_plan: gathered.iter().filter(|g| !**g).count(),
        windowed,
        folded,
    }))
}

/// The hits, as `batch::insert_hits` binds them; per hit, whether this statement stored it.
/// `None` when a chunk's stored rows cannot be told apart exactly, which declines the group.
/// A hit left out is a repeat, a use to fold or one of a gone token: `writer_fold` takes the
/// folds, and only the general path sorts out the rest.
fn insert_hits(
    tx: &rusqlite::Transaction<'_>,
    hits: &[HitRecord],
    packed: &[Vec<u8>],
    budget: i64,
) -> rusqlite::Result<Option<Vec<bool>>> {
    let sqls = HITS.get(Backend::Sqlite, |n, b| or_ignore(hits_sql(n, b)));
    let hashes: Vec<i64> = hits.iter().map(|h| event_hash(&h.event_id)).collect();
    let tokens: Vec<&str> = hits.iter().map(|h| h.token_id.as_str()).collect();
    let mut stored = Vec::with_capacity(hits.len());
    let mut start = 0;
    for p in chunks(hits.len()) {
        let end = start + (1 << p);
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity((end - start) * HIT_PARAMS);
        for i in start..end {
            let h = &hits[i];
            params.extend_from_slice(&[
                &h.id as &dyn ToSql,
                &tokens[i],
                &h.event_id,
                &h.event_time,
                &h.received_at,
                &h.event_name,
                &h.source_ip,
                &h.path,
                &h.note,
                &h.suppressed,
                // The text and the detail fields (see `HIT_WRITE_COLUMNS`).
                &packed[i],
                &hashes[i],
                &budget,
            ]);
        }
        let inserted = tx.prepare_cached(&sqls[p])?.execute(&*params)?;
        let chunk = &hits[start..end];
        match inserted {
            n if n == chunk.len() => stored.extend(std::iter::repeat_n(true, n)),
            0 => stored.extend(std::iter::repeat_n(false, chunk.len())),
            n => match which_stored(tx, chunk, n)? {
                Some(these) => stored.extend(these),
                None => return Ok(None),
            },
        }
        start = end;
    }
    Ok(Some(stored))
}

/// Which of `chunk` the statement just run stored, `n` of them. Its rows took the `n` rowids
/// up to the last one inserted (SQLite gives each new row the largest rowid plus one), so they
/// are read back by rowid, not by id: an id this group reuses from a stored row can never pass
/// for a new one. Anything that does not add up declines.
fn which_stored(
    tx: &rusqlite::Transaction<'_>,
    chunk: &[HitRecord],
    n: usize,
) -> rusqlite::Result<Option<Vec<bool>>> {
    let last = tx.last_insert_rowid();
    let first = last - i64::try_from(n).unwrap_or(i64::MAX) + 1;
    let mut stmt = tx.prepare_cached("SELECT id FROM hits WHERE rowid BETWEEN ?1 AND ?2")?;
    let ids = stmt.query_map((first, last), |r| r.get::<_, String>(0))?;
    let mut stored = vec![false; chunk.len()];
    let mut found = 0;
    for id in ids {
        let id = id?;
        match chunk.iter().position(|h| h.id == id) {
            Some(i) if !stored[i] => stored[i] = true,
            _ => return Ok(None),
        }
        found += 1;
    }
    Ok((found == n).then_some(stored))
}

/// The alert rows of the hits not gathered into an open window (as `batch::insert_alerts`);
/// false when any was left out, so that no alert is skipped here that the general path would
/// have written or refused.
fn insert_alerts(
    tx: &rusqlite::Transaction<'_>,
    hits: &[&HitRecord],
    gathered: &[bool],
) -> rusqlite::Result<bool> {
    let sqls = ALERTS.get(Backend::Sqlite, |n, b| or_ignore(alerts_sql(n, b)));
    let to_plan = not_gathered(hits.iter().copied(), gathered);
    let tokens: Vec<&str> = to_plan.iter().map(|h| h.token_id.as_str()).collect();
    let mut start = 0;
    for p in chunks(to_plan.len()) {
        let end = start + (1 << p);
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(3 << p);
        for i in start..end {
            params.extend_from_slice(&[
                &to_plan[i].id as &dyn ToSql,
                &tokens[i],
                &to_plan[i].received_at,
            ]);
        }
        if tx.prepare_cached(&sqls[p])?.execute(&*params)? != end - start {
            return Ok(false);
        }
        start = end;
    }
    Ok(true)
}

/// Counts gathered hits into their open windows (as `windows::gather`); false when a window is
/// not open yet, which the general path opens.
fn gather(
    tx: &rusqlite::Transaction<'_>,
    windows: &BTreeMap<&str, Vec<WindowHit>>,
) -> rusqlite::Result<bool> {
    let tokens: Vec<(&str, &Vec<WindowHit>)> = windows.iter().map(|(t, h)| (*t, h)).collect();
    for chunk in tokens.chunks(GATHER_CHUNK) {
        let mut open: HashMap<String, (Distinct, Distinct)> = HashMap::new();
        {
            let mut stmt = tx.prepare_cached(&read_sql(chunk.len(), Backend::Sqlite))?;
            let rows =
                stmt.query_map(rusqlite::params_from_iter(chunk.iter().map(|c| c.0)), |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        Distinct::decode(&r.get::<_, String>(1)?, r.get(2)?),
                        Distinct::decode(&r.get::<_, String>(3)?, r.get(4)?),
                    ))
                })?;
            for row in rows {
                let (token, addresses, events) = row?;
                open.insert(token, (addresses, events));
            }
        }
        let mut updates = Vec::with_capacity(chunk.len());
        for (token, hits) in chunk {
            let Some((addresses, events)) = open.remove(*token) else {
                return Ok(false);
            };
            updates.push(WindowUpdate::merge(token, hits, addresses, events));
        }
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(updates.len() * 9);
        for u in &updates {
            params.extend_from_slice(&[
                &u.token as &dyn ToSql,
                &u.hits,
                &u.earliest,
                &u.latest,
                &u.last_hit,
                &u.addresses,
                &u.other_addresses,
                &u.events,
                &u.other_events,
            ]);
        }
        let done = tx
            .prepare_cached(&or_ignore(update_sql(updates.len(), Backend::Sqlite)))?
            .execute(&*params)?;
        if done != updates.len() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each statement the thread runs is the `OR IGNORE` form; one that lost it would bring the
    /// statement journal back without failing anything else.
    #[test]
    fn every_statement_of_the_thread_is_an_or_ignore_form() {
        for n in [1, 3, 64] {
            for sql in [
                or_ignore(hits_sql(n, Backend::Sqlite)),
                or_ignore(alerts_sql(n, Backend::Sqlite)),
                or_ignore(update_sql(n, Backend::Sqlite)),
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
