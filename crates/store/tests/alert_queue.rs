//! The alerts table is the planner's queue (migration 0023): a row per alert still to plan. A
//! database from before keeps its waiting alerts through the upgrade and loses the rows no one
//! read; a planned alert leaves no row; retention takes a waiting alert with its hit; a use
//! gathered into an open window writes none.

use canarykeys_store::{AlertPlan, ChannelKind, HitStore, OutboxStore, SqlStore, TokenStore};
use sqlx::any::AnyPoolOptions;

mod support;

use support::{delivery, hit, token};

/// Rows in `alerts`, read past the store: what is on disk, whatever the store counts.
async fn rows(url: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM alerts")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

/// A database at 0022 with a hit per alert state; opened again, only the waiting alert is left,
/// and it is planned as before, with its hit.
async fn upgrade_keeps_waiting_alerts(url: &str) {
    let old = SqlStore::connect_migrated_to(url, 22).await.unwrap();
    let t = token(1);
    old.insert_token(&t).await.unwrap();
    old.close().await;
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    for (n, state) in ["new", "sent", "summarized", "ignored"].iter().enumerate() {
        let id = format!("h-{state}");
        let at = i64::try_from(n).unwrap() * 10;
        sqlx::query(
            "INSERT INTO hits (id, token_id, event_id, event_time, received_at, event_name, \
             event_source, region, source_ip, user_agent, path, raw) VALUES ($1, $2, $3, $4, $5, \
             'GetCallerIdentity', 'sts.amazonaws.com', 'us-east-1', '203.0.113.9', 'old <agent>', \
             'cloudwatch-logs', '{}')",
        )
        .bind(&id)
        .bind(t.id.as_str())
        .bind(format!("e-{state}"))
        .bind(at)
        .bind(at + 1)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO alerts (id, hit_id, token_id, state, created_at) \
             VALUES ($1, $1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(t.id.as_str())
        .bind(*state)
        .bind(at + 1)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = SqlStore::connect(url).await.unwrap();
    assert_eq!(rows(url).await, 1, "only the waiting alert is kept");
    assert_eq!(store.count_pending_alerts().await.unwrap(), 1);
    let waiting = store.new_alerts(10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].alert_id, "h-new");
    assert_eq!(
        (
            waiting[0].hit.event_id.as_str(),
            waiting[0].hit.user_agent.as_str()
        ),
        ("e-new", "old <agent>")
    );
    let send = AlertPlan::Send {
        deliveries: vec![delivery(&t, "h-new", ChannelKind::Email)],
        cooldown_until: None,
    };
    assert!(store.plan_alert("h-new", &t.id, &send).await.unwrap());
    assert!(
        !store.plan_alert("h-new", &t.id, &send).await.unwrap(),
        "claimed once"
    );
    assert_eq!(rows(url).await, 0, "a planned alert leaves no row");
    assert_eq!(store.count_hits(&t.id).await.unwrap(), 4, "every hit stays");
    store.close().await;
}

#[tokio::test]
async fn sqlite_upgrade_keeps_waiting_alerts() {
    let dir = tempfile::tempdir().unwrap();
    upgrade_keeps_waiting_alerts(&format!("sqlite:{}", dir.path().join("t.db").display())).await;
}

#[tokio::test]
async fn postgres_upgrade_keeps_waiting_alerts() {
    let db = canarykeys_testkit::TestDatabase::create("ck_alert_queue_upgrade").await;
    upgrade_keeps_waiting_alerts(db.url()).await;
    db.drop_database().await;
}

/// Every way out of the queue leaves no row behind: planning (sent, ignored, grouped by a
/// window), retention, and a use gathered into an open window never entering it.
async fn the_queue_empties(url: &str) {
    let store = SqlStore::connect(url).await.unwrap();
    store.set_stored_hits_per_window(u64::MAX);
    let t = token(1);
    store.insert_token(&t).await.unwrap();
    let events = [
        hit(&t.id, "send", 100),
        hit(&t.id, "second", 105),
        hit(&t.id, "ignore", 110),
        hit(&t.id, "old", 1),
    ];
    assert_eq!(store.record_hits(&events).await.unwrap(), [true; 4]);
    assert_eq!(rows(url).await, 4);
    // Retention takes the old use's waiting alert with its hit.
    assert_eq!(store.delete_hits_before(50).await.unwrap(), 1);
    assert_eq!(rows(url).await, 3);
    assert!(store
        .new_alerts(10)
        .await
        .unwrap()
        .iter()
        .all(|a| a.alert_id != "h-old"));
    let ignore = AlertPlan::Ignore {
        reason: "source 203.0.113.7 is ignored".into(),
    };
    assert!(store.plan_alert("h-ignore", &t.id, &ignore).await.unwrap());
    let suppressed = store.list_hits(&t.id, 10, 0).await.unwrap();
    let ignored = suppressed.iter().find(|h| h.id == "h-ignore").unwrap();
    assert_eq!(
        ignored.suppressed.as_deref(),
        Some("source 203.0.113.7 is ignored"),
        "an ignored alert marks its hit"
    );
    let send = AlertPlan::Send {
        deliveries: vec![delivery(&t, "h-send", ChannelKind::Webhook)],
        cooldown_until: Some(1_000_000),
    };
    assert!(store.plan_alert("h-send", &t.id, &send).await.unwrap());
    // The second use came before the window opened and was planned to send; the window found
    // open at planning gathers it instead.
    let second = AlertPlan::Send {
        deliveries: vec![delivery(&t, "h-second", ChannelKind::Webhook)],
        cooldown_until: Some(1_000_000),
    };
    assert!(store.plan_alert("h-second", &t.id, &second).await.unwrap());
    assert_eq!(store.list_deliveries(&t.id, 10).await.unwrap().len(), 1);
    assert_eq!(rows(url).await, 0);
    // The window is open: a flood inside it writes no alert row at all.
    let flood: Vec<_> = (0..300)
        .map(|i| hit(&t.id, &format!("flood-{i}"), 200 + i))
        .collect();
    let recorded = store.record_group(&flood).await.unwrap();
    assert_eq!((recorded.new.len(), recorded.to_plan), (300, 0));
    assert_eq!(rows(url).await, 0);
    assert_eq!(store.count_hits(&t.id).await.unwrap(), 303);
    store.close().await;
}

#[tokio::test]
async fn sqlite_the_queue_empties() {
    let dir = tempfile::tempdir().unwrap();
    the_queue_empties(&format!("sqlite:{}", dir.path().join("t.db").display())).await;
}

#[tokio::test]
async fn postgres_the_queue_empties() {
    let db = canarykeys_testkit::TestDatabase::create("ck_alert_queue_empties").await;
    the_queue_empties(db.url()).await;
    db.drop_database().await;
}
