//! PostgreSQL: a whole group's hits in one statement (and their alert rows in another), passed
//! as one JSON parameter and read back into rows by `jsonb_to_recordset`; the same statement
//! counts the group into its tokens' cooldown windows, and `gather_counted` finishes them. sqlx's `Any` driver (the one pool both databases share)
//! binds no arrays, so `UNNEST` is out; multi-row `VALUES` took a statement, and a round trip,
//! per 64 hits, which is 64 for a group of 4,096. SQLite keeps `VALUES`: its statements cost
//! no round trip (its writer thread, or sqlx's worker, runs them in process).
//!
//! Every field goes through serde_json, so any text the record carried (attacker-controlled) is
//! escaped as JSON and arrives as the same text; the packed record travels as base64.
//! `tests/groups.rs` sends hostile text in every field and reads it back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use base64::Engine;
use serde::Serialize;
use sqlx::{Any, Row as _, Transaction};

use super::windows::{self, distinct_values};
use super::Backend;
use super::HIT_WRITE_COLUMNS;
use crate::{event_hash, Distinct, HitRecord, Result, StoreError, WindowHit};

/// One hit as a JSON object whose keys are `hits`' columns (and the fold probe's two values).
#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    token_id: &'a str,
    event_id: &'a str,
    event_time: i64,
    received_at: i64,
    event_name: &'a str,
    source_ip: &'a str,
    path: &'a str,
    note: Option<&'a str>,
    suppressed: Option<&'a str>,
    /// Base64 of the packed record and detail fields (`raw_packed`); the detail columns and
    /// `raw` are written empty, as by `VALUES` (see `HIT_WRITE_COLUMNS`).
    raw_packed: String,
    event_hash: i64,
    /// The hit's place in the group: a window's last hit is the group's last of its token.
    i: usize,
}

/// The hits (`packed[i]` is hit i's packed record) as the statement's `$1`.
pub(super) fn rows_json(hits: &[HitRecord], packed: &[Vec<u8>]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let rows: Vec<Row<'_>> = hits
        .iter()
        .zip(packed)
        .enumerate()
        .map(|(i, (h, p))| Row {
            id: &h.id,
            token_id: h.token_id.as_str(),
            event_id: &h.event_id,
            event_time: h.event_time,
            received_at: h.received_at,
            event_name: &h.event_name,
            source_ip: &h.source_ip,
            path: &h.path,
            note: h.note.as_deref(),
            suppressed: h.suppressed.as_deref(),
            raw_packed: b64.encode(p),
            event_hash: event_hash(&h.event_id),
            i,
        })
        .collect();
    serde_json::to_string(&rows).expect("hit rows serialise")
}

/// The group's first statement: `$1` the rows (`rows_json`), `$2` the fold budget. It inserts
/// the hits with the same filters as `batch::hits_sql` (the token exists, live or as a
/// tombstone; the event was not folded before; the token's open window has not stored its
/// budget), and in the same round trip:
/// - reads the open cooldowns of the group's tokens (no ignore list);
/// - counts the new hits received inside their token's cooldown into its window (`g`, `upd`:
///   the count, the span, the last hit and the window's end) and returns the window's distinct
///   values as they were, for `gather_counted` to merge. The windows are locked in token order
///   (`lk`, the update's only source, so it writes no row `lk` did not lock first), as every
///   commit takes them: an `UPDATE … FROM` alone locks in whatever order its join yields, and
///   two groups over the same tokens could each hold one the other waits for.
///
/// One row each, told apart by `kind`: `h` a stored hit's id, `c` a cooling token and its
/// `cooldown_until` (`n`), `w` a window counted into, with how many hits (`n`) and its distinct
/// values. It replaces the five round trips of the insert, the cooling read, the window read
/// and the window update (each woke a backend and the server in turn); the distinct values are
/// written back only when the hits add to them.
///
/// The parts see one snapshot. A cooldown another replica opens meanwhile is missed here as it
/// could be missed between two statements: the hit gets an alert row, and planning it finds the
/// window (`outbox::open_cooldown`). A window created meanwhile is not seen by `upd` either:
/// `windows::gather_one` updates the row it finds. `batch::gathered` picks the same hits by the
/// same test (new, and received before the cooldown's end; of hits sharing a row id, only the
/// first, as `batch::insert_read` reads them), and `gather_counted` checks each window's count
/// against it.
///
/// The planner guesses 100 rows for `jsonb_to_recordset`, and for 100 rows it reads the whole of
/// `tokens` and `alert_windows` into hash tables rather than probe their keys: each group cost
/// a scan of every token (2.7 ms of a trip's group with 1,000 tokens, and it grows with them).
/// So the rows come with a `LIMIT` of the group's size rounded up to a power of two, which
/// never cuts a row and which the planner believes; and the token test is two `EXISTS`, which
/// it probes per row where `IN (SELECT …)` under an `OR` was always a hashed scan.
fn insert_read_sql(limit: Option<usize>) -> String {
    let limit = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
    format!(
        "WITH v AS MATERIALIZED (SELECT * FROM jsonb_to_recordset(CAST($1 AS JSONB)) \
             AS r(id TEXT, token_id TEXT, event_id TEXT, event_time BIGINT, \
             received_at BIGINT, event_name TEXT, source_ip TEXT, path TEXT, note TEXT, \
             suppressed TEXT, raw_packed TEXT, event_hash BIGINT, i BIGINT){limit}), \
         ins AS (INSERT INTO hits ({HIT_WRITE_COLUMNS}) \
             SELECT v.id, v.token_id, v.event_id, v.event_time, v.received_at, v.event_name, \
                 v.source_ip, v.path, v.note, v.suppressed, decode(v.raw_packed, 'base64'), \
                 '', '', '', '' \
             FROM v \
             WHERE (EXISTS (SELECT 1 FROM tokens t WHERE t.id = v.token_id) \
                 OR EXISTS (SELECT 1 FROM deleted_tokens d WHERE d.id = v.token_id)) \
             AND NOT EXISTS (SELECT 1 FROM folded_events f \
                 WHERE f.token_id = v.token_id AND f.event_hash = v.event_hash) \
             AND NOT EXISTS (SELECT 1 FROM alert_windows w WHERE w.token_id = v.token_id \
                 AND w.hits >= CAST($2 AS BIGINT) AND w.closes_at > v.received_at) \
             ON CONFLICT (event_id) DO NOTHING RETURNING id), \
         cool AS (SELECT id, cooldown_until FROM tokens WHERE cooldown_until IS NOT NULL \
             AND ignore_sources = '' AND id IN (SELECT token_id FROM v)), \
         g AS (SELECT v.token_id, COUNT(*) AS n, MIN(v.event_time) AS earliest, \
                 MAX(v.event_time) AS latest, (array_agg(v.id ORDER BY v.i DESC))[1] AS last_id, \
                 MAX(c.cooldown_until) AS until \
             FROM (SELECT DISTINCT ON (v.id) v.* FROM v JOIN ins ON ins.id = v.id \
                 ORDER BY v.id, v.i) v \
             JOIN cool c ON c.id = v.token_id \
             WHERE c.cooldown_until > v.received_at GROUP BY v.token_id), \
         lk AS (SELECT g.* FROM g JOIN alert_windows w ON w.token_id = g.token_id \
             ORDER BY g.token_id FOR UPDATE OF w), \
         upd AS (UPDATE alert_windows w SET hits = w.hits + lk.n, \
                 first_event_time = LEAST(w.first_event_time, lk.earliest), \
                 last_event_time = GREATEST(w.last_event_time, lk.latest), \
                 last_hit_id = lk.last_id, closes_at = lk.until \
             FROM lk WHERE w.token_id = lk.token_id \
             RETURNING w.token_id, lk.n, w.addresses, w.other_addresses, w.events, \
                 w.other_events) \
         SELECT 'h' AS kind, id AS key, CAST(0 AS BIGINT) AS n, '' AS addresses, \
             CAST(0 AS BIGINT) AS other_addresses, '' AS events, \
             CAST(0 AS BIGINT) AS other_events FROM ins \
         UNION ALL SELECT 'c', id, cooldown_until, '', 0, '', 0 FROM cool \
         UNION ALL SELECT 'w', token_id, n, addresses, other_addresses, events, other_events \
             FROM upd"
    )
}

/// Groups of up to 2^12 hits state their size; a larger one, which scans anyway, does not.
const SIZED_LOG2: usize = 12;

/// The statement for a group of `n` hits: one per power of two, built once, so each
/// connection's prepared-statement cache holds every one.
pub(super) fn insert_read_for(n: usize) -> &'static str {
    static ALL: OnceLock<Vec<String>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        (0..=SIZED_LOG2)
            .map(|p| insert_read_sql(Some(1 << p)))
            .chain([insert_read_sql(None)])
            .collect()
    });
    let p = n.next_power_of_two().trailing_zeros() as usize;
    &all[p.min(SIZED_LOG2 + 1)]
}

/// What the group's first statement stored and read (see `insert_read_sql`).
#[derive(Default)]
pub(super) struct InsertRead {
    /// The ids of the hits it stored.
    pub stored: HashSet<String>,
    /// The open cooldowns of the group's tokens: token id → `cooldown_until`.
    pub cooling: HashMap<String, i64>,
    /// The windows the statement counted the group's hits into, locked until the commit.
    pub counted: BTreeMap<String, Counted>,
}

/// Runs the group's first statement (`insert_read_sql`) for the whole group.
pub(super) async fn insert_read(
    tx: &mut Transaction<'_, Any>,
    hits: &[HitRecord],
    packed: &[Vec<u8>],
    budget: i64,
) -> Result<InsertRead> {
    let rows = sqlx::query(insert_read_for(hits.len()))
        .bind(rows_json(hits, packed))
        .bind(budget)
        .fetch_all(&mut **tx)
        .await?;
    let mut out = InsertRead::default();
    for row in rows {
        let key: String = row.try_get("key")?;
        match row.try_get::<String, _>("kind")?.as_str() {
            "h" => {
                out.stored.insert(key);
            }
            "c" => {
                out.cooling.insert(key, row.try_get("n")?);
            }
            _ => {
                let (addresses, events) = distinct_values(&row)?;
                let hits = row.try_get("n")?;
                out.counted.insert(
                    key,
                    Counted {
                        hits,
                        addresses,
                        events,
                    },
                );
            }
        }
    }
    Ok(out)
}

/// PostgreSQL: a group's hits into the windows whose count, span and last hit the group's
/// first statement already added (`counted`: each window's distinct values before the group,
/// and how many hits the statement counted into it). The distinct values are written back, in
/// one statement, only for windows the hits add to: a flood from one address calling one API
/// writes none, and its group is three round trips. A window the statement did not find (none
/// yet, or one another commit created meanwhile) goes through `windows::gather_one`.
pub(super) async fn gather_counted(
    tx: &mut Transaction<'_, Any>,
    hits: BTreeMap<&str, Vec<WindowHit>>,
    mut counted: BTreeMap<String, Counted>,
) -> Result<()> {
    let mut changed = Vec::new();
    for (token, hits) in hits.iter().filter(|(_, h)| !h.is_empty()) {
        let Some(Counted {
            hits: n,
            addresses,
            events,
        }) = counted.remove(*token)
        else {
            windows::gather_one(tx, Backend::Postgres, token, hits).await?;
            continue;
        };
        // The statement and this side pick the gathered hits by the same test (new, and
        // received before the cooldown's end); never a count that disagrees, silently.
        if n != windows::count(hits.len() as u64) {
            return Err(StoreError::Corrupt(format!(
                "the cooldown window of token {token} counted {n} hits for {}",
                hits.len()
            )));
        }
        let (mut after_addresses, mut after_events) = (addresses.clone(), events.clone());
        windows::add_distinct(hits, &mut after_addresses, &mut after_events);
        if (&after_addresses, &after_events) != (&addresses, &events) {
            changed.push((*token, after_addresses, after_events));
        }
    }
    if let Some(token) = counted.keys().next() {
        return Err(StoreError::Corrupt(format!(
            "the cooldown window of token {token} counted hits it was not given"
        )));
    }
    for chunk in changed.chunks(windows::GATHER_CHUNK) {
        windows::write_distinct(tx, Backend::Postgres, chunk).await?;
    }
    Ok(())
}

/// A window as the PostgreSQL group's first statement left it: the hits it counted in, and
/// its distinct values from before them.
pub(super) struct Counted {
    pub hits: i64,
    pub addresses: Distinct,
    pub events: Distinct,
}

/// One alert row: it shares its hit's id, and waits for the planner.
#[derive(Serialize)]
struct AlertRow<'a> {
    id: &'a str,
    token_id: &'a str,
    created_at: i64,
}

/// The alert rows of `fresh` as `$1`: one for each hit not gathered into an open window
/// (`gathered[i]`), which is all the planner has to do.
pub(super) fn alerts_json(fresh: &[&HitRecord], gathered: &[bool]) -> String {
    let rows: Vec<AlertRow<'_>> = super::batch::not_gathered(fresh.iter().copied(), gathered)
        .into_iter()
        .map(|h| AlertRow {
            id: &h.id,
            token_id: h.token_id.as_str(),
            created_at: h.received_at,
        })
        .collect();
    serde_json::to_string(&rows).expect("alert rows serialise")
}

/// The alert rows' statement, as `batch::alerts_sql`: one row per hit, never a second. `$2`
/// is the channel its commit is announced on (to every replica's delivery worker), in the same
/// round trip: the planner has work only when a group wrote alert rows.
pub(super) const ALERTS_SQL: &str = "WITH a AS (INSERT INTO alerts (id, token_id, created_at) \
     SELECT v.id, v.token_id, v.created_at \
     FROM jsonb_to_recordset(CAST($1 AS JSONB)) \
         AS v(id TEXT, token_id TEXT, created_at BIGINT) \
     ON CONFLICT (id) DO NOTHING) \
     SELECT pg_notify($2, '')";

#[cfg(test)]
mod tests {
    use super::*;

    /// The `LIMIT` a group's statement states, if any.
    fn limit_of(sql: &str) -> Option<usize> {
        let (_, rest) = sql.split_once(" LIMIT ")?;
        rest.split(')').next()?.parse().ok()
    }

    #[test]
    fn a_groups_statement_never_cuts_its_rows() {
        for n in [1, 2, 3, 4, 5, 63, 64, 65, 1000, 4095, 4096] {
            let limit = limit_of(insert_read_for(n)).expect("a sized statement");
            assert!(limit >= n && limit < 2 * n, "{n} hits: LIMIT {limit}");
        }
        for n in [4097, 10_000, 100_000] {
            assert_eq!(limit_of(insert_read_for(n)), None, "{n} hits");
        }
    }
}
