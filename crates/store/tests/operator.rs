//! The operator channel's storage, on both backends: a database from before token-less
//! deliveries (migration 0013) keeps every delivery and lane when it is upgraded; operator
//! deliveries have no token and lanes of their own; a condition alerts once per change, and of
//! two stores reporting the same change at once one sends; a timer's turn is taken once.

use canarykeys_store::{
    ChannelKind, ConditionLevel, Lane, NewDelivery, OperatorCondition, OperatorStore, OutboxStore,
    SqlStore, TokenStore,
};

#[allow(dead_code)]
mod support;

use support::{delivery, token};

fn operator_row(message: &str, channel: ChannelKind) -> NewDelivery {
    NewDelivery {
        id: format!("op-{message}-{}", channel.as_str()),
        token_id: None,
        message_id: message.into(),
        kind: "operator".into(),
        channel,
        target: "http://10.0.0.5/hook".into(),
        payload: "{}".into(),
        state: "pending".into(),
        last_error: None,
        created_at: 100,
    }
}

fn condition(state: &str, level: ConditionLevel) -> OperatorCondition {
    OperatorCondition {
        subject: "safety_net/123456789012".into(),
        state: state.into(),
        level,
        detail: "{}".into(),
        at: 1_000,
    }
}

/// An old database with a pending and a delivered row, upgraded through 0014 and 0015.
async fn upgrade_keeps_deliveries(url: &str) {
    let old = SqlStore::connect_migrated_to(url, 13).await.unwrap();
    let t = token(1);
    old.insert_token(&t).await.unwrap();
    let rows = vec![
        delivery(&t, "sent", ChannelKind::Webhook),
        NewDelivery {
            created_at: 200,
            ..delivery(&t, "waiting", ChannelKind::Webhook)
        },
        delivery(&t, "mail", ChannelKind::Email),
    ];
    old.insert_deliveries(&rows).await.unwrap();
    let lanes = old.claim_lanes(150, 1_000, 8, 1).await.unwrap();
    let sent = lanes
        .iter()
        .flatten()
        .find(|d| d.message_id == "sent")
        .unwrap();
    old.mark_delivered(&sent.id, 150).await.unwrap();
    let lanes: Vec<Lane> = lanes.iter().map(|l| l[0].lane.clone()).collect();
    old.release_lanes(&lanes, 1_150).await.unwrap();
    old.close().await;

    let store = SqlStore::connect(url).await.unwrap();
    let mut kept: Vec<(String, String, String)> = store
        .list_deliveries(&t.id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.message_id, d.state, d.lane.to_string()))
        .collect();
    kept.sort();
    let lane = |c: &str| format!("token/{}/{c}", t.id);
    assert_eq!(
        kept,
        [
            ("mail".into(), "pending".into(), lane("email")),
            ("sent".into(), "delivered".into(), lane("webhook")),
            ("waiting".into(), "pending".into(), lane("webhook")),
        ]
    );
    // The lanes still work: the waiting rows are claimed, in their lanes.
    let claimed = store.claim_lanes(10_000, 1_000, 8, 8).await.unwrap();
    let mut heads: Vec<&str> = claimed.iter().map(|l| l[0].message_id.as_str()).collect();
    heads.sort();
    assert_eq!(heads, ["mail", "waiting"]);
    // And a token-less row can be written now, in the operator lane.
    store
        .insert_deliveries(&[operator_row("op-1", ChannelKind::Webhook)])
        .await
        .unwrap();
    let claimed = store.claim_lanes(20_000, 1_000, 8, 8).await.unwrap();
    let op: Vec<_> = claimed
        .iter()
        .flatten()
        .filter(|d| d.token_id.is_none())
        .collect();
    assert_eq!(op.len(), 1);
    assert_eq!(op[0].lane, Lane::Operator(ChannelKind::Webhook));
    assert_eq!(op[0].lane.to_string(), "operator/webhook");
    store.close().await;
}

#[tokio::test]
async fn sqlite_upgrade_keeps_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    upgrade_keeps_deliveries(&format!("sqlite:{}", dir.path().join("t.db").display())).await;
}

#[tokio::test]
async fn postgres_upgrade_keeps_deliveries() {
    let db = canarykeys_testkit::TestDatabase::create("ck_operator_upgrade").await;
    upgrade_keeps_deliveries(db.url()).await;
    db.drop_database().await;
}

async fn a_condition_alerts_once_per_change(store: &SqlStore) {
    let row = |m: &str| vec![operator_row(m, ChannelKind::Webhook)];
    // A first report that all is well sends nothing.
    assert!(!store
        .record_condition(&condition("ok", ConditionLevel::Good), &row("a"))
        .await
        .unwrap());
    // The problem, five times: one alert.
    let mut sent = 0;
    for i in 0..5 {
        let m = format!("b{i}");
        sent += usize::from(
            store
                .record_condition(&condition("error", ConditionLevel::Bad), &row(&m))
                .await
                .unwrap(),
        );
    }
    assert_eq!(sent, 1);
    // Recovered: one alert; again: none.
    assert!(store
        .record_condition(&condition("ok", ConditionLevel::Good), &row("c"))
        .await
        .unwrap());
    assert!(!store
        .record_condition(&condition("ok", ConditionLevel::Good), &row("d"))
        .await
        .unwrap());
    // A quiet state is recorded, not alerted, and does not end the good state's silence.
    assert!(!store
        .record_condition(&condition("late", ConditionLevel::Quiet), &row("e"))
        .await
        .unwrap());
    assert!(!store
        .record_condition(&condition("ok", ConditionLevel::Good), &row("f"))
        .await
        .unwrap());
    let status = store.operator_status().await.unwrap();
    assert_eq!(status.pending, 2, "b and c were queued");

    // Two stores (two replicas) report the same change at once: one alert in all.
    let other = store.clone();
    let (bad, g, h) = (condition("error", ConditionLevel::Bad), row("g"), row("h"));
    let (x, y) = tokio::join!(
        store.record_condition(&bad, &g),
        other.record_condition(&bad, &h),
    );
    assert_eq!(usize::from(x.unwrap()) + usize::from(y.unwrap()), 1);
    assert_eq!(store.operator_status().await.unwrap().pending, 3);
}

async fn a_timer_turn_is_taken_once(store: &SqlStore) {
    let rows = |m: &str| vec![operator_row(m, ChannelKind::Webhook)];
    let other = store.clone();
    let (a1, a2) = (rows("a1"), rows("a2"));
    let (x, y) = tokio::join!(
        store.take_timer("alive", 1_000, 60_000, &a1),
        other.take_timer("alive", 1_000, 60_000, &a2),
    );
    assert_eq!(usize::from(x.unwrap()) + usize::from(y.unwrap()), 1);
    assert!(!store
        .take_timer("alive", 60_999, 60_000, &rows("a3"))
        .await
        .unwrap());
    assert!(store
        .take_timer("alive", 61_000, 60_000, &rows("a4"))
        .await
        .unwrap());
    // A shorter interval than the one that set the due time takes effect at once.
    assert!(store
        .take_timer("alive", 62_000, 1_000, &rows("a5"))
        .await
        .unwrap());
    let status = store.operator_status().await.unwrap();
    assert_eq!(status.last_alive_at, Some(62_000));
    assert_eq!(status.next_alive_at, Some(63_000));
    assert_eq!(status.pending, 3);
}

canarykeys_testkit::on_both_backends!(
    a_condition_alerts_once_per_change,
    a_timer_turn_is_taken_once
);
