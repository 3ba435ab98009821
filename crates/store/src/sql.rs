//! `SqlStore`: the `Store` over sqlx's `Any` driver. The statements are written once in the SQL
//! that SQLite and PostgreSQL share (`$n` parameters, `ON CONFLICT DO NOTHING`, integers for
//! flags and times); each backend has its own migrations so each gets its native DDL.

use std::str::FromStr;

use async_trait::async_trait;
use canarykeys_core::{
    AccessKeyId, AccountId, Email, IamUserName, ManageSecretHash, Memo, OutputFormat, Region,
    TokenId, TokenKind, WebhookUrl,
};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::{ChannelSwitches, HitRecord, Result, Store, StoreError, TokenRecord};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }
}

#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
}

const TOKEN_COLUMNS: &str = "id, kind, memo, email, email_enabled, webhook_url, webhook_enabled, \
     manage_hash, minter, access_key_id, secret_sealed, username, account_id, region, output, created_at";
const HIT_COLUMNS: &str = "id, token_id, event_id, event_time, received_at, event_name, \
     event_source, region, source_ip, user_agent, path, raw";

impl SqlStore {
    /// Connects and brings the schema up to date. A SQLite file is created if missing.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                // SQLite takes one writer at a time; a few readers are enough.
                Backend::Sqlite => 4,
                Backend::Postgres => 10,
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Self { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn corrupt(what: &str) -> impl FnOnce(canarykeys_core::Invalid) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

fn token_from_row(row: &AnyRow) -> Result<TokenRecord> {
    let opt =
        |name: &str| -> Result<Option<String>> { Ok(row.try_get::<Option<String>, _>(name)?) };
    let text = |name: &str| -> Result<String> { Ok(row.try_get::<String, _>(name)?) };
    Ok(TokenRecord {
        id: TokenId::parse(&text("id")?).map_err(corrupt("id"))?,
        kind: TokenKind::from_str(&text("kind")?).map_err(corrupt("kind"))?,
        memo: Memo::parse(&text("memo")?).map_err(corrupt("memo"))?,
        email: opt("email")?
            .map(|e| Email::parse(&e))
            .transpose()
            .map_err(corrupt("email"))?,
        email_enabled: row.try_get::<i64, _>("email_enabled")? != 0,
        webhook: opt("webhook_url")?
            .map(|w| WebhookUrl::parse(&w))
            .transpose()
            .map_err(corrupt("webhook_url"))?,
        webhook_enabled: row.try_get::<i64, _>("webhook_enabled")? != 0,
        manage_hash: ManageSecretHash::from_hex(&text("manage_hash")?)
            .map_err(corrupt("manage_hash"))?,
        minter: text("minter")?,
        access_key_id: AccessKeyId::parse(&text("access_key_id")?)
            .map_err(corrupt("access_key_id"))?,
        secret_sealed: text("secret_sealed")?,
        username: IamUserName::parse(&text("username")?).map_err(corrupt("username"))?,
        account_id: AccountId::parse(&text("account_id")?).map_err(corrupt("account_id"))?,
        region: Region::parse(&text("region")?).map_err(corrupt("region"))?,
        output: OutputFormat::from_str(&text("output")?).map_err(corrupt("output"))?,
        created_at: row.try_get("created_at")?,
    })
}

fn hit_from_row(row: &AnyRow) -> Result<HitRecord> {
    Ok(HitRecord {
        id: row.try_get("id")?,
        token_id: TokenId::parse(&row.try_get::<String, _>("token_id")?)
            .map_err(corrupt("token_id"))?,
        event_id: row.try_get("event_id")?,
        event_time: row.try_get("event_time")?,
        received_at: row.try_get("received_at")?,
        event_name: row.try_get("event_name")?,
        event_source: row.try_get("event_source")?,
        region: row.try_get("region")?,
        source_ip: row.try_get("source_ip")?,
        user_agent: row.try_get("user_agent")?,
        path: row.try_get("path")?,
        raw: row.try_get("raw")?,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[async_trait]
impl Store for SqlStore {
    async fn insert_token(&self, t: &TokenRecord) -> Result<()> {
        let sql = format!(
            "INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
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
            .execute(&self.pool)
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    async fn get_token(&self, id: &TokenId) -> Result<Option<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at DESC, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn delete_token(&self, id: &TokenId) -> Result<bool> {
        // Hits go with the token (ON DELETE CASCADE), in the same statement's transaction.
        let res = sqlx::query("DELETE FROM tokens WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    async fn set_channels(&self, id: &TokenId, s: ChannelSwitches) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE tokens SET email_enabled = COALESCE($2, email_enabled), \
             webhook_enabled = COALESCE($3, webhook_enabled) WHERE id = $1",
        )
        .bind(id.as_str())
        .bind(s.email.map(i64::from))
        .bind(s.webhook.map(i64::from))
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() > 0)
    }

    async fn insert_hit(&self, h: &HitRecord) -> Result<bool> {
        // Insert-or-ignore at the database: two deliveries of one event racing each other
        // leave exactly one row, whoever wins.
        let sql = format!(
            "INSERT INTO hits ({HIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (event_id) DO NOTHING"
        );
        let res = sqlx::query(&sql)
            .bind(&h.id)
            .bind(h.token_id.as_str())
            .bind(&h.event_id)
            .bind(h.event_time)
            .bind(h.received_at)
            .bind(&h.event_name)
            .bind(&h.event_source)
            .bind(&h.region)
            .bind(&h.source_ip)
            .bind(&h.user_agent)
            .bind(&h.path)
            .bind(&h.raw)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() > 0)
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
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hits WHERE token_id = $1")
            .bind(token.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
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
}
