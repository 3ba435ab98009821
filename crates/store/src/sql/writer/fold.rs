//! Flood folding on SQLite's hit-group thread. Once a token's open window has stored
//! its budget of hit rows, every further use in it is one to fold, so under a flood that is the
//! common group, not the exception: handing each such group to the general path (a dozen
//! hand-offs to sqlx's thread) halved sustained throughput once the windows filled. The thread
//! folds with the same choices and statements as `fold` (shared from `sql::fold`), and takes only
//! the case where every use its hits `INSERT` left out is one to fold; a repeat, a gone token,
//! or a use outside a full window sends the whole group to the general path.

use std::collections::HashSet;

use rusqlite::{ToSql, Transaction};

use super::or_ignore;
use crate::sql::batch::{chunks, token_ids, ChunkSql};
use crate::sql::fold::{
    in_open_windows, insert_sql, pick, stored_sql, tally, update_sql, windows_sql, FullWindows,
    WindowRow,
};
use crate::sql::windows::count;
use crate::sql::Backend;
use crate::{event_hash, HitRecord};

static WINDOWS: ChunkSql = ChunkSql::new();
static STORED: ChunkSql = ChunkSql::new();
static INSERT: ChunkSql = ChunkSql::new();
static UPDATE: ChunkSql = ChunkSql::new();

/// Folds `left` (index in the group, hit: each left out by the hits `INSERT`), every one of
/// them, and returns their indexes; `None` when any is not a use to fold (nothing is written
/// then, and the caller rolls back).
pub(super) fn fold_all(
    tx: &Transaction<'_>,
    budget: i64,
    left: &[(usize, &HitRecord)],
) -> rusqlite::Result<Option<Vec<usize>>> {
    let mut windows = full_windows(tx, budget, left)?;
    // A use in a full window is never one of a gone token (which the general path reports as
    // gone, not folded): a tombstone is pruned only once its token has no window row.
    let open = in_open_windows(left, &windows);
    if open.len() != left.len() {
        return Ok(None);
    }
    let stored = stored_events(tx, &open)?;
    // No read of the events folded before: the `folded_events` insert below meets each one as
    // a conflict, and its count declines the group (one index seek a use, not two).
    let folded = pick(open, &stored, HashSet::new());
    if folded.len() != left.len() {
        return Ok(None);
    }
    // `OR IGNORE` forms, as for the hits: a count short of the rows declines the group.
    let sqls = INSERT.get(Backend::Sqlite, |n, b| or_ignore(insert_sql(n, b)));
    let hashes: Vec<i64> = folded
        .iter()
        .map(|(_, h)| event_hash(&h.event_id))
        .collect();
    let tokens: Vec<&str> = folded.iter().map(|(_, h)| h.token_id.as_str()).collect();
    let mut start = 0;
    for p in chunks(folded.len()) {
        let end = start + (1 << p);
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(3 << p);
        for i in start..end {
            params.extend_from_slice(&[
                &tokens[i] as &dyn ToSql,
                &hashes[i],
                &folded[i].1.event_time,
            ]);
        }
        if tx.prepare_cached(&sqls[p])?.execute(&*params)? != end - start {
            return Ok(None);
        }
        start = end;
    }
    let touched = tally(&mut windows, &folded);
    let sqls = UPDATE.get(Backend::Sqlite, |n, b| or_ignore(update_sql(n, b)));
    let mut rest = touched.as_slice();
    for p in chunks(rest.len()) {
        let (chunk, tail) = rest.split_at(1usize << p);
        rest = tail;
        let figures: Vec<_> = chunk
            .iter()
            .map(|(_, f)| {
                (
                    count(f.count),
                    f.addresses.encode(),
                    f.agents.encode(),
                    f.events.encode(),
                )
            })
            .collect();
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(7 << p);
        for ((token, f), (n, addresses, agents, events)) in chunk.iter().zip(&figures) {
            params.extend_from_slice(&[
                token as &dyn ToSql,
                n,
                &f.first_event_time,
                &f.last_event_time,
                addresses,
                agents,
                events,
            ]);
        }
        if tx.prepare_cached(&sqls[p])?.execute(&*params)? != chunk.len() {
            return Ok(None);
        }
    }
    Ok(Some(folded.into_iter().map(|(i, _)| i).collect()))
}

/// The windows of `left`'s tokens that are open and have stored `budget` hits or more.
fn full_windows(
    tx: &Transaction<'_>,
    budget: i64,
    left: &[(usize, &HitRecord)],
) -> rusqlite::Result<FullWindows> {
    let tokens = token_ids(left.iter().map(|(_, h)| *h));
    let sqls = WINDOWS.get(Backend::Sqlite, windows_sql);
    let mut out = FullWindows::new();
    let mut rest = tokens.as_slice();
    for p in chunks(rest.len()) {
        let (chunk, tail) = rest.split_at(1usize << p);
        rest = tail;
        let mut stmt = tx.prepare_cached(&sqls[p])?;
        let rows = stmt.query_map(rusqlite::params_from_iter(chunk), |r| {
            Ok(WindowRow {
                token_id: r.get(0)?,
                hits: r.get(1)?,
                closes_at: r.get(2)?,
                folded: r.get(3)?,
                first: r.get(4)?,
                last: r.get(5)?,
                addresses: r.get(6)?,
                agents: r.get(7)?,
                events: r.get(8)?,
            })
        })?;
        for row in rows {
            row?.keep_if_full(budget, &mut out);
        }
    }
    Ok(out)
}

/// Of the uses' event ids, those stored as hit rows.
fn stored_events(
    tx: &Transaction<'_>,
    open: &[(usize, &HitRecord)],
) -> rusqlite::Result<HashSet<String>> {
    let sqls = STORED.get(Backend::Sqlite, stored_sql);
    let mut stored = HashSet::new();
    let mut rest = open;
    for p in chunks(rest.len()) {
        let (chunk, tail) = rest.split_at(1usize << p);
        rest = tail;
        let mut stmt = tx.prepare_cached(&sqls[p])?;
        let ids = chunk.iter().map(|(_, h)| h.event_id.as_str());
        for id in stmt.query_map(rusqlite::params_from_iter(ids), |r| r.get(0))? {
            stored.insert(id?);
        }
    }
    Ok(stored)
}
