//! SQLite's hit-group thread (`sql::writer`): the common group (every hit new, every window
//! open) is written there in one call, and anything else is handed to the general path, which
//! answers exactly as it always did. Both are read back here, not just counted.

use canarykeys_core::TokenId;
use canarykeys_store::{
    AlertPlan, ChannelKind, HitRecord, HitStore, OutboxStore, SqlStore, TokenRecord, TokenStore,
};

#[allow(dead_code)]
mod support;

use support::{delivery, hit, token};

/// When the first alert's cooldown ends.
const CLOSES: i64 = 1_000_000;

async fn sqlite(dir: &tempfile::TempDir) -> SqlStore {
    SqlStore::connect(&format!("sqlite:{}", dir.path().join("t.db").display()))
        .await
        .unwrap()
}

fn group(token: &TokenId, from: i64, n: i64, ip: &str) -> Vec<HitRecord> {
    (from..from + n)
        .map(|i| {
            let mut h = hit(token, &format!("ev-{token}-{i}"), 200 + i);
            // A fresh row id per delivery, as ingest makes one: a repeat differs only in its event.
            h.id = TokenId::generate().to_string();
            h.source_ip = ip.into();
            h.raw = format!("{{\"eventID\":\"ev-{i}\",\"sourceIPAddress\":\"{ip}\"}}");
            h
        })
        .collect()
}

/// A token whose first use alerted, so its cooldown is open until `CLOSES`.
async fn cooling(store: &SqlStore) -> TokenRecord {
    let t = token(1_000);
    store.insert_token(&t).await.unwrap();
    store
        .record_group(&group(&t.id, 0, 1, "192.0.2.1"))
        .await
        .unwrap();
    let alert = store.new_alerts(10).await.unwrap().remove(0).alert_id;
    let send = AlertPlan::Send {
        deliveries: vec![delivery(&t, &alert, ChannelKind::Webhook)],
        cooldown_until: Some(CLOSES),
    };
    assert!(store.plan_alert(&alert, &t.id, &send).await.unwrap());
    t
}

#[tokio::test]
async fn the_common_group_is_written_by_the_thread_and_the_rest_by_the_general_path() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    let stats = || {
        store
            .hit_writer_stats()
            .expect("a file database has the thread")
    };

    // A fresh token's first uses: written by the thread, each left for the planner.
    let fresh = token(1_000);
    store.insert_token(&fresh).await.unwrap();
    let before = stats();
    let r = store
        .record_group(&group(&fresh.id, 0, 5, "198.51.100.9"))
        .await
        .unwrap();
    assert_eq!(stats().0, before.0 + 1, "written by the thread");
    assert_eq!(
        (r.new, r.gone, r.folded),
        (vec![true; 5], vec![false; 5], vec![false; 5])
    );
    assert_eq!((r.to_plan, r.windowed), (5, vec![false; 5]));
    assert_eq!(store.new_alerts(100).await.unwrap().len(), 5);

    // A cooling token: its first gathered group opens the window (the general path), the next
    // one counts into the open window (the thread), with a new address joining its values.
    let t = cooling(&store).await;
    let before = stats();
    let opened = store
        .record_group(&group(&t.id, 10, 3, "203.0.113.1"))
        .await
        .unwrap();
    assert_eq!(
        stats().1,
        before.1 + 1,
        "a window to open is the general path's"
    );
    assert_eq!(opened.windowed, [true; 3]);
    let before = stats();
    let r = store
        .record_group(&group(&t.id, 20, 4, "203.0.113.2"))
        .await
        .unwrap();
    assert_eq!(stats().0, before.0 + 1, "an open window is the thread's");
    assert_eq!(
        (r.new, r.windowed, r.to_plan),
        (vec![true; 4], vec![true; 4], 0)
    );
    let windows = store.closed_windows(CLOSES + 1).await.unwrap();
    let w = windows.iter().find(|w| w.token_id == t.id).unwrap();
    assert_eq!(w.hits, 7, "both groups counted");
    assert_eq!(w.addresses.values, ["203.0.113.1", "203.0.113.2"]);
    assert_eq!(w.last_event_time, 223);
    assert_eq!(store.count_hits(&t.id).await.unwrap(), 8);
    let stored = store.list_hits(&t.id, 100, 0).await.unwrap();
    let last = stored
        .iter()
        .find(|h| h.event_id == format!("ev-{}-23", t.id))
        .unwrap();
    assert_eq!(
        last.raw,
        r#"{"eventID":"ev-23","sourceIPAddress":"203.0.113.2"}"#
    );

    // The same group again: repeats, which the thread hands back and the general path
    // reports as not new; nothing is stored twice.
    let before = stats();
    let again = store
        .record_group(&group(&t.id, 20, 4, "203.0.113.2"))
        .await
        .unwrap();
    assert_eq!(stats().1, before.1 + 1);
    assert_eq!(again.new, [false; 4]);
    assert_eq!(store.count_hits(&t.id).await.unwrap(), 8);

    // One repeat among new hits: the thread's statements skip a conflicting row rather than
    // fail (`OR IGNORE`), so only its count can tell; it must hand the whole group back, and
    // the general path stores the new ones and reports the repeat.
    let before = stats();
    let mut mixed = group(&t.id, 23, 3, "203.0.113.3");
    mixed.rotate_left(1);
    let r = store.record_group(&mixed).await.unwrap();
    assert_eq!(stats().1, before.1 + 1, "handed back");
    assert_eq!(r.new, [true, true, false]);
    assert_eq!(store.count_hits(&t.id).await.unwrap(), 10);

    // A new event under a row id already stored (a caller that broke the fresh-id rule) is
    // handed back too, and the general path refuses it: it is never dropped as if stored.
    let before = stats();
    let mut reused = group(&t.id, 40, 1, "203.0.113.4");
    reused[0].id = mixed[0].id.clone();
    assert!(store.record_group(&reused).await.is_err());
    assert_eq!(stats().1, before.1 + 1, "handed back");
    assert_eq!(store.count_hits(&t.id).await.unwrap(), 10);

    // An alert row already holding a new hit's id (left by hand here; nothing in the store
    // makes one): the thread's `OR IGNORE` would skip it quietly, so its count hands the group
    // back and the general path decides, as it always did.
    // A token with no open window, so its use is one to plan and gets an alert row.
    let fresh = token(2_000);
    store.insert_token(&fresh).await.unwrap();
    let before = stats();
    let orphan = group(&fresh.id, 50, 1, "203.0.113.5");
    rusqlite::Connection::open(dir.path().join("t.db"))
        .unwrap()
        .execute(
            "INSERT INTO alerts (id, token_id, created_at) VALUES (?1, ?2, 1)",
            (&orphan[0].id, fresh.id.as_str()),
        )
        .unwrap();
    let r = store.record_group(&orphan).await.unwrap();
    assert_eq!(stats().1, before.1 + 1, "handed back");
    assert_eq!(r.new, [true]);
    assert_eq!(store.count_hits(&fresh.id).await.unwrap(), 1);

    // A group whose token is gone altogether: handed back, reported gone.
    let gone = TokenId::generate();
    let r = store
        .record_group(&group(&gone, 0, 2, "192.0.2.9"))
        .await
        .unwrap();
    assert_eq!(r.gone, [true; 2]);
    store.close().await;
}

/// The thread's connection is closed with the store, so a clean stop still leaves one file.
#[tokio::test]
async fn closing_the_store_stops_the_thread_and_cuts_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    let t = token(1_000);
    store.insert_token(&t).await.unwrap();
    store
        .record_group(&group(&t.id, 0, 3, "192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(store.hit_writer_stats().unwrap().0, 1);
    store.close().await;
    let wal = dir.path().join("t.db-wal");
    let left = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(left, 0, "the WAL is checkpointed and cut (or gone)");
    let reopened = sqlite(&dir).await;
    assert_eq!(reopened.count_hits(&t.id).await.unwrap(), 3);
    reopened.close().await;
}

/// Past a window's budget of stored hits, a use to fold is the thread's common case too (a
/// flood makes every group one), alone or beside new hits in one statement; a repeat of a
/// folded use, or anything its read-back cannot account for, goes to the general path.
#[tokio::test]
async fn uses_to_fold_are_the_threads_and_anything_odd_goes_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    store.set_stored_hits_per_window(3);
    let stats = || store.hit_writer_stats().unwrap();
    let t = cooling(&store).await;
    // The window opens (general path) with the budget's three stored hits.
    store
        .record_group(&group(&t.id, 10, 3, "203.0.113.1"))
        .await
        .unwrap();

    let before = stats();
    let r = store
        .record_group(&group(&t.id, 20, 5, "203.0.113.2"))
        .await
        .unwrap();
    assert_eq!(stats().0, before.0 + 1, "folded by the thread");
    assert_eq!(
        (r.new, r.folded, r.windowed, r.to_plan),
        (vec![true; 5], vec![true; 5], vec![true; 5], 0)
    );

    // Folds and a fresh token's first uses in one chunk: the thread stores the new ones (read
    // back by rowid) and folds the rest.
    let fresh = token(2_000);
    store.insert_token(&fresh).await.unwrap();
    let mut mixed = group(&t.id, 30, 2, "203.0.113.3");
    mixed.extend(group(&fresh.id, 0, 2, "198.51.100.7"));
    mixed.swap(1, 2);
    let before = stats();
    let r = store.record_group(&mixed).await.unwrap();
    assert_eq!(stats().0, before.0 + 1, "written by the thread");
    assert_eq!(r.new, [true; 4]);
    assert_eq!(r.folded, [true, false, true, false]);
    assert_eq!(r.windowed, [true, false, true, false]);
    assert_eq!(r.to_plan, 2);
    assert_eq!(store.new_alerts(100).await.unwrap().len(), 2);
    assert_eq!(store.count_hits(&t.id).await.unwrap(), 1 + 3 + 5 + 2);
    assert_eq!(store.list_hits(&t.id, 100, 0).await.unwrap().len(), 4);
    assert_eq!(store.count_hits(&fresh.id).await.unwrap(), 2);
    let windows = store.closed_windows(CLOSES + 1).await.unwrap();
    let w = windows.iter().find(|w| w.token_id == t.id).unwrap();
    assert_eq!((w.hits, w.folded.count), (3, 7));
    assert_eq!(
        (w.folded.first_event_time, w.folded.last_event_time),
        (Some(220), Some(231))
    );

    // A folded use again (another path, a fresh row id): handed back, not new, not counted.
    let before = stats();
    let again = store
        .record_group(&group(&t.id, 30, 1, "203.0.113.3"))
        .await
        .unwrap();
    assert_eq!(stats().1, before.1 + 1, "handed back");
    assert_eq!(again.new, [false]);
    assert_eq!(store.count_hits(&t.id).await.unwrap(), 11);

    // One new hit beside a new event under a stored row's id: the statement stores one of two.
    // Read back by id, the reused id would pass for stored; by rowid it is left out, is no use
    // to fold, and the general path refuses the group as it always did.
    let mut odd = group(&fresh.id, 10, 2, "198.51.100.8");
    odd[1].id = mixed[1].id.clone();
    let before = stats();
    assert!(store.record_group(&odd).await.is_err());
    assert_eq!(stats().1, before.1 + 1, "handed back");
    assert_eq!(store.count_hits(&fresh.id).await.unwrap(), 2);
    store.close().await;
}
