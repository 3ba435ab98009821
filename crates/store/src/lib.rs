//! Storage for canarykeys: a few small traits the server talks to (tokens, hits, settings), and
//! `SqlStore`, which keeps the data in SQLite (the default, one file) or PostgreSQL (shared by
//! several replicas).

// The store's test records (`tests/support`) name the crate as its integration tests do;
// `sql::pg_plan_tests` shares them.
#[cfg(test)]
extern crate self as canarykeys_store;

mod access;
mod console;
mod exposures;
mod fold;
mod heartbeat;
mod operator;
pub mod packed;
mod records;
mod sessions;
mod sql;
mod window;

use async_trait::async_trait;
use canarykeys_core::{AccessKeyId, AccountId, IamUserName, ManageSecretHash, TokenId};

pub use access::{ApiKeyRecord, AuditRecord, OperatorRecord};
pub use console::{
    ChannelHealth, HitFilter, PathHealth, StreamBacklog, TokenCounts, TokenHitStats,
};
pub use exposures::{ExposureOutcome, ExposureRecord, ExposureSource};
pub use fold::{event_hash, Folded, Tally, DEFAULT_STORED_HITS_PER_WINDOW, FOLD_VALUES};
pub use heartbeat::{HeartbeatKey, Receipt};
pub use operator::{ConditionLevel, OperatorCondition, OperatorStatus};
pub use records::{
    AlertPlan, Alerting, ChannelKind, ChannelSwitches, CreateBudget, DeliveryRecord, EndCause,
    HitRecord, KeyEntry, Lane, MintIntent, MintedRef, NewAlert, NewDelivery, StreamKind,
    TokenOwner, TokenRecord, Tombstone,
};
pub use sessions::SessionRecord;
pub use sql::{
    Backend, SealedColumn, SealedValue, SqlStore, TokenChange, SEALED_COLUMNS, TOKENS_CHANNEL,
};
pub use window::{Distinct, WindowHit, WindowSummary, WINDOW_VALUES};

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
    /// A shared write failed: every caller whose rows were in it gets this (none was stored).
    #[error("the group commit failed")]
    GroupCommit(#[source] std::sync::Arc<StoreError>),
    /// The writer is gone (the server is stopping).
    #[error("storage is closed")]
    Closed,
    /// The database did not answer within the caller's deadline (`[database] request_timeout`):
    /// a frozen link delivers no error of its own, so the client gives up and drops the call.
    #[error("the database did not answer in time")]
    TimedOut,
}

impl StoreError {
    /// The database could not be reached (down, restarting, out of connections), as opposed to
    /// refusing or failing a statement: the caller should answer "try again later".
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                // PostgreSQL's connection exceptions (08…) and operator intervention
                // (57P01–57P03: shutdown, crash, cannot connect now).
                sqlx::Error::Database(db) => db
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
                _ => false,
            },
            // A failed group commit is as available as the error that failed it.
            Self::GroupCommit(e) => e.is_unavailable(),
            // The writer stops with the server: try again (elsewhere) later.
            Self::Closed => true,
            // A silent database is as good as a gone one: the sender should retry later.
            Self::TimedOut => true,
            Self::Migrate(_) | Self::Corrupt(_) | Self::UnsupportedUrl | Self::Conflict => false,
        }
    }
}

impl StoreError {
    /// The database's disk is full (SQLite `SQLITE_FULL`; PostgreSQL `53100 disk_full`): nothing
    /// was written, and the caller should answer "no room, try again later" (507), not a bug.
    pub fn is_storage_full(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(db)) => {
                db.code().is_some_and(|c| match c.parse::<i64>() {
                    // SQLite's primary code is the low byte of an extended one.
                    Ok(n) => n & 0xff == 13,
                    Err(_) => c == "53100",
                })
            }
            Self::GroupCommit(e) => e.is_storage_full(),
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// A change written together with its audit entry (`AuditedStore::write_audited`).
#[derive(Clone, Copy, Debug)]
pub enum AuditedWrite<'a> {
    InsertToken(&'a TokenRecord),
    /// A new token and who created it (`TokenStore::token_owner`).
    InsertOwnedToken(&'a TokenRecord, &'a TokenOwner),
    DeleteToken(&'a TokenId),
    SetChannels(&'a TokenId, ChannelSwitches),
    SetIgnoreSources(&'a TokenId, &'a [String]),
    /// Replaces the token's manage secret (its hash): the old secret stops working.
    SetManageHash {
        id: &'a TokenId,
        hash: &'a ManageSecretHash,
    },
    /// Fails with `Conflict` when the name is taken.
    InsertOperator(&'a OperatorRecord),
    /// A sign-in's new session.
    InsertSession {
        id_hash: &'a str,
        operator_id: &'a str,
        created_at: i64,
        expires_at: i64,
    },
    /// A sign-out (applies whether or not the session was still there).
    DeleteSession(&'a str),
    InsertApiKey(&'a ApiKeyRecord),
    /// Applies only to a key not yet revoked.
    RevokeApiKey {
        id: &'a str,
        now: i64,
    },
    /// Only the entry: actions whose effect is not a row here (a test alert, say).
    Nothing,
}

/// Changes that leave an audit entry, written in one transaction with it.
#[async_trait]
pub trait AuditedStore: Send + Sync + 'static {
    /// Applies `write` and records `audit`, atomically. Returns whether the write found its
    /// token (an insert always does); when it did not, nothing is written, not even the entry.
    /// An insert whose id or key is taken fails with `Conflict`.
    async fn write_audited(&self, write: AuditedWrite<'_>, audit: &AuditRecord) -> Result<bool> {
        self.write_audited_alerting(write, audit, &[]).await
    }
    /// `write_audited`, also writing `deliveries` (a tamper alert's outbox rows) in the same
    /// transaction when the write applied: the change and the alert about it commit together.
    async fn write_audited_alerting(
        &self,
        write: AuditedWrite<'_>,
        audit: &AuditRecord,
        deliveries: &[NewDelivery],
    ) -> Result<bool>;
}

/// Tokens and their settings.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Stores a new token. Fails with `Conflict` if its id or access key id is taken.
    async fn insert_token(&self, token: &TokenRecord) -> Result<()>;
    async fn get_token(&self, id: &TokenId) -> Result<Option<TokenRecord>>;
    /// The token whose key this is: the join key of detection.
    async fn find_token_by_key(&self, key: &AccessKeyId) -> Result<Option<TokenRecord>>;
    /// The token of an IAM user, for events that name the user but not the key (temporary
    /// credentials made from a decoy key, say).
    async fn find_token_by_user(
        &self,
        account: &AccountId,
        user: &IamUserName,
    ) -> Result<Option<TokenRecord>>;
    /// All tokens, newest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Up to `limit` tokens, newest first, after `after` (the `(created_at, id)` of the last one
    /// seen; `None` starts at the newest), skipping `offset` more. A page found by `after`
    /// costs the same however deep it is, so a million tokens list without holding them all.
    async fn tokens_after(
        &self,
        after: Option<(i64, &TokenId)>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<TokenRecord>>;
    /// How many tokens have email alerts switched on.
    async fn count_email_alerting(&self) -> Result<u64>;
    /// How many live tokens there are.
    async fn count_tokens(&self) -> Result<u64>;
    /// Tokens whose expiry time has come.
    async fn expired_tokens(&self, now: i64) -> Result<Vec<TokenRecord>>;
    /// Deletes a token at `now` (unix ms). Its hits, alerts and deliveries stay, so a use
    /// recorded before the delete is still alerted; its tombstone (a copy without the sealed
    /// secret, the time of death, and whether it was deleted or had expired) stays for those
    /// messages and for records that arrive late. Returns whether it existed.
    async fn delete_token(&self, id: &TokenId, now: i64) -> Result<bool>;
    /// The copy a deleted token left behind, for its late messages.
    async fn get_deleted_token(&self, id: &TokenId) -> Result<Option<TokenRecord>>;
    /// A deleted or expired token's tombstone.
    async fn get_tombstone(&self, id: &TokenId) -> Result<Option<Tombstone>>;
    /// What the key index holds: every live token, and every tombstone that died at or after
    /// `tombstones_since`, handed to `each` as the rows arrive (a million of them are never
    /// held at once).
    async fn key_entries(
        &self,
        tombstones_since: i64,
        each: &mut (dyn FnMut(KeyEntry) + Send),
    ) -> Result<()>;
    /// One token's entry, live or a tombstone that died at or after `tombstones_since`, found by
    /// its key, by its (account, user), or by its id. A live token wins over a tombstone.
    async fn find_key_entry(
        &self,
        by: KeyLookup<'_>,
        tombstones_since: i64,
    ) -> Result<Option<KeyEntry>>;
    /// Deletes tombstones that died before `died_before` and that nothing refers to any more
    /// (no hit, no pending delivery, no open window). Returns how many.
    async fn prune_tombstones(&self, died_before: i64) -> Result<u64>;
    /// A number that changes whenever a token is created, deleted or pruned (SQLite: how a
    /// running server hears of the CLI's changes; PostgreSQL also announces them).
    async fn tokens_version(&self) -> Result<i64>;
    /// The current tokens' version and the changes that moved it there from `version`, oldest
    /// first; `None` when the journal does not reach back that far (or `version` is ahead of
    /// it), and the caller must re-read everything.
    async fn token_changes_since(&self, version: i64) -> Result<Option<(i64, Vec<TokenChange>)>>;
    /// Notes that a mint is about to start (before any call to the minter).
    async fn begin_mint(&self, id: &str, minter: &str, now: i64) -> Result<()>;
    /// Notes what the mint made, before its token is stored.
    async fn note_minted(&self, id: &str, minted: &MintedRef) -> Result<()>;
    /// Forgets a mint: its token is stored, or nothing was left behind.
    async fn end_mint(&self, id: &str) -> Result<()>;
    /// Mints begun before `before` and never ended, oldest first.
    async fn stale_mints(&self, before: i64) -> Result<Vec<MintIntent>>;
    /// Switches alert channels on or off; `None` leaves a switch as it is. Returns whether the
    /// token exists.
    async fn set_channels(&self, id: &TokenId, switches: ChannelSwitches) -> Result<bool>;
    /// Who created a live token; `None` when it is gone or nobody is recorded.
    async fn token_owner(&self, id: &TokenId) -> Result<Option<TokenOwner>>;
    /// Counts one create against API key `key_id`'s budget at `now`: its creates in the current
    /// minute (a fixed window, in the key's row, so replicas share it) and its live tokens.
    /// Nothing is counted unless it answers `Granted`.
    async fn reserve_create(&self, key_id: &str, now: i64) -> Result<CreateBudget>;
}

/// How `find_key_entry` looks a token up.
#[derive(Clone, Copy, Debug)]
pub enum KeyLookup<'a> {
    Key(&'a AccessKeyId),
    User(&'a AccountId, &'a IamUserName),
    Id(&'a TokenId),
}

/// What one group's commit stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordedGroup {
    /// Per hit, in order: whether it was new (not a repeat of a stored event id).
    pub new: Vec<bool>,
    /// Per hit, in order: whether it was left out because its token is gone altogether (no
    /// live token, no tombstone). Such a hit is neither new nor a repeat.
    pub gone: Vec<bool>,
    /// New alert rows left `new` for the planner. The rest were gathered into their token's
    /// open cooldown window at commit and need no planning.
    pub to_plan: usize,
    /// Per hit, in order: whether it was new and counted into its token's open cooldown window
    /// (gathered, or folded). Such a use makes no alert of its own.
    pub windowed: Vec<bool>,
    /// Per hit, in order: whether it was new and folded (counted into the window row, with no
    /// hit row of its own; see `[alerts] stored_hits_per_window`).
    pub folded: Vec<bool>,
}

/// Recorded uses of tokens, and the alert outbox they feed.
#[async_trait]
pub trait HitStore: Send + Sync + 'static {
    /// Records hits in one transaction. Each is inserted unless a hit with the same event id
    /// exists (the database decides, so concurrent deliveries cannot both win); each new hit gets
    /// an alert row in the same transaction. Returns, per hit, whether it was new. Each hit's
    /// `id` is fresh (random): the store tells a new hit from a repeat by finding its id stored.
    async fn record_hits(&self, hits: &[HitRecord]) -> Result<Vec<bool>> {
        Ok(self.record_group(hits).await?.new)
    }
    /// `record_hits`, also telling how many new alerts wait for the planner.
    async fn record_group(&self, hits: &[HitRecord]) -> Result<RecordedGroup>;
    /// How many `record_group` calls the hit writer may have running at once. One by default:
    /// SQLite takes one writer at a time anyway.
    fn concurrent_groups(&self) -> usize {
        1
    }
    /// A token's hits, newest first, at most `limit`, starting after `offset`.
    async fn list_hits(&self, token: &TokenId, limit: u32, offset: u32) -> Result<Vec<HitRecord>>;
    /// Every use of the token: its stored hits and the uses folded into its windows.
    async fn count_hits(&self, token: &TokenId) -> Result<u64>;
    /// The newest event time among a token's hits, if any.
    async fn latest_hit_time(&self, token: &TokenId) -> Result<Option<i64>>;
    /// Alert rows the planner has not handled yet.
    async fn count_pending_alerts(&self) -> Result<u64>;
    /// Hits of a token per UTC day (days since the epoch), for days at or after `since_day`.
    async fn hits_per_day(&self, token: &TokenId, since_day: i64) -> Result<Vec<(i64, u64)>>;
    /// Deletes hits (and their alerts) whose event time is before `before`. Returns how many.
    /// Tombstones are pruned by `TokenStore::prune_tombstones`, not here.
    async fn delete_hits_before(&self, before: i64) -> Result<u64>;
}

/// The alert outbox: alerts waiting to be planned, and deliveries waiting to be sent.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Alerts not planned yet: every token's oldest before any token's second, each token's in
    /// order, so a flood on one token cannot hold back another's first alert.
    async fn new_alerts(&self, limit: u32) -> Result<Vec<NewAlert>>;
    /// Applies a plan in one transaction; false if another worker planned the alert first.
    async fn plan_alert(&self, alert_id: &str, token: &TokenId, plan: &AlertPlan) -> Result<bool>;
    /// Applies many plans (alert id, token, plan) in one transaction. Returns how many were
    /// applied; an alert another worker planned first is skipped.
    async fn plan_alerts(&self, plans: &[(String, TokenId, AlertPlan)]) -> Result<usize>;
    /// The windows that have closed with hits gathered (a deleted token's at once), each
    /// read from its one row, with its last hit.
    async fn closed_windows(&self, now: i64) -> Result<Vec<WindowSummary>>;
    /// Claims `window` (unchanged since it was read: same id, same count), writes its summary's
    /// deliveries and the token's next window, in one transaction. False (and nothing written)
    /// if another worker summarized it first or a hit joined it since: only one replica plans a
    /// summary, and it covers exactly the hits it counts.
    async fn plan_summary(
        &self,
        window: &WindowSummary,
        deliveries: &[NewDelivery],
        cooldown_until: Option<i64>,
    ) -> Result<bool>;
    /// Writes deliveries outside of planning (test alerts).
    async fn insert_deliveries(&self, deliveries: &[NewDelivery]) -> Result<()>;
    /// Claims up to `lanes` lanes (a token's deliveries by one channel) whose head (oldest
    /// pending row) is due and unclaimed, earliest due first, with up to `per_lane` of each
    /// lane's pending rows, for `lease_ms` (the claim's lease ends at `now + lease_ms`). It
    /// reads one row per claimed lane and `per_lane` rows of each, whatever the backlog. Each lane comes back in order (`created_at`, `id`); a row is
    /// never handed out while an earlier row of its lane is pending. A worker that dies
    /// mid-send loses the claim when the lease runs out, and another sends again (at least
    /// once).
    async fn claim_lanes(
        &self,
        now: i64,
        lease_ms: i64,
        lanes: u32,
        per_lane: u32,
    ) -> Result<Vec<Vec<DeliveryRecord>>>;
    /// Gives claimed rows back unsent, for the next claim of their lane.
    async fn release_claims(&self, ids: &[String]) -> Result<()>;
    /// Ends the claims on these lanes taken with lease end `claimed_until` (claim time plus
    /// lease), unless the lease ran out and another worker holds them now.
    async fn release_lanes(&self, lanes: &[Lane], claimed_until: i64) -> Result<()>;
    /// When the next lane's oldest pending row is due (or its claim runs out), if any.
    async fn next_due(&self) -> Result<Option<i64>>;
    async fn mark_delivered(&self, id: &str, now: i64) -> Result<()>;
    /// Marks many sent deliveries (id, token, channel) delivered and resets those channels'
    /// failure counts (a token's; the operator channel keeps none), in one transaction.
    async fn mark_delivered_many(
        &self,
        delivered: &[(String, Option<TokenId>, ChannelKind)],
        now: i64,
    ) -> Result<()>;
    async fn mark_retry(&self, id: &str, next_attempt_at: i64, error: &str) -> Result<()>;
    async fn mark_failed(&self, id: &str, error: &str) -> Result<()>;
    /// Counts a permanent failure (or resets the count on success) for a token's channel.
    /// Returns the consecutive permanent failures now counted.
    async fn channel_result(
        &self,
        token: &TokenId,
        channel: ChannelKind,
        permanent_failure: bool,
    ) -> Result<i64>;
    /// Switches a channel off, saying why.
    async fn disable_channel(
        &self,
        token: &TokenId,
        channel: ChannelKind,
        reason: &str,
    ) -> Result<()>;
    /// A token's deliveries, newest first.
    async fn list_deliveries(&self, token: &TokenId, limit: u32) -> Result<Vec<DeliveryRecord>>;
    /// Deletes delivered and failed deliveries written before `before` (pending ones stay, and
    /// so do the lanes they are in). Returns how many.
    async fn delete_deliveries_before(&self, before: i64) -> Result<u64>;
    async fn set_ignore_sources(&self, token: &TokenId, sources: &[String]) -> Result<bool>;
}

/// Small named values: choices made once at first start, and the pollers' positions.
#[async_trait]
pub trait SettingsStore: Send + Sync + 'static {
    /// Returns the stored value, storing `value` first if there is none.
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String>;
    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    async fn put_setting(&self, key: &str, value: &str) -> Result<()>;
}

/// Operators, sessions, API keys and the audit log; plus the all-token pages the operator API
/// reads.
#[async_trait]
pub trait AccessStore: Send + Sync + 'static {
    /// Stores a new operator. Fails with `Conflict` if the name is taken.
    async fn insert_operator(&self, op: &OperatorRecord) -> Result<()>;
    async fn operator_by_name(&self, name: &str) -> Result<Option<OperatorRecord>>;
    async fn operator_by_id(&self, id: &str) -> Result<Option<OperatorRecord>>;
    /// Counts a failed sign-in (one statement: concurrent guesses cannot both read the old
    /// count) and, when `lock_for(count)` names a wait in milliseconds, locks the operator until
    /// `now` plus that wait. Returns the lock's end if this failure set one.
    async fn record_login_failure(
        &self,
        id: &str,
        now: i64,
        lock_for: &(dyn Fn(i64) -> Option<i64> + Sync),
    ) -> Result<Option<i64>>;
    /// A good sign-in: forgets the failures and any lock.
    async fn clear_login_failures(&self, id: &str) -> Result<()>;
    /// Notes that the operator signed in from `address` (its rate key) at `now`.
    async fn remember_login_address(
        &self,
        operator_id: &str,
        address: &str,
        now: i64,
    ) -> Result<()>;
    /// Whether the operator has signed in from `address` before.
    async fn is_known_login_address(&self, operator_id: &str, address: &str) -> Result<bool>;
    async fn insert_session(
        &self,
        id_hash: &str,
        operator_id: &str,
        created_at: i64,
        expires_at: i64,
    ) -> Result<()>;
    /// The operator of an unexpired session.
    async fn session_operator(&self, id_hash: &str, now: i64) -> Result<Option<OperatorRecord>>;
    async fn delete_session(&self, id_hash: &str) -> Result<()>;
    /// Forgets sessions that have expired. Returns how many.
    async fn delete_expired_sessions(&self, now: i64) -> Result<u64>;
    /// Stores a new API key. Fails with `Conflict` if the id or hash is taken.
    async fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<()>;
    /// The key with this hash, revoked or not.
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>>;
    async fn touch_api_key(&self, id: &str, now: i64) -> Result<()>;
    /// Revokes a key that is not revoked yet. Returns whether it did.
    async fn revoke_api_key(&self, id: &str, now: i64) -> Result<bool>;
    /// All API keys, newest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>>;
    async fn insert_audit(&self, entry: &AuditRecord) -> Result<()>;
    /// Audit entries, newest first.
    async fn list_audit(&self, limit: u32, offset: u32) -> Result<Vec<AuditRecord>>;
    /// Deletes audit entries written before `before`. Returns how many.
    async fn delete_audit_before(&self, before: i64) -> Result<u64>;
    /// A page of all tokens, newest first, with the total count.
    async fn tokens_page(&self, limit: u32, offset: u32) -> Result<(Vec<TokenRecord>, u64)>;
    /// A page of all hits across tokens, newest first, each with its token's memo, and the
    /// total count.
    async fn hits_feed(&self, limit: u32, offset: u32) -> Result<(Vec<(HitRecord, String)>, u64)>;
}

/// The operator console's reads across all tokens.
#[async_trait]
pub trait ConsoleStore: Send + Sync + 'static {
    /// How many live tokens there are: all, those not expired at `now`, and those expiring by
    /// `soon` (counted by the database: the overview must not read every token).
    async fn token_counts(&self, now: i64, soon: i64) -> Result<TokenCounts>;
    /// Hit count and newest event time of every token that has hits.
    async fn token_hit_stats(&self) -> Result<Vec<TokenHitStats>>;
    /// Hits whose event time is at or after `since`.
    async fn count_hits_since(&self, since: i64) -> Result<u64>;
    /// Hits of all tokens per UTC day (days since the epoch), for days at or after `since_day`.
    async fn all_hits_per_day(&self, since_day: i64) -> Result<Vec<(i64, u64)>>;
    /// The source addresses with the most hits since `since`, most first.
    async fn top_sources(&self, since: i64, limit: u32) -> Result<Vec<(String, u64)>>;
    /// Per detection path, when it last delivered a hit.
    async fn path_health(&self) -> Result<Vec<PathHealth>>;
    /// Per alert channel, its last delivery and failures (recent: created at or after `since`).
    async fn channel_health(&self, since: i64) -> Result<Vec<ChannelHealth>>;
    /// Per stream lane (`stream/<type>`) with rows: the rows waiting, and the error of the
    /// oldest waiting row that has one (the send being retried now).
    async fn stream_backlog(&self) -> Result<Vec<StreamBacklog>>;
    /// Hits of all tokens matching `filter`, newest arrival first.
    async fn feed(&self, filter: &HitFilter, limit: u32, offset: u32) -> Result<Vec<HitRecord>>;
    /// The newest `limit` hits that arrived at or after `since`, newest arrival first (the live
    /// feed's poll: a flood in the look-back must not hide what came last).
    async fn hits_received_since(&self, since: i64, limit: u32) -> Result<Vec<HitRecord>>;
}

/// Exposures: a decoy key seen in public, at most one per token and source.
#[async_trait]
pub trait ExposureStore: Send + Sync + 'static {
    /// Records a sighting. The token's first from this source is inserted with `deliveries`
    /// (its alert's outbox rows) in one transaction; a later one only adds to the row (count,
    /// last seen, a location if it had none) and `deliveries` are dropped.
    async fn record_exposure(
        &self,
        exposure: &ExposureRecord,
        deliveries: &[NewDelivery],
    ) -> Result<ExposureOutcome>;
    /// A token's exposures, newest first.
    async fn list_exposures(&self, token: &TokenId) -> Result<Vec<ExposureRecord>>;
    /// A page of exposures (of one token, or all), newest first, each with its token's memo,
    /// and the total count.
    async fn exposures_feed(
        &self,
        token: Option<&TokenId>,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<(ExposureRecord, String)>, u64)>;
    /// Deletes exposures last seen before `before` (history retention). Returns how many. An
    /// exposure still being reported (a quarantine policy still attached, a Health event
    /// repeated) keeps a fresh `last_seen` and stays, so it is never alerted a second time.
    async fn delete_exposures_before(&self, before: i64) -> Result<u64>;
}

/// Proof of life: heartbeat identities, their receipts and the replicas' shared due slots.
#[async_trait]
pub trait HeartbeatStore: Send + Sync + 'static {
    /// Every heartbeat identity, live and retired, oldest first.
    async fn heartbeat_keys(&self) -> Result<Vec<HeartbeatKey>>;
    async fn find_heartbeat_key(&self, key: &AccessKeyId) -> Result<Option<HeartbeatKey>>;
    /// Makes `new` its account's live identity, retiring `old` (or, with `None`, only when the
    /// account has none). `false`: another process got there first and `new` was not stored.
    async fn replace_heartbeat_key(
        &self,
        new: &HeartbeatKey,
        old: Option<&AccessKeyId>,
    ) -> Result<bool>;
    /// Stores receipts, a second copy (same path and eventID) ignored. Returns, for each,
    /// whether it was new.
    async fn record_receipts(&self, receipts: &[Receipt]) -> Result<Vec<bool>>;
    /// Receipts received at or after `since`, oldest first.
    async fn receipts_since(&self, since: i64) -> Result<Vec<Receipt>>;
    /// The newest receipt of each (account, region, path) that ever delivered one.
    async fn latest_receipts(&self) -> Result<Vec<Receipt>>;
    /// Deletes receipts received before `before` (history retention). Returns how many.
    async fn delete_receipts_before(&self, before: i64) -> Result<u64>;
    /// Takes the heartbeat slot of (account, region) when it is due at `now`, moving it to
    /// `next_due`: of all replicas asking, one gets `true` per due slot.
    async fn claim_heartbeat(
        &self,
        account: &AccountId,
        region: &str,
        now: i64,
        next_due: i64,
    ) -> Result<bool>;
}

/// Session decoys: refresh secrets and the sessions issued with them.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a session just issued, and with `refresh_hash` (the first one) the token's refresh
    /// secret, in one transaction.
    async fn insert_token_session(
        &self,
        session: &SessionRecord,
        refresh_hash: Option<&ManageSecretHash>,
    ) -> Result<()>;
    /// The hash of the token's refresh secret; `None` for a token without one.
    async fn refresh_hash(&self, token: &TokenId) -> Result<Option<ManageSecretHash>>;
    /// The session whose key this is, expired or not.
    async fn find_token_session(&self, key: &AccessKeyId) -> Result<Option<SessionRecord>>;
    /// The token's newest session.
    async fn latest_token_session(&self, token: &TokenId) -> Result<Option<SessionRecord>>;
    /// Every session of the token, oldest first.
    async fn list_token_sessions(&self, token: &TokenId) -> Result<Vec<SessionRecord>>;
    /// Records that CloudTrail showed the server's own call issuing `key` (event `event_id`).
    /// Returns whether `key` is one of ours.
    async fn note_session_issue(&self, key: &AccessKeyId, event_id: &str) -> Result<bool>;
    /// Opens the token's expected-use window: its alert window is held open until `until`, so
    /// its uses are gathered, not sent one by one.
    async fn hold_alerts(&self, token: &TokenId, until: i64) -> Result<()>;
    /// Closes an open expected-use window at `now` (the held uses then go out as one summary).
    /// Returns whether one was open.
    async fn confirm_hold(&self, token: &TokenId, now: i64) -> Result<bool>;
}

/// The operator channel (`[operator_alerts]`): conditions' last states and shared timers.
#[async_trait]
pub trait OperatorStore: Send + Sync + 'static {
    /// Records `condition` and, when its level calls for an alert after the last one sent
    /// about its subject, writes `deliveries` (the alert, in the operator lanes), in one
    /// transaction that compares and writes the subject's row: of replicas reporting the same
    /// change, one sends. Returns whether the alert was queued. A report equal to the stored
    /// state costs one read.
    async fn record_condition(
        &self,
        condition: &OperatorCondition,
        deliveries: &[NewDelivery],
    ) -> Result<bool>;
    /// Takes the timer `name`'s turn if it is due at `now` (a timer never seen is due), moves
    /// it to `now + every_ms` and writes `deliveries`, in one transaction; false when it is not
    /// due or another replica took this turn.
    async fn take_timer(
        &self,
        name: &str,
        now: i64,
        every_ms: i64,
        deliveries: &[NewDelivery],
    ) -> Result<bool>;
    /// The channel's health: the `alive` timer and the operator deliveries' states.
    async fn operator_status(&self) -> Result<OperatorStatus>;
}

/// Everything the server stores.
pub trait Store:
    TokenStore
    + HitStore
    + SettingsStore
    + OutboxStore
    + AccessStore
    + ConsoleStore
    + ExposureStore
    + AuditedStore
    + HeartbeatStore
    + OperatorStore
    + SessionStore
{
}
impl<
        T: TokenStore
            + HitStore
            + SettingsStore
            + OutboxStore
            + AccessStore
            + ConsoleStore
            + ExposureStore
            + AuditedStore
            + HeartbeatStore
            + OperatorStore
            + SessionStore,
    > Store for T
{
}
