//! Delivery lanes: a lane is one stream of deliveries sent in the order they were written
//! (`created_at`, then `id`): one token's deliveries by one channel, or the operator channel's
//! (`Lane`). Each lane has one row
//! in `delivery_lanes` with its head's next attempt (`next_at`) and its claim's lease
//! (`claimed_until`). Workers claim lanes there, oldest due time first, then read a few of
//! each lane's pending rows through an index: a claim costs the due lanes and `per_lane` rows
//! each, whatever the backlog behind a head that waits for a retry.
//!
//! `next_at` is kept true by every write that changes a lane's pending rows: it writes the rows,
//! then locks the lane row and recomputes the head in a later statement of the same
//! transaction. On PostgreSQL that statement sees every write committed before the lock was
//! granted, so two writers of one lane cannot leave it stale; on SQLite the write turn orders
//! them. Claims are `FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas never take one lane twice;
//! a worker that dies loses its lanes when the lease runs out.

use sqlx::{Any, Row, Transaction};

use super::outbox::{delivery_from_row, DELIVERY_COLUMNS};
use super::{Backend, SqlStore};
use crate::{DeliveryRecord, Lane, Result};

/// Is any lane due and unclaimed (`$1` = now)?
const DUE_SQL: &str = "SELECT 1 FROM delivery_lanes WHERE next_at <= $1 \
     AND (claimed_until IS NULL OR claimed_until <= $1) LIMIT 1";
/// Claims due lanes (`$1` now, `$2` lease end, `$3` how many); `{lock}` is PostgreSQL's row lock.
const CLAIM_SQL: &str = "UPDATE delivery_lanes SET claimed_until = $2 WHERE lane IN (SELECT lane \
     FROM delivery_lanes WHERE next_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1) \
     ORDER BY next_at, lane LIMIT $3{lock}) RETURNING lane, next_at";
/// A lane's first pending rows (`$1` lane, `$2` how many), through its partial index.
const ROWS_SQL: &str = "SELECT {cols} FROM deliveries WHERE lane = $1 AND state = 'pending' \
     ORDER BY created_at, id LIMIT $2";
/// Sets a lane's time to its head's next attempt.
const SETTLE_SQL: &str = "UPDATE delivery_lanes SET next_at = (SELECT d.next_attempt_at \
     FROM deliveries d WHERE d.lane = $1 AND d.state = 'pending' ORDER BY d.created_at, d.id \
     LIMIT 1) WHERE lane = $1";
const NEXT_DUE_SQL: &str = "SELECT MIN(CASE WHEN claimed_until IS NOT NULL \
     AND claimed_until > next_at THEN claimed_until ELSE next_at END) FROM delivery_lanes \
     WHERE next_at IS NOT NULL";

/// Locks `lane` (creating it) and sets its time to its head's next attempt, or NULL when it has
/// nothing pending. Call after writing the lane's rows, in the same transaction.
pub(super) async fn settle_lane(tx: &mut Transaction<'_, Any>, lane: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO delivery_lanes (lane, next_at, claimed_until) VALUES ($1, NULL, NULL) \
         ON CONFLICT (lane) DO UPDATE SET lane = excluded.lane",
    )
    .bind(lane)
    .execute(&mut **tx)
    .await?;
    sqlx::query(SETTLE_SQL)
        .bind(lane)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl SqlStore {
    /// Claims up to `lanes` lanes whose head is due and unclaimed, earliest due first, and up
    /// to `per_lane` rows of each, in one transaction. Each lane comes back oldest row first.
    pub(crate) async fn claim_lanes_sql(
        &self,
        now: i64,
        lease_ms: i64,
        lanes: u32,
        per_lane: u32,
    ) -> Result<Vec<Vec<DeliveryRecord>>> {
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let until = now.saturating_add(lease_ms);
        // The worker wakes at every commit of hits, most of which plan nothing: a plain read
        // of the lanes' index says whether anything is due, so an empty round costs no write
        // turn and never queues ahead of the next group commit.
        let due: Option<i64> = sqlx::query_scalar(DUE_SQL)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        // The write comes first in the transaction, so SQLite takes its write lock at once.
        let rows = sqlx::query(&CLAIM_SQL.replace("{lock}", lock))
            .bind(now)
            .bind(until)
            .bind(i64::from(lanes))
            .fetch_all(&mut *tx)
            .await?;
        let mut claimed = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>("next_at")?,
                    r.try_get::<String, _>("lane")?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        // RETURNING has no order: serve the earliest first.
        claimed.sort();
        let rows_sql = ROWS_SQL.replace("{cols}", DELIVERY_COLUMNS);
        let mut out = Vec::with_capacity(claimed.len());
        for (_, lane) in &claimed {
            let rows = sqlx::query(&rows_sql)
                .bind(lane)
                .bind(i64::from(per_lane.max(1)))
                .fetch_all(&mut *tx)
                .await?;
            let rows = rows
                .iter()
                .map(delivery_from_row)
                .collect::<Result<Vec<_>>>()?;
            // A lane whose time was stale (its head is not due, or it has nothing pending)
            // is put right and given back.
            if rows.first().is_none_or(|head| head.next_attempt_at > now) {
                settle_lane(&mut tx, lane).await?;
                sqlx::query("UPDATE delivery_lanes SET claimed_until = NULL WHERE lane = $1")
                    .bind(lane)
                    .execute(&mut *tx)
                    .await?;
                continue;
            }
            out.push(rows);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Ends claims on lanes, if they are still the claims taken with lease end `until` (a
    /// worker whose lease ran out must not end another's).
    pub(crate) async fn release_lanes_sql(&self, lanes: &[Lane], until: i64) -> Result<()> {
        if lanes.is_empty() {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        for lane in lanes {
            sqlx::query(
                "UPDATE delivery_lanes SET claimed_until = NULL \
                 WHERE lane = $1 AND claimed_until = $2",
            )
            .bind(lane.to_string())
            .bind(until)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Gives the lanes of these rows back, whoever holds them.
    pub(crate) async fn release_claims_sql(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let mut lanes = std::collections::BTreeSet::new();
        for id in ids {
            let lane: Option<String> =
                sqlx::query_scalar("SELECT lane FROM deliveries WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            lanes.extend(lane);
        }
        for lane in &lanes {
            sqlx::query("UPDATE delivery_lanes SET claimed_until = NULL WHERE lane = $1")
                .bind(lane)
                .execute(&mut *tx)
                .await?;
            settle_lane(&mut tx, lane).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// When the next lane's head is due: its next attempt, or the end of its lease. Reads one
    /// row per lane with something pending.
    pub(crate) async fn next_due_sql(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(NEXT_DUE_SQL)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Marks one row and settles its lane, in one transaction under the write turn.
    pub(crate) async fn mark_one(&self, id: &str, set: &str, binds: &[Bind<'_>]) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let sql = format!("UPDATE deliveries SET {set} WHERE id = $1 RETURNING lane");
        let mut q = sqlx::query_scalar::<_, String>(&sql).bind(id);
        for b in binds {
            q = match b {
                Bind::Int(i) => q.bind(*i),
                Bind::Text(t) => q.bind(*t),
            };
        }
        let lane = q.fetch_optional(&mut *tx).await?;
        if let Some(lane) = lane {
            settle_lane(&mut tx, &lane).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A parameter of `mark_one`'s statement, after the row's id.
pub(crate) enum Bind<'a> {
    Int(i64),
    Text(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's plan for every statement of a claim, `next_due` and a lane's settling: each
    /// reaches `deliveries` through an index on the lane, never by a scan of the table, so the
    /// backlog behind a head costs nothing.
    #[tokio::test]
    async fn claims_never_scan_the_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("t.db").display());
        let store = SqlStore::connect(&url).await.unwrap();
        let claim = CLAIM_SQL.replace("{lock}", "");
        let rows = ROWS_SQL.replace("{cols}", DELIVERY_COLUMNS);
        for (sql, params) in [
            (DUE_SQL, 1),
            (&claim, 3),
            (&rows, 2),
            (SETTLE_SQL, 1),
            (NEXT_DUE_SQL, 0),
        ] {
            let explain = format!("EXPLAIN QUERY PLAN {sql}");
            let mut q = sqlx::query(&explain);
            for _ in 0..params {
                q = q.bind(0_i64);
            }
            let explained = q.fetch_all(&store.pool).await.unwrap();
            let details: Vec<String> = explained
                .iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap())
                .collect();
            for d in &details {
                assert!(
                    !(d.starts_with("SCAN d") || d.starts_with("SCAN") && d.contains("deliveries")),
                    "{sql}: {details:?}"
                );
            }
            assert!(!details.is_empty());
        }
        store.close().await;
    }
}
