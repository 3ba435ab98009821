//! `HeartbeatStore` against both backends: one live identity per account (a second replica's
//! mint loses and a replaced one stays findable), receipts deduplicated per path and eventID,
//! the newest receipt per path, retention, and the due slot taken by one caller per interval.

use canarykeys_core::{AccessKeyId, AccountId, IamUserName};
use canarykeys_store::{HeartbeatKey, HeartbeatStore, Receipt, SqlStore};

fn key(id: &str, at: i64) -> HeartbeatKey {
    HeartbeatKey {
        access_key_id: AccessKeyId::parse(id).unwrap(),
        id: format!("seal-{id}"),
        account_id: AccountId::parse("123456789012").unwrap(),
        username: IamUserName::parse("svc-reporting").unwrap(),
        secret_sealed: "sealed".into(),
        minter: "local".into(),
        created_at: at,
        retired_at: None,
    }
}

fn receipt(path: &str, event_id: &str, event_time: i64, received_at: i64) -> Receipt {
    Receipt {
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
        path: path.into(),
        event_id: event_id.into(),
        event_time,
        received_at,
    }
}

async fn suite(store: &SqlStore) {
    // First need: one identity per account; a second first-mint (another replica) loses.
    let a = key("AKIAAAAAAAAAAAAAAAAA", 1);
    let b = key("AKIABBBBBBBBBBBBBBBB", 2);
    assert!(store.replace_heartbeat_key(&a, None).await.unwrap());
    assert!(!store.replace_heartbeat_key(&b, None).await.unwrap());
    // Replacing: only the caller that names the live key wins; the old key stays findable.
    assert!(store
        .replace_heartbeat_key(&b, Some(&a.access_key_id))
        .await
        .unwrap());
    let c = key("AKIACCCCCCCCCCCCCCCC", 3);
    assert!(!store
        .replace_heartbeat_key(&c, Some(&a.access_key_id))
        .await
        .unwrap());
    let keys = store.heartbeat_keys().await.unwrap();
    let live: Vec<_> = keys.iter().filter(|k| k.retired_at.is_none()).collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].access_key_id, b.access_key_id);
    let old = store
        .find_heartbeat_key(&a.access_key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.retired_at, Some(2));
    assert!(store
        .find_heartbeat_key(&c.access_key_id)
        .await
        .unwrap()
        .is_none());

    // Receipts: a second copy on the same path is not new; the same event on another path is.
    let new = store
        .record_receipts(&[
            receipt("eventbridge", "e1", 1_000, 61_000),
            receipt("eventbridge", "e1", 1_000, 90_000),
            receipt("s3", "e1", 1_000, 301_000),
            receipt("eventbridge", "e2", 3_600_000, 3_630_000),
        ])
        .await
        .unwrap();
    assert_eq!(new, [true, false, true, true]);
    let mut latest = store.latest_receipts().await.unwrap();
    latest.sort_by(|x, y| x.path.cmp(&y.path));
    assert_eq!(latest.len(), 2);
    assert_eq!(
        (latest[0].event_id.as_str(), latest[0].latency_ms()),
        ("e2", 30_000)
    );
    assert_eq!(
        (latest[1].path.as_str(), latest[1].latency_ms()),
        ("s3", 300_000)
    );
    assert_eq!(store.receipts_since(100_000).await.unwrap().len(), 2);
    assert_eq!(store.delete_receipts_before(100_000).await.unwrap(), 1);
    assert_eq!(store.receipts_since(0).await.unwrap().len(), 2);

    // The slot: due at once, then not again until next_due, whoever asks.
    let account = AccountId::parse("123456789012").unwrap();
    assert!(store
        .claim_heartbeat(&account, "us-east-1", 0, 900)
        .await
        .unwrap());
    assert!(!store
        .claim_heartbeat(&account, "us-east-1", 10, 910)
        .await
        .unwrap());
    assert!(store
        .claim_heartbeat(&account, "eu-west-1", 10, 910)
        .await
        .unwrap());
    assert!(!store
        .claim_heartbeat(&account, "us-east-1", 899, 1_799)
        .await
        .unwrap());
    assert!(store
        .claim_heartbeat(&account, "us-east-1", 900, 1_800)
        .await
        .unwrap());
    // Many callers at once: exactly one takes the due slot.
    let takes = concurrent_takes(store, account).await;
    assert_eq!(takes, 1);
}

async fn concurrent_takes(store: &SqlStore, account: AccountId) -> usize {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .claim_heartbeat(&account, "us-east-1", 2_000, 2_900)
                .await
                .unwrap()
        }));
    }
    let mut taken = 0;
    for t in tasks {
        taken += usize::from(t.await.unwrap());
    }
    taken
}

// `sqlite::suite` and `postgres::suite`.
canarykeys_testkit::on_both_backends!(suite);
