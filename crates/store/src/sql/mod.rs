//! `SqlStore`: the `Store` over sqlx's `Any` driver. The statements are written once in the SQL
//! that SQLite and PostgreSQL share (`$n` parameters, `ON CONFLICT DO NOTHING`, integers for
//! flags and times); each backend has its own migrations so each gets its native DDL.

mod access;
mod audited;
mod backup;
mod batch;
mod console;
mod exposures;
mod fold;
mod heartbeat;
mod hits;
mod lanes;
mod operator;
mod outbox;
mod recordset;
mod sessions;
mod settings;
mod tokens;
mod tombstones;
mod windows;
mod writer;

#[cfg(test)]
mod deadlock_tests;
#[cfg(test)]
mod pg_plan_tests;
#[cfg(test)]
mod plan_tests;

pub use backup::{SealedColumn, SealedValue, SEALED_COLUMNS};

use std::str::FromStr;

use canarykeys_core::{
    AccessKeyId, AccountId, Email, IamUserName, ManageSecretHash, Memo, OutputFormat, Region,
    TokenId, TokenKind, WebhookUrl,
};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub use tombstones::{TokenChange, TOKENS_CHANNEL};

use crate::{HitRecord, Result, StoreError, TokenRecord};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Every PostgreSQL session's bounds (README, Security), where nothing set them already:
/// - a transaction left idle for a minute is ended by the server, releasing its locks (the
///   client that opened it is gone or stuck; no code path here holds one idle that long);
/// - the server probes an idle connection after 30 s, every 10 s, and drops it after 3 missed
///   probes, or when data it sent goes unacknowledged for 30 s (`tcp_user_timeout`,
///   PostgreSQL 12+), so a partition ends the session instead of waiting out TCP's 15 minutes.
///
/// Only settings still at their built-in default (`pg_settings.source = 'default'`) are set: a
/// value given on the server, the database, the role or the URL's `options` is kept, so the
/// operator can change each without a rebuild. (`current_setting` cannot tell: an unset
/// keepalive reads as the operating system's value.)
const POSTGRES_SESSION: &str = "SELECT set_config(s.name, v.value, false) FROM pg_settings s \
     JOIN (VALUES ('idle_in_transaction_session_timeout', '60s'), ('tcp_keepalives_idle', '30'), \
     ('tcp_keepalives_interval', '10'), ('tcp_keepalives_count', '3'), \
     ('tcp_user_timeout', '30000')) AS v(name, value) ON s.name = v.name \
     WHERE s.source = 'default'";

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
    pub(crate) pool: AnyPool,
    /// SQLite's write transactions queue here, in this process, in turn. Without it they meet
    /// in SQLite's busy handler, which sleeps 1, 2, 5 … 100 ms between tries: under a flood of
    /// group commits, strace showed ~150 such sleeps a second on the planner's and the delivery
    /// worker's transactions, up to 100 ms each, which is what held other tokens' alerts back.
    /// PostgreSQL has row locks and needs no gate.
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    backend: Backend,
    /// Kept for the PostgreSQL listener, which needs its own connection.
    url: String,
    /// `[alerts] stored_hits_per_window`: past this many stored hits in an open cooldown
    /// window, a token's further uses are folded into the window row (see `fold`).
    stored_hits_per_window: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// SQLite's hit-group thread (`writer`); `None` on PostgreSQL and for in-memory databases.
    writer: Option<writer::Writer>,
    /// Whether token changes are journalled (`token_changes`, migration 0021): always, but on
    /// a database opened at an older schema by the upgrade tests.
    pub(crate) journal: bool,
}

pub(crate) const TOKEN_COLUMNS: &str = "id, kind, memo, email, email_enabled, webhook_url, webhook_enabled, \
     manage_hash, minter, access_key_id, secret_sealed, username, account_id, region, output, created_at, \
     expires_at";
/// The token columns plus the alerting state the outbox keeps (not written by inserts).
pub(crate) const TOKEN_READ_COLUMNS: &str = "id, kind, memo, email, email_enabled, webhook_url, webhook_enabled, \
     manage_hash, minter, access_key_id, secret_sealed, username, account_id, region, output, created_at, \
     expires_at, cooldown_until, ignore_sources, email_disabled_reason, webhook_disabled_reason";
/// How many alerts wait for the planner: every row of the queue.
pub(super) const PENDING_ALERTS_SQL: &str = "SELECT COUNT(*) FROM alerts";
pub(crate) const HIT_COLUMNS: &str =
    "id, token_id, event_id, event_time, received_at, event_name, \
     event_source, region, source_ip, user_agent, error_code, error_message, account_id, \
     access_key_id, tls_host, vpc_endpoint_id, request_id, path, note, suppressed, raw, raw_packed";
/// The columns a new hit is written with, in the order of its parameters. The detail fields go
/// inside `raw_packed` (form 2, `packed::detail`): their columns are written empty (`''` for the
/// NOT NULL ones, as `raw` is; NULL by default for the rest) and filled from the packed record
/// when the row is read. Rows written before keep their columns and read as they are.
pub(crate) const HIT_WRITE_COLUMNS: &str = "id, token_id, event_id, event_time, received_at, \
     event_name, source_ip, path, note, suppressed, raw_packed, event_source, region, user_agent, raw";
/// How many of `HIT_WRITE_COLUMNS` take a parameter; the last four are written `''`.
pub(crate) const HIT_WRITE_PARAMS: usize = 11;

impl SqlStore {
    /// Connects and brings the schema up to date. A SQLite file is created if missing.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_migrated_to(url, i64::MAX).await
    }

    /// As `connect`, applying migrations up to version `last` only: the upgrade tests make an
    /// old database with it, then open it with `connect`.
    #[doc(hidden)]
    pub async fn connect_migrated_to(url: &str, last: i64) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let given = url.to_owned();
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
            // While PostgreSQL is gone a request waits this long for a connection before it is
            // answered 503; sqlx's 30 s default kept callers hanging. SQLite cannot go away, and
            // there a long wait only means a burst of writers.
            .acquire_timeout(match backend {
                Backend::Sqlite => std::time::Duration::from_secs(30),
                Backend::Postgres => std::time::Duration::from_secs(5),
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Postgres {
                        // sqlx sets no TCP keepalive on its sockets, so the bounds that a silent
                        // peer cannot dodge are set where they can be: the request path keeps
                        // its own deadline (`[database] request_timeout`, kept in the server
                        // with tokio timers; no `statement_timeout`, which would also cut off
                        // retention and migrations and never fires across a frozen link), and
                        // these let PostgreSQL drop the sessions of a client that went silent.
                        sqlx::query(POSTGRES_SESSION).execute(&mut *conn).await?;
                    }
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        // FULL: a commit is on disk before it returns, so a 2xx survives a
                        // power cut; group commit pays the one fsync for many requests.
                        sqlx::query("PRAGMA synchronous = FULL")
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
        let all = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        if last == i64::MAX {
            all.run(&pool).await?;
        } else {
            let migrations: Vec<_> = all.iter().filter(|m| m.version <= last).cloned().collect();
            let mut older = sqlx::migrate::Migrator::DEFAULT;
            older.migrations = migrations.into();
            older.run(&pool).await?;
        }
        let writer = match backend {
            Backend::Sqlite => sqlite_file(&url).and_then(|path| writer::Writer::start(&path)),
            Backend::Postgres => None,
        };
        Ok(Self {
            pool,
            writer,
            journal: last >= JOURNAL_MIGRATION,
            write_gate: std::sync::Arc::default(),
            backend,
            url: given,
            stored_hits_per_window: std::sync::Arc::new(std::sync::atomic::AtomicI64::new(
                i64::try_from(crate::DEFAULT_STORED_HITS_PER_WINDOW).unwrap_or(i64::MAX),
            )),
        })
    }

    /// Waits for this process's turn to write (SQLite only; `None` on PostgreSQL). Hold it
    /// until the transaction has committed. Never take it twice in one call chain: it is not
    /// reentrant.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self.backend {
            Backend::Sqlite => Some(self.write_gate.clone().lock_owned().await),
            Backend::Postgres => None,
        }
    }

    /// Sets `[alerts] stored_hits_per_window` (shared by every clone of this store).
    pub fn set_stored_hits_per_window(&self, n: u64) {
        self.stored_hits_per_window.store(
            i64::try_from(n).unwrap_or(i64::MAX),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    pub(crate) fn stored_hits_per_window(&self) -> i64 {
        self.stored_hits_per_window
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool. On SQLite the WAL is checkpointed into the database first and cut to
    /// nothing, so a clean stop leaves one file, not a WAL as large as the busiest moment.
    pub async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.stop().await;
        }
        if self.backend == Backend::Sqlite {
            // Best effort: a checkpoint that cannot finish now is done by the next start.
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await;
        }
        self.pool.close().await;
    }
}

/// The migration that made `token_changes`.
const JOURNAL_MIGRATION: i64 = 21;

/// The file of a SQLite URL; `None` for an in-memory database (nothing another connection
/// could open).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    let path = options.get_filename();
    let name = path.to_str()?;
    (!name.is_empty() && name != ":memory:" && !name.starts_with("file:"))
        .then(|| path.to_path_buf())
}

impl SqlStore {
    /// (groups SQLite's hit writer wrote, groups it handed to the general path); `None`
    /// without one. For tests: that the common case takes the one-hand-off path.
    #[doc(hidden)]
    pub fn hit_writer_stats(&self) -> Option<(u64, u64)> {
        self.writer.as_ref().map(writer::Writer::stats)
    }
}

pub(crate) fn corrupt(what: &str) -> impl FnOnce(canarykeys_core::Invalid) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

pub(crate) fn token_from_row(row: &AnyRow) -> Result<TokenRecord> {
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
        expires_at: row.try_get("expires_at")?,
        alerting: crate::Alerting {
            cooldown_until: row.try_get("cooldown_until")?,
            ignore_sources: text("ignore_sources")?
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            email_disabled_reason: opt("email_disabled_reason")?,
            webhook_disabled_reason: opt("webhook_disabled_reason")?,
        },
    })
}

pub(crate) fn hit_from_row(row: &AnyRow) -> Result<HitRecord> {
    let mut hit = HitRecord {
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
        error_code: row.try_get("error_code")?,
        error_message: row.try_get("error_message")?,
        account_id: row.try_get("account_id")?,
        access_key_id: row.try_get("access_key_id")?,
        tls_host: row.try_get("tls_host")?,
        vpc_endpoint_id: row.try_get("vpc_endpoint_id")?,
        request_id: row.try_get("request_id")?,
        path: row.try_get("path")?,
        note: row.try_get("note")?,
        suppressed: row.try_get("suppressed")?,
        raw: String::new(),
    };
    // Packed since migration 0019; older rows keep their text in `raw`. Form 2 also holds the
    // detail fields whose columns were written empty.
    match row.try_get::<Option<Vec<u8>>, _>("raw_packed")? {
        Some(packed) => {
            let unpacked = crate::packed::unpack_hit(&packed)
                .map_err(|e| StoreError::Corrupt(format!("raw_packed: {e}")))?;
            hit.raw = unpacked.text;
            if let Some(detail) = unpacked.detail {
                detail.apply(&mut hit);
            }
        }
        None => hit.raw = row.try_get("raw")?,
    }
    Ok(hit)
}

/// PostgreSQL rolled the transaction back whole to break a deadlock (40P01) or a serialization
/// conflict (40001): running it again is safe, and it will most likely pass.
fn is_deadlock(e: &crate::StoreError) -> bool {
    matches!(e, crate::StoreError::Database(sqlx::Error::Database(db))
        if matches!(db.code().as_deref(), Some("40P01") | Some("40001")))
}

/// Runs the transaction `run` makes, again (three tries in all) when PostgreSQL picked it as a
/// deadlock's victim. Outbox rounds and planning touch shared lane rows (a stream's lane is every
/// token's) in orders no single rule fixes; the database finds the cycle, this finishes the work.
pub(crate) async fn retry_deadlocks<T, F, Fut>(mut run: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match run().await {
            Err(e) if tries < 3 && is_deadlock(&e) => {
                tracing::info!("a transaction was a deadlock's victim; running it again");
            }
            other => return other,
        }
    }
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}
