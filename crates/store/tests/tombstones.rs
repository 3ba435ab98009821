//! Tombstones, on both backends: a deleted or expired token leaves its time of death and how it
//! ended; records that arrive later are still stored against it; a tombstone without hits stays
//! for the late-event window; every change moves the tokens' version.

use canarykeys_core::TokenId;
use canarykeys_store::{
    EndCause, HitStore, KeyLookup, SqlStore, TokenChange, TokenStore, TOKENS_CHANNEL,
};

#[allow(dead_code)]
mod support;

use support::{hit, token};

/// A delete notes when and how the token ended: `expired` once its expiry has come, whoever
/// deleted it.
async fn a_delete_records_the_time_of_death_and_the_cause(store: &SqlStore) {
    let deleted = token(1_000);
    let mut expired = token(2_000);
    expired.expires_at = Some(9_000);
    store.insert_token(&deleted).await.unwrap();
    store.insert_token(&expired).await.unwrap();
    assert!(store.delete_token(&deleted.id, 5_000).await.unwrap());
    assert!(store.delete_token(&expired.id, 9_000).await.unwrap());

    let t = store.get_tombstone(&deleted.id).await.unwrap().unwrap();
    assert_eq!((t.died_at, t.cause), (5_000, EndCause::Deleted));
    assert_eq!(t.token.memo, deleted.memo);
    assert_eq!(t.token.secret_sealed, "", "the sealed secret is not kept");
    let t = store.get_tombstone(&expired.id).await.unwrap().unwrap();
    assert_eq!((t.died_at, t.cause), (9_000, EndCause::Expired));
    assert!(store
        .get_tombstone(&TokenId::generate())
        .await
        .unwrap()
        .is_none());
}

/// The key index's rows: live tokens, and tombstones that died inside the window; found by
/// key, by user and by id, a live token first.
async fn key_entries_hold_live_tokens_and_recent_tombstones(store: &SqlStore) {
    let live = token(1_000);
    let recent = token(2_000);
    let old = token(3_000);
    for t in [&live, &recent, &old] {
        store.insert_token(t).await.unwrap();
    }
    store.delete_token(&old.id, 4_000).await.unwrap();
    store.delete_token(&recent.id, 8_000).await.unwrap();

    let mut entries = Vec::new();
    store
        .key_entries(5_000, &mut |e| entries.push(e))
        .await
        .unwrap();
    entries.sort_by_key(|e| e.died_at);
    let seen: Vec<(TokenId, Option<i64>)> = entries
        .iter()
        .map(|e| (e.token_id.clone(), e.died_at))
        .collect();
    assert_eq!(
        seen,
        vec![(live.id.clone(), None), (recent.id.clone(), Some(8_000))]
    );
    assert_eq!(entries[1].access_key_id, recent.access_key_id);

    let by_key = store
        .find_key_entry(KeyLookup::Key(&recent.access_key_id), 5_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (by_key.token_id, by_key.died_at),
        (recent.id.clone(), Some(8_000))
    );
    let by_user = store
        .find_key_entry(KeyLookup::User(&live.account_id, &live.username), 5_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((by_user.token_id, by_user.died_at), (live.id.clone(), None));
    let by_id = store
        .find_key_entry(KeyLookup::Id(&recent.id), 0)
        .await
        .unwrap();
    assert!(by_id.is_some());
    // Outside the window, a tombstone is not matched any more.
    assert!(store
        .find_key_entry(KeyLookup::Key(&old.access_key_id), 5_000)
        .await
        .unwrap()
        .is_none());
}

/// A record that arrives after its token ended is stored against the tombstone; one whose
/// token is gone altogether is neither new nor a duplicate.
async fn a_late_hit_is_stored_against_the_tombstone(store: &SqlStore) {
    let t = token(1_000);
    store.insert_token(&t).await.unwrap();
    store.delete_token(&t.id, 5_000).await.unwrap();
    let nobody = TokenId::generate();
    let group = store
        .record_group(&[
            hit(&t.id, "late", 4_000),
            hit(&nobody, "orphan", 4_000),
            hit(&t.id, "after", 6_000),
        ])
        .await
        .unwrap();
    assert_eq!(group.new, vec![true, false, true]);
    assert_eq!(group.gone, vec![false, true, false]);
    assert_eq!(store.count_hits(&t.id).await.unwrap(), 2);
    assert_eq!(store.count_pending_alerts().await.unwrap(), 2);

    // A repeat is a repeat, not gone (each hit's id is fresh, as the contract asks).
    let mut repeat = hit(&t.id, "late", 4_000);
    repeat.id = "h-late-again".into();
    let again = store
        .record_group(&[repeat, hit(&nobody, "orphan-2", 1)])
        .await
        .unwrap();
    assert_eq!(again.new, vec![false, false]);
    assert_eq!(again.gone, vec![false, true]);
}

/// A tombstone without hits stays until its window has passed; one with hits stays as long as
/// they do.
async fn a_tombstone_is_pruned_after_its_window(store: &SqlStore) {
    let quiet = token(1_000);
    let used = token(2_000);
    store.insert_token(&quiet).await.unwrap();
    store.insert_token(&used).await.unwrap();
    store
        .record_hits(&[hit(&used.id, "u", 1_500)])
        .await
        .unwrap();
    store.delete_token(&quiet.id, 5_000).await.unwrap();
    store.delete_token(&used.id, 5_000).await.unwrap();

    assert_eq!(
        store.prune_tombstones(5_000).await.unwrap(),
        0,
        "inside the window"
    );
    assert!(store.get_tombstone(&quiet.id).await.unwrap().is_some());
    // Retention of hits leaves tombstones alone.
    store.delete_hits_before(1_000).await.unwrap();
    assert!(store.get_tombstone(&quiet.id).await.unwrap().is_some());

    assert_eq!(store.prune_tombstones(5_001).await.unwrap(), 1);
    assert!(store.get_tombstone(&quiet.id).await.unwrap().is_none());
    assert!(
        store.get_tombstone(&used.id).await.unwrap().is_some(),
        "its hit still refers to it"
    );
}

/// Creates, deletes and prunes move the version a SQLite server polls.
async fn every_token_change_moves_the_version(store: &SqlStore) {
    let v0 = store.tokens_version().await.unwrap();
    let t = token(1_000);
    store.insert_token(&t).await.unwrap();
    let v1 = store.tokens_version().await.unwrap();
    assert!(v1 > v0);
    assert!(!store
        .delete_token(&TokenId::generate(), 2_000)
        .await
        .unwrap());
    assert_eq!(store.tokens_version().await.unwrap(), v1, "nothing changed");
    store.delete_token(&t.id, 2_000).await.unwrap();
    let v2 = store.tokens_version().await.unwrap();
    assert!(v2 > v1);
    store.prune_tombstones(3_000).await.unwrap();
    assert!(store.tokens_version().await.unwrap() > v2);
}

/// Every change is journalled beside the version it moved to, so a follower reads what changed
/// since its version instead of every token; one the journal does not reach back to gets `None`.
async fn changes_are_journalled_in_order(store: &SqlStore) {
    let v0 = store.tokens_version().await.unwrap();
    let t = token(1_000);
    store.insert_token(&t).await.unwrap();
    store.delete_token(&t.id, 2_000).await.unwrap();
    store.prune_tombstones(3_000).await.unwrap();
    let (now, changes) = store.token_changes_since(v0).await.unwrap().unwrap();
    assert_eq!(now, store.tokens_version().await.unwrap());
    assert_eq!(
        changes,
        [
            TokenChange::Created(t.id.clone()),
            TokenChange::Ended(t.id.clone()),
            TokenChange::Pruned
        ]
    );
    let (_, since_delete) = store.token_changes_since(v0 + 2).await.unwrap().unwrap();
    assert_eq!(since_delete, [TokenChange::Pruned]);
    assert_eq!(
        store.token_changes_since(now).await.unwrap(),
        Some((now, Vec::new())),
        "nothing new"
    );
    assert_eq!(
        store.token_changes_since(v0 - 1).await.unwrap(),
        None,
        "before the journal's first entry"
    );
    assert_eq!(
        store.token_changes_since(now + 1).await.unwrap(),
        None,
        "ahead of it"
    );
}

canarykeys_testkit::on_both_backends!(
    changes_are_journalled_in_order,
    a_delete_records_the_time_of_death_and_the_cause,
    key_entries_hold_live_tokens_and_recent_tombstones,
    a_late_hit_is_stored_against_the_tombstone,
    a_tombstone_is_pruned_after_its_window,
    every_token_change_moves_the_version,
);

/// On PostgreSQL a delete is announced on the tokens channel, at commit.
#[tokio::test]
async fn postgres_announces_token_changes() {
    let db = canarykeys_testkit::TestDatabase::create("ck_token_changes").await;
    let store = SqlStore::connect(db.url()).await.unwrap();
    let mut listener = store
        .listen_tokens()
        .await
        .unwrap()
        .expect("a PostgreSQL listener");
    let t = token(1_000);
    store.insert_token(&t).await.unwrap();
    store.delete_token(&t.id, 2_000).await.unwrap();
    let mut heard = Vec::new();
    for _ in 0..2 {
        let n = tokio::time::timeout(canarykeys_testkit::WAIT, listener.recv())
            .await
            .expect("a notification in time")
            .unwrap();
        assert_eq!(n.channel(), TOKENS_CHANNEL);
        heard.push(TokenChange::parse(n.payload()).unwrap());
    }
    assert_eq!(
        heard,
        vec![TokenChange::Created(t.id.clone()), TokenChange::Ended(t.id)]
    );
    drop(listener);
    store.close().await;
    db.drop_database().await;
}
