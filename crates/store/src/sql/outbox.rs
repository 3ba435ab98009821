//! `OutboxStore` over SQL: planning alerts (cooldown windows in `windows`) and recording how
//! deliveries went. Claims are leases on whole lanes (token, channel), taken in `lanes.rs`.

use async_trait::async_trait;
use canarykeys_core::TokenId;
use sqlx::any::AnyRow;
use sqlx::Executor;
use sqlx::{Any, Row, Transaction};

use super::lanes::{settle_lane, Bind};
use super::{hit_from_row, SqlStore, HIT_COLUMNS};
use crate::{
    AlertPlan, ChannelKind, DeliveryRecord, Lane, NewAlert, NewDelivery, OutboxStore, Result,
    StoreError, WindowHit, WindowSummary,
};

pub(super) const DELIVERY_COLUMNS: &str =
    "id, token_id, message_id, kind, channel, target, payload, state, \
     attempts, next_attempt_at, last_error, created_at, delivered_at, lane";

fn hit_columns_of(alias: &str) -> String {
    HIT_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn delivery_from_row(row: &AnyRow) -> Result<DeliveryRecord> {
    Ok(DeliveryRecord {
        id: row.try_get("id")?,
        token_id: row
            .try_get::<Option<String>, _>("token_id")?
            .map(|t| TokenId::parse(&t))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("token_id: {e}")))?,
        message_id: row.try_get("message_id")?,
        kind: row.try_get("kind")?,
        channel: row.try_get("channel")?,
        target: row.try_get("target")?,
        payload: row.try_get("payload")?,
        state: row.try_get("state")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        delivered_at: row.try_get("delivered_at")?,
        lane: {
            let lane: String = row.try_get("lane")?;
            Lane::parse(&lane).ok_or_else(|| StoreError::Corrupt(format!("lane {lane:?}")))?
        },
    })
}

pub(super) async fn insert_deliveries(
    tx: &mut Transaction<'_, Any>,
    deliveries: &[NewDelivery],
) -> Result<()> {
    let mut lanes = std::collections::BTreeSet::new();
    for d in deliveries {
        let lane = Lane::of(d.token_id.as_ref(), d.channel).to_string();
        // Unique per (message, channel): planning twice cannot send twice.
        sqlx::query(
            "INSERT INTO deliveries (id, token_id, message_id, kind, channel, target, payload, state, \
             attempts, next_attempt_at, last_error, created_at, lane) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $9, $11) \
             ON CONFLICT (message_id, channel) DO NOTHING",
        )
        .bind(&d.id)
        .bind(d.token_id.as_ref().map(TokenId::as_str))
        .bind(&d.message_id)
        .bind(&d.kind)
        .bind(d.channel.as_str())
        .bind(&d.target)
        .bind(&d.payload)
        .bind(&d.state)
        .bind(d.created_at)
        .bind(&d.last_error)
        .bind(&lane)
        .execute(&mut **tx)
        .await?;
        if d.state == "pending" {
            lanes.insert(lane);
        }
    }
    // After the rows: the lanes are locked last, and their heads read with the rows in place.
    for lane in &lanes {
        settle_lane(tx, lane).await?;
    }
    Ok(())
}

pub(super) async fn set_cooldown(
    tx: &mut Transaction<'_, Any>,
    token: &TokenId,
    until: Option<i64>,
) -> Result<()> {
    if let Some(until) = until {
        sqlx::query("UPDATE tokens SET cooldown_until = $2 WHERE id = $1")
            .bind(token.as_str())
            .bind(until)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Opens the token's cooldown window until `until` for the alert `alert_id`, unless one is open
/// already for its use: a window that another replica's alert opened after the planner read the
/// token, and that was open when this use arrived. Then nothing is written and the use is
/// returned, to be gathered into that window instead of alerting a second time. `None` (and
/// nothing to check) without a cooldown, or when the token is gone.
pub(super) async fn open_cooldown(
    tx: &mut Transaction<'_, Any>,
    token: &TokenId,
    alert_id: &str,
    until: Option<i64>,
) -> Result<Option<WindowHit>> {
    let Some(until) = until else {
        return Ok(None);
    };
    let opened = sqlx::query(
        "UPDATE tokens SET cooldown_until = $2 WHERE id = $1 AND (cooldown_until IS NULL \
         OR cooldown_until <= (SELECT received_at FROM hits WHERE id = $3))",
    )
    .bind(token.as_str())
    .bind(until)
    .bind(alert_id)
    .execute(&mut **tx)
    .await?;
    if opened.rows_affected() == 1 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT h.id, h.event_time, h.received_at, h.source_ip, h.event_name \
         FROM hits h JOIN tokens t ON t.id = h.token_id WHERE h.id = $1",
    )
    .bind(alert_id)
    .fetch_optional(&mut **tx)
    .await?;
    // No row: the token was deleted since it was planned; its alert says so, as planned.
    row.map(|r| {
        Ok(WindowHit {
            hit_id: r.try_get("id")?,
            event_time: r.try_get("event_time")?,
            received_at: r.try_get("received_at")?,
            source_ip: r.try_get("source_ip")?,
            event_name: r.try_get("event_name")?,
        })
    })
    .transpose()
}

impl SqlStore {
    /// Alerts waiting for the planner: every token's oldest first, then every token's second,
    /// and so on, each token's in the order they came. A flood on one key (cooldown 0, or an
    /// ignore list to check) then fills rounds behind the other tokens' first alerts instead of
    /// ahead of them, so it delays nobody else's alert by more than one round.
    async fn new_alerts_sql(&self, limit: u32) -> Result<Vec<NewAlert>> {
        let sql = new_alerts_query();
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .bind(i64::from(limit).saturating_mul(4))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(NewAlert {
                    alert_id: r.try_get("alert_id")?,
                    hit: hit_from_row(r)?,
                })
            })
            .collect()
    }
}

/// The planner's next alerts. Numbering every new alert cost the whole backlog on each round.
/// The candidates are bounded instead: the oldest few rounds' worth overall (`$2`), plus each
/// token's oldest. Every token with new alerts then still gets its first turn in this round,
/// ahead of a flooded token's second.
///
/// The tokens with new alerts are found by a skip-scan of `alerts_token_new` (a recursive step
/// from one token id to the next), one index probe per such token. Joining every token to its
/// oldest new alert instead cost a probe per token in the database: 10^6 probes a round for a
/// large fleet with one pending alert.
pub(super) fn new_alerts_query() -> String {
    format!(
        "WITH RECURSIVE pending(token_id) AS (\
             SELECT MIN(token_id) FROM alerts \
             UNION ALL SELECT (SELECT MIN(n.token_id) FROM alerts n \
                 WHERE n.token_id > p.token_id) \
             FROM pending p WHERE p.token_id IS NOT NULL) \
         SELECT a.id AS alert_id, {} FROM (SELECT id, created_at, \
         ROW_NUMBER() OVER (PARTITION BY token_id ORDER BY created_at, id) AS turn \
         FROM (SELECT id, token_id, created_at FROM (SELECT id, token_id, \
         created_at FROM alerts ORDER BY created_at, id LIMIT $2) o \
         UNION SELECT f.id, f.token_id, f.created_at FROM pending t \
         JOIN alerts f ON f.id = (SELECT n.id FROM alerts n WHERE n.token_id = t.token_id \
         ORDER BY n.created_at, n.id LIMIT 1)) c) a \
         JOIN hits h ON h.id = a.id \
         ORDER BY a.turn, a.created_at, a.id LIMIT $1",
        hit_columns_of("h")
    )
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn new_alerts(&self, limit: u32) -> Result<Vec<NewAlert>> {
        self.new_alerts_sql(limit).await
    }

    async fn plan_alert(&self, alert_id: &str, token: &TokenId, plan: &AlertPlan) -> Result<bool> {
        let one = [(alert_id.to_owned(), token.clone(), plan.clone())];
        Ok(self.plan_alerts_batched(&one).await? == 1)
    }

    async fn plan_alerts(&self, plans: &[(String, TokenId, AlertPlan)]) -> Result<usize> {
        self.plan_alerts_batched(plans).await
    }

    async fn closed_windows(&self, now: i64) -> Result<Vec<WindowSummary>> {
        self.closed_windows_sql(now).await
    }

    async fn plan_summary(
        &self,
        window: &WindowSummary,
        deliveries: &[NewDelivery],
        cooldown_until: Option<i64>,
    ) -> Result<bool> {
        self.plan_summary_sql(window, deliveries, cooldown_until)
            .await
    }

    async fn insert_deliveries(&self, deliveries: &[NewDelivery]) -> Result<()> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        insert_deliveries(&mut tx, deliveries).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_lanes(
        &self,
        now: i64,
        lease_ms: i64,
        lanes: u32,
        per_lane: u32,
    ) -> Result<Vec<Vec<DeliveryRecord>>> {
        self.claim_lanes_sql(now, lease_ms, lanes, per_lane).await
    }

    async fn release_claims(&self, ids: &[String]) -> Result<()> {
        self.release_claims_sql(ids).await
    }

    async fn release_lanes(&self, lanes: &[Lane], claimed_until: i64) -> Result<()> {
        self.release_lanes_sql(lanes, claimed_until).await
    }

    async fn next_due(&self) -> Result<Option<i64>> {
        self.next_due_sql().await
    }

    async fn mark_delivered(&self, id: &str, now: i64) -> Result<()> {
        self.mark_one(
            id,
            "state = 'delivered', attempts = attempts + 1, delivered_at = $2, \
             claimed_until = NULL, last_error = NULL",
            &[Bind::Int(now)],
        )
        .await
    }

    async fn mark_delivered_many(
        &self,
        delivered: &[(String, Option<TokenId>, ChannelKind)],
        now: i64,
    ) -> Result<()> {
        self.mark_delivered_batched(delivered, now).await
    }

    async fn mark_retry(&self, id: &str, next_attempt_at: i64, error: &str) -> Result<()> {
        self.mark_one(
            id,
            "attempts = attempts + 1, next_attempt_at = $2, last_error = $3, claimed_until = NULL",
            &[Bind::Int(next_attempt_at), Bind::Text(error)],
        )
        .await
    }

    async fn mark_failed(&self, id: &str, error: &str) -> Result<()> {
        self.mark_one(
            id,
            "state = 'failed', attempts = attempts + 1, last_error = $2, claimed_until = NULL",
            &[Bind::Text(error)],
        )
        .await
    }

    async fn channel_result(
        &self,
        token: &TokenId,
        channel: ChannelKind,
        permanent_failure: bool,
    ) -> Result<i64> {
        // A stream is no token's channel: it keeps no count on the token.
        if matches!(channel, ChannelKind::Stream(_)) {
            return Ok(0);
        }
        let _turn = self.write_turn().await;
        // The column name comes from our own enum, never from input.
        let column = format!("{}_failures", channel.as_str());
        let set = if permanent_failure {
            format!("{column} + 1")
        } else {
            "0".into()
        };
        sqlx::query(&format!("UPDATE tokens SET {column} = {set} WHERE id = $1"))
            .bind(token.as_str())
            .execute(&self.pool)
            .await?;
        let n: Option<i64> =
            sqlx::query_scalar(&format!("SELECT {column} FROM tokens WHERE id = $1"))
                .bind(token.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(n.unwrap_or(0))
    }

    async fn disable_channel(
        &self,
        token: &TokenId,
        channel: ChannelKind,
        reason: &str,
    ) -> Result<()> {
        if matches!(channel, ChannelKind::Stream(_)) {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        let c = channel.as_str();
        sqlx::query(&format!(
            "UPDATE tokens SET {c}_enabled = 0, {c}_disabled_reason = $2 WHERE id = $1"
        ))
        .bind(token.as_str())
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_deliveries(&self, token: &TokenId, limit: u32) -> Result<Vec<DeliveryRecord>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE token_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(token.as_str())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn delete_deliveries_before(&self, before: i64) -> Result<u64> {
        let _turn = self.write_turn().await;
        let res = sqlx::query(
            "DELETE FROM deliveries WHERE created_at < $1 AND state IN ('delivered', 'failed')",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected())
    }

    async fn set_ignore_sources(&self, token: &TokenId, sources: &[String]) -> Result<bool> {
        let _turn = self.write_turn().await;
        set_ignore_sources(&self.pool, token, sources).await
    }
}

pub(crate) async fn set_ignore_sources<'c>(
    db: impl Executor<'c, Database = Any>,
    token: &TokenId,
    sources: &[String],
) -> Result<bool> {
    let res = sqlx::query("UPDATE tokens SET ignore_sources = $2 WHERE id = $1")
        .bind(token.as_str())
        .bind(sources.join(" "))
        .execute(db)
        .await?;
    Ok(res.rows_affected() > 0)
}
