//! `AccessStore` over SQL: operators, sessions, API keys, the audit log, and the all-token pages
//! of the operator API.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;
use sqlx::{Any, Executor};

use super::{
    hit_from_row, is_unique_violation, token_from_row, SqlStore, HIT_COLUMNS, TOKEN_READ_COLUMNS,
};
use crate::{
    AccessStore, ApiKeyRecord, AuditRecord, HitRecord, OperatorRecord, Result, StoreError,
    TokenRecord,
};

const OPERATOR_COLUMNS: &str = "id, name, password_hash, failed_logins, locked_until, created_at";
const API_KEY_COLUMNS: &str = "id, operator_id, name, key_hash, scopes, created_at, revoked_at, \
     last_used_at, create_per_minute, live_tokens_max";

fn operator_from_row(row: &AnyRow) -> Result<OperatorRecord> {
    Ok(OperatorRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        failed_logins: row.try_get("failed_logins")?,
        locked_until: row.try_get("locked_until")?,
        created_at: row.try_get("created_at")?,
    })
}

fn api_key_from_row(row: &AnyRow) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        operator_id: row.try_get("operator_id")?,
        name: row.try_get("name")?,
        key_hash: row.try_get("key_hash")?,
        scopes: row.try_get("scopes")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
        create_per_minute: row.try_get("create_per_minute")?,
        live_tokens_max: row.try_get("live_tokens_max")?,
    })
}

fn conflict_or(e: sqlx::Error) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict
    } else {
        e.into()
    }
}

impl SqlStore {
    async fn operator_where(&self, column: &str, value: &str) -> Result<Option<OperatorRecord>> {
        let sql = format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE {column} = $1");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(operator_from_row).transpose()
    }

    async fn count(&self, table: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[async_trait]
impl AccessStore for SqlStore {
    async fn insert_operator(&self, op: &OperatorRecord) -> Result<()> {
        let _turn = self.write_turn().await;
        insert_operator(&self.pool, op).await
    }

    async fn operator_by_name(&self, name: &str) -> Result<Option<OperatorRecord>> {
        self.operator_where("name", name).await
    }

    async fn operator_by_id(&self, id: &str) -> Result<Option<OperatorRecord>> {
        self.operator_where("id", id).await
    }

    async fn record_login_failure(
        &self,
        id: &str,
        now: i64,
        lock_for: &(dyn Fn(i64) -> Option<i64> + Sync),
    ) -> Result<Option<i64>> {
        let _turn = self.write_turn().await;
        let count: Option<i64> = sqlx::query_scalar(
            "UPDATE operators SET failed_logins = failed_logins + 1 WHERE id = $1 \
             RETURNING failed_logins",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(until) = count
            .and_then(lock_for)
            .map(|wait| now.saturating_add(wait))
        else {
            return Ok(None);
        };
        // Never shortens a lock a concurrent failure made longer.
        sqlx::query(
            "UPDATE operators SET locked_until = $2 \
             WHERE id = $1 AND (locked_until IS NULL OR locked_until < $2)",
        )
        .bind(id)
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(Some(until))
    }

    async fn clear_login_failures(&self, id: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE operators SET failed_logins = 0, locked_until = NULL WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn remember_login_address(
        &self,
        operator_id: &str,
        address: &str,
        now: i64,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO login_addresses (operator_id, address, last_seen_at) VALUES ($1, $2, $3) \
             ON CONFLICT (operator_id, address) DO UPDATE SET last_seen_at = excluded.last_seen_at",
        )
        .bind(operator_id)
        .bind(address)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn is_known_login_address(&self, operator_id: &str, address: &str) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 AS known FROM login_addresses WHERE operator_id = $1 AND address = $2",
        )
        .bind(operator_id)
        .bind(address)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    async fn insert_session(
        &self,
        id_hash: &str,
        operator_id: &str,
        created_at: i64,
        expires_at: i64,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        insert_session(&self.pool, id_hash, operator_id, created_at, expires_at).await
    }

    async fn session_operator(&self, id_hash: &str, now: i64) -> Result<Option<OperatorRecord>> {
        let cols = OPERATOR_COLUMNS
            .split(", ")
            .map(|c| format!("o.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {cols} FROM sessions s JOIN operators o ON o.id = s.operator_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2"
        );
        let row = sqlx::query(&sql)
            .bind(id_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(operator_from_row).transpose()
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        delete_session(&self.pool, id_hash).await
    }

    async fn delete_expired_sessions(&self, now: i64) -> Result<u64> {
        let _turn = self.write_turn().await;
        let res = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected())
    }

    async fn insert_api_key(&self, k: &ApiKeyRecord) -> Result<()> {
        let _turn = self.write_turn().await;
        insert_api_key(&self.pool, k).await
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1");
        let row = sqlx::query(&sql)
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    async fn touch_api_key(&self, id: &str, now: i64) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn revoke_api_key(&self, id: &str, now: i64) -> Result<bool> {
        let _turn = self.write_turn().await;
        revoke_api_key(&self.pool, id, now).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at DESC, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(api_key_from_row).collect()
    }

    async fn insert_audit(&self, e: &AuditRecord) -> Result<()> {
        let _turn = self.write_turn().await;
        insert_audit(&self.pool, e).await
    }

    async fn delete_audit_before(&self, before: i64) -> Result<u64> {
        let _turn = self.write_turn().await;
        let res = sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected())
    }

    async fn list_audit(&self, limit: u32, offset: u32) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, target, details FROM audit_log \
             ORDER BY at DESC, id DESC LIMIT $1 OFFSET $2",
        )
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    details: r.try_get("details")?,
                })
            })
            .collect()
    }

    async fn tokens_page(&self, limit: u32, offset: u32) -> Result<(Vec<TokenRecord>, u64)> {
        let sql = format!(
            "SELECT {TOKEN_READ_COLUMNS} FROM tokens ORDER BY created_at DESC, id \
             LIMIT $1 OFFSET $2"
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await?;
        let tokens = rows.iter().map(token_from_row).collect::<Result<_>>()?;
        Ok((tokens, self.count("tokens").await?))
    }

    async fn hits_feed(&self, limit: u32, offset: u32) -> Result<(Vec<(HitRecord, String)>, u64)> {
        // Hits and tokens share column names (id, region, …): qualify every hit column.
        let cols = HIT_COLUMNS
            .split(',')
            .map(|c| format!("h.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            // A deleted token's hits stay in the history, named by the copy it left.
            "SELECT {cols}, COALESCE(t.memo, d.memo, '') AS token_memo FROM hits h \
             LEFT JOIN tokens t ON t.id = h.token_id LEFT JOIN deleted_tokens d ON d.id = h.token_id \
             ORDER BY h.event_time DESC, h.id LIMIT $1 OFFSET $2"
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await?;
        let hits = rows
            .iter()
            .map(|r| Ok((hit_from_row(r)?, r.try_get::<String, _>("token_memo")?)))
            .collect::<Result<_>>()?;
        Ok((hits, self.count("hits").await?))
    }
}

pub(crate) async fn insert_audit<'c>(
    db: impl Executor<'c, Database = Any>,
    e: &AuditRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, action, target, details) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&e.id)
    .bind(e.at)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.target)
    .bind(&e.details)
    .execute(db)
    .await?;
    Ok(())
}

// The writes an audit entry may accompany: each takes any executor, so `AuditedStore` runs it
// in the entry's transaction and the trait methods above run it on the pool.

pub(crate) async fn insert_operator<'c>(
    db: impl Executor<'c, Database = Any>,
    op: &OperatorRecord,
) -> Result<()> {
    let sql = format!("INSERT INTO operators ({OPERATOR_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)");
    sqlx::query(&sql)
        .bind(&op.id)
        .bind(&op.name)
        .bind(&op.password_hash)
        .bind(op.failed_logins)
        .bind(op.locked_until)
        .bind(op.created_at)
        .execute(db)
        .await
        .map_err(conflict_or)?;
    Ok(())
}

pub(crate) async fn insert_session<'c>(
    db: impl Executor<'c, Database = Any>,
    id_hash: &str,
    operator_id: &str,
    created_at: i64,
    expires_at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id_hash, operator_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(id_hash)
    .bind(operator_id)
    .bind(created_at)
    .bind(expires_at)
    .execute(db)
    .await
    .map_err(conflict_or)?;
    Ok(())
}

pub(crate) async fn delete_session<'c>(
    db: impl Executor<'c, Database = Any>,
    id_hash: &str,
) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(db)
        .await?;
    Ok(())
}

pub(crate) async fn insert_api_key<'c>(
    db: impl Executor<'c, Database = Any>,
    k: &ApiKeyRecord,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    sqlx::query(&sql)
        .bind(&k.id)
        .bind(&k.operator_id)
        .bind(&k.name)
        .bind(&k.key_hash)
        .bind(&k.scopes)
        .bind(k.created_at)
        .bind(k.revoked_at)
        .bind(k.last_used_at)
        .bind(k.create_per_minute)
        .bind(k.live_tokens_max)
        .execute(db)
        .await
        .map_err(conflict_or)?;
    Ok(())
}

/// Returns whether a key that was not yet revoked was found.
pub(crate) async fn revoke_api_key<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &str,
    now: i64,
) -> Result<bool> {
    let res =
        sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(now)
            .execute(db)
            .await?;
    Ok(res.rows_affected() > 0)
}
