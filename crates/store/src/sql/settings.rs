//! `SettingsStore` over SQL: a key-value table.

use async_trait::async_trait;

use super::SqlStore;
use crate::{Result, SettingsStore};

#[async_trait]
impl SettingsStore for SqlStore {
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        // Read first: the setting is almost always there already, and a command started beside
        // a busy server then opens without waiting for the database's write lock.
        if let Some(stored) = self.get_setting(key).await? {
            return Ok(stored);
        }
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        let stored: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
        Ok(stored)
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
