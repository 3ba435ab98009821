//! `SessionStore` over SQL: refresh secrets' hashes and issued sessions.

use async_trait::async_trait;
use canarykeys_core::{AccessKeyId, AccountId, ManageSecretHash, TokenId};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{corrupt, SqlStore};
use crate::{Result, SessionRecord, SessionStore};

const COLUMNS: &str = "access_key_id, token_id, account_id, secret_sealed, session_sealed, \
     issued_at, expires_at, issue_event_id";

fn from_row(row: &AnyRow) -> Result<SessionRecord> {
    let text = |name: &str| -> Result<String> { Ok(row.try_get::<String, _>(name)?) };
    Ok(SessionRecord {
        access_key_id: AccessKeyId::parse(&text("access_key_id")?)
            .map_err(corrupt("access_key_id"))?,
        token_id: TokenId::parse(&text("token_id")?).map_err(corrupt("token_id"))?,
        account_id: AccountId::parse(&text("account_id")?).map_err(corrupt("account_id"))?,
        secret_sealed: text("secret_sealed")?,
        session_sealed: text("session_sealed")?,
        issued_at: row.try_get("issued_at")?,
        expires_at: row.try_get("expires_at")?,
        issue_event_id: row.try_get("issue_event_id")?,
    })
}

#[async_trait]
impl SessionStore for SqlStore {
    async fn insert_token_session(
        &self,
        session: &SessionRecord,
        refresh_hash: Option<&ManageSecretHash>,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        if let Some(hash) = refresh_hash {
            sqlx::query(
                "INSERT INTO session_refresh (token_id, refresh_hash) VALUES ($1, $2) \
                 ON CONFLICT (token_id) DO UPDATE SET refresh_hash = excluded.refresh_hash",
            )
            .bind(session.token_id.as_str())
            .bind(hash.to_hex())
            .execute(&mut *tx)
            .await?;
        }
        // A key id issued again for the same token (a stand-in STS that answers every call
        // with one example key) renews its row; another token's key id is never taken over.
        let n = sqlx::query(&format!(
            "INSERT INTO token_sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) \
             ON CONFLICT (access_key_id) DO UPDATE SET secret_sealed = excluded.secret_sealed, \
             session_sealed = excluded.session_sealed, issued_at = excluded.issued_at, \
             expires_at = excluded.expires_at WHERE token_sessions.token_id = excluded.token_id"
        ))
        .bind(session.access_key_id.as_str())
        .bind(session.token_id.as_str())
        .bind(session.account_id.to_string())
        .bind(&session.secret_sealed)
        .bind(&session.session_sealed)
        .bind(session.issued_at)
        .bind(session.expires_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n != 1 {
            return Err(crate::StoreError::Conflict);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn refresh_hash(&self, token: &TokenId) -> Result<Option<ManageSecretHash>> {
        let hash: Option<String> =
            sqlx::query_scalar("SELECT refresh_hash FROM session_refresh WHERE token_id = $1")
                .bind(token.as_str())
                .fetch_optional(&self.pool)
                .await?;
        hash.map(|h| ManageSecretHash::from_hex(&h).map_err(corrupt("refresh_hash")))
            .transpose()
    }

    async fn find_token_session(&self, key: &AccessKeyId) -> Result<Option<SessionRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM token_sessions WHERE access_key_id = $1"
        ))
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn latest_token_session(&self, token: &TokenId) -> Result<Option<SessionRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM token_sessions WHERE token_id = $1 \
             ORDER BY issued_at DESC, access_key_id DESC LIMIT 1"
        ))
        .bind(token.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn list_token_sessions(&self, token: &TokenId) -> Result<Vec<SessionRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM token_sessions WHERE token_id = $1 \
             ORDER BY issued_at, access_key_id"
        ))
        .bind(token.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    async fn note_session_issue(&self, key: &AccessKeyId, event_id: &str) -> Result<bool> {
        let _turn = self.write_turn().await;
        let n = sqlx::query(
            "UPDATE token_sessions SET issue_event_id = COALESCE(issue_event_id, $1) \
             WHERE access_key_id = $2",
        )
        .bind(event_id)
        .bind(key.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn hold_alerts(&self, token: &TokenId, until: i64) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO token_holds (token_id, until) VALUES ($1, $2)")
            .bind(token.as_str())
            .bind(until)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE tokens SET cooldown_until = $2 WHERE id = $1")
            .bind(token.as_str())
            .bind(until)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn confirm_hold(&self, token: &TokenId, now: i64) -> Result<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE token_holds SET confirmed_at = $2 \
             WHERE token_id = $1 AND confirmed_at IS NULL AND until > $2",
        )
        .bind(token.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            // The window closes now: the next outbox round sends what it gathered.
            sqlx::query("UPDATE tokens SET cooldown_until = $2 WHERE id = $1")
                .bind(token.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }
}
