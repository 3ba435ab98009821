//! PostgreSQL: a whole group's hits in one `INSERT` (and their alert rows in another), passed as one JSON parameter and read back
//! into rows by `jsonb_to_recordset`. sqlx's `Any` driver (the one pool both databases share)
//! binds no arrays, so `UNNEST` is out; multi-row `VALUES` took a statement, and a round trip,
//! per 64 hits, which is 64 for a group of 4,096. SQLite keeps `VALUES`: its statements cost
//! no round trip (its writer thread, or sqlx's worker, runs them in process).
//!
//! Every field goes through serde_json, so any text the record carried (attacker-controlled) is
//! escaped as JSON and arrives as the same text; the packed record travels as base64.
//! `tests/groups.rs` sends hostile text in every field and reads it back.

use std::sync::LazyLock;

use base64::Engine;
use serde::Serialize;

use super::HIT_WRITE_COLUMNS;
use crate::{event_hash, HitRecord};

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
}

/// The hits (`packed[i]` is hit i's packed record) as the statement's `$1`.
pub(super) fn rows_json(hits: &[HitRecord], packed: &[Vec<u8>]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let rows: Vec<Row<'_>> = hits
        .iter()
        .zip(packed)
        .map(|(h, p)| Row {
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
        })
        .collect();
    serde_json::to_string(&rows).expect("hit rows serialise")
}

/// The statement: `$1` the rows (`rows_json`), `$2` the fold budget. The same filters as
/// `batch::hits_sql`: the token exists, live or as a tombstone; the event was not folded before;
/// the token's open window has not stored its budget.
pub(super) static HITS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO hits ({HIT_WRITE_COLUMNS}) \
         SELECT v.id, v.token_id, v.event_id, v.event_time, v.received_at, v.event_name, \
             v.source_ip, v.path, v.note, v.suppressed, decode(v.raw_packed, 'base64'), \
             '', '', '', '' \
         FROM jsonb_to_recordset(CAST($1 AS JSONB)) AS v(id TEXT, token_id TEXT, \
             event_id TEXT, event_time BIGINT, received_at BIGINT, event_name TEXT, \
             source_ip TEXT, path TEXT, note TEXT, suppressed TEXT, raw_packed TEXT, \
             event_hash BIGINT) \
         WHERE (v.token_id IN (SELECT id FROM tokens) \
             OR v.token_id IN (SELECT id FROM deleted_tokens)) \
         AND NOT EXISTS (SELECT 1 FROM folded_events f \
             WHERE f.token_id = v.token_id AND f.event_hash = v.event_hash) \
         AND NOT EXISTS (SELECT 1 FROM alert_windows w WHERE w.token_id = v.token_id \
             AND w.hits >= CAST($2 AS BIGINT) AND w.closes_at > v.received_at) \
         ON CONFLICT (event_id) DO NOTHING"
    )
});

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

/// The alert rows' statement, as `batch::alerts_sql`: one row per hit, never a second.
pub(super) const ALERTS_SQL: &str = "INSERT INTO alerts (id, token_id, created_at) \
     SELECT v.id, v.token_id, v.created_at \
     FROM jsonb_to_recordset(CAST($1 AS JSONB)) \
         AS v(id TEXT, token_id TEXT, created_at BIGINT) \
     ON CONFLICT (id) DO NOTHING";
