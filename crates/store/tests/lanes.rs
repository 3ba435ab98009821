//! Delivery lanes and planning order, on both backends: a token's deliveries by one channel are
//! claimed in order, never past a pending earlier row; lanes are served by the age of their oldest
//! row, one lane however long it is; and the planner takes every token's oldest alert first.

use canarykeys_store::{
    ChannelKind, DeliveryRecord, HitStore, NewDelivery, OutboxStore, SqlStore, TokenStore,
};

// Shared with the other test files.
#[allow(dead_code)]
mod support;

use support::{delivery, hit, token};

/// A delivery written at `created_at`.
fn at(
    t: &canarykeys_store::TokenRecord,
    msg: &str,
    c: ChannelKind,
    created_at: i64,
) -> NewDelivery {
    NewDelivery {
        created_at,
        ..delivery(t, msg, c)
    }
}

fn messages(lane: &[DeliveryRecord]) -> Vec<&str> {
    lane.iter().map(|d| d.message_id.as_str()).collect()
}

async fn lanes_claim_in_order_and_hold_back_behind_a_retry(store: &SqlStore) {
    let (a, b) = (token(1), token(2));
    store.insert_token(&a).await.unwrap();
    store.insert_token(&b).await.unwrap();
    let hook = ChannelKind::Webhook;
    // Written out of order, and two in one millisecond: the lane is (created_at, id).
    let rows = vec![
        at(&a, "a3", hook, 103),
        at(&a, "a0", hook, 100),
        at(&a, "a2", hook, 102),
        at(&a, "a1", hook, 101),
        at(&a, "a4", hook, 104),
        at(&a, "mail", ChannelKind::Email, 150),
        at(&b, "b0", hook, 200),
    ];
    store.insert_deliveries(&rows).await.unwrap();

    // Oldest head first; three rows of the long lane; one lane per (token, channel).
    let lanes = store.claim_lanes(1_000, 1_000, 10, 3).await.unwrap();
    let got: Vec<Vec<&str>> = lanes.iter().map(|l| messages(l)).collect();
    assert_eq!(got, vec![vec!["a0", "a1", "a2"], vec!["mail"], vec!["b0"]]);
    // Every lane is held: a3 is not a head while a0..a2 are pending.
    assert!(store
        .claim_lanes(1_001, 1_000, 10, 3)
        .await
        .unwrap()
        .is_empty());

    // a0 went out, a1 waits for a retry at 5,000, a2 was not tried and goes back.
    let ids = |l: &[DeliveryRecord]| l.iter().map(|d| d.id.clone()).collect::<Vec<_>>();
    let a_lane = ids(&lanes[0]);
    store.mark_delivered(&a_lane[0], 1_001).await.unwrap();
    store
        .mark_retry(&a_lane[1], 5_000, "HTTP 503")
        .await
        .unwrap();
    store.release_claims(&a_lane[2..]).await.unwrap();
    // The rows behind a1 are due by their own times, but wait for it.
    assert!(store
        .claim_lanes(1_002, 1_000, 10, 3)
        .await
        .unwrap()
        .is_empty());
    // The others' leases end at 2,000; a1 is due at 5,000.
    assert_eq!(store.next_due().await.unwrap(), Some(2_000));
    let lanes = store.claim_lanes(2_000, 1_000, 10, 3).await.unwrap();
    let got: Vec<Vec<&str>> = lanes.iter().map(|l| messages(l)).collect();
    assert_eq!(got, vec![vec!["mail"], vec!["b0"]], "leases ran out");
    for lane in &lanes {
        store.mark_delivered(&lane[0].id, 2_000).await.unwrap();
    }
    assert_eq!(store.next_due().await.unwrap(), Some(5_000));
    let lanes = store.claim_lanes(5_000, 1_000, 10, 10).await.unwrap();
    let got: Vec<Vec<&str>> = lanes.iter().map(|l| messages(l)).collect();
    assert_eq!(
        got,
        vec![vec!["a1", "a2", "a3", "a4"]],
        "in order after the retry"
    );
}

async fn a_flood_on_one_lane_is_one_lane(store: &SqlStore) {
    let (a, b) = (token(1), token(2));
    store.insert_token(&a).await.unwrap();
    store.insert_token(&b).await.unwrap();
    let hook = ChannelKind::Webhook;
    let flood: Vec<_> = (0..300)
        .map(|i| at(&a, &format!("a{i:03}"), hook, 100 + i))
        .collect();
    store.insert_deliveries(&flood).await.unwrap();
    store
        .insert_deliveries(&[at(&b, "b0", hook, 1_000)])
        .await
        .unwrap();
    // Two lanes at most, eight rows each: b's one row is in the first claim.
    let lanes = store.claim_lanes(2_000, 1_000, 2, 8).await.unwrap();
    assert_eq!(lanes.len(), 2);
    assert_eq!(lanes[0].len(), 8);
    assert_eq!(messages(&lanes[1]), vec!["b0"]);
    // With one lane per claim, the oldest head goes first.
    let lanes = store.claim_lanes(3_001, 1_000, 1, 8).await.unwrap();
    assert_eq!(messages(&lanes[0])[0], "a000");
}

/// The planner's round takes every token's oldest new alert before any token's second: a backlog
/// of a flooded key's alerts does not hold another token's first alert back a round.
async fn planning_takes_each_tokens_oldest_first(store: &SqlStore) {
    let (flooded, other) = (token(1), token(2));
    store.insert_token(&flooded).await.unwrap();
    store.insert_token(&other).await.unwrap();
    let flood: Vec<_> = (0..50)
        .map(|i| hit(&flooded.id, &format!("flood-{i:02}"), 100 + i))
        .collect();
    store.record_hits(&flood).await.unwrap();
    store
        .record_hits(&[hit(&other.id, "other", 10_000)])
        .await
        .unwrap();
    let round = store.new_alerts(3).await.unwrap();
    let events: Vec<&str> = round.iter().map(|a| a.hit.event_id.as_str()).collect();
    assert_eq!(events, ["flood-00", "other", "flood-01"]);
    // The flooded token's own alerts keep their order across rounds.
    let all = store.new_alerts(100).await.unwrap();
    let flooded_order: Vec<&str> = all
        .iter()
        .filter(|a| a.hit.token_id == flooded.id)
        .map(|a| a.hit.event_id.as_str())
        .collect();
    let expected: Vec<String> = (0..50).map(|i| format!("flood-{i:02}")).collect();
    assert_eq!(flooded_order, expected);
}

canarykeys_testkit::on_both_backends!(
    lanes_claim_in_order_and_hold_back_behind_a_retry,
    a_flood_on_one_lane_is_one_lane,
    planning_takes_each_tokens_oldest_first,
);
