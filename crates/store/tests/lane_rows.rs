//! The outbox's lane rows, on both backends: a head that waits for a retry holds its lane, and
//! its followers never look due; a claim reads the due lanes and a few rows of each, whatever
//! the backlog; retention prunes finished deliveries and the audit log; the live feed's poll
//! returns the newest hits of a crowded look-back.

use canarykeys_store::{
    AccessStore, AuditRecord, ChannelKind, ConsoleStore, HitStore, NewDelivery, OutboxStore,
    SqlStore, TokenStore,
};

// Shared with the other test files.
#[allow(dead_code)]
mod support;

use support::{delivery, hit, token};

fn at(t: &canarykeys_store::TokenRecord, msg: &str, created_at: i64) -> NewDelivery {
    NewDelivery {
        created_at,
        ..delivery(t, msg, ChannelKind::Webhook)
    }
}

const BACKLOG: usize = 2_000;

async fn a_retrying_head_holds_its_backlog_out_of_every_claim(store: &SqlStore) {
    let (down, up) = (token(1), token(2));
    store.insert_token(&down).await.unwrap();
    store.insert_token(&up).await.unwrap();
    let backlog: Vec<_> = (0..BACKLOG)
        .map(|i| at(&down, &format!("down-{i:05}"), 100 + i as i64))
        .collect();
    store.insert_deliveries(&backlog).await.unwrap();

    // The head is tried and waits for a retry at 60,000; its lane goes back.
    let lanes = store.claim_lanes(5_000, 1_000, 64, 4).await.unwrap();
    assert_eq!(lanes.len(), 1);
    assert_eq!(
        lanes[0].len(),
        4,
        "a claim reads per_lane rows, not the lane"
    );
    let head = lanes[0][0].clone();
    assert_eq!(head.message_id, "down-00000");
    assert_eq!(head.lane.to_string(), format!("token/{}/webhook", down.id));
    store
        .mark_retry(&head.id, 60_000, "HTTP 503")
        .await
        .unwrap();
    store
        .release_lanes(std::slice::from_ref(&head.lane), 6_000)
        .await
        .unwrap();

    // Every follower's own time has passed, yet none is due: the lane's time is its head's.
    assert!(store
        .claim_lanes(7_000, 1_000, 64, 4)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.next_due().await.unwrap(), Some(60_000));

    // Another token's alert is claimed alone: one lane, one row, nothing of the backlog.
    store
        .insert_deliveries(&[at(&up, "up-0", 7_500)])
        .await
        .unwrap();
    let lanes = store.claim_lanes(8_000, 1_000, 64, 4).await.unwrap();
    let got: Vec<Vec<&str>> = lanes
        .iter()
        .map(|l| l.iter().map(|d| d.message_id.as_str()).collect())
        .collect();
    assert_eq!(got, vec![vec!["up-0"]]);
    store.mark_delivered(&lanes[0][0].id, 8_001).await.unwrap();
    // Delivered, its lane is idle; the backlog's lane still waits for its head.
    assert_eq!(store.next_due().await.unwrap(), Some(60_000));

    // A lease that ran out is not ended by its old holder's release.
    let lanes = store.claim_lanes(60_000, 1_000, 64, 2).await.unwrap();
    assert_eq!(
        lanes[0][0].message_id, "down-00000",
        "in order after the retry"
    );
    store
        .release_lanes(std::slice::from_ref(&head.lane), 6_000)
        .await
        .unwrap();
    assert!(store
        .claim_lanes(60_500, 1_000, 64, 2)
        .await
        .unwrap()
        .is_empty());
    store
        .release_lanes(std::slice::from_ref(&head.lane), 61_000)
        .await
        .unwrap();
    assert_eq!(
        store.claim_lanes(60_500, 1_000, 64, 2).await.unwrap().len(),
        1
    );
}

/// Rescheduling the head moves the lane's time only: the followers keep their own times, and
/// the claim after the retry starts with the head.
async fn a_rescheduled_head_moves_its_lane_not_its_followers(store: &SqlStore) {
    let t = token(1);
    store.insert_token(&t).await.unwrap();
    let rows: Vec<_> = (0..3).map(|i| at(&t, &format!("m{i}"), 100 + i)).collect();
    store.insert_deliveries(&rows).await.unwrap();
    let lanes = store.claim_lanes(1_000, 500, 8, 8).await.unwrap();
    store
        .mark_retry(&lanes[0][0].id, 9_000, "429")
        .await
        .unwrap();
    store
        .release_claims(&[lanes[0][1].id.clone()])
        .await
        .unwrap();
    assert_eq!(store.next_due().await.unwrap(), Some(9_000));
    let listed = store.list_deliveries(&t.id, 10).await.unwrap();
    let times: Vec<(&str, i64)> = listed
        .iter()
        .map(|d| (d.message_id.as_str(), d.next_attempt_at))
        .collect();
    assert!(
        times.contains(&("m0", 9_000)) && times.contains(&("m1", 101)),
        "{times:?}"
    );
    assert!(store
        .claim_lanes(8_999, 500, 8, 8)
        .await
        .unwrap()
        .is_empty());
    let lanes = store.claim_lanes(9_000, 500, 8, 8).await.unwrap();
    assert_eq!(lanes[0].len(), 3);
}

async fn retention_prunes_finished_deliveries_and_old_audit(store: &SqlStore) {
    let t = token(1);
    store.insert_token(&t).await.unwrap();
    let rows = vec![
        at(&t, "old-sent", 100),
        at(&t, "old-pending", 200),
        at(&t, "new", 5_000),
    ];
    store.insert_deliveries(&rows).await.unwrap();
    let lanes = store.claim_lanes(300, 1_000, 8, 1).await.unwrap();
    store.mark_delivered(&lanes[0][0].id, 300).await.unwrap();
    // Before 1,000: the delivered row goes; the pending one stays (it has not been sent).
    assert_eq!(store.delete_deliveries_before(1_000).await.unwrap(), 1);
    let left: Vec<String> = store
        .list_deliveries(&t.id, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.message_id)
        .collect();
    assert_eq!(left, ["new", "old-pending"]);
    for (id, at) in [("a-old", 10), ("a-new", 10_000)] {
        let entry = AuditRecord {
            id: id.into(),
            at,
            actor: "op".into(),
            action: "token.delete".into(),
            target: "t".into(),
            details: String::new(),
        };
        store.insert_audit(&entry).await.unwrap();
    }
    assert_eq!(store.delete_audit_before(1_000).await.unwrap(), 1);
    let ids: Vec<String> = store
        .list_audit(10, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, ["a-new"]);
}

async fn the_live_poll_returns_the_newest_of_a_crowded_lookback(store: &SqlStore) {
    let t = token(1);
    store.insert_token(&t).await.unwrap();
    let hits: Vec<_> = (0..600)
        .map(|i| hit(&t.id, &format!("e{i:03}"), 10_000 + i))
        .collect();
    store.record_hits(&hits).await.unwrap();
    let got = store.hits_received_since(10_000, 500).await.unwrap();
    assert_eq!(got.len(), 500);
    assert_eq!(got[0].event_id, "e599", "newest first");
    assert_eq!(got[499].event_id, "e100");
}

canarykeys_testkit::on_both_backends!(
    a_retrying_head_holds_its_backlog_out_of_every_claim,
    a_rescheduled_head_moves_its_lane_not_its_followers,
    retention_prunes_finished_deliveries_and_old_audit,
    the_live_poll_returns_the_newest_of_a_crowded_lookback,
);
