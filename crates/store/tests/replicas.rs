//! Several replicas on one database: two pools race to plan the same cooldown summary, on
//! SQLite and on PostgreSQL, and exactly one wins each time.

mod support;

use canarykeys_store::{AlertPlan, ChannelKind, HitStore, OutboxStore, SqlStore, TokenStore};
use support::{delivery, hit, token};

/// Two replicas (two pools on one database) race to summarize the same window, many times:
/// exactly one wins each time and only its summary is queued.
async fn summary_race(one: &SqlStore, two: &SqlStore) {
    let t = token(5_000);
    one.insert_token(&t).await.unwrap();
    // The first hit is sent and opens a window; every later hit is gathered as it commits.
    one.record_hits(&[hit(&t.id, "opens", 50)]).await.unwrap();
    let first = one.new_alerts(10).await.unwrap().remove(0).alert_id;
    let window = |round: i64| (round + 1) * 1_000_000;
    let send = AlertPlan::Send {
        deliveries: vec![delivery(&t, &first, ChannelKind::Webhook)],
        cooldown_until: Some(window(0)),
    };
    assert!(one.plan_alert(&first, &t.id, &send).await.unwrap());
    for round in 0..20 {
        let hits: Vec<_> = (0..3)
            .map(|i| hit(&t.id, &format!("race-{round}-{i}"), 50))
            .collect();
        one.record_hits(&hits).await.unwrap();
        assert_eq!(one.count_pending_alerts().await.unwrap(), 0);
        // Both replicas see the window close and read its one row.
        let (w1, w2) = (
            one.closed_windows(window(round)).await.unwrap().remove(0),
            two.closed_windows(window(round)).await.unwrap().remove(0),
        );
        assert_eq!((w1.hits, &w1.id), (3, &w2.id));
        let (d1, d2) = (
            [delivery(&t, &format!("{}-a", w1.id), ChannelKind::Webhook)],
            [delivery(&t, &format!("{}-b", w2.id), ChannelKind::Webhook)],
        );
        let next = Some(window(round + 1));
        let (r1, r2) = tokio::join!(
            one.plan_summary(&w1, &d1, next),
            two.plan_summary(&w2, &d2, next),
        );
        let (r1, r2) = (r1.unwrap(), r2.unwrap());
        assert!(
            r1 ^ r2,
            "round {round}: exactly one replica plans the summary"
        );
        assert!(one.closed_windows(i64::MAX).await.unwrap().is_empty());
    }
    let sent = one.list_deliveries(&t.id, 100).await.unwrap();
    assert_eq!(sent.len(), 21, "the first hit, then one summary per window");
}

#[tokio::test]
async fn sqlite_summary_planned_once_across_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let one = SqlStore::connect(&url).await.unwrap();
    let two = SqlStore::connect(&url).await.unwrap();
    summary_race(&one, &two).await;
}

#[tokio::test]
async fn postgres_summary_planned_once_across_replicas() {
    let db = canarykeys_testkit::TestDatabase::create("ck_summary_race").await;
    let one = SqlStore::connect(db.url()).await.unwrap();
    let two = SqlStore::connect(db.url()).await.unwrap();
    summary_race(&one, &two).await;
    one.close().await;
    two.close().await;
    db.drop_database().await;
}

/// Two replicas each plan a first use of the same token from the same stale read (no window
/// yet), so each plans a `Send`: only the first opens the window and is sent; the second is
/// gathered into that window (summarized, counted there), never a second alert.
async fn first_uses_on_two_replicas_alert_once(one: &SqlStore, two: &SqlStore) {
    let t = token(5_000);
    one.insert_token(&t).await.unwrap();
    one.record_hits(&[hit(&t.id, "first-a", 50)]).await.unwrap();
    two.record_hits(&[hit(&t.id, "first-b", 60)]).await.unwrap();
    let alerts = one.new_alerts(10).await.unwrap();
    assert_eq!(alerts.len(), 2, "both uses came before any window");
    let send = |alert: &str| AlertPlan::Send {
        deliveries: vec![delivery(&t, alert, ChannelKind::Webhook)],
        cooldown_until: Some(1_000_000),
    };
    let (a, b) = (&alerts[0].alert_id, &alerts[1].alert_id);
    assert!(one.plan_alert(a, &t.id, &send(a)).await.unwrap());
    assert!(
        two.plan_alert(b, &t.id, &send(b)).await.unwrap(),
        "applied, as a grouped use"
    );
    let sent = one.list_deliveries(&t.id, 100).await.unwrap();
    assert_eq!(sent.len(), 1, "one alert for the two uses");
    assert_eq!(sent[0].message_id, *a);
    let windows = one.closed_windows(1_000_001).await.unwrap();
    let w = windows.iter().find(|w| w.token_id == t.id).unwrap();
    assert_eq!(w.hits, 1, "the second use is in the window's summary");
    assert!(one.new_alerts(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_first_uses_alert_once_across_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let one = SqlStore::connect(&url).await.unwrap();
    let two = SqlStore::connect(&url).await.unwrap();
    first_uses_on_two_replicas_alert_once(&one, &two).await;
}

#[tokio::test]
async fn postgres_first_uses_alert_once_across_replicas() {
    let db = canarykeys_testkit::TestDatabase::create("ck_first_use_race").await;
    let one = SqlStore::connect(db.url()).await.unwrap();
    let two = SqlStore::connect(db.url()).await.unwrap();
    first_uses_on_two_replicas_alert_once(&one, &two).await;
    one.close().await;
    two.close().await;
    db.drop_database().await;
}
