//! One group on the thread (see the module above): its hits, the uses it folds, the alert rows
//! of the hits to plan, the open windows they count into, and the commit, or a rollback that
//! declines the group.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, ToSql, TransactionBehavior};

use super::or_ignore;
use crate::sql::batch::{
    alerts_sql, chunks, cooling_sql, gathered, hits_sql, not_gathered, token_ids, window_hits,
    ChunkSql, HIT_PARAMS,
};
use crate::sql::windows::{read_sql, update_sql, WindowUpdate, GATHER_CHUNK};
use crate::sql::Backend;
use crate::{event_hash, Distinct, HitRecord, RecordedGroup, WindowHit};

/// The thread's own forms of the group's writes: `OR IGNORE`, so that no constraint can abort a
/// statement halfway. A statement that could must keep a journal of every page it changes in
/// case it does (`perf`: a tenth of this thread's time went to that journal, and each one over
/// 64 KiB was a temporary file created and unlinked). A row it leaves out (a repeat, a `NULL`
/// where none may be) shows as a short count and declines the group, as a conflict did before,
/// and the general path, with the plain statements, meets it.
static HITS: ChunkSql = ChunkSql::new();
static ALERTS: ChunkSql = ChunkSql::new();

/// The group in one transaction, or `None` (rolled back) when it is not the common case.
pub(super) fn write(
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
        let Some(indexes) = super::fold::fold_all(&tx, budget, &left)? else {
            return Ok(None);
        };
        for i in indexes {
            folded[i] = true;
        }
    }
    let fresh_at: Vec<usize> = (0..n).filter(|i| stored[*i]).collect();
    let fresh: Vec<&HitRecord> = fresh_at.iter().map(|i| &hits[*i]).collect();
    let tokens = token_ids(fresh.iter().copied());
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
/// A hit left out is a repeat, a use to fold or one of a gone token: `fold` takes the
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
