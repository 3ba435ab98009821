//! Backups and key rotation: a consistent copy of a live SQLite database, the schema version a
//! copy holds, and re-sealing every sealed secret in one transaction (`canarykeys rekey`).

use std::path::Path;

use sqlx::Row;

use super::{Backend, SqlStore, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
use crate::{Result, StoreError};

/// A column that holds sealed values: the row's key column, the SQL expression that gives the
/// associated data each value is sealed under (the server's, spelled here again), the column.
#[derive(Debug, Clone, Copy)]
pub struct SealedColumn {
    pub table: &'static str,
    pub key: &'static str,
    pub aad: &'static str,
    pub column: &'static str,
}

/// Every column that holds a sealed value. A new sealed column must be added here, or `rekey`
/// would leave it under the old key (the store test `rekey` checks that every `*_sealed` column
/// of the schema is named, and the server's rekey test downloads every kind of credential).
pub const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "tokens",
        key: "id",
        aad: "id",
        column: "secret_sealed",
    },
    SealedColumn {
        table: "heartbeat_keys",
        key: "access_key_id",
        aad: "id",
        column: "secret_sealed",
    },
    SealedColumn {
        table: "token_sessions",
        key: "access_key_id",
        aad: "token_id",
        column: "secret_sealed",
    },
    // `services::tokens::session::session_aad`.
    SealedColumn {
        table: "token_sessions",
        key: "access_key_id",
        aad: "'session-token:' || token_id || ':' || access_key_id",
        column: "session_sealed",
    },
];

/// One sealed value, as `reseal_all` hands it to the caller.
#[derive(Debug)]
pub struct SealedValue {
    pub table: &'static str,
    /// The associated data the value is sealed under.
    pub aad: String,
    pub sealed: String,
}

impl SqlStore {
    /// Writes a consistent copy of the whole database to `to` (a new file) while others read
    /// and write: SQLite's `VACUUM INTO` reads one snapshot. PostgreSQL has `pg_dump` for this.
    pub async fn snapshot_into(&self, to: &Path) -> Result<()> {
        if self.backend() != Backend::Sqlite {
            return Err(StoreError::Corrupt(
                "a PostgreSQL database is backed up with pg_dump".into(),
            ));
        }
        let to = to
            .to_str()
            .ok_or_else(|| StoreError::Corrupt("the backup path is not UTF-8".into()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(to)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The newest migration applied to this database.
    pub async fn schema_version(&self) -> Result<i64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.pool)
                .await?;
        Ok(v.unwrap_or(0))
    }

    /// The newest migration this build knows for `backend`: a copy from a newer schema cannot
    /// be opened by it.
    pub fn newest_schema(backend: Backend) -> i64 {
        let all = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        all.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// Re-seals every sealed secret with `reseal` and sets the setting `check_key` to `check`,
    /// all in one transaction: a crash or an error leaves every value as it was. Returns how
    /// many values were re-sealed. The write turn is held throughout, so no token is made
    /// under the old key while this runs (on PostgreSQL, the rows are locked instead).
    pub async fn reseal_all(
        &self,
        reseal: &(dyn Fn(&SealedValue) -> std::result::Result<String, String> + Sync),
        check_key: &str,
        check: &str,
    ) -> Result<usize> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        if self.backend() == Backend::Postgres {
            // Tokens made meanwhile wait for this to commit, then read the new check.
            sqlx::query(
                "LOCK TABLE tokens, heartbeat_keys, token_sessions, settings IN EXCLUSIVE MODE",
            )
            .execute(&mut *tx)
            .await?;
        }
        // The write first: on SQLite it takes the database's write lock now (waiting out the
        // busy timeout), where a read first would fail to upgrade beside a server's writes.
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(check_key)
        .bind(check)
        .execute(&mut *tx)
        .await?;
        let mut done = 0;
        for c in SEALED_COLUMNS {
            let rows = sqlx::query(&format!(
                "SELECT {key}, {aad}, {col} FROM {table}",
                key = c.key,
                aad = c.aad,
                col = c.column,
                table = c.table
            ))
            .fetch_all(&mut *tx)
            .await?;
            for row in rows {
                let key: String = row.try_get(0)?;
                let value = SealedValue {
                    table: c.table,
                    aad: row.try_get(1)?,
                    sealed: row.try_get(2)?,
                };
                let fresh = reseal(&value).map_err(|e| {
                    StoreError::Corrupt(format!("{} {key} {}: {e}", c.table, c.column))
                })?;
                sqlx::query(&format!(
                    "UPDATE {} SET {} = $1 WHERE {} = $2",
                    c.table, c.column, c.key
                ))
                .bind(fresh)
                .bind(&key)
                .execute(&mut *tx)
                .await?;
                done += 1;
            }
        }
        tx.commit().await?;
        Ok(done)
    }
}
