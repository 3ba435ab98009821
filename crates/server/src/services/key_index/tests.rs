use canarykeys_core::names::ordinary_user_name;

use super::*;
use crate::clock::ManualClock;

fn entry(account: AccountId, died_at: Option<i64>) -> KeyEntry {
    KeyEntry {
        token_id: TokenId::generate(),
        access_key_id: AccessKeyId::generate_for(account),
        account_id: account,
        username: ordinary_user_name(),
        died_at,
    }
}

#[test]
fn a_use_after_the_end_plus_skew_is_retired() {
    let late = LateEvents {
        window_ms: 1_000_000,
        skew_ms: 300,
    };
    assert!(!late.is_retired(1_000, Some(999)));
    assert!(!late.is_retired(1_000, Some(1_299)), "inside the skew");
    assert!(late.is_retired(1_000, Some(1_300)));
    assert!(late.is_retired(1_000, None), "no usable time");
}

#[test]
fn slots_find_every_key_and_overwrite_in_place() {
    let account = AccountId::parse("123456789012").unwrap();
    let entries: Vec<KeyEntry> = (0..5_000).map(|_| entry(account, None)).collect();
    let index = KeyIndex::from_entries(
        &entries,
        &[],
        LateEvents::default(),
        ManualClock::starting_now().shared(),
    );
    {
        let maps = index.read();
        for e in &entries {
            let m = maps.keys.get(&e.access_key_id).and_then(Slot::matched);
            assert_eq!(m.map(|m| m.token), Some(e.token_id.clone()));
        }
        let other = AccessKeyId::generate_for(account);
        assert!(maps.keys.get(&other).is_none(), "a key never added");
    }
    // The same key again (a token ended) takes its slot over: no second entry.
    index.write().add(&KeyEntry {
        died_at: Some(7),
        ..entries[17].clone()
    });
    assert_eq!(index.len(), entries.len());
    assert_eq!(index.counts(), (entries.len() - 1, 1));
    let maps = index.read();
    let slot = maps.keys.get(&entries[17].access_key_id).unwrap();
    assert_eq!(slot.died_at(), Some(7));
    assert_eq!(slot.matched().unwrap().token, entries[17].token_id);
}

#[test]
fn retiring_a_token_keeps_it_matched_as_a_tombstone() {
    let account = AccountId::parse("123456789012").unwrap();
    let e = entry(account, None);
    let index = KeyIndex::from_entries(
        std::slice::from_ref(&e),
        &[],
        LateEvents::default(),
        ManualClock::starting_now().shared(),
    );
    assert_eq!(index.counts(), (1, 0));
    index.write().add(&KeyEntry {
        died_at: Some(42),
        ..e.clone()
    });
    assert_eq!(index.counts(), (0, 1));
    let maps = index.read();
    assert_eq!(maps.keys.get(&e.access_key_id).unwrap().died_at(), Some(42));
    assert!(maps.accounts.contains(&account), "learned from the token");
}

#[test]
fn a_re_read_whose_snapshot_predates_a_create_keeps_the_create() {
    // The race a clean-clone CI run lost: a re-read (the startup prune's) took its snapshot,
    // another replica's create was applied from its notification, then the re-read landed.
    let account = AccountId::parse("123456789012").unwrap();
    let old = entry(account, None);
    let index = KeyIndex::from_entries(
        std::slice::from_ref(&old),
        &[],
        LateEvents::default(),
        ManualClock::starting_now().shared(),
    );
    let outer = index.begin_resync();
    let inner = index.begin_resync();
    let created = entry(account, None);
    index.write().change(Change::Key(created.clone()));
    // Deleted while the re-reads were in flight: the replay keeps the order.
    let gone = entry(account, None);
    index.write().change(Change::Key(gone.clone()));
    index.write().change(Change::Key(KeyEntry {
        died_at: Some(9),
        ..gone.clone()
    }));
    index.finish_resync(inner, Some(index.build(std::slice::from_ref(&old))));
    assert_eq!(index.counts(), (2, 1), "the inner re-read keeps both");
    index.finish_resync(outer, Some(index.build(std::slice::from_ref(&old))));
    let maps = index.read();
    assert_eq!(
        maps.keys.get(&created.access_key_id).unwrap().died_at(),
        None
    );
    assert_eq!(
        maps.keys.get(&gone.access_key_id).unwrap().died_at(),
        Some(9)
    );
    assert!(maps.journal.changes.is_empty(), "no re-read in flight");
    assert_eq!(maps.journal.readers, 0);
    drop(maps);
    // With none in flight nothing is journalled, and a failed re-read keeps what is held.
    index.write().change(Change::Key(entry(account, None)));
    assert!(index.read().journal.changes.is_empty());
    let mark = index.begin_resync();
    index.finish_resync(mark, None);
    assert_eq!(index.counts(), (3, 1));
}

fn record(account: AccountId) -> canarykeys_store::TokenRecord {
    use canarykeys_core::{Memo, OutputFormat, Region, TokenKind};
    canarykeys_store::TokenRecord {
        id: TokenId::generate(),
        kind: TokenKind::AwsKeys,
        memo: Memo::parse("web01 ~/.aws/credentials").unwrap(),
        email: None,
        email_enabled: false,
        webhook: None,
        webhook_enabled: false,
        manage_hash: canarykeys_core::ManageSecret::generate().hash(),
        minter: "local".into(),
        access_key_id: AccessKeyId::generate_for(account),
        secret_sealed: "sealed".into(),
        username: ordinary_user_name(),
        account_id: account,
        region: Region::parse("us-east-1").unwrap(),
        output: OutputFormat::Json,
        created_at: 1,
        expires_at: None,
        alerting: Default::default(),
    }
}

async fn sqlite_store(dir: &tempfile::TempDir) -> canarykeys_store::SqlStore {
    canarykeys_store::SqlStore::connect(&format!("sqlite:{}", dir.path().join("t.db").display()))
        .await
        .unwrap()
}

/// User names are not held in memory: in one of our accounts they are read from the database,
/// where a live token keeps a reused name over its tombstone; elsewhere nothing is read.
#[tokio::test]
async fn a_user_in_our_account_is_found_in_the_database() {
    use canarykeys_store::TokenStore;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let account = AccountId::parse("123456789012").unwrap();
    let dead = record(account);
    store.insert_token(&dead).await.unwrap();
    store.delete_token(&dead.id, 5).await.unwrap();
    let live = canarykeys_store::TokenRecord {
        username: dead.username.clone(),
        ..record(account)
    };
    store.insert_token(&live).await.unwrap();
    let clock = ManualClock::at(10).shared();
    let index = KeyIndex::load(&store, &[], LateEvents::default(), clock)
        .await
        .unwrap();
    let m = index
        .by_user(&store, account, &live.username)
        .await
        .unwrap();
    assert_eq!(m.map(|m| m.token), Some(live.id.clone()));
    let stranger = AccountId::parse("210987654321").unwrap();
    let none = index
        .by_user(&store, stranger, &live.username)
        .await
        .unwrap();
    assert_eq!(none, None, "not one of our accounts");
    store.close().await;
}

/// The index remembers the tokens' version of its last whole read, so SQLite's follower does
/// not read a million tokens again on its first poll; a change moves the version past it.
#[tokio::test]
async fn a_whole_read_remembers_the_version_it_read() {
    use canarykeys_store::TokenStore;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let clock = ManualClock::starting_now().shared();
    let index = KeyIndex::load(&store, &[], LateEvents::default(), clock)
        .await
        .unwrap();
    let at_load = store.tokens_version().await.unwrap();
    assert_eq!(index.synced_version(), Some(at_load));
    let account = AccountId::parse("123456789012").unwrap();
    store.insert_token(&record(account)).await.unwrap();
    let moved = store.tokens_version().await.unwrap();
    assert_ne!(moved, at_load, "a create moves the version");
    assert_eq!(index.synced_version(), Some(at_load));
    index.resync(&store).await.unwrap();
    assert_eq!(index.synced_version(), Some(moved));
    assert_eq!(index.counts(), (1, 0));
    store.close().await;
}

/// SQLite's follower applies the journalled changes since the version it holds: another
/// process's create is matched without a whole re-read.
#[tokio::test]
async fn catching_up_applies_the_changes_without_a_whole_read() {
    use canarykeys_store::TokenStore;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let account = AccountId::parse("123456789012").unwrap();
    store.insert_token(&record(account)).await.unwrap();
    let index = KeyIndex::load(
        &store,
        &[],
        LateEvents::default(),
        ManualClock::at(10).shared(),
    )
    .await
    .unwrap();
    assert_eq!(index.whole_reads(), 1);
    // Another process (the CLI) creates one token and deletes another.
    let created = record(account);
    store.insert_token(&created).await.unwrap();
    let ended = record(account);
    store.insert_token(&ended).await.unwrap();
    store.delete_token(&ended.id, 5).await.unwrap();
    index.catch_up(&store).await.unwrap();
    assert_eq!(index.whole_reads(), 1, "no whole re-read");
    assert_eq!(
        index.synced_version(),
        Some(store.tokens_version().await.unwrap())
    );
    assert_eq!(index.counts(), (2, 1));
    {
        let maps = index.read();
        let died = |k: &AccessKeyId| maps.keys.get(k).unwrap().died_at();
        assert_eq!(died(&created.access_key_id), None);
        assert_eq!(died(&ended.access_key_id), Some(5));
    }
    // Nothing new: nothing read.
    index.catch_up(&store).await.unwrap();
    assert_eq!(index.whole_reads(), 1);
    store.close().await;
}
