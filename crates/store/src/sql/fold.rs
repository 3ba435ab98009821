//! Flood folding over SQL. The hits `INSERT` itself leaves out a use whose token's open window
//! has stored its budget of hit rows, and one whose event was folded before (a probe of
//! `folded_events` and of `alert_windows` by primary key per row, nothing more in the common
//! case). Only when a group has such left-out uses does this module run: it tells a folded use
//! from a repeat, keeps its event hash, and counts it into the window row, one write per token.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::{Any, Row, Transaction};

use super::batch::{chunks, token_ids, values};
use super::windows::count;
use super::Backend;
use crate::{event_hash, Folded, HitRecord, Result, Tally};

/// The most `folded_events` rows one statement inserts (three parameters each).
const INSERT_ROWS: usize = 256;

/// Folds the `candidates` (index in the group, hit: each neither stored nor of a gone token)
/// that fall in an open window past `budget` stored hits and are not repeats of a stored or
/// folded event. Returns the indexes folded.
pub(super) async fn fold(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    budget: i64,
    candidates: &[(usize, &HitRecord)],
) -> Result<Vec<usize>> {
    let mut windows = full_windows(tx, backend, budget, candidates).await?;
    let open = in_open_windows(candidates, &windows);
    if open.is_empty() {
        return Ok(Vec::new());
    }
    let stored = stored_events(tx, backend, &open).await?;
    let seen = folded_before(tx, backend, &open).await?;
    let folded = pick(open, &stored, seen);
    for chunk in folded.chunks(INSERT_ROWS) {
        let sql = insert_sql(chunk.len(), backend);
        let mut q = sqlx::query(&sql);
        for (_, h) in chunk {
            q = q
                .bind(h.token_id.as_str())
                .bind(event_hash(&h.event_id))
                .bind(h.event_time);
        }
        q.execute(&mut **tx).await?;
    }
    // Many windows a statement: a group over a fleet of tokens whose windows are all full
    // touches one row per token, and a statement each was most of the group's hand-offs.
    let touched = tally(&mut windows, &folded);
    let mut rest = touched.as_slice();
    for p in chunks(rest.len()) {
        // `chunks` sums to the whole, so every chunk fits.
        let (chunk, tail) = rest.split_at(1usize << p);
        rest = tail;
        let sql = update_sql(chunk.len(), backend);
        let mut q = sqlx::query(&sql);
        for (token, f) in chunk {
            q = q
                .bind(*token)
                .bind(count(f.count))
                .bind(f.first_event_time)
                .bind(f.last_event_time)
                .bind(f.addresses.encode())
                .bind(f.agents.encode())
                .bind(f.events.encode());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(folded.into_iter().map(|(i, _)| i).collect())
}

/// Full windows: token id → (the window's end, what it folded so far).
pub(super) type FullWindows = HashMap<String, (i64, Folded)>;

/// The candidates that fall inside their token's full window.
pub(super) fn in_open_windows<'a>(
    candidates: &[(usize, &'a HitRecord)],
    windows: &FullWindows,
) -> Vec<(usize, &'a HitRecord)> {
    candidates
        .iter()
        .filter(|(_, h)| {
            windows
                .get(h.token_id.as_str())
                .is_some_and(|(closes_at, _)| *closes_at > h.received_at)
        })
        .copied()
        .collect()
}

/// Of the uses in open windows, those to fold: a repeat of a stored event (another path
/// delivered it before the budget ran out), of a folded one (`seen`), or of one earlier in this
/// group is not counted again.
pub(super) fn pick<'a>(
    open: Vec<(usize, &'a HitRecord)>,
    stored: &HashSet<String>,
    mut seen: HashSet<(String, i64)>,
) -> Vec<(usize, &'a HitRecord)> {
    open.into_iter()
        .filter(|(_, h)| {
            let key = (h.token_id.as_str().to_owned(), event_hash(&h.event_id));
            !stored.contains(&h.event_id) && seen.insert(key)
        })
        .collect()
}

/// Counts the `folded` uses into their windows; returns each touched window's new figures, in
/// token order (the order the rows were locked in on PostgreSQL).
pub(super) fn tally<'a>(
    windows: &mut FullWindows,
    folded: &[(usize, &'a HitRecord)],
) -> Vec<(&'a str, Folded)> {
    let mut touched = BTreeMap::new();
    for (_, h) in folded {
        if let Some((_, f)) = windows.get_mut(h.token_id.as_str()) {
            f.add(h);
            touched.insert(h.token_id.as_str(), f.clone());
        }
    }
    touched.into_iter().collect()
}

/// Records `n` folded events: the token, the event hash and its time, a row each.
pub(super) fn insert_sql(n: usize, backend: Backend) -> String {
    format!(
        "INSERT INTO folded_events (token_id, event_hash, event_time) VALUES {} \
         ON CONFLICT DO NOTHING",
        values(n, 3, backend)
    )
}

/// Sets what `n` windows folded, one row of `VALUES` each: the token, then the folded count,
/// first and last event time, and the three tallies. In token order (the order the rows were
/// locked in on PostgreSQL).
pub(super) fn update_sql(n: usize, backend: Backend) -> String {
    let ints = [false, true, true, true, false, false, false];
    let rows = super::batch::typed_values(n, &ints, backend);
    format!(
        "UPDATE alert_windows SET folded = v.column2, folded_first = v.column3, \
         folded_last = v.column4, folded_addresses = v.column5, folded_agents = v.column6, \
         folded_events = v.column7 FROM (VALUES {rows}) AS v \
         WHERE alert_windows.token_id = v.column1"
    )
}

/// The windows of `n` tokens, with what they folded so far. On PostgreSQL the rows are locked,
/// in token order (the order `windows::gather` takes them in), so two commits cannot lose each
/// other's counts.
pub(super) fn windows_sql(n: usize, backend: Backend) -> String {
    let lock = if backend == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    format!(
        "SELECT token_id, hits, closes_at, folded, folded_first, folded_last, folded_addresses, \
         folded_agents, folded_events FROM alert_windows WHERE token_id IN {} \
         ORDER BY token_id{lock}",
        values(1, n, backend)
    )
}

/// One row of `windows_sql`, as read.
pub(super) struct WindowRow {
    pub token_id: String,
    pub hits: i64,
    pub closes_at: Option<i64>,
    pub folded: i64,
    pub first: Option<i64>,
    pub last: Option<i64>,
    pub addresses: String,
    pub agents: String,
    pub events: String,
}

impl WindowRow {
    /// Adds the row to `out` if its window is open and has stored `budget` hits or more.
    pub(super) fn keep_if_full(self, budget: i64, out: &mut FullWindows) {
        let Some(closes_at) = self.closes_at else {
            return;
        };
        if self.hits < budget {
            return;
        }
        let folded = Folded {
            count: u64::try_from(self.folded).unwrap_or(0),
            first_event_time: self.first,
            last_event_time: self.last,
            addresses: Tally::decode(&self.addresses),
            agents: Tally::decode(&self.agents),
            events: Tally::decode(&self.events),
        };
        out.insert(self.token_id, (closes_at, folded));
    }
}

/// The candidates' tokens whose window has stored `budget` hits or more.
async fn full_windows(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    budget: i64,
    candidates: &[(usize, &HitRecord)],
) -> Result<FullWindows> {
    let tokens = token_ids(candidates.iter().map(|(_, h)| *h));
    let sql = windows_sql(tokens.len(), backend);
    let mut q = sqlx::query(&sql);
    for t in &tokens {
        q = q.bind(*t);
    }
    let mut out = HashMap::new();
    for row in q.fetch_all(&mut **tx).await? {
        WindowRow {
            token_id: row.try_get("token_id")?,
            hits: row.try_get("hits")?,
            closes_at: row.try_get("closes_at")?,
            folded: row.try_get("folded")?,
            first: row.try_get("folded_first")?,
            last: row.try_get("folded_last")?,
            addresses: row.try_get("folded_addresses")?,
            agents: row.try_get("folded_agents")?,
            events: row.try_get("folded_events")?,
        }
        .keep_if_full(budget, &mut out);
    }
    Ok(out)
}

/// Of `n` event ids, those stored as hit rows.
pub(super) fn stored_sql(n: usize, backend: Backend) -> String {
    format!(
        "SELECT event_id FROM hits WHERE event_id IN {}",
        values(1, n, backend)
    )
}

/// Of `n` (token, event hash) pairs, those folded before.
pub(super) fn folded_before_sql(n: usize, backend: Backend) -> String {
    format!(
        "SELECT token_id, event_hash FROM folded_events \
         WHERE (token_id, event_hash) IN (VALUES {})",
        values(n, 2, backend)
    )
}

/// Of the hits' event ids, those stored as hit rows.
async fn stored_events(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    hits: &[(usize, &HitRecord)],
) -> Result<HashSet<String>> {
    let mut stored = HashSet::new();
    for chunk in hits.chunks(INSERT_ROWS) {
        let sql = stored_sql(chunk.len(), backend);
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for (_, h) in chunk {
            q = q.bind(&h.event_id);
        }
        stored.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(stored)
}

/// Of the hits' (token, event hash) pairs, those folded before.
async fn folded_before(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    hits: &[(usize, &HitRecord)],
) -> Result<HashSet<(String, i64)>> {
    let mut seen = HashSet::new();
    for chunk in hits.chunks(INSERT_ROWS) {
        let sql = folded_before_sql(chunk.len(), backend);
        let mut q = sqlx::query_as::<_, (String, i64)>(&sql);
        for (_, h) in chunk {
            q = q.bind(h.token_id.as_str()).bind(event_hash(&h.event_id));
        }
        seen.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(seen)
}
