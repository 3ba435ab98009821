//! Flood folding over SQL. The hits `INSERT` itself leaves out a use whose token's open window
//! has stored its budget of hit rows, and one whose event was folded before (a probe of
//! `folded_events` and of `alert_windows` by primary key per row, nothing more in the common
//! case). Only when a group has such left-out uses does this module run: it tells a folded use
//! from a repeat, keeps its event hash, and counts it into the window row, one write per token.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::{Any, Row, Transaction};

use super::batch::{chunks, values};
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
    let open: Vec<(usize, &HitRecord)> = candidates
        .iter()
        .filter(|(_, h)| {
            windows
                .get(h.token_id.as_str())
                .is_some_and(|(closes_at, _)| *closes_at > h.received_at)
        })
        .copied()
        .collect();
    if open.is_empty() {
        return Ok(Vec::new());
    }
    let stored = stored_events(tx, backend, &open).await?;
    let mut seen = folded_before(tx, backend, &open).await?;
    let mut folded = Vec::new();
    for (i, h) in open {
        let key = (h.token_id.as_str().to_owned(), event_hash(&h.event_id));
        // A repeat of a stored event (another path delivered it before the budget ran out),
        // of a folded one, or of one earlier in this group is not counted again.
        if stored.contains(&h.event_id) || !seen.insert(key) {
            continue;
        }
        folded.push((i, h));
    }
    for chunk in folded.chunks(INSERT_ROWS) {
        let sql = format!(
            "INSERT INTO folded_events (token_id, event_hash, event_time) VALUES {} \
             ON CONFLICT DO NOTHING",
            values(chunk.len(), 3, backend)
        );
        let mut q = sqlx::query(&sql);
        for (_, h) in chunk {
            q = q
                .bind(h.token_id.as_str())
                .bind(event_hash(&h.event_id))
                .bind(h.event_time);
        }
        q.execute(&mut **tx).await?;
    }
    let mut touched = BTreeMap::new();
    for (_, h) in &folded {
        if let Some((_, f)) = windows.get_mut(h.token_id.as_str()) {
            f.add(h);
            touched.insert(h.token_id.as_str(), f.clone());
        }
    }
    // Many windows a statement: a group over a fleet of tokens whose windows are all full
    // touches one row per token, and a statement each was most of the group's hand-offs.
    let touched: Vec<(&str, Folded)> = touched.into_iter().collect();
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

/// Sets what `n` windows folded, one row of `VALUES` each: the token, then the folded count,
/// first and last event time, and the three tallies. In token order (the order the rows were
/// locked in on PostgreSQL).
fn update_sql(n: usize, backend: Backend) -> String {
    let ints = [false, true, true, true, false, false, false];
    let rows = super::batch::typed_values(n, &ints, backend);
    format!(
        "UPDATE alert_windows SET folded = v.column2, folded_first = v.column3, \
         folded_last = v.column4, folded_addresses = v.column5, folded_agents = v.column6, \
         folded_events = v.column7 FROM (VALUES {rows}) AS v \
         WHERE alert_windows.token_id = v.column1"
    )
}

/// The candidates' tokens whose window has stored `budget` hits or more: token id → (the
/// window's end, what it folded so far). On PostgreSQL the rows are locked, in token order (the
/// order `windows::gather` takes them in), so two commits cannot lose each other's counts.
async fn full_windows(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    budget: i64,
    candidates: &[(usize, &HitRecord)],
) -> Result<HashMap<String, (i64, Folded)>> {
    let tokens: Vec<&str> = candidates
        .iter()
        .map(|(_, h)| h.token_id.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let lock = if backend == Backend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let sql = format!(
        "SELECT token_id, hits, closes_at, folded, folded_first, folded_last, folded_addresses, \
         folded_agents, folded_events FROM alert_windows WHERE token_id IN {} \
         ORDER BY token_id{lock}",
        values(1, tokens.len(), backend)
    );
    let mut q = sqlx::query(&sql);
    for t in &tokens {
        q = q.bind(*t);
    }
    let mut out = HashMap::new();
    for row in q.fetch_all(&mut **tx).await? {
        let hits: i64 = row.try_get("hits")?;
        let Some(closes_at) = row.try_get::<Option<i64>, _>("closes_at")? else {
            continue;
        };
        if hits < budget {
            continue;
        }
        let folded = Folded {
            count: u64::try_from(row.try_get::<i64, _>("folded")?).unwrap_or(0),
            first_event_time: row.try_get("folded_first")?,
            last_event_time: row.try_get("folded_last")?,
            addresses: Tally::decode(&row.try_get::<String, _>("folded_addresses")?),
            agents: Tally::decode(&row.try_get::<String, _>("folded_agents")?),
            events: Tally::decode(&row.try_get::<String, _>("folded_events")?),
        };
        out.insert(row.try_get("token_id")?, (closes_at, folded));
    }
    Ok(out)
}

/// Of the hits' event ids, those stored as hit rows.
async fn stored_events(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    hits: &[(usize, &HitRecord)],
) -> Result<HashSet<String>> {
    let mut stored = HashSet::new();
    for chunk in hits.chunks(INSERT_ROWS) {
        let sql = format!(
            "SELECT event_id FROM hits WHERE event_id IN {}",
            values(1, chunk.len(), backend)
        );
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
        let sql = format!(
            "SELECT token_id, event_hash FROM folded_events \
             WHERE (token_id, event_hash) IN (VALUES {})",
            values(chunk.len(), 2, backend)
        );
        let mut q = sqlx::query_as::<_, (String, i64)>(&sql);
        for (_, h) in chunk {
            q = q.bind(h.token_id.as_str()).bind(event_hash(&h.event_id));
        }
        seen.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(seen)
}
