//! `ExposureStore` over SQL: one row per token and source, decided by the database
//! (`ON CONFLICT DO NOTHING`), with the alert's outbox rows written in the same transaction.

use async_trait::async_trait;
use canarykeys_core::TokenId;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::outbox::insert_deliveries;
use super::SqlStore;
use crate::{
    ExposureOutcome, ExposureRecord, ExposureSource, ExposureStore, NewDelivery, Result, StoreError,
};

const COLUMNS: &str = "id, token_id, source, event_type, last_ref, description, location, \
     event_time, first_seen, last_seen, seen_count, raw";

fn from_row(row: &AnyRow) -> Result<ExposureRecord> {
    let source: String = row.try_get("source")?;
    Ok(ExposureRecord {
        id: row.try_get("id")?,
        token_id: TokenId::parse(&row.try_get::<String, _>("token_id")?)
            .map_err(|e| StoreError::Corrupt(format!("token_id: {e}")))?,
        source: ExposureSource::parse(&source)
            .ok_or_else(|| StoreError::Corrupt("exposure source".into()))?,
        event_type: row.try_get("event_type")?,
        last_ref: row.try_get("last_ref")?,
        description: row.try_get("description")?,
        location: row.try_get("location")?,
        event_time: row.try_get("event_time")?,
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
        seen_count: row.try_get("seen_count")?,
        raw: row.try_get("raw")?,
    })
}

#[async_trait]
impl ExposureStore for SqlStore {
    async fn record_exposure(
        &self,
        e: &ExposureRecord,
        deliveries: &[NewDelivery],
    ) -> Result<ExposureOutcome> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO exposures ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12) ON CONFLICT (token_id, source) DO NOTHING"
        ))
        .bind(&e.id)
        .bind(e.token_id.as_str())
        .bind(e.source.as_str())
        .bind(&e.event_type)
        .bind(&e.last_ref)
        .bind(&e.description)
        .bind(&e.location)
        .bind(e.event_time)
        .bind(e.first_seen)
        .bind(e.last_seen)
        .bind(e.seen_count)
        .bind(&e.raw)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        let outcome = if inserted {
            insert_deliveries(&mut tx, deliveries).await?;
            ExposureOutcome::New
        } else {
            // Inside the transaction the row cannot change under us between read and update
            // on PostgreSQL's row lock (FOR UPDATE) or SQLite's single writer.
            let lock = match self.backend() {
                super::Backend::Postgres => " FOR UPDATE",
                super::Backend::Sqlite => "",
            };
            let last_ref: String = sqlx::query_scalar(&format!(
                "SELECT last_ref FROM exposures WHERE token_id = $1 AND source = $2{lock}"
            ))
            .bind(e.token_id.as_str())
            .bind(e.source.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let repeat = last_ref == e.last_ref;
            sqlx::query(
                "UPDATE exposures SET last_seen = $3, last_ref = $4, \
                 seen_count = seen_count + $5, location = COALESCE(location, $6) \
                 WHERE token_id = $1 AND source = $2",
            )
            .bind(e.token_id.as_str())
            .bind(e.source.as_str())
            .bind(e.last_seen)
            .bind(&e.last_ref)
            .bind(if repeat { 0_i64 } else { 1 })
            .bind(&e.location)
            .execute(&mut *tx)
            .await?;
            if repeat {
                ExposureOutcome::Repeat
            } else {
                ExposureOutcome::Updated
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn list_exposures(&self, token: &TokenId) -> Result<Vec<ExposureRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM exposures WHERE token_id = $1 ORDER BY first_seen DESC, id"
        ))
        .bind(token.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    async fn exposures_feed(
        &self,
        token: Option<&TokenId>,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<(ExposureRecord, String)>, u64)> {
        let token = token.map(|t| t.as_str().to_owned()).unwrap_or_default();
        let cols = COLUMNS
            .split(", ")
            .map(|c| format!("e.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(&format!(
            "SELECT {cols}, t.memo AS memo FROM exposures e JOIN tokens t ON t.id = e.token_id \
             WHERE ($1 = '' OR e.token_id = $1) \
             ORDER BY e.first_seen DESC, e.id LIMIT $2 OFFSET $3"
        ))
        .bind(&token)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .iter()
            .map(|r| Ok((from_row(r)?, r.try_get::<String, _>("memo")?)))
            .collect::<Result<Vec<_>>>()?;
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM exposures WHERE ($1 = '' OR token_id = $1)")
                .bind(&token)
                .fetch_one(&self.pool)
                .await?;
        Ok((items, u64::try_from(total).unwrap_or(0)))
    }

    async fn delete_exposures_before(&self, before: i64) -> Result<u64> {
        let _turn = self.write_turn().await;
        let res = sqlx::query("DELETE FROM exposures WHERE last_seen < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected())
    }
}
