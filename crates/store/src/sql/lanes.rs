//! Delivery lanes: a lane is one token's deliveries by one channel, sent in the order they were
//! written (`created_at`, then `id`). A worker claims a whole lane through its head (the lane's
//! oldest pending row), so no row is ever sent while an earlier row of its lane is pending, and
//! lanes are served by the age of their heads: one busy lane is one lane, however long.
//!
//! The claim is a lease on the head (`claimed_until`, `FOR UPDATE SKIP LOCKED` on PostgreSQL)
//! and on the rows behind it. While any of them is claimed the lane has no free head, so a
//! second worker (or replica) cannot take it; a worker that dies loses the lane when the lease
//! runs out.

use sqlx::Row;

use super::outbox::{delivery_from_row, DELIVERY_COLUMNS};
use super::{Backend, SqlStore};
use crate::{DeliveryRecord, Result};

/// "No earlier row of `d`'s lane is pending": `d` is its lane's head.
const IS_HEAD: &str = "NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.state = 'pending' \
     AND e.token_id = d.token_id AND e.channel = d.channel \
     AND (e.created_at < d.created_at OR (e.created_at = d.created_at AND e.id < d.id)))";

impl SqlStore {
    /// Claims up to `lanes` lanes whose head is due and unclaimed, oldest head first, and up to
    /// `per_lane` rows of each, in one transaction. Each lane comes back oldest row first.
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
        // The heads first: the write comes first in the transaction, so SQLite takes its write
        // lock at once (a read-then-write transaction could fail on a concurrent writer).
        let heads_sql = format!(
            "UPDATE deliveries SET claimed_until = $2 WHERE id IN (SELECT d.id FROM deliveries d \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1 \
             AND (d.claimed_until IS NULL OR d.claimed_until <= $1) AND {IS_HEAD} \
             ORDER BY d.created_at, d.id LIMIT $3{lock}) RETURNING token_id, channel, created_at, id"
        );
        // The worker wakes at every commit of hits, most of which (inside a cooldown window)
        // plan nothing: a plain read says whether there is anything to claim, so an empty round
        // costs no write turn and never queues ahead of the next group commit.
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM deliveries WHERE state = 'pending' AND next_attempt_at <= $1 \
             AND (claimed_until IS NULL OR claimed_until <= $1) LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(&heads_sql)
            .bind(now)
            .bind(until)
            .bind(i64::from(lanes))
            .fetch_all(&mut *tx)
            .await?;
        let mut heads = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>("created_at")?,
                    r.try_get::<String, _>("id")?,
                    r.try_get::<String, _>("token_id")?,
                    r.try_get::<String, _>("channel")?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        // RETURNING has no order: serve the oldest heads first.
        heads.sort();
        // The rows behind each head are the lane's too: nobody else can claim them while the
        // head is ours, so no row lock is needed for them.
        let rest_sql = format!(
            "UPDATE deliveries SET claimed_until = $3 WHERE id IN (SELECT id FROM deliveries \
             WHERE state = 'pending' AND token_id = $1 AND channel = $2 \
             ORDER BY created_at, id LIMIT $4) RETURNING {DELIVERY_COLUMNS}"
        );
        let mut out = Vec::with_capacity(heads.len());
        for (_, _, token, channel) in &heads {
            let rows = sqlx::query(&rest_sql)
                .bind(token)
                .bind(channel)
                .bind(until)
                .bind(i64::from(per_lane.max(1)))
                .fetch_all(&mut *tx)
                .await?;
            let mut lane = rows
                .iter()
                .map(delivery_from_row)
                .collect::<Result<Vec<_>>>()?;
            lane.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            out.push(lane);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Gives claimed rows back unsent (a lane stopped at a failure or at its time budget).
    pub(crate) async fn release_claims_sql(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        for id in ids {
            sqlx::query("UPDATE deliveries SET claimed_until = NULL WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// When the next lane's head is due: its next attempt, or the end of its lease. Rows behind
    /// a head wait for it, whatever their own times say.
    pub(crate) async fn next_due_sql(&self) -> Result<Option<i64>> {
        let sql = format!(
            "SELECT MIN(CASE WHEN d.claimed_until IS NOT NULL AND d.claimed_until > d.next_attempt_at \
             THEN d.claimed_until ELSE d.next_attempt_at END) FROM deliveries d \
             WHERE d.state = 'pending' AND {IS_HEAD}"
        );
        Ok(sqlx::query_scalar(&sql).fetch_one(&self.pool).await?)
    }
}
