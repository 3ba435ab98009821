//! `OperatorStore` over SQL: each condition's last state (`operator_conditions`) and the
//! shared timers (`operator_timers`). Both decide in the transaction that queues the alert, so
//! of several replicas reporting one change, or waking for one watchdog turn, one sends.

use async_trait::async_trait;
use sqlx::Row;

use super::outbox::insert_deliveries;
use super::{Backend, SqlStore};
use crate::{NewDelivery, OperatorCondition, OperatorStatus, OperatorStore, Result};

impl SqlStore {
    /// PostgreSQL's row lock for a read that decides a write; SQLite's write lock is taken by
    /// the transaction's first statement.
    fn for_update(&self) -> &'static str {
        match self.backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }
}

#[async_trait]
impl OperatorStore for SqlStore {
    async fn record_condition(
        &self,
        c: &OperatorCondition,
        deliveries: &[NewDelivery],
    ) -> Result<bool> {
        // Producers report the same state again and again: a plain read settles those without
        // a write.
        let known =
            sqlx::query("SELECT state, alerted FROM operator_conditions WHERE subject = $1")
                .bind(&c.subject)
                .fetch_optional(&self.pool)
                .await?;
        if let Some(row) = &known {
            let state: String = row.try_get("state")?;
            let alerted: Option<String> = row.try_get("alerted")?;
            if state == c.state && !c.level.alerts_after(alerted.as_deref()) {
                return Ok(false);
            }
        }
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO operator_conditions (subject, state, alerted, detail, changed_at) \
             VALUES ($1, $2, NULL, $3, $4) ON CONFLICT (subject) DO NOTHING",
        )
        .bind(&c.subject)
        .bind(&c.state)
        .bind(&c.detail)
        .bind(c.at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let (before, alerted) = if inserted {
            (None, None)
        } else {
            let row = sqlx::query(&format!(
                "SELECT state, alerted FROM operator_conditions WHERE subject = $1{}",
                self.for_update()
            ))
            .bind(&c.subject)
            .fetch_one(&mut *tx)
            .await?;
            (
                Some(row.try_get::<String, _>("state")?),
                row.try_get::<Option<String>, _>("alerted")?,
            )
        };
        let alert = c.level.alerts_after(alerted.as_deref());
        if before.as_deref() != Some(c.state.as_str()) && !inserted {
            sqlx::query(
                "UPDATE operator_conditions SET state = $2, detail = $3, changed_at = $4 \
                 WHERE subject = $1",
            )
            .bind(&c.subject)
            .bind(&c.state)
            .bind(&c.detail)
            .bind(c.at)
            .execute(&mut *tx)
            .await?;
        }
        if alert {
            sqlx::query("UPDATE operator_conditions SET alerted = $2 WHERE subject = $1")
                .bind(&c.subject)
                .bind(c.level.as_str())
                .execute(&mut *tx)
                .await?;
            insert_deliveries(&mut tx, deliveries).await?;
        }
        tx.commit().await?;
        Ok(alert)
    }

    async fn take_timer(
        &self,
        name: &str,
        now: i64,
        every_ms: i64,
        deliveries: &[NewDelivery],
    ) -> Result<bool> {
        let next = now.saturating_add(every_ms);
        // Not due (and not set further out than one interval, as a longer interval left it):
        // a read, no write.
        let due: Option<i64> =
            sqlx::query_scalar("SELECT due_at FROM operator_timers WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        if due.is_some_and(|d| d > now && d <= next) {
            return Ok(false);
        }
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO operator_timers (name, due_at, last_at) VALUES ($1, $2, NULL) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // The compare-and-set: on PostgreSQL a second replica's UPDATE waits for the first's
        // row lock, then re-reads the row, finds it no longer due and changes nothing.
        let taken = sqlx::query(
            "UPDATE operator_timers SET due_at = $2, last_at = $3 \
             WHERE name = $1 AND (due_at <= $3 OR due_at > $2)",
        )
        .bind(name)
        .bind(next)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if taken {
            insert_deliveries(&mut tx, deliveries).await?;
        }
        tx.commit().await?;
        Ok(taken)
    }

    async fn operator_status(&self) -> Result<OperatorStatus> {
        let mut status = OperatorStatus::default();
        let timer = sqlx::query("SELECT due_at, last_at FROM operator_timers WHERE name = 'alive'")
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = timer {
            status.next_alive_at = Some(row.try_get("due_at")?);
            status.last_alive_at = row.try_get("last_at")?;
        }
        // Through `deliveries_lane_state`: the operator lanes' rows only (streams' rows have
        // no token either).
        let counts = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM deliveries WHERE lane IN ('operator/email', 'operator/webhook') \
             AND state IN ('pending', 'failed') GROUP BY state",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in counts {
            let n = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0);
            match row.try_get::<String, _>("state")?.as_str() {
                "pending" => status.pending = n,
                _ => status.failed = n,
            }
        }
        status.last_error = sqlx::query_scalar(
            "SELECT last_error FROM deliveries WHERE lane IN ('operator/email', 'operator/webhook') \
             AND last_error IS NOT NULL ORDER BY created_at DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        Ok(status)
    }
}
