//! Tombstones and the token-change announcements the key index of every process follows.
//!
//! A deleted or expired token leaves its copy in `deleted_tokens` with the time of death and
//! how it ended (migration 0009). Each create, delete and prune is announced in its own
//! transaction: on PostgreSQL by NOTIFY on `canarykeys_tokens` (delivered at commit, to every
//! replica's listener), and on both backends by bumping `tokens_version` in the settings table,
//! which a SQLite server polls to hear of the CLI's changes (the CLI is another process, and
//! SQLite has no notifications).

use std::collections::{BTreeSet, HashSet};

use canarykeys_core::{AccessKeyId, AccountId, IamUserName, TokenId};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use futures_util::TryStreamExt;

use super::{corrupt, token_from_row, Backend, SqlStore, TOKEN_READ_COLUMNS};

use crate::{EndCause, HitRecord, KeyEntry, KeyLookup, Result, StoreError, Tombstone};

/// The PostgreSQL channel token changes are announced on. The payload is `c:<id>` (created),
/// `d:<id>` (deleted or expired) or `p` (tombstones pruned: re-read everything).
pub const TOKENS_CHANNEL: &str = "canarykeys_tokens";

const VERSION_KEY: &str = "tokens_version";
/// Journalled changes kept (`token_changes`); a follower further behind re-reads everything.
const CHANGES_KEPT: i64 = 10_000;

/// A token change, as announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenChange {
    Created(TokenId),
    Ended(TokenId),
    Pruned,
}

impl TokenChange {
    fn payload(&self) -> String {
        match self {
            Self::Created(id) => format!("c:{id}"),
            Self::Ended(id) => format!("d:{id}"),
            Self::Pruned => "p".to_owned(),
        }
    }

    /// Reads a payload; `None` for one this version does not know (a newer replica's).
    pub fn parse(payload: &str) -> Option<Self> {
        match payload.split_once(':') {
            Some(("c", id)) => TokenId::parse(id).ok().map(Self::Created),
            Some(("d", id)) => TokenId::parse(id).ok().map(Self::Ended),
            None if payload == "p" => Some(Self::Pruned),
            _ => None,
        }
    }
}

/// Announces `change` inside the caller's transaction: nobody hears of a change that rolls back.
pub(crate) async fn announce(
    db: &mut sqlx::AnyConnection,
    backend: Backend,
    journal: bool,
    change: &TokenChange,
) -> Result<()> {
    // Text in both databases (the settings table's value column); one row, one statement.
    sqlx::query(
        "INSERT INTO settings (key, value) VALUES ($1, '1') ON CONFLICT (key) DO UPDATE \
         SET value = CAST(CAST(settings.value AS BIGINT) + 1 AS TEXT)",
    )
    .bind(VERSION_KEY)
    .execute(&mut *db)
    .await?;
    // The journal a follower reads from its version on (`changes_since`), trimmed as it grows.
    if !journal {
        return notify(db, backend, change).await;
    }
    sqlx::query(
        "INSERT INTO token_changes (version, change) \
         SELECT CAST(value AS BIGINT), $2 FROM settings WHERE key = $1",
    )
    .bind(VERSION_KEY)
    .bind(change.payload())
    .execute(&mut *db)
    .await?;
    sqlx::query(
        "DELETE FROM token_changes WHERE version <= \
         (SELECT CAST(value AS BIGINT) FROM settings WHERE key = $1) - $2",
    )
    .bind(VERSION_KEY)
    .bind(CHANGES_KEPT)
    .execute(&mut *db)
    .await?;
    notify(db, backend, change).await
}

/// PostgreSQL: announces `change` on the tokens channel, delivered at commit.
async fn notify(
    db: &mut sqlx::AnyConnection,
    backend: Backend,
    change: &TokenChange,
) -> Result<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(TOKENS_CHANNEL)
            .bind(change.payload())
            .execute(&mut *db)
            .await?;
    }
    Ok(())
}

fn cause_from(s: &str) -> Result<EndCause> {
    match s {
        "deleted" => Ok(EndCause::Deleted),
        "expired" => Ok(EndCause::Expired),
        _ => Err(StoreError::Corrupt("deleted_tokens.ended".into())),
    }
}

fn entry_from_row(row: &AnyRow) -> Result<KeyEntry> {
    let text = |name: &str| -> Result<String> { Ok(row.try_get::<String, _>(name)?) };
    Ok(KeyEntry {
        token_id: TokenId::parse(&text("id")?).map_err(corrupt("id"))?,
        access_key_id: AccessKeyId::parse(&text("access_key_id")?)
            .map_err(corrupt("access_key_id"))?,
        account_id: AccountId::parse(&text("account_id")?).map_err(corrupt("account_id"))?,
        username: IamUserName::parse(&text("username")?).map_err(corrupt("username"))?,
        died_at: row.try_get("died_at")?,
    })
}

/// Live tokens (no death) and tombstones that died at or after `$1`, under `condition`.
fn entries_sql(condition: &str) -> String {
    format!(
        "SELECT id, access_key_id, account_id, username, NULL AS died_at FROM tokens WHERE {condition} \
         UNION ALL \
         SELECT id, access_key_id, account_id, username, died_at FROM deleted_tokens \
         WHERE died_at >= $1 AND {condition}"
    )
}

/// Which of the hits' tokens exist, live or as a tombstone (read only on a shortfall).
pub(super) async fn existing_tokens(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    hits: &[&HitRecord],
) -> Result<HashSet<String>> {
    let ids: Vec<&str> = hits
        .iter()
        .map(|h| h.token_id.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let list = super::batch::values(1, ids.len(), backend);
    // The second list's parameters continue the first's numbering.
    let second = match backend {
        Backend::Sqlite => list.clone(),
        Backend::Postgres => format!(
            "({})",
            (ids.len() + 1..=2 * ids.len())
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let sql = format!(
        "SELECT id FROM tokens WHERE id IN {list} UNION SELECT id FROM deleted_tokens WHERE id IN {second}"
    );
    let mut q = sqlx::query_scalar::<_, String>(&sql);
    for id in ids.iter().chain(&ids) {
        q = q.bind(*id);
    }
    Ok(q.fetch_all(&mut **tx).await?.into_iter().collect())
}

impl SqlStore {
    pub(crate) async fn tombstone(&self, id: &TokenId) -> Result<Option<Tombstone>> {
        let sql = format!(
            "SELECT {TOKEN_READ_COLUMNS}, died_at, ended FROM deleted_tokens WHERE id = $1"
        );
        let Some(row) = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Tombstone {
            token: token_from_row(&row)?,
            died_at: row.try_get("died_at")?,
            cause: cause_from(&row.try_get::<String, _>("ended")?)?,
        }))
    }

    pub(crate) async fn entries(
        &self,
        since: i64,
        each: &mut (dyn FnMut(KeyEntry) + Send),
    ) -> Result<()> {
        let sql = entries_sql("1 = 1");
        let mut rows = sqlx::query(&sql).bind(since).fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            each(entry_from_row(&row)?);
        }
        Ok(())
    }

    pub(crate) async fn entry(&self, by: KeyLookup<'_>, since: i64) -> Result<Option<KeyEntry>> {
        let (condition, binds): (&str, Vec<String>) = match by {
            KeyLookup::Key(k) => ("access_key_id = $2", vec![k.as_str().to_owned()]),
            KeyLookup::User(a, u) => (
                "account_id = $2 AND username = $3",
                vec![a.to_string(), u.as_str().to_owned()],
            ),
            KeyLookup::Id(id) => ("id = $2", vec![id.as_str().to_owned()]),
        };
        // Live first, then the oldest: a reused user name keeps its first token, as
        // `find_token_by_user` does.
        let sql = format!(
            "SELECT * FROM ({}) AS e ORDER BY CASE WHEN died_at IS NULL THEN 0 ELSE 1 END, died_at LIMIT 1",
            entries_sql(condition)
        );
        let mut q = sqlx::query(&sql).bind(since);
        for b in &binds {
            q = q.bind(b.as_str());
        }
        let row = q.fetch_optional(&self.pool).await?;
        row.as_ref().map(entry_from_row).transpose()
    }

    pub(crate) async fn prune(&self, died_before: i64) -> Result<u64> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        // A tombstone goes once its window for late records has passed and nothing of it is
        // left to show or send (a window still to summarize needs it).
        let res = sqlx::query(
            "DELETE FROM deleted_tokens WHERE died_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM hits h WHERE h.token_id = deleted_tokens.id) \
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.token_id = deleted_tokens.id AND d.state = 'pending') \
             AND NOT EXISTS (SELECT 1 FROM alert_windows w WHERE w.token_id = deleted_tokens.id)",
        )
        .bind(died_before)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() > 0 {
            announce(&mut tx, self.backend(), self.journal, &TokenChange::Pruned).await?;
        }
        tx.commit().await?;
        Ok(res.rows_affected())
    }

    pub(crate) async fn version(&self) -> Result<i64> {
        let v: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(VERSION_KEY)
            .fetch_optional(&self.pool)
            .await?;
        Ok(v.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// See `TokenStore::token_changes_since`. One read transaction: the version and the rows
    /// are of one snapshot.
    pub(crate) async fn changes_since(
        &self,
        since: i64,
    ) -> Result<Option<(i64, Vec<TokenChange>)>> {
        let mut tx = self.pool.begin().await?;
        let now: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(VERSION_KEY)
            .fetch_optional(&mut *tx)
            .await?;
        let now = now.and_then(|v| v.parse().ok()).unwrap_or(0);
        if now <= since {
            tx.rollback().await?;
            return Ok((now == since).then(|| (now, Vec::new())));
        }
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT version, change FROM token_changes WHERE version > $1 AND version <= $2 \
             ORDER BY version",
        )
        .bind(since)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        tx.rollback().await?;
        // Every version in between, each a change this version of the code knows: else the
        // journal does not reach back (trimmed, or older than migration 0021).
        let whole = i64::try_from(rows.len()).is_ok_and(|n| n == now - since)
            && rows
                .iter()
                .zip(since + 1..)
                .all(|((v, _), want)| *v == want);
        if !whole {
            return Ok(None);
        }
        let changes: Option<Vec<TokenChange>> =
            rows.iter().map(|(_, c)| TokenChange::parse(c)).collect();
        Ok(changes.map(|c| (now, c)))
    }

    /// A listener for token changes made by any process: on PostgreSQL, its own connection
    /// listening on [`TOKENS_CHANNEL`]; `None` on SQLite (poll [`crate::TokenStore::tokens_version`]).
    pub async fn listen_tokens(&self) -> Result<Option<sqlx::postgres::PgListener>> {
        if self.backend() != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url).await?;
        listener.listen(TOKENS_CHANNEL).await?;
        Ok(Some(listener))
    }
}
