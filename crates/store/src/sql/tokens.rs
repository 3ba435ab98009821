//! `TokenStore` over SQL.

use async_trait::async_trait;
use canarykeys_core::{AccessKeyId, AccountId, IamUserName, ManageSecretHash, TokenId};
use sqlx::{Any, Executor};

use super::tombstones::{announce, TokenChange};
use super::{
    is_unique_violation, token_from_row, Backend, SqlStore, TOKEN_COLUMNS, TOKEN_READ_COLUMNS,
};
use crate::{
    ChannelSwitches, CreateBudget, KeyEntry, KeyLookup, MintIntent, MintedRef, Result, StoreError,
    TokenOwner, TokenRecord, TokenStore, Tombstone,
};
use sqlx::any::AnyRow;
use sqlx::Row;

impl SqlStore {
    /// Stores many tokens in one transaction, as `insert_token` does each (which commits, and so
    /// syncs, once per token). For benchmarks' fleets of a million and for imports; a conflict
    /// stores none of them.
    pub async fn import_tokens(&self, tokens: &[TokenRecord]) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        for t in tokens {
            insert_token(&mut tx, self.backend(), self.journal, t).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn token_where(&self, condition: &str, binds: &[&str]) -> Result<Option<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_READ_COLUMNS} FROM tokens WHERE {condition}");
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = query.bind(*b);
        }
        let row = query.fetch_optional(&self.pool).await?;
        row.as_ref().map(token_from_row).transpose()
    }
}

fn intent_from_row(row: &AnyRow) -> Result<MintIntent> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("mint_intents.{what}"));
    let text = |name: &str| -> Result<Option<String>> { Ok(row.try_get(name)?) };
    let minted = match (
        text("account_id")?,
        text("username")?,
        text("access_key_id")?,
    ) {
        (Some(a), Some(u), Some(k)) => Some(MintedRef {
            account_id: AccountId::parse(&a).map_err(|_| corrupt("account_id"))?,
            username: IamUserName::parse(&u).map_err(|_| corrupt("username"))?,
            access_key_id: AccessKeyId::parse(&k).map_err(|_| corrupt("access_key_id"))?,
        }),
        _ => None,
    };
    Ok(MintIntent {
        id: row.try_get("id")?,
        minter: row.try_get("minter")?,
        minted,
        created_at: row.try_get("created_at")?,
    })
}

#[async_trait]
impl TokenStore for SqlStore {
    async fn insert_token(&self, t: &TokenRecord) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        insert_token(&mut tx, self.backend(), self.journal, t).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_token(&self, id: &TokenId) -> Result<Option<TokenRecord>> {
        self.token_where("id = $1", &[id.as_str()]).await
    }

    async fn find_token_by_key(&self, key: &AccessKeyId) -> Result<Option<TokenRecord>> {
        self.token_where("access_key_id = $1", &[key.as_str()])
            .await
    }

    async fn find_token_by_user(
        &self,
        account: &AccountId,
        user: &IamUserName,
    ) -> Result<Option<TokenRecord>> {
        let account = account.to_string();
        // Oldest first: if a user name was ever reused, the first token keeps it.
        self.token_where(
            "account_id = $1 AND username = $2 ORDER BY created_at LIMIT 1",
            &[&account, user.as_str()],
        )
        .await
    }

    async fn expired_tokens(&self, now: i64) -> Result<Vec<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_READ_COLUMNS} FROM tokens WHERE expires_at IS NOT NULL AND expires_at <= $1");
        let rows = sqlx::query(&sql).bind(now).fetch_all(&self.pool).await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_READ_COLUMNS} FROM tokens ORDER BY created_at DESC, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn tokens_after(
        &self,
        after: Option<(i64, &TokenId)>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<TokenRecord>> {
        // The order of `list_tokens`; `tokens_created_at` finds the place, the id breaks ties.
        let (created_at, id) = after.map_or((i64::MAX, ""), |(t, id)| (t, id.as_str()));
        let sql = format!(
            "SELECT {TOKEN_READ_COLUMNS} FROM tokens \
             WHERE created_at < $1 OR (created_at = $1 AND id > $2) \
             ORDER BY created_at DESC, id LIMIT $3 OFFSET $4"
        );
        let rows = sqlx::query(&sql)
            .bind(created_at)
            .bind(id)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn count_tokens(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn count_email_alerting(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tokens WHERE email IS NOT NULL AND email_enabled <> 0",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn delete_token(&self, id: &TokenId, now: i64) -> Result<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let deleted = delete_token(&mut tx, self.backend(), self.journal, id, now).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    async fn get_deleted_token(&self, id: &TokenId) -> Result<Option<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_READ_COLUMNS} FROM deleted_tokens WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn get_tombstone(&self, id: &TokenId) -> Result<Option<Tombstone>> {
        self.tombstone(id).await
    }

    async fn key_entries(
        &self,
        tombstones_since: i64,
        each: &mut (dyn FnMut(KeyEntry) + Send),
    ) -> Result<()> {
        self.entries(tombstones_since, each).await
    }

    async fn find_key_entry(
        &self,
        by: KeyLookup<'_>,
        tombstones_since: i64,
    ) -> Result<Option<KeyEntry>> {
        self.entry(by, tombstones_since).await
    }

    async fn prune_tombstones(&self, died_before: i64) -> Result<u64> {
        self.prune(died_before).await
    }

    async fn tokens_version(&self) -> Result<i64> {
        self.version().await
    }

    async fn token_changes_since(
        &self,
        version: i64,
    ) -> Result<Option<(i64, Vec<crate::TokenChange>)>> {
        self.changes_since(version).await
    }

    async fn begin_mint(&self, id: &str, minter: &str, now: i64) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("INSERT INTO mint_intents (id, minter, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(minter)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn note_minted(&self, id: &str, m: &MintedRef) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE mint_intents SET account_id = $2, username = $3, access_key_id = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(m.account_id.to_string())
        .bind(m.username.as_str())
        .bind(m.access_key_id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn end_mint(&self, id: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("DELETE FROM mint_intents WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn stale_mints(&self, before: i64) -> Result<Vec<MintIntent>> {
        let rows = sqlx::query(
            "SELECT id, minter, account_id, username, access_key_id, created_at FROM mint_intents \
             WHERE created_at < $1 ORDER BY created_at, id",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(intent_from_row).collect()
    }

    async fn set_channels(&self, id: &TokenId, s: ChannelSwitches) -> Result<bool> {
        let _turn = self.write_turn().await;
        set_channels(&self.pool, id, s).await
    }

    async fn token_owner(&self, id: &TokenId) -> Result<Option<TokenOwner>> {
        let row = sqlx::query(
            "SELECT created_by_operator, created_by_key FROM tokens WHERE id = $1 \
             AND created_by_operator IS NOT NULL",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(TokenOwner {
                operator_id: r.try_get("created_by_operator")?,
                api_key_id: r.try_get("created_by_key")?,
            })
        })
        .transpose()
    }

    async fn reserve_create(&self, key_id: &str, now: i64) -> Result<CreateBudget> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        // PostgreSQL: the key's row is locked until commit, so two creates cannot both take
        // the last place; SQLite has one writer at a time.
        let lock = match self.backend() {
            super::Backend::Postgres => " FOR UPDATE",
            super::Backend::Sqlite => "",
        };
        let row = sqlx::query(&format!(
            "SELECT create_per_minute, live_tokens_max, create_window_start, \
             create_window_count FROM api_keys WHERE id = $1{lock}"
        ))
        .bind(key_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(CreateBudget::UnknownKey);
        };
        let per_minute: i64 = row.try_get("create_per_minute")?;
        let live_max: i64 = row.try_get("live_tokens_max")?;
        let start: i64 = row.try_get("create_window_start")?;
        let count: i64 = row.try_get("create_window_count")?;
        let (start, count) = if now >= start.saturating_add(MINUTE_MS) || now < start {
            (now, 0)
        } else {
            (start, count)
        };
        if count >= per_minute {
            return Ok(CreateBudget::PerMinute {
                limit: per_minute,
                retry_at: start + MINUTE_MS,
            });
        }
        let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE created_by_key = $1")
            .bind(key_id)
            .fetch_one(&mut *tx)
            .await?;
        if live >= live_max {
            return Ok(CreateBudget::LiveTokens { limit: live_max });
        }
        sqlx::query(
            "UPDATE api_keys SET create_window_start = $2, create_window_count = $3 WHERE id = $1",
        )
        .bind(key_id)
        .bind(start)
        .bind(count + 1)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(CreateBudget::Granted)
    }
}

/// The create budget's window.
const MINUTE_MS: i64 = 60_000;

/// Records who created a token (in the insert's transaction).
pub(crate) async fn set_owner<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &TokenId,
    owner: &TokenOwner,
) -> Result<()> {
    sqlx::query("UPDATE tokens SET created_by_operator = $2, created_by_key = $3 WHERE id = $1")
        .bind(id.as_str())
        .bind(&owner.operator_id)
        .bind(owner.api_key_id.as_deref())
        .execute(db)
        .await?;
    Ok(())
}

/// Inserts a token and announces it (see `tombstones`), in the caller's transaction.
pub(crate) async fn insert_token(
    db: &mut sqlx::AnyConnection,
    backend: Backend,
    journal: bool,
    t: &TokenRecord,
) -> Result<()> {
    let sql = format!(
        "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    );
    let res = sqlx::query(&sql)
        .bind(t.id.as_str())
        .bind(t.kind.as_str())
        .bind(t.memo.as_str())
        .bind(t.email.as_ref().map(|e| e.as_str().to_owned()))
        .bind(i64::from(t.email_enabled))
        .bind(t.webhook.as_ref().map(|w| w.as_str().to_owned()))
        .bind(i64::from(t.webhook_enabled))
        .bind(t.manage_hash.to_hex())
        .bind(&t.minter)
        .bind(t.access_key_id.as_str())
        .bind(&t.secret_sealed)
        .bind(t.username.as_str())
        .bind(t.account_id.to_string())
        .bind(t.region.as_str())
        .bind(t.output.as_str())
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&mut *db)
        .await;
    match res {
        Ok(_) => announce(db, backend, journal, &TokenChange::Created(t.id.clone())).await,
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a token at `now`, leaving its tombstone, and announces it, in the caller's
/// transaction.
pub(crate) async fn delete_token(
    db: &mut sqlx::AnyConnection,
    backend: Backend,
    journal: bool,
    id: &TokenId,
    now: i64,
) -> Result<bool> {
    // Hits, alerts and deliveries stay: an alert still queued must be sent. What its message
    // needs is copied in the caller's transaction; the sealed secret is not. A token whose
    // expiry had come is `expired`, whoever deleted it.
    let copy = TOKEN_READ_COLUMNS.replace("secret_sealed", "'' AS secret_sealed");
    sqlx::query(&format!(
        "INSERT INTO deleted_tokens ({TOKEN_READ_COLUMNS}, died_at, ended) SELECT {copy}, $2, \
         CASE WHEN expires_at IS NOT NULL AND expires_at <= $2 THEN 'expired' ELSE 'deleted' END \
         FROM tokens WHERE id = $1 ON CONFLICT (id) DO NOTHING"
    ))
    .bind(id.as_str())
    .bind(now)
    .execute(&mut *db)
    .await?;
    let res = sqlx::query("DELETE FROM tokens WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *db)
        .await?;
    let deleted = res.rows_affected() > 0;
    if deleted {
        announce(db, backend, journal, &TokenChange::Ended(id.clone())).await?;
    }
    Ok(deleted)
}

pub(crate) async fn set_manage_hash<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &TokenId,
    hash: &ManageSecretHash,
) -> Result<bool> {
    let res = sqlx::query("UPDATE tokens SET manage_hash = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(hash.to_hex())
        .execute(db)
        .await?;
    Ok(res.rows_affected() > 0)
}

pub(crate) async fn set_channels<'c>(
    db: impl Executor<'c, Database = Any>,
    id: &TokenId,
    s: ChannelSwitches,
) -> Result<bool> {
    let res = sqlx::query(
        // Switching a channel on also forgets why the server switched it off.
        "UPDATE tokens SET email_enabled = COALESCE($2, email_enabled), \
         webhook_enabled = COALESCE($3, webhook_enabled), \
         email_disabled_reason = CASE WHEN $2 = 1 THEN NULL ELSE email_disabled_reason END, \
         email_failures = CASE WHEN $2 = 1 THEN 0 ELSE email_failures END, \
         webhook_disabled_reason = CASE WHEN $3 = 1 THEN NULL ELSE webhook_disabled_reason END, \
         webhook_failures = CASE WHEN $3 = 1 THEN 0 ELSE webhook_failures END WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(s.email.map(i64::from))
    .bind(s.webhook.map(i64::from))
    .execute(db)
    .await?;
    Ok(res.rows_affected() > 0)
}
