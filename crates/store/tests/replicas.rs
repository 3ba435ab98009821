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
    for round in 0..20 {
        let hits: Vec<_> = (0..3)
            .map(|i| hit(&t.id, &format!("race-{round}-{i}"), 50))
            .collect();
        one.record_hits(&hits).await.unwrap();
        for alert in one.new_alerts(10).await.unwrap() {
            assert!(one
                .plan_alert(&alert.alert_id, &t.id, &AlertPlan::Group)
                .await
                .unwrap());
        }
        let ids: Vec<String> = one
            .grouped_alerts(&t.id)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.alert_id)
            .collect();
        assert_eq!(ids.len(), 3);
        let (s1, s2) = (format!("sum-{round}-a"), format!("sum-{round}-b"));
        let (d1, d2) = (
            [delivery(&t, &s1, ChannelKind::Webhook)],
            [delivery(&t, &s2, ChannelKind::Webhook)],
        );
        let (r1, r2) = tokio::join!(
            one.plan_summary(&t.id, &s1, &ids, &d1, None),
            two.plan_summary(&t.id, &s2, &ids, &d2, None),
        );
        let (r1, r2) = (r1.unwrap(), r2.unwrap());
        assert!(
            r1 ^ r2,
            "round {round}: exactly one replica plans the summary"
        );
    }
    let summaries = one.list_deliveries(&t.id, 100).await.unwrap();
    assert_eq!(summaries.len(), 20, "one summary per window");
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
