//! The operators' read side: the lists of the operator API and the console pages (every token
//! with its hit stats, the filtered feed, the overview's sums). Reads only; changes go through
//! `TokenService` and `AccessService`.

use std::collections::HashMap;
use std::sync::Arc;

use canarykeys_store::{
    ChannelHealth, HitFilter, HitRecord, PathHealth, Store, TokenCounts, TokenHitStats, TokenRecord,
};

use super::ServiceError;

const DAY_MS: i64 = 86_400_000;

#[derive(Clone)]
pub struct ConsoleService {
    store: Arc<dyn Store>,
}

/// What the overview page sums up, as of `now`.
pub struct Overview {
    pub counts: TokenCounts,
    /// How many tokens have hits.
    pub with_hits: usize,
    /// Hits in the last 24 h, 7 d and 30 d, with their labels.
    pub windows: Vec<(&'static str, u64)>,
    /// The busiest sources of the last 30 days.
    pub top_sources: Vec<(String, u64)>,
    /// Hits per day (days since the epoch) from `since_day`.
    pub per_day: Vec<(i64, u64)>,
    pub paths: Vec<PathHealth>,
    /// Each channel's deliveries of the last 24 h (streams are the `stream:<type>` ones).
    pub channels: Vec<ChannelHealth>,
    /// Each stream's waiting rows, and the error of the send being retried.
    pub streams: Vec<canarykeys_store::StreamBacklog>,
}

impl ConsoleService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// A page of every token, and how many there are.
    #[tracing::instrument(skip_all, fields(limit, offset))]
    pub async fn tokens_page(
        &self,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<TokenRecord>, u64), ServiceError> {
        Ok(self.store.tokens_page(limit, offset).await?)
    }

    /// The page of every token after `after` (then `offset` more), and how many there are.
    #[tracing::instrument(skip_all, fields(limit, offset))]
    pub async fn tokens_page_after(
        &self,
        after: &canarykeys_core::TokenCursor,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<TokenRecord>, u64), ServiceError> {
        let page = self
            .store
            .tokens_after(Some((after.created_at, &after.id)), limit, offset)
            .await?;
        Ok((page, self.store.count_tokens().await?))
    }

    /// A page of every token's hits, newest first, each with its token's memo.
    #[tracing::instrument(skip_all, fields(limit, offset))]
    pub async fn hits_page(
        &self,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<(HitRecord, String)>, u64), ServiceError> {
        Ok(self.store.hits_feed(limit, offset).await?)
    }

    /// Every token with its hit stats.
    #[tracing::instrument(skip_all)]
    pub async fn tokens_with_stats(
        &self,
    ) -> Result<(Vec<TokenRecord>, Vec<TokenHitStats>), ServiceError> {
        let tokens = self.store.list_tokens().await?;
        let stats = self.store.token_hit_stats().await?;
        Ok((tokens, stats))
    }

    /// The feed's hits matching `filter`, newest first.
    #[tracing::instrument(skip_all, fields(limit, offset))]
    pub async fn feed(
        &self,
        filter: &HitFilter,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<HitRecord>, ServiceError> {
        Ok(self.store.feed(filter, limit, offset).await?)
    }

    /// The memo of each live token among `ids` (a page's tokens), by token id: a page of the
    /// feed reads its own tokens, not every token there is.
    #[tracing::instrument(skip_all)]
    pub async fn memos(
        &self,
        ids: &[canarykeys_core::TokenId],
    ) -> Result<HashMap<String, String>, ServiceError> {
        let mut memos = HashMap::new();
        for id in ids {
            if memos.contains_key(id.as_str()) {
                continue;
            }
            if let Some(t) = self.store.get_token(id).await? {
                memos.insert(t.id.to_string(), t.memo.as_str().to_owned());
            }
        }
        Ok(memos)
    }

    /// One token, if it still exists.
    #[tracing::instrument(skip_all)]
    pub async fn token(
        &self,
        id: &canarykeys_core::TokenId,
    ) -> Result<Option<TokenRecord>, ServiceError> {
        Ok(self.store.get_token(id).await?)
    }

    /// Hits that arrived at or after `since` (the live feed polls this).
    #[tracing::instrument(skip_all)]
    pub async fn hits_received_since(
        &self,
        since: i64,
        limit: u32,
    ) -> Result<Vec<HitRecord>, ServiceError> {
        Ok(self.store.hits_received_since(since, limit).await?)
    }

    /// The overview's sums as of `now`, with the daily counts from `since_day`.
    #[tracing::instrument(skip_all)]
    pub async fn overview(
        &self,
        now: i64,
        since_day: i64,
        soon: i64,
    ) -> Result<Overview, ServiceError> {
        let counts = self.store.token_counts(now, soon).await?;
        let with_hits = self.store.token_hit_stats().await?.len();
        let mut windows = Vec::new();
        for (label, days) in [("24 h", 1), ("7 d", 7), ("30 d", 30)] {
            let n = self.store.count_hits_since(now - days * DAY_MS).await?;
            windows.push((label, n));
        }
        Ok(Overview {
            counts,
            with_hits,
            windows,
            top_sources: self.store.top_sources(now - 30 * DAY_MS, 10).await?,
            per_day: self.store.all_hits_per_day(since_day).await?,
            paths: self.store.path_health().await?,
            channels: self.store.channel_health(now - DAY_MS).await?,
            streams: self.store.stream_backlog().await?,
        })
    }

    /// Each stream's waiting rows (for `/metrics`).
    pub async fn stream_backlog(
        &self,
    ) -> Result<Vec<canarykeys_store::StreamBacklog>, ServiceError> {
        Ok(self.store.stream_backlog().await?)
    }
}
