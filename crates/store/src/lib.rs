//! Storage for canarykeys: the `Store` trait the server talks to, and `SqlStore`, which keeps the
//! data in SQLite (the default, one file) or PostgreSQL (shared by several replicas).

mod records;
mod sql;

use async_trait::async_trait;
use canarykeys_core::TokenId;

pub use records::{ChannelSwitches, HitRecord, TokenRecord};
pub use sql::{Backend, SqlStore};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a stored value is corrupt: {0}")]
    Corrupt(String),
    #[error("unsupported database URL (use sqlite:… or postgres://…)")]
    UnsupportedUrl,
    #[error("already exists")]
    Conflict,
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Everything the server stores. Kept small on purpose: each method is one thing the domain
/// needs, and each backend implements it in one statement where it can.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a new token. Fails with `Conflict` if its id or access key id is taken.
    async fn insert_token(&self, token: &TokenRecord) -> Result<()>;
    async fn get_token(&self, id: &TokenId) -> Result<Option<TokenRecord>>;
    /// All tokens, newest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Deletes a token and its hits. Returns whether it existed.
    async fn delete_token(&self, id: &TokenId) -> Result<bool>;
    /// Switches alert channels on or off; `None` leaves a switch as it is. Returns whether the
    /// token exists.
    async fn set_channels(&self, id: &TokenId, switches: ChannelSwitches) -> Result<bool>;
    /// Records a hit unless one with the same event id exists. Returns whether it was new.
    async fn insert_hit(&self, hit: &HitRecord) -> Result<bool>;
    /// A token's hits, newest first, at most `limit`, starting after `offset`.
    async fn list_hits(&self, token: &TokenId, limit: u32, offset: u32) -> Result<Vec<HitRecord>>;
    async fn count_hits(&self, token: &TokenId) -> Result<u64>;
    /// Returns the stored value of an installation setting, storing `value` first if there is
    /// none. Used for values chosen once at first start (the local minter's account id).
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String>;
}
