//! `ConsoleStore` over SQL: aggregate reads across all tokens for the operator console. Written
//! in the SQL both backends share; counts use `COUNT(CASE …)` because PostgreSQL's `SUM` over
//! BIGINT is NUMERIC, which the `Any` driver cannot decode.

use async_trait::async_trait;
use canarykeys_core::TokenId;
use sqlx::Row;

use super::{corrupt, hit_from_row, SqlStore, HIT_COLUMNS};
use crate::{
    ChannelHealth, ConsoleStore, HitFilter, HitRecord, PathHealth, Result, StreamBacklog,
    TokenCounts, TokenHitStats,
};

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl ConsoleStore for SqlStore {
    async fn token_counts(&self, now: i64, soon: i64) -> Result<TokenCounts> {
        let (total, active, expiring): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), \
             CAST(SUM(CASE WHEN expires_at IS NULL OR expires_at > $1 THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN expires_at IS NOT NULL AND expires_at <= $2 THEN 1 ELSE 0 END) AS BIGINT) \
             FROM tokens",
        )
        .bind(now)
        .bind(soon)
        .fetch_one(&self.pool)
        .await?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(TokenCounts {
            total: n(total),
            active: n(active.unwrap_or(0)),
            expiring: n(expiring.unwrap_or(0)),
        })
    }

    async fn token_hit_stats(&self) -> Result<Vec<TokenHitStats>> {
        let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(
            // Folded uses (flood folding) count as uses too; they have no hit row.
            "SELECT token_id, CAST(SUM(n) AS BIGINT), MAX(last) FROM (\
             SELECT token_id, COUNT(*) AS n, MAX(event_time) AS last FROM hits GROUP BY token_id \
             UNION ALL SELECT token_id, COUNT(*) AS n, MAX(event_time) AS last \
             FROM folded_events GROUP BY token_id) uses GROUP BY token_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, n, last)| {
                Ok(TokenHitStats {
                    token_id: TokenId::parse(&id).map_err(corrupt("token_id"))?,
                    hits: count(n),
                    last_hit: last,
                })
            })
            .collect()
    }

    async fn count_hits_since(&self, since: i64) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM hits WHERE event_time >= $1) \
             + (SELECT COUNT(*) FROM folded_events WHERE event_time >= $1)",
        )
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(count(n))
    }

    async fn all_hits_per_day(&self, since_day: i64) -> Result<Vec<(i64, u64)>> {
        // Integer division gives whole UTC days in both databases.
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT event_time / 86400000 AS day, COUNT(*) FROM hits \
             WHERE event_time >= $1 GROUP BY event_time / 86400000 ORDER BY day",
        )
        .bind(since_day.saturating_mul(86_400_000))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(d, n)| (d, count(n))).collect())
    }

    async fn top_sources(&self, since: i64, limit: u32) -> Result<Vec<(String, u64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT source_ip, COUNT(*) AS n FROM hits WHERE event_time >= $1 \
             GROUP BY source_ip ORDER BY n DESC, source_ip LIMIT $2",
        )
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(ip, n)| (ip, count(n))).collect())
    }

    async fn path_health(&self) -> Result<Vec<PathHealth>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT path, MAX(received_at), COUNT(*) FROM hits GROUP BY path ORDER BY path",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(path, last_received, n)| PathHealth {
                path,
                last_received,
                hits: count(n),
            })
            .collect())
    }

    async fn channel_health(&self, since: i64) -> Result<Vec<ChannelHealth>> {
        let rows = sqlx::query(
            "SELECT channel, MAX(delivered_at) AS last_delivered_at, \
             COUNT(CASE WHEN state = 'delivered' THEN 1 END) AS delivered, \
             COUNT(CASE WHEN state = 'pending' THEN 1 END) AS pending, \
             COUNT(CASE WHEN state = 'failed' AND created_at >= $1 THEN 1 END) AS failed_recent, \
             MAX(CASE WHEN state = 'failed' THEN created_at END) AS last_failed_at \
             FROM deliveries GROUP BY channel ORDER BY channel",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let channel: String = row.try_get("channel")?;
            let last_failed_at: Option<i64> = row.try_get("last_failed_at")?;
            // The error text of the newest failure: a second small query beats a correlated
            // subquery the two databases would plan differently.
            let last_error: Option<String> = match last_failed_at {
                Some(at) => sqlx::query_scalar(
                    "SELECT last_error FROM deliveries WHERE channel = $1 AND state = 'failed' \
                     AND created_at = $2 ORDER BY id LIMIT 1",
                )
                .bind(&channel)
                .bind(at)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
                None => None,
            };
            out.push(ChannelHealth {
                channel,
                last_delivered_at: row.try_get("last_delivered_at")?,
                delivered: count(row.try_get("delivered")?),
                pending: count(row.try_get("pending")?),
                failed_recent: count(row.try_get("failed_recent")?),
                last_error,
                last_failed_at,
            });
        }
        Ok(out)
    }

    async fn stream_backlog(&self) -> Result<Vec<StreamBacklog>> {
        let mut out = Vec::new();
        for stream in crate::StreamKind::ALL {
            let lane = crate::Lane::Stream(stream).to_string();
            // Both through the lane indexes: the pending rows only.
            let pending: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM deliveries WHERE lane = $1 AND state = 'pending'",
            )
            .bind(&lane)
            .fetch_one(&self.pool)
            .await?;
            if pending == 0 {
                continue;
            }
            let retry_error: Option<String> = sqlx::query_scalar(
                "SELECT last_error FROM deliveries WHERE lane = $1 AND state = 'pending' \
                 ORDER BY created_at, id LIMIT 1",
            )
            .bind(&lane)
            .fetch_optional(&self.pool)
            .await?
            .flatten();
            out.push(StreamBacklog {
                stream,
                pending: count(pending),
                retry_error,
            });
        }
        Ok(out)
    }

    async fn feed(&self, filter: &HitFilter, limit: u32, offset: u32) -> Result<Vec<HitRecord>> {
        // Only the conditions asked for go into the statement, each with its own parameter.
        let mut conditions = Vec::new();
        let mut texts: Vec<String> = Vec::new();
        let mut numbers: Vec<i64> = Vec::new();
        if let Some(t) = &filter.token {
            texts.push(t.as_str().to_owned());
            conditions.push(("token_id = ", true));
        }
        if let Some(ip) = &filter.source_ip {
            texts.push(ip.clone());
            conditions.push(("source_ip = ", true));
        }
        if let Some(name) = &filter.event_name {
            texts.push(name.clone());
            conditions.push(("event_name = ", true));
        }
        if let Some(since) = filter.since {
            numbers.push(since);
            conditions.push(("event_time >= ", false));
        }
        if let Some(until) = filter.until {
            numbers.push(until);
            conditions.push(("event_time < ", false));
        }
        // Text parameters first, then numbers, then limit and offset: the order binds happen in.
        let mut text_n = 0;
        let mut num_n = texts.len();
        let clauses: Vec<String> = conditions
            .iter()
            .map(|(c, is_text)| {
                let n = if *is_text {
                    text_n += 1;
                    text_n
                } else {
                    num_n += 1;
                    num_n
                };
                format!("{c}${n}")
            })
            .collect();
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let next = texts.len() + numbers.len();
        let sql = format!(
            "SELECT {HIT_COLUMNS} FROM hits {where_sql} ORDER BY received_at DESC, id DESC \
             LIMIT ${} OFFSET ${}",
            next + 1,
            next + 2
        );
        let mut q = sqlx::query(&sql);
        for t in &texts {
            q = q.bind(t);
        }
        for n in &numbers {
            q = q.bind(*n);
        }
        let rows = q
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(hit_from_row).collect()
    }

    async fn hits_received_since(&self, since: i64, limit: u32) -> Result<Vec<HitRecord>> {
        let sql = format!(
            "SELECT {HIT_COLUMNS} FROM hits WHERE received_at >= $1 \
             ORDER BY received_at DESC, id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(since)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(hit_from_row).collect()
    }
}
