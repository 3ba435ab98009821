//! `HitStore` over SQL: insert-or-ignore by event id, with the outbox row in the same transaction.

use async_trait::async_trait;
use canarykeys_core::TokenId;

use super::{hit_from_row, SqlStore, HIT_COLUMNS};
use crate::{HitRecord, HitStore, RecordedGroup, Result};

#[async_trait]
impl HitStore for SqlStore {
    async fn record_group(&self, hits: &[HitRecord]) -> Result<RecordedGroup> {
        // Multi-row statements: the group-commit writer sends many requests' hits at once.
        // Two groups in flight (two replicas, or `concurrent_groups` on one) that insert the
        // same event ids in opposite orders wait on each other's unique-index entries; the
        // database picks a victim, and it runs again (the other's rows are then repeats).
        super::retry_deadlocks(|| self.record_hits_batched(hits)).await
    }

    /// PostgreSQL: a few. Each group is three or four round trips to a backend process (BEGIN,
    /// the hits counted into their windows, the alert rows if any, COMMIT); one at a time, the
    /// writer waited on each in turn while the database sat idle between them. Concurrent
    /// transactions share WAL flushes and lock only the rows they touch, as two replicas'
    /// groups already do. Four of the pool's ten connections at most, so planning, delivery
    /// and reads keep the rest.
    fn concurrent_groups(&self) -> usize {
        match self.backend() {
            super::Backend::Sqlite => 1,
            super::Backend::Postgres => 4,
        }
    }

    async fn list_hits(&self, token: &TokenId, limit: u32, offset: u32) -> Result<Vec<HitRecord>> {
        let sql = format!(
            "SELECT {HIT_COLUMNS} FROM hits WHERE token_id = $1 \
             ORDER BY event_time DESC, id LIMIT $2 OFFSET $3"
        );
        let rows = sqlx::query(&sql)
            .bind(token.as_str())
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(hit_from_row).collect()
    }

    async fn count_hits(&self, token: &TokenId) -> Result<u64> {
        // Folded uses have no hit row: each left its event hash.
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM hits WHERE token_id = $1) \
             + (SELECT COUNT(*) FROM folded_events WHERE token_id = $1)",
        )
        .bind(token.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn latest_hit_time(&self, token: &TokenId) -> Result<Option<i64>> {
        let t: Option<i64> =
            sqlx::query_scalar("SELECT MAX(event_time) FROM hits WHERE token_id = $1")
                .bind(token.as_str())
                .fetch_one(&self.pool)
                .await?;
        Ok(t)
    }

    async fn hits_per_day(&self, token: &TokenId, since_day: i64) -> Result<Vec<(i64, u64)>> {
        // Integer division gives whole UTC days in both databases.
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT event_time / 86400000 AS day, COUNT(*) FROM hits \
             WHERE token_id = $1 AND event_time >= $2 GROUP BY event_time / 86400000 ORDER BY day",
        )
        .bind(token.as_str())
        .bind(since_day.saturating_mul(86_400_000))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(d, n)| (d, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    async fn delete_hits_before(&self, before: i64) -> Result<u64> {
        let _turn = self.write_turn().await;
        // Tombstones are pruned on their own clock (`prune_tombstones`): one must outlive its
        // hits for the late-event window.
        let mut tx = self.pool.begin().await?;
        // An alert still waiting goes with its hit (it shares the hit's id), as the foreign key
        // did before 0023: the planner reads an alert's hit. The queue is the small side, so it
        // is the one scanned, probing each hit by its id.
        sqlx::query(
            "DELETE FROM alerts WHERE EXISTS \
             (SELECT 1 FROM hits h WHERE h.id = alerts.id AND h.event_time < $1)",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?;
        let res = sqlx::query("DELETE FROM hits WHERE event_time < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        // Folded events go with the hits of their time: both count, and both stop counting.
        sqlx::query("DELETE FROM folded_events WHERE event_time < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(res.rows_affected())
    }

    async fn count_pending_alerts(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(super::PENDING_ALERTS_SQL)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
