//! `HeartbeatStore` over SQL: identities, receipts and due slots.

use async_trait::async_trait;
use canarykeys_core::{AccessKeyId, AccountId, IamUserName};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{corrupt, is_unique_violation, SqlStore};
use crate::{HeartbeatKey, HeartbeatStore, Receipt, Result};

const KEY_COLUMNS: &str =
    "access_key_id, id, account_id, username, secret_sealed, minter, created_at, retired_at";
const RECEIPT_COLUMNS: &str = "account_id, region, path, event_id, event_time, received_at";

fn key_from_row(row: &AnyRow) -> Result<HeartbeatKey> {
    Ok(HeartbeatKey {
        access_key_id: AccessKeyId::parse(&row.try_get::<String, _>("access_key_id")?)
            .map_err(corrupt("access_key_id"))?,
        id: row.try_get("id")?,
        account_id: AccountId::parse(&row.try_get::<String, _>("account_id")?)
            .map_err(corrupt("account_id"))?,
        username: IamUserName::parse(&row.try_get::<String, _>("username")?)
            .map_err(corrupt("username"))?,
        secret_sealed: row.try_get("secret_sealed")?,
        minter: row.try_get("minter")?,
        created_at: row.try_get("created_at")?,
        retired_at: row.try_get("retired_at")?,
    })
}

fn receipt_from_row(row: &AnyRow) -> Result<Receipt> {
    Ok(Receipt {
        account_id: row.try_get("account_id")?,
        region: row.try_get("region")?,
        path: row.try_get("path")?,
        event_id: row.try_get("event_id")?,
        event_time: row.try_get("event_time")?,
        received_at: row.try_get("received_at")?,
    })
}

#[async_trait]
impl HeartbeatStore for SqlStore {
    async fn heartbeat_keys(&self) -> Result<Vec<HeartbeatKey>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM heartbeat_keys ORDER BY created_at"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn find_heartbeat_key(&self, key: &AccessKeyId) -> Result<Option<HeartbeatKey>> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM heartbeat_keys WHERE access_key_id = $1"
        ))
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn replace_heartbeat_key(
        &self,
        new: &HeartbeatKey,
        old: Option<&AccessKeyId>,
    ) -> Result<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let retired = match old {
            Some(old) => sqlx::query(
                "UPDATE heartbeat_keys SET retired_at = $1 \
                     WHERE access_key_id = $2 AND account_id = $3 AND retired_at IS NULL",
            )
            .bind(new.created_at)
            .bind(old.as_str())
            .bind(new.account_id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected(),
            None => 1,
        };
        if retired != 1 {
            // Another replica replaced it first.
            return Ok(false);
        }
        let inserted = sqlx::query(&format!(
            "INSERT INTO heartbeat_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)"
        ))
        .bind(new.access_key_id.as_str())
        .bind(&new.id)
        .bind(new.account_id.to_string())
        .bind(new.username.as_str())
        .bind(&new.secret_sealed)
        .bind(&new.minter)
        .bind(new.created_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            // The account already has a live identity: another replica made one first.
            Err(e) if is_unique_violation(&e) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn record_receipts(&self, receipts: &[Receipt]) -> Result<Vec<bool>> {
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let mut new = Vec::with_capacity(receipts.len());
        for r in receipts {
            let n = sqlx::query(&format!(
                "INSERT INTO heartbeat_receipts ({RECEIPT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (path, event_id) DO NOTHING"
            ))
            .bind(&r.account_id)
            .bind(&r.region)
            .bind(&r.path)
            .bind(&r.event_id)
            .bind(r.event_time)
            .bind(r.received_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            new.push(n == 1);
        }
        tx.commit().await?;
        Ok(new)
    }

    async fn receipts_since(&self, since: i64) -> Result<Vec<Receipt>> {
        let rows = sqlx::query(&format!(
            "SELECT {RECEIPT_COLUMNS} FROM heartbeat_receipts WHERE received_at >= $1 \
             ORDER BY received_at"
        ))
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(receipt_from_row).collect()
    }

    async fn latest_receipts(&self) -> Result<Vec<Receipt>> {
        // The newest receipt of each (account, region, path); ties (two at the same instant)
        // are both returned and the caller keeps one.
        let rows = sqlx::query(&format!(
            "SELECT {RECEIPT_COLUMNS} FROM heartbeat_receipts r WHERE received_at = \
             (SELECT MAX(received_at) FROM heartbeat_receipts l WHERE l.account_id = r.account_id \
              AND l.region = r.region AND l.path = r.path)"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(receipt_from_row).collect()
    }

    async fn delete_receipts_before(&self, before: i64) -> Result<u64> {
        let _turn = self.write_turn().await;
        Ok(
            sqlx::query("DELETE FROM heartbeat_receipts WHERE received_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    async fn claim_heartbeat(
        &self,
        account: &AccountId,
        region: &str,
        now: i64,
        next_due: i64,
    ) -> Result<bool> {
        let _turn = self.write_turn().await;
        let account = account.to_string();
        // A slot seen for the first time is due at once; the insert of one replica and the
        // update of another meet on the primary key, and only one update finds it due.
        sqlx::query(
            "INSERT INTO heartbeat_slots (account_id, region, due_at) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id, region) DO NOTHING",
        )
        .bind(&account)
        .bind(region)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let taken = sqlx::query(
            "UPDATE heartbeat_slots SET due_at = $1 \
             WHERE account_id = $2 AND region = $3 AND due_at <= $4",
        )
        .bind(next_due)
        .bind(&account)
        .bind(region)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(taken == 1)
    }
}
