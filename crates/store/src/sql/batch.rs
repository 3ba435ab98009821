//! Multi-row writes for the hot path: a group of hits (from many requests) goes in with a few
//! multi-row `INSERT … RETURNING` statements in one transaction, and their alert rows with a few
//! more. Rows are sent in power-of-two chunks, so at most a handful of distinct statements exist
//! and each connection's prepared-statement cache keeps them all: no re-parse per group.

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use sqlx::{Any, Transaction};

use canarykeys_core::TokenId;

use super::outbox::{insert_deliveries, set_cooldown};
use super::{windows, SqlStore, HIT_COLUMNS};
use crate::{AlertPlan, ChannelKind, HitRecord, Result, WindowHit};

/// The largest chunk: 16 rows (336 parameters). sqlx binds SQLite parameters by name, at a cost
/// that grows with the square of a statement's parameter count (a profile of 256-row chunks
/// spent two thirds of its time in `sqlite3_bind_parameter_name`); 16 rows keeps that small
/// while still cutting the statements per hit sixteenfold.
const MAX_ROWS_LOG2: usize = 4;
const HIT_PARAMS: usize = 21;

/// One statement per chunk size, built once.
fn chunk_sql(
    table: fn(usize) -> String,
    cache: &'static OnceLock<Vec<String>>,
) -> &'static [String] {
    cache.get_or_init(|| (0..=MAX_ROWS_LOG2).map(|p| table(1 << p)).collect())
}

fn placeholders(rows: usize, per_row: usize, row: impl Fn(usize) -> String) -> String {
    (0..rows)
        .map(|r| row(r * per_row))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts hits whose token still exists (a token deleted on another replica or by the CLI
/// leaves no orphan, and fails no group), skipping event ids already stored. `VALUES` columns
/// are `column1…` in both databases.
fn hits_sql(rows: usize) -> String {
    let values = placeholders(rows, HIT_PARAMS, |base| {
        let cols: Vec<String> = (1..=HIT_PARAMS).map(|i| format!("${}", base + i)).collect();
        format!("({})", cols.join(", "))
    });
    format!(
        "INSERT INTO hits ({HIT_COLUMNS}) SELECT * FROM (VALUES {values}) AS v \
         WHERE v.column2 IN (SELECT id FROM tokens) \
         ON CONFLICT (event_id) DO NOTHING RETURNING id"
    )
}

/// The alert row shares the hit's id: one alert per hit, by construction. A hit inside its
/// token's open cooldown window (and with no ignore list to check) is gathered here and now: its
/// alert row is written `summarized`, a final state, and the window's row counts it (see
/// `windows::gather`). A flood on one key queues no work for the planner, so it delays no other
/// token's alert, and leaves no row per hit to read back when the window closes.
fn alerts_sql(rows: usize) -> String {
    let values = placeholders(rows, 3, |b| format!("(${}, ${}, ${})", b + 1, b + 2, b + 3));
    format!(
        "INSERT INTO alerts (id, hit_id, token_id, state, created_at) \
         SELECT v.column1, v.column1, v.column2, \
         CASE WHEN t.cooldown_until > v.column3 AND t.ignore_sources = '' \
         THEN 'summarized' ELSE 'new' END, v.column3 \
         FROM (VALUES {values}) AS v JOIN tokens t ON t.id = v.column2 RETURNING id, state"
    )
}

/// The PostgreSQL channel a commit of new hits is announced on.
const HITS_CHANNEL: &str = "canarykeys_hits";

impl SqlStore {
    /// A listener for other processes' commits of new hits: on PostgreSQL, its own connection
    /// listening on the hits channel; `None` on SQLite, where every writer is in this process
    /// (or is the CLI, whose hits the next poll finds).
    pub async fn listen_commits(&self) -> Result<Option<sqlx::postgres::PgListener>> {
        if self.backend() != super::Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen(HITS_CHANNEL).await?;
        Ok(Some(listener))
    }
}

static HITS_SQL: OnceLock<Vec<String>> = OnceLock::new();
static ALERTS_SQL: OnceLock<Vec<String>> = OnceLock::new();

/// Splits `n` rows into power-of-two chunks, largest first.
fn chunks(mut n: usize) -> Vec<usize> {
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
    /// Records hits with multi-row statements in one transaction; see `HitStore::record_hits`.
    pub(crate) async fn record_hits_batched(&self, hits: &[HitRecord]) -> Result<Vec<bool>> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let mut new_ids = insert_hits(&mut tx, hits).await?;
        // The first hit holding a returned id is the stored one (ids are random; a caller that
        // repeats one also repeats the event, which the database kept once).
        let new: Vec<bool> = hits.iter().map(|h| new_ids.remove(&h.id)).collect();
        let fresh: Vec<&HitRecord> = hits
            .iter()
            .zip(&new)
            .filter(|(_, n)| **n)
            .map(|(h, _)| h)
            .collect();
        let gathered = insert_alerts(&mut tx, &fresh).await?;
        if !gathered.is_empty() {
            let mut windows: BTreeMap<&str, Vec<WindowHit>> = BTreeMap::new();
            for h in fresh.iter().filter(|h| gathered.contains(&h.id)) {
                windows
                    .entry(h.token_id.as_str())
                    .or_default()
                    .push(WindowHit::from(*h));
            }
            windows::gather(&mut tx, windows).await?;
        }
        if self.backend() == super::Backend::Postgres && !fresh.is_empty() {
            // Delivered at commit, to every replica's delivery worker.
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(HITS_CHANNEL)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(new)
    }
}

impl SqlStore {
    /// Applies many alert plans in one transaction (one commit for a whole planning round).
    /// Returns how many were applied; one another worker planned first is skipped.
    pub(crate) async fn plan_alerts_batched(
        &self,
        plans: &[(String, TokenId, AlertPlan)],
    ) -> Result<usize> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let mut applied = 0;
        // Grouped alerts are counted into their windows at the end, one write per token.
        let mut windows: BTreeMap<&str, Vec<WindowHit>> = BTreeMap::new();
        for (alert_id, token, plan) in plans {
            if apply_plan(&mut tx, alert_id, token, plan).await? {
                applied += 1;
                if let AlertPlan::Group(hit) = plan {
                    windows.entry(token.as_str()).or_default().push(hit.clone());
                }
            }
        }
        windows::gather(&mut tx, windows).await?;
        tx.commit().await?;
        Ok(applied)
    }
}

impl SqlStore {
    /// Marks sent deliveries delivered and resets their channels' failure counts, in one
    /// transaction for a whole round of sends.
    pub(crate) async fn mark_delivered_batched(
        &self,
        delivered: &[(String, TokenId, ChannelKind)],
        now: i64,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        for (id, _, _) in delivered {
            sqlx::query(
                "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, \
                 delivered_at = $2, claimed_until = NULL, last_error = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let channels: HashSet<(&TokenId, ChannelKind)> =
            delivered.iter().map(|(_, t, c)| (t, *c)).collect();
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
        tx.commit().await?;
        Ok(())
    }
}

async fn apply_plan(
    tx: &mut Transaction<'_, Any>,
    alert_id: &str,
    token: &TokenId,
    plan: &AlertPlan,
) -> Result<bool> {
    let state = match plan {
        AlertPlan::Send { .. } => "sent",
        AlertPlan::Group(_) => "summarized",
        AlertPlan::Ignore { .. } => "ignored",
    };
    let claimed = sqlx::query("UPDATE alerts SET state = $2 WHERE id = $1 AND state = 'new'")
        .bind(alert_id)
        .bind(state)
        .execute(&mut **tx)
        .await?;
    if claimed.rows_affected() == 0 {
        return Ok(false);
    }
    match plan {
        AlertPlan::Send {
            deliveries,
            cooldown_until,
        } => {
            insert_deliveries(tx, deliveries).await?;
            set_cooldown(tx, token, *cooldown_until).await?;
        }
        AlertPlan::Group(_) => {}
        AlertPlan::Ignore { reason } => {
            sqlx::query(
                "UPDATE hits SET suppressed = $2 WHERE id = (SELECT hit_id FROM alerts WHERE id = $1)",
            )
                .bind(alert_id)
                .bind(reason)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(true)
}

async fn insert_hits(tx: &mut Transaction<'_, Any>, hits: &[HitRecord]) -> Result<HashSet<String>> {
    let sqls = chunk_sql(hits_sql, &HITS_SQL);
    let mut new_ids = HashSet::with_capacity(hits.len());
    let mut rest = hits;
    for p in chunks(hits.len()) {
        let (chunk, tail) = rest.split_at(1 << p);
        rest = tail;
        let mut q = sqlx::query_scalar::<_, String>(&sqls[p]);
        for h in chunk {
            q = q
                .bind(&h.id)
                .bind(h.token_id.as_str())
                .bind(&h.event_id)
                .bind(h.event_time)
                .bind(h.received_at)
                .bind(&h.event_name)
                .bind(&h.event_source)
                .bind(&h.region)
                .bind(&h.source_ip)
                .bind(&h.user_agent)
                .bind(&h.error_code)
                .bind(&h.error_message)
                .bind(&h.account_id)
                .bind(&h.access_key_id)
                .bind(&h.tls_host)
                .bind(&h.vpc_endpoint_id)
                .bind(&h.request_id)
                .bind(&h.path)
                .bind(&h.note)
                .bind(&h.suppressed)
                .bind(&h.raw);
        }
        new_ids.extend(q.fetch_all(&mut **tx).await?);
    }
    Ok(new_ids)
}

/// Inserts the alert rows; returns the ids of those gathered into an open window.
async fn insert_alerts(
    tx: &mut Transaction<'_, Any>,
    fresh: &[&HitRecord],
) -> Result<HashSet<String>> {
    let sqls = chunk_sql(alerts_sql, &ALERTS_SQL);
    let mut gathered = HashSet::new();
    let mut rest = fresh;
    for p in chunks(fresh.len()) {
        let (chunk, tail) = rest.split_at(1 << p);
        rest = tail;
        let mut q = sqlx::query_as::<_, (String, String)>(&sqls[p]);
        for h in chunk {
            q = q.bind(&h.id).bind(h.token_id.as_str()).bind(h.received_at);
        }
        for (id, state) in q.fetch_all(&mut **tx).await? {
            if state == "summarized" {
                gathered.insert(id);
            }
        }
    }
    Ok(gathered)
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
        let sql = hits_sql(2);
        assert!(sql.contains("$42)") && !sql.contains("$43"));
        assert!(alerts_sql(2).contains("($4, $5, $6))"));
    }
}
