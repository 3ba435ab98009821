//! Multi-row writes for the hot path: a group of hits (from many requests) goes in with a few
//! multi-row `INSERT`s in one transaction, and their alert rows with a few more. Rows are sent in
//! power-of-two chunks, so at most a handful of distinct statements exist and each connection's
//! prepared-statement cache keeps them all: no re-parse per group.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

use sqlx::{Any, Transaction};

use canarykeys_core::TokenId;

use super::outbox::{insert_deliveries, open_cooldown};
use super::writer::Outcome;
use super::{
    fold, recordset, tombstones, windows, Backend, SqlStore, HIT_WRITE_COLUMNS, HIT_WRITE_PARAMS,
};
use crate::{event_hash, AlertPlan, ChannelKind, HitRecord, RecordedGroup, Result, WindowHit};

/// The largest chunk: 64 rows (832 parameters), so a group of 1,000 hits takes 16 statements
/// and as many hand-offs to sqlx's SQLite thread. Chunk sizes are powers of two, so each
/// connection's prepared-statement cache holds every statement after the first groups.
const MAX_ROWS_LOG2: usize = 6;
/// The hit's written columns, then its event hash and the fold budget (see `hits_sql`).
pub(super) const HIT_PARAMS: usize = HIT_WRITE_PARAMS + 2;

/// The statements of one table for one backend, one per chunk size, built once.
pub(super) struct ChunkSql {
    sqlite: OnceLock<Vec<String>>,
    postgres: OnceLock<Vec<String>>,
}

impl ChunkSql {
    pub(super) const fn new() -> Self {
        Self {
            sqlite: OnceLock::new(),
            postgres: OnceLock::new(),
        }
    }

    pub(super) fn get(
        &'static self,
        backend: Backend,
        table: fn(usize, Backend) -> String,
    ) -> &'static [String] {
        let cell = match backend {
            Backend::Sqlite => &self.sqlite,
            Backend::Postgres => &self.postgres,
        };
        cell.get_or_init(|| {
            (0..=MAX_ROWS_LOG2)
                .map(|p| table(1 << p, backend))
                .collect()
        })
    }
}

/// Parameter `n` (1-based) in the backend's own style. SQLite gets anonymous `?`, bound by
/// position: for a numbered `$n` sqlx asks `sqlite3_bind_parameter_name`, which walks the
/// statement's list of names, so binding a chunk costs the square of its parameters (a profile
/// of 1,000-record batches spent 12 % there, and 67 % with 256-row chunks). PostgreSQL only
/// knows `$n`, and binds by position anyway.
fn param(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => "?".to_owned(),
        Backend::Postgres => format!("${n}"),
    }
}

/// `rows` tuples of parameters for `UPDATE … FROM (VALUES …)`, numbered from 1 in order, one
/// column per entry of `ints`: true for a BIGINT, which PostgreSQL must be told (it cannot infer
/// a `VALUES` column's type from a bare parameter), false for text.
pub(super) fn typed_values(rows: usize, ints: &[bool], backend: Backend) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (ints.iter().enumerate())
                .map(|(i, int)| {
                    let p = param(backend, r * ints.len() + i + 1);
                    if *int && backend == Backend::Postgres {
                        format!("CAST({p} AS BIGINT)")
                    } else {
                        p
                    }
                })
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `rows` tuples of `per_row` parameters each, numbered from 1 in order (one tuple of n is also
/// the list for `IN`).
pub(super) fn values(rows: usize, per_row: usize, backend: Backend) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (1..=per_row)
                .map(|i| param(backend, r * per_row + i))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts hits whose token exists, live or as a tombstone (a record that arrives after its
/// token ended is still a hit; one whose tombstone was pruned meanwhile leaves no orphan and
/// fails no group), skipping event ids already stored. Two primary-key probes, no union: the
/// statement's cost per row is what it was with live tokens alone. `VALUES` columns
/// are `column1…` in both databases. No `RETURNING`: sqlx's SQLite thread hands each returned
/// row to the async side on its own (a thread wake each), so the row count says instead whether
/// every row went in, which is the usual case.
///
/// Flood folding adds two primary-key probes per row: a use whose event was folded before
/// (`column12` is its event hash) is a repeat, and a use inside its token's open window once
/// that window stored `column13` (the budget) hits is left out, for `fold::fold` to count.
pub(super) fn hits_sql(rows: usize, backend: Backend) -> String {
    let rows = values(rows, HIT_PARAMS, backend);
    let columns = (1..=HIT_WRITE_PARAMS)
        .map(|i| format!("v.column{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO hits ({HIT_WRITE_COLUMNS}) SELECT {columns}, '', '', '', '' \
         FROM (VALUES {rows}) AS v \
         WHERE (v.column2 IN (SELECT id FROM tokens) OR v.column2 IN (SELECT id FROM deleted_tokens)) \
         AND NOT EXISTS (SELECT 1 FROM folded_events f \
             WHERE f.token_id = v.column2 AND f.event_hash = v.column12) \
         AND NOT EXISTS (SELECT 1 FROM alert_windows w WHERE w.token_id = v.column2 \
             AND w.hits >= v.column13 AND w.closes_at > v.column5) \
         ON CONFLICT (event_id) DO NOTHING"
    )
}

/// The alert rows of hits the planner has to plan. The alert row shares the hit's id: one
/// alert per hit, by construction (and a caller that broke the fresh-id rule by sending a stored
/// hit's id again gets no second row and fails no group).
pub(super) fn alerts_sql(rows: usize, backend: Backend) -> String {
    format!(
        "INSERT INTO alerts (id, token_id, created_at) VALUES {} ON CONFLICT (id) DO NOTHING",
        values(rows, 3, backend)
    )
}

/// The PostgreSQL channel a commit of new hits is announced on.
const HITS_CHANNEL: &str = "canarykeys_hits";

impl SqlStore {
    /// A listener for other processes' commits of new hits: on PostgreSQL, its own connection
    /// listening on the hits channel; `None` on SQLite, where every writer is in this process
    /// (or is the CLI, whose hits the next poll finds).
    pub async fn listen_commits(&self) -> Result<Option<sqlx::postgres::PgListener>> {
        if self.backend() != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen(HITS_CHANNEL).await?;
        Ok(Some(listener))
    }
}

pub(super) static HITS_SQL: ChunkSql = ChunkSql::new();
pub(super) static ALERTS_SQL: ChunkSql = ChunkSql::new();

/// Splits `n` rows into power-of-two chunks, largest first.
pub(super) fn chunks(mut n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    while n > 0 {
        let p = (usize::BITS - 1 - n.leading_zeros()) as usize;
        let p = p.min(MAX_ROWS_LOG2);
        out.push(p);
        n -= 1 << p;
    }
    out
}

impl SqlStore {
    /// Records hits with multi-row statements in one transaction; see `HitStore::record_group`.
    ///
    /// A new hit inside its token's open cooldown window (and with no ignore list to check) is
    /// gathered here and now: it gets no alert row (the planner has nothing to do for it), and
    /// the window's row counts it (see `windows::gather`). A flood on one key queues no work for
    /// the planner, so it delays no other token's alert, and leaves no row per hit to read back
    /// when the window closes.
    pub(crate) async fn record_hits_batched(&self, hits: &[HitRecord]) -> Result<RecordedGroup> {
        let backend = self.backend();
        let budget = self.stored_hits_per_window();
        // Compressed before the write turn: the turn is the one thing every writer waits for.
        let packed: Vec<Vec<u8>> = hits.iter().map(crate::packed::pack_hit).collect();
        let turn = self.write_turn().await;
        // SQLite: the common group is written by the writer thread in one hand-off; it hands
        // back whatever it does not take (see `writer`).
        let (_turn, packed) = match &self.writer {
            Some(writer) => match writer.write(hits, packed, budget, turn).await {
                Outcome::Written(group) => return Ok(group),
                Outcome::Declined {
                    turn: Some(turn),
                    packed,
                } => (Some(turn), packed),
                Outcome::Declined { turn: None, packed } => (self.write_turn().await, packed),
            },
            None => (turn, packed),
        };
        let mut tx = self.pool.begin().await?;
        // PostgreSQL reads the cooldowns and windows in the hits' statement (`recordset`).
        let (mut new, gone, read) = match backend {
            Backend::Postgres => {
                let (new, gone, read) = insert_read(&mut tx, hits, &packed, budget).await?;
                (new, gone, Some(read))
            }
            Backend::Sqlite => {
                let (new, gone) = insert_hits(&mut tx, hits, &packed, budget).await?;
                (new, gone, None)
            }
        };
        // Left out, and of a known token: a repeat, or a use to fold. Only a flood (or a
        // repeat) gets here; the common group has every hit stored.
        let candidates: Vec<(usize, &HitRecord)> = hits
            .iter()
            .enumerate()
            .filter(|(i, _)| !new[*i] && !gone[*i])
            .collect();
        let mut folded = vec![false; hits.len()];
        if !candidates.is_empty() {
            // Folding writes a window's folded counts only, never the distinct values
            // `read` holds for `gather_counted`.
            for i in fold::fold(&mut tx, backend, budget, &candidates).await? {
                new[i] = true;
                folded[i] = true;
            }
        }
        let fresh_at: Vec<usize> = (0..hits.len()).filter(|i| new[*i] && !folded[*i]).collect();
        let fresh: Vec<&HitRecord> = fresh_at.iter().map(|i| &hits[*i]).collect();
        let (cooling, counted) = match read {
            Some(read) => (read.cooling, Some(read.counted)),
            // Read after the hits went in, so SQLite already holds the write lock: the
            // windows seen here are the ones this transaction writes to.
            None => (cooling_tokens(&mut tx, backend, &fresh).await?, None),
        };
        let gathered = gathered(fresh.iter().copied(), &cooling);
        insert_alerts(&mut tx, backend, &fresh, &gathered).await?;
        let windows = window_hits(fresh.iter().copied(), &gathered);
        match counted {
            Some(counted) => recordset::gather_counted(&mut tx, windows, counted).await?,
            None => windows::gather(&mut tx, backend, windows).await?,
        }
        let to_plan = gathered.iter().filter(|g| !**g).count();
        tx.commit().await?;
        let mut windowed = folded.clone();
        for (i, g) in fresh_at.iter().zip(&gathered) {
            windowed[*i] = *g;
        }
        Ok(RecordedGroup {
            new,
            gone,
            to_plan,
            windowed,
            folded,
        })
    }
}

impl SqlStore {
    /// Applies many alert plans in one transaction (one commit for a whole planning round).
    /// Returns how many were applied; one another worker planned first is skipped.
    pub(crate) async fn plan_alerts_batched(
        &self,
        plans: &[(String, TokenId, AlertPlan)],
    ) -> Result<usize> {
        super::retry_deadlocks(|| self.plan_alerts_once(plans)).await
    }

    async fn plan_alerts_once(&self, plans: &[(String, TokenId, AlertPlan)]) -> Result<usize> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let mut applied = 0;
        // Grouped alerts are counted into their windows at the end, one write per token.
        let mut windows: BTreeMap<&str, Vec<WindowHit>> = BTreeMap::new();
        for (alert_id, token, plan) in plans {
            let grouped = match apply_plan(&mut tx, alert_id, token, plan).await? {
                Applied::Not => continue,
                Applied::AsPlanned => match plan {
                    AlertPlan::Group(hit) => Some(hit.clone()),
                    _ => None,
                },
                Applied::Grouped(hit) => Some(hit),
            };
            applied += 1;
            if let Some(hit) = grouped {
                windows.entry(token.as_str()).or_default().push(hit);
            }
        }
        windows::gather(&mut tx, self.backend(), windows).await?;
        tx.commit().await?;
        Ok(applied)
    }
}

impl SqlStore {
    /// Marks sent deliveries delivered and resets their channels' failure counts, in one
    /// transaction for a whole round of sends.
    pub(crate) async fn mark_delivered_batched(
        &self,
        delivered: &[(String, Option<TokenId>, ChannelKind)],
        now: i64,
    ) -> Result<()> {
        super::retry_deadlocks(|| self.mark_delivered_once(delivered, now)).await
    }

    async fn mark_delivered_once(
        &self,
        delivered: &[(String, Option<TokenId>, ChannelKind)],
        now: i64,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        // Tokens' rows first, in one order, as planning takes a token's row before its lanes:
        // fewer lock cycles to begin with (`retry_deadlocks` ends the rest).
        // Operator and stream deliveries have no token's failure count.
        let channels: std::collections::BTreeSet<(&TokenId, ChannelKind)> = delivered
            .iter()
            .filter(|(_, _, c)| !matches!(c, ChannelKind::Stream(_)))
            .filter_map(|(_, t, c)| Some((t.as_ref()?, *c)))
            .collect();
        for (token, channel) in channels {
            // The column name comes from our own enum, never from input.
            let column = format!("{}_failures", channel.as_str());
            sqlx::query(&format!(
                "UPDATE tokens SET {column} = 0 WHERE id = $1 AND {column} <> 0"
            ))
            .bind(token.as_str())
            .execute(&mut *tx)
            .await?;
        }
        let mut lanes = std::collections::BTreeSet::new();
        for (id, _, _) in delivered {
            let lane: Option<String> = sqlx::query_scalar(
                "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, \
                 delivered_at = $2, claimed_until = NULL, last_error = NULL WHERE id = $1 \
                 RETURNING lane",
            )
            .bind(id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            lanes.extend(lane);
        }
        for lane in &lanes {
            super::lanes::settle_lane(&mut tx, lane).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// What became of one plan.
enum Applied {
    /// Another worker planned the alert first.
    Not,
    AsPlanned,
    /// A `Send` whose token's window another replica opened meanwhile: gathered into it.
    Grouped(WindowHit),
}

async fn apply_plan(
    tx: &mut Transaction<'_, Any>,
    alert_id: &str,
    token: &TokenId,
    plan: &AlertPlan,
) -> Result<Applied> {
    // The claim: the alert row is the planner's work item, and nothing reads it once planned.
    // Another replica's claim of the same row leaves none to delete here (PostgreSQL: ours
    // waited for its commit).
    let claimed = sqlx::query("DELETE FROM alerts WHERE id = $1")
        .bind(alert_id)
        .execute(&mut **tx)
        .await?;
    if claimed.rows_affected() == 0 {
        return Ok(Applied::Not);
    }
    match plan {
        AlertPlan::Send {
            deliveries,
            cooldown_until,
        } => {
            // The token's row first (as every planning path takes it before its lanes), and
            // only if no window opened since the planner read it: two replicas planning two
            // first uses of one token at once would each have sent an alert.
            if let Some(hit) = open_cooldown(tx, token, alert_id, *cooldown_until).await? {
                return Ok(Applied::Grouped(hit));
            }
            insert_deliveries(tx, deliveries).await?;
        }
        AlertPlan::Group(_) => {}
        AlertPlan::Ignore { reason } => {
            // An alert shares its hit's id.
            sqlx::query("UPDATE hits SET suppressed = $2 WHERE id = $1")
                .bind(alert_id)
                .bind(reason)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(Applied::AsPlanned)
}

/// SQLite: inserts the hits (`packed[i]` is hit i's raw record, packed) in power-of-two chunks
/// of `VALUES`; returns, per hit, whether it was new and whether it was left out because its
/// token is gone altogether (neither new nor a repeat).
async fn insert_hits(
    tx: &mut Transaction<'_, Any>,
    hits: &[HitRecord],
    packed: &[Vec<u8>],
    budget: i64,
) -> Result<(Vec<bool>, Vec<bool>)> {
    let mut new = Vec::with_capacity(hits.len());
    let mut gone = Vec::with_capacity(hits.len());
    let mut offset = 0;
    for p in chunks(hits.len()) {
        let range = offset..offset + (1 << p);
        offset = range.end;
        let chunk = &hits[range.clone()];
        let inserted = insert_values(tx, chunk, &packed[range], budget).await?;
        if usize::try_from(inserted).is_ok_and(|n| n == chunk.len()) {
            new.extend(std::iter::repeat_n(true, chunk.len()));
            gone.extend(std::iter::repeat_n(false, chunk.len()));
            continue;
        }
        // Some were repeats (or their token is gone): ids are random, so a stored row with a
        // hit's id is the one just inserted. The first hit holding an id is the stored one (a
        // caller that repeats an id also repeats the event).
        let sql = format!(
            "SELECT id FROM hits WHERE id IN {}",
            values(1, chunk.len(), Backend::Sqlite)
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for h in chunk {
            q = q.bind(&h.id);
        }
        let mut stored: HashSet<String> = q.fetch_all(&mut **tx).await?.into_iter().collect();
        let chunk_new: Vec<bool> = chunk.iter().map(|h| stored.remove(&h.id)).collect();
        gone.extend(gone_tokens(tx, Backend::Sqlite, chunk, &chunk_new).await?);
        new.extend(chunk_new);
    }
    Ok((new, gone))
}

/// PostgreSQL: the whole group in one statement, which also reads the cooldowns and windows
/// the rest of the group needs (`recordset::insert_read_sql`); new and gone as `insert_hits`.
async fn insert_read(
    tx: &mut Transaction<'_, Any>,
    hits: &[HitRecord],
    packed: &[Vec<u8>],
    budget: i64,
) -> Result<(Vec<bool>, Vec<bool>, recordset::InsertRead)> {
    let mut read = recordset::insert_read(tx, hits, packed, budget).await?;
    // The statement returned the ids it stored; the first hit holding an id is the stored one.
    let new: Vec<bool> = hits.iter().map(|h| read.stored.remove(&h.id)).collect();
    let gone = if new.iter().all(|n| *n) {
        vec![false; hits.len()]
    } else {
        gone_tokens(tx, Backend::Postgres, hits, &new).await?
    };
    Ok((new, gone, read))
}

/// Per hit, whether it was left out because its token is gone altogether. Of the hits not
/// `new`, a repeat has a token; a hit without one was filtered, and must not be reported as a
/// duplicate.
async fn gone_tokens(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    hits: &[HitRecord],
    new: &[bool],
) -> Result<Vec<bool>> {
    let missing: Vec<&HitRecord> = (hits.iter().zip(new))
        .filter(|(_, n)| !**n)
        .map(|(h, _)| h)
        .collect();
    let known = tombstones::existing_tokens(tx, backend, &missing).await?;
    Ok((hits.iter().zip(new))
        .map(|(h, n)| !*n && !known.contains(h.token_id.as_str()))
        .collect())
}

/// One chunk of hits as one multi-row `VALUES` statement (`hits_sql`); returns the rows
/// inserted.
async fn insert_values(
    tx: &mut Transaction<'_, Any>,
    chunk: &[HitRecord],
    packed: &[Vec<u8>],
    budget: i64,
) -> Result<u64> {
    let sqls = HITS_SQL.get(Backend::Sqlite, hits_sql);
    let p = chunk.len().trailing_zeros() as usize;
    let mut q = sqlx::query(&sqls[p]);
    for (h, packed) in chunk.iter().zip(packed) {
        q = q
            .bind(&h.id)
            .bind(h.token_id.as_str())
            .bind(&h.event_id)
            .bind(h.event_time)
            .bind(h.received_at)
            .bind(&h.event_name)
            .bind(&h.source_ip)
            .bind(&h.path)
            .bind(&h.note)
            .bind(&h.suppressed)
            // The text and the detail fields are in `raw_packed` (see `HIT_WRITE_COLUMNS`).
            .bind(packed)
            .bind(event_hash(&h.event_id))
            .bind(budget);
    }
    Ok(q.execute(&mut **tx).await?.rows_affected())
}

/// The open cooldown windows of the tokens of `fresh`: token id → `cooldown_until`, for tokens
/// with no ignore list (a hit that may be ignored must go through the planner).
async fn cooling_tokens(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    fresh: &[&HitRecord],
) -> Result<HashMap<String, i64>> {
    let tokens = token_ids(fresh.iter().copied());
    let mut cooling = HashMap::new();
    for chunk in tokens.chunks(1 << MAX_ROWS_LOG2) {
        let sql = cooling_sql(chunk.len(), backend);
        let mut q = sqlx::query_as::<_, (String, i64)>(&sql);
        for t in chunk {
            q = q.bind(*t);
        }
        cooling.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(cooling)
}

/// The hits' tokens, each once, in order (the order rows are locked in on PostgreSQL).
pub(super) fn token_ids<'a>(hits: impl IntoIterator<Item = &'a HitRecord>) -> Vec<&'a str> {
    hits.into_iter()
        .map(|h| h.token_id.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Per hit, whether it falls inside its token's open cooldown window (`cooling`: token id →
/// `cooldown_until`), and so is gathered into the window instead of alerting on its own.
pub(super) fn gathered<'a>(
    hits: impl Iterator<Item = &'a HitRecord>,
    cooling: &HashMap<String, i64>,
) -> Vec<bool> {
    hits.map(|h| {
        cooling
            .get(h.token_id.as_str())
            .is_some_and(|until| *until > h.received_at)
    })
    .collect()
}

/// The gathered hits, by token, for `windows::gather`.
pub(super) fn window_hits<'a>(
    hits: impl Iterator<Item = &'a HitRecord>,
    gathered: &[bool],
) -> BTreeMap<&'a str, Vec<WindowHit>> {
    let mut windows: BTreeMap<&str, Vec<WindowHit>> = BTreeMap::new();
    for (h, _) in hits.zip(gathered).filter(|(_, g)| **g) {
        windows
            .entry(h.token_id.as_str())
            .or_default()
            .push(WindowHit::from(h));
    }
    windows
}

/// The open cooldown windows of `n` tokens: id and `cooldown_until`, for tokens with no
/// ignore list (a hit that may be ignored must go through the planner).
pub(super) fn cooling_sql(n: usize, backend: Backend) -> String {
    format!(
        "SELECT id, cooldown_until FROM tokens \
         WHERE cooldown_until IS NOT NULL AND ignore_sources = '' AND id IN {}",
        values(1, n, backend)
    )
}

/// The hits that get an alert row: those not `gathered` into an open window (whose use the
/// window's summary reports instead).
pub(super) fn not_gathered<'a>(
    hits: impl IntoIterator<Item = &'a HitRecord>,
    gathered: &[bool],
) -> Vec<&'a HitRecord> {
    hits.into_iter()
        .zip(gathered)
        .filter(|(_, g)| !**g)
        .map(|(h, _)| h)
        .collect()
}

/// Inserts the alert rows of new hits, but of none `gathered` into an open window. A hit whose
/// token was deleted meanwhile still gets its row: its alert says the token is gone.
async fn insert_alerts(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    fresh: &[&HitRecord],
    gathered: &[bool],
) -> Result<()> {
    if backend == Backend::Postgres {
        if gathered.iter().any(|g| !*g) {
            // Announced at commit: gathered hits leave the planner nothing to do, so a flood
            // inside a window wakes nobody.
            sqlx::query(recordset::ALERTS_SQL)
                .bind(recordset::alerts_json(fresh, gathered))
                .bind(HITS_CHANNEL)
                .execute(&mut **tx)
                .await?;
        }
        return Ok(());
    }
    let sqls = ALERTS_SQL.get(backend, alerts_sql);
    let to_plan = not_gathered(fresh.iter().copied(), gathered);
    let mut rest = to_plan.iter();
    for p in chunks(to_plan.len()) {
        let mut q = sqlx::query(&sqls[p]);
        for h in rest.by_ref().take(1 << p) {
            q = q.bind(&h.id).bind(h.token_id.as_str()).bind(h.received_at);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_row() {
        for n in [0, 1, 2, 3, 7, 255, 256, 257, 1000, 5000] {
            let sizes = chunks(n);
            assert_eq!(sizes.iter().map(|p| 1usize << p).sum::<usize>(), n);
            assert!(sizes.iter().all(|p| *p <= MAX_ROWS_LOG2));
        }
    }

    #[test]
    fn statements_number_their_parameters() {
        let sql = hits_sql(2, Backend::Postgres);
        assert!(sql.contains("$26)") && !sql.contains("$27"));
        assert!(alerts_sql(2, Backend::Postgres).contains("($4, $5, $6)"));
    }

    #[test]
    fn sqlite_statements_bind_by_position() {
        let sql = hits_sql(2, Backend::Sqlite);
        assert_eq!(sql.matches('?').count(), 2 * HIT_PARAMS);
        assert!(!sql.contains('$'));
        assert!(alerts_sql(2, Backend::Sqlite).contains("(?, ?, ?), (?, ?, ?) ON"));
    }
}
