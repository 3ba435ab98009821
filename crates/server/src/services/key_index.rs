//! The key ids and (account, user) pairs of live tokens and of recent tombstones, in memory:
//! matching a record costs a hash lookup, and a key of someone else's account costs no database
//! query at all.
//!
//! What it holds, and no more: every live token, and every tombstone that died within
//! `[detection] late_event_window` (a record that arrives after its token ended is still
//! matched, and says whether it was made before the end). So its size follows the live tokens
//! plus a week of churn, not everything ever made (BENCHMARKS.md has the bytes per token).
//!
//! How it stays exact on every process: this process's creates and deletes update it at once
//! (the token service); other processes' changes arrive through `jobs::index_sync` (PostgreSQL
//! NOTIFY on `canarykeys_tokens`, with a whole re-read whenever the listener reconnects, since
//! notifications sent meanwhile are lost; on SQLite, a version number polled from the settings
//! table, which the CLI's changes move, and the changes journalled beside it). Until a change
//! arrives, a miss for a key or user in one of OUR decoy accounts is still looked up in the
//! database, and found entries join the index;
//! the decoy accounts are those configured plus those of every token in the database, so a
//! replica whose config lacks an account still matches that account's tokens. A whole re-read
//! may run beside those changes (a prune's, a reconnect's): changes made while it reads are
//! journalled and replayed over what it read, so its older snapshot never erases them.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use canarykeys_core::{AccessKeyId, AccountId, IamUserName, TokenId};
use canarykeys_store::{
    HeartbeatKey, KeyEntry, KeyLookup, Store, StoreError, TokenChange, TokenRecord,
};

use crate::clock::SharedClock;

/// How late records are judged: `[detection] late_event_window` and `clock_skew`, in ms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LateEvents {
    /// How long a tombstone is kept and matched.
    pub window_ms: i64,
    /// How far past a token's end a record's time may be and still count as before it.
    pub skew_ms: i64,
}

impl Default for LateEvents {
    fn default() -> Self {
        Self {
            window_ms: 7 * 24 * 3600 * 1000,
            skew_ms: 5 * 60 * 1000,
        }
    }
}

impl LateEvents {
    /// Whether a use at `event_time` of a token that ended at `died_at` is a use of a retired
    /// key: someone still holds it. A record with no usable time cannot be placed before the
    /// end, so it counts as retired (alerted as such, never dropped).
    pub fn is_retired(&self, died_at: i64, event_time: Option<i64>) -> bool {
        event_time.is_none_or(|t| t >= died_at.saturating_add(self.skew_ms))
    }
}

/// The token a record matched, and when it ended if it is a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    pub token: TokenId,
    pub died_at: Option<i64>,
}

/// One indexed key: its id, its token's id and when it ended, inline (both ids are fixed-length
/// ASCII), so an entry is one 56-byte slot with no allocation of its own. A million tokens
/// took ~232 bytes each as maps of `String`s; this is ~70 (BENCHMARKS.md).
#[derive(Clone, Copy)]
struct Slot {
    key: [u8; 20],
    token: [u8; TokenId::LEN],
    /// When the token ended (unix ms), or `LIVE`.
    died_at: i64,
}

/// `Slot::died_at` of a live token (no real end is at the start of time).
const LIVE: i64 = i64::MIN;

impl Slot {
    fn of(e: &KeyEntry) -> Option<Self> {
        Some(Self {
            key: key_bytes(&e.access_key_id)?,
            token: e.token_id.as_str().as_bytes().try_into().ok()?,
            died_at: e.died_at.unwrap_or(LIVE),
        })
    }

    fn died_at(&self) -> Option<i64> {
        (self.died_at != LIVE).then_some(self.died_at)
    }

    /// The match it stands for; `None` only if the bytes were not a token id (they always are:
    /// they came from one), which the caller treats as not indexed.
    fn matched(&self) -> Option<Match> {
        let token = TokenId::parse(std::str::from_utf8(&self.token).ok()?).ok()?;
        Some(Match {
            token,
            died_at: self.died_at(),
        })
    }
}

fn key_bytes(key: &AccessKeyId) -> Option<[u8; 20]> {
    key.as_str().as_bytes().try_into().ok()
}

/// Key id → slot: the slots in one `Vec`, and a table of their positions (4 bytes a bucket)
/// hashed with a per-process random key, so no one can aim records at one bucket. Slots are
/// only added or overwritten; a whole re-read builds a new one.
#[derive(Default)]
struct Keys {
    slots: Vec<Slot>,
    table: hashbrown::HashTable<u32>,
    hasher: std::hash::RandomState,
}

impl Keys {
    fn get(&self, key: &AccessKeyId) -> Option<&Slot> {
        let key = key_bytes(key)?;
        let hash = self.hasher.hash_one(key);
        let i = self
            .table
            .find(hash, |i| self.slots[*i as usize].key == key)?;
        self.slots.get(*i as usize)
    }

    fn put(&mut self, slot: Slot) {
        let Self {
            slots,
            table,
            hasher,
        } = self;
        let hash = hasher.hash_one(slot.key);
        match table.entry(
            hash,
            |i| slots[*i as usize].key == slot.key,
            |i| hasher.hash_one(slots[*i as usize].key),
        ) {
            hashbrown::hash_table::Entry::Occupied(at) => slots[*at.get() as usize] = slot,
            hashbrown::hash_table::Entry::Vacant(at) => {
                // Four billion keys would not fit in memory long before this.
                if let Ok(i) = u32::try_from(slots.len()) {
                    slots.push(slot);
                    at.insert(i);
                }
            }
        }
    }

    fn len(&self) -> usize {
        self.slots.len()
    }
}

#[derive(Default)]
struct Maps {
    /// Every indexed key. IAM user names are not held: a record that names a user in one of
    /// our accounts, and no indexed key, is looked up in the database (one indexed read; such
    /// records are rare, since a decoy's own key matches first), which also keeps a reused
    /// name's rule (a live token over a tombstone, then the oldest) in one place.
    keys: Keys,
    /// The decoy accounts: the configured ones and those of every token seen.
    accounts: HashSet<AccountId>,
    /// Heartbeat keys (live and retired) and their accounts: their events are receipts.
    heartbeat: HashMap<AccessKeyId, AccountId>,
    /// Changes made while a re-read is in flight, replayed over its result: a re-read whose
    /// snapshot predates a create must not erase it when it lands (a startup prune re-read
    /// raced another replica's create and lost it until the next change).
    journal: Journal,
}

#[derive(Default)]
struct Journal {
    /// Re-reads in flight.
    readers: usize,
    /// Changes since the oldest in-flight re-read began, in order.
    changes: Vec<Change>,
}

#[derive(Clone)]
enum Change {
    Key(KeyEntry),
    Heartbeat(AccessKeyId, AccountId),
}

impl Maps {
    fn add(&mut self, e: &KeyEntry) {
        if let Some(slot) = Slot::of(e) {
            self.keys.put(slot);
        }
        self.accounts.insert(e.account_id);
    }

    fn apply(&mut self, c: &Change) {
        match c {
            Change::Key(e) => self.add(e),
            Change::Heartbeat(key, account) => {
                self.heartbeat.insert(key.clone(), *account);
                self.accounts.insert(*account);
            }
        }
    }

    /// Applies `c`, journalled if a re-read is in flight.
    fn change(&mut self, c: Change) {
        self.apply(&c);
        if self.journal.readers > 0 {
            self.journal.changes.push(c);
        }
    }
}

/// Where a re-read began in the journal; see `KeyIndex::begin_resync`.
#[must_use]
struct ReadMark(usize);

#[derive(Clone)]
pub struct KeyIndex {
    maps: Arc<RwLock<Maps>>,
    /// The configured decoy accounts, kept across re-reads.
    configured: Arc<[AccountId]>,
    late: LateEvents,
    clock: SharedClock,
    /// The tokens' version the index holds: read just before the last whole re-read, or the
    /// one `catch_up` brought it to (`i64::MIN`: none yet). SQLite's follower moves only when
    /// the version moved past it, so the first poll after the start reads nothing again.
    synced: Arc<AtomicI64>,
    whole_reads: Arc<std::sync::atomic::AtomicU64>,
}

impl KeyIndex {
    /// Loads live tokens and recent tombstones. `accounts` are the configured decoy accounts, so
    /// a token made by another process in one of them is found even before this one has seen any.
    pub async fn load(
        store: &dyn Store,
        accounts: &[AccountId],
        late: LateEvents,
        clock: SharedClock,
    ) -> Result<Self, StoreError> {
        let index = Self::from_entries(&[], accounts, late, clock);
        index.resync(store).await?;
        Ok(index)
    }

    /// An index of `entries` (a re-read, a measurement).
    pub fn from_entries(
        entries: &[KeyEntry],
        accounts: &[AccountId],
        late: LateEvents,
        clock: SharedClock,
    ) -> Self {
        let index = Self {
            maps: Arc::default(),
            configured: accounts.into(),
            late,
            clock,
            synced: Arc::new(AtomicI64::new(i64::MIN)),
            whole_reads: Arc::default(),
        };
        *index.write() = index.build(entries);
        index
    }

    fn build(&self, entries: &[KeyEntry]) -> Maps {
        let mut maps = Maps::default();
        maps.accounts.extend(self.configured.iter().copied());
        for e in entries {
            maps.add(e);
        }
        maps
    }

    pub fn late_events(&self) -> LateEvents {
        self.late
    }

    /// Tombstones that died before this are neither kept nor matched.
    fn since(&self) -> i64 {
        self.clock.now_millis().saturating_sub(self.late.window_ms)
    }

    /// Re-reads everything: after a missed notification, a prune, or as the window moves.
    pub async fn resync(&self, store: &dyn Store) -> Result<(), StoreError> {
        // Read first: a change after this moves the version again, and is read next time.
        let version = store.tokens_version().await?;
        let mark = self.begin_resync();
        self.whole_reads.fetch_add(1, Ordering::Relaxed);
        match self.read_whole(store).await {
            Ok(fresh) => {
                self.finish_resync(mark, Some(fresh));
                self.synced.store(version, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => {
                self.finish_resync(mark, None);
                Err(e)
            }
        }
    }

    /// New maps from the database, built as the rows stream in: a million tokens never sit in
    /// memory twice (as rows and as maps), which set the start's peak before.
    async fn read_whole(&self, store: &dyn Store) -> Result<Maps, StoreError> {
        let mut fresh = self.build(&[]);
        store
            .key_entries(self.since(), &mut |e| fresh.add(&e))
            .await?;
        for k in store.heartbeat_keys().await? {
            fresh.apply(&Change::Heartbeat(k.access_key_id, k.account_id));
        }
        Ok(fresh)
    }

    /// Brings the index up to the tokens' current version (SQLite's follower): the changes
    /// journalled since the version it holds, applied one by one, or a whole re-read when the
    /// journal does not reach back (or nothing was read yet). A create on a server of a million
    /// tokens used to cost a whole re-read of all of them.
    pub async fn catch_up(&self, store: &dyn Store) -> Result<(), StoreError> {
        let Some(since) = self.synced_version() else {
            return self.resync(store).await;
        };
        let Some((now, changes)) = store.token_changes_since(since).await? else {
            return self.resync(store).await;
        };
        for change in &changes {
            self.apply(store, change).await?;
        }
        // A prune among them re-read everything at a version at least as new.
        self.synced.fetch_max(now, Ordering::SeqCst);
        Ok(())
    }

    /// Whole re-reads so far (the start's included): what `catch_up` saves.
    pub fn whole_reads(&self) -> u64 {
        self.whole_reads.load(Ordering::Relaxed)
    }

    /// The tokens' version the index is known to hold (`None`: never read).
    pub fn synced_version(&self) -> Option<i64> {
        Some(self.synced.load(Ordering::SeqCst)).filter(|v| *v != i64::MIN)
    }

    /// Starts journalling changes for a re-read about to take its snapshot.
    fn begin_resync(&self) -> ReadMark {
        let mut maps = self.write();
        maps.journal.readers += 1;
        ReadMark(maps.journal.changes.len())
    }

    /// Swaps in the re-read (`None`: it failed, keep what is held) with every change made since
    /// its mark replayed over it, in order.
    ///
    /// The new maps were built before the lock is taken, and the old ones are dropped after it
    /// is let go: at a million tokens each takes seconds, and every lookup of the hit path waits
    /// for this lock. Under it, only the journal's few changes are replayed and the maps swapped.
    fn finish_resync(&self, mark: ReadMark, fresh: Option<Maps>) {
        let mut maps = self.write();
        let old = fresh.map(|mut fresh| {
            for c in &maps.journal.changes[mark.0..] {
                fresh.apply(c);
            }
            fresh.journal = std::mem::take(&mut maps.journal);
            std::mem::replace(&mut *maps, fresh)
        });
        maps.journal.readers -= 1;
        if maps.journal.readers == 0 {
            maps.journal.changes.clear();
        }
        drop(maps);
        drop(old);
    }

    /// Applies a change announced by any process.
    pub async fn apply(&self, store: &dyn Store, change: &TokenChange) -> Result<(), StoreError> {
        let id = match change {
            TokenChange::Created(id) | TokenChange::Ended(id) => id,
            TokenChange::Pruned => return self.resync(store).await,
        };
        match store
            .find_key_entry(KeyLookup::Id(id), self.since())
            .await?
        {
            Some(entry) => {
                self.write().change(Change::Key(entry));
                Ok(())
            }
            // Gone already (pruned, or outside the window): nothing names its key here, so
            // re-read everything rather than keep a stale entry.
            None => self.resync(store).await,
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        // A panic while holding the lock cannot leave the maps half-updated (each write is one
        // insert or a swap), so a poisoned lock is still good to use.
        self.maps.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A token this process created.
    pub fn insert(&self, t: &TokenRecord) {
        self.write().change(Change::Key(entry_of(t, None)));
    }

    /// A token this process deleted (or expired) at `died_at`: it becomes a tombstone.
    pub fn retire(&self, t: &TokenRecord, died_at: i64) {
        self.write().change(Change::Key(entry_of(t, Some(died_at))));
    }

    /// Entries held: (live tokens, tombstones).
    pub fn counts(&self) -> (usize, usize) {
        let maps = self.read();
        let dead = maps.keys.slots.iter().filter(|s| s.died_at != LIVE).count();
        (maps.keys.len() - dead, dead)
    }

    pub fn len(&self) -> usize {
        self.read().keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A heartbeat key this process made.
    pub fn add_heartbeat(&self, key: &HeartbeatKey) {
        self.write()
            .change(Change::Heartbeat(key.access_key_id.clone(), key.account_id));
    }

    /// The account of a heartbeat key, if `key` is one. As `by_key`, only a key of one of our
    /// accounts that is not indexed costs a query (another process may have made it).
    pub async fn heartbeat(
        &self,
        store: &dyn Store,
        key: &AccessKeyId,
    ) -> Result<Option<AccountId>, StoreError> {
        let ours = {
            let maps = self.read();
            if let Some(a) = maps.heartbeat.get(key) {
                return Ok(Some(*a));
            }
            // A token's key is no heartbeat's: no query for every hit.
            maps.keys.get(key).is_none() && maps.accounts.contains(&key.account_id())
        };
        if !ours {
            return Ok(None);
        }
        let Some(found) = store.find_heartbeat_key(key).await? else {
            return Ok(None);
        };
        self.add_heartbeat(&found);
        Ok(Some(found.account_id))
    }

    /// The token of a key. Only a key of one of our accounts that is not indexed costs a query.
    pub async fn by_key(
        &self,
        store: &dyn Store,
        key: &AccessKeyId,
    ) -> Result<Option<Match>, StoreError> {
        let ours = {
            let maps = self.read();
            if let Some(m) = maps.keys.get(key).and_then(Slot::matched) {
                return Ok(Some(m));
            }
            maps.accounts.contains(&key.account_id())
        };
        if !ours {
            return Ok(None);
        }
        let found = store
            .find_key_entry(KeyLookup::Key(key), self.since())
            .await?;
        Ok(self.learn(found))
    }

    /// The token of an IAM user in one of our accounts: always a database read (see `Maps`).
    pub async fn by_user(
        &self,
        store: &dyn Store,
        account: AccountId,
        user: &IamUserName,
    ) -> Result<Option<Match>, StoreError> {
        if !self.read().accounts.contains(&account) {
            return Ok(None);
        }
        let found = store
            .find_key_entry(KeyLookup::User(&account, user), self.since())
            .await?;
        Ok(self.learn(found))
    }

    fn learn(&self, found: Option<KeyEntry>) -> Option<Match> {
        let e = found?;
        self.write().change(Change::Key(e.clone()));
        Some(Match {
            token: e.token_id,
            died_at: e.died_at,
        })
    }
}

fn entry_of(t: &TokenRecord, died_at: Option<i64>) -> KeyEntry {
    KeyEntry {
        token_id: t.id.clone(),
        access_key_id: t.access_key_id.clone(),
        account_id: t.account_id,
        username: t.username.clone(),
        died_at,
    }
}

mod gate;
#[cfg(test)]
mod tests;
