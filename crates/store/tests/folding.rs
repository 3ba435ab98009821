//! Flood folding, on both backends: past `stored_hits_per_window` stored hits in an open
//! cooldown window, a token's further uses are counted into the window row (no hit row, no
//! alert row), each counted once whatever path repeats it, inside the window or after it closed.
//! The budget is checked as each group commit starts: one group may store past it by its size.

use canarykeys_core::TokenId;
use canarykeys_store::{
    AlertPlan, ChannelKind, ConsoleStore, HitRecord, HitStore, OutboxStore, SqlStore, TokenRecord,
    TokenStore,
};

#[allow(dead_code)]
mod support;

use support::{delivery, hit, token};

const BUDGET: u64 = 3;
/// The cooldown end the first alert sets.
const CLOSES: i64 = 1_000_000;

/// A token whose first use alerted and opened a window that ends at `CLOSES`.
async fn cooling_token(store: &SqlStore) -> TokenRecord {
    store.set_stored_hits_per_window(BUDGET);
    let t = token(1_000);
    store.insert_token(&t).await.unwrap();
    store
        .record_group(&[hit(&t.id, &format!("opens-{}", t.id), 100)])
        .await
        .unwrap();
    let first = store.new_alerts(10).await.unwrap().remove(0).alert_id;
    let send = AlertPlan::Send {
        deliveries: vec![delivery(&t, &first, ChannelKind::Webhook)],
        cooldown_until: Some(CLOSES),
    };
    assert!(store.plan_alert(&first, &t.id, &send).await.unwrap());
    t
}

fn flood(token: &TokenId, from: i64, n: i64, path: &str) -> Vec<HitRecord> {
    (from..from + n)
        .map(|i| {
            let mut h = hit(token, &format!("flood-{i}"), 200 + i);
            // A fresh row id per delivery, as ingest makes one.
            h.id = format!("h-{path}-{i}");
            h.path = path.into();
            h.source_ip = format!("198.51.100.{}", i % 3);
            h
        })
        .collect()
}

/// Past the budget, uses are folded: counted (new, in the hit count), not stored, with no alert
/// row; the window keeps their count, span and tallies; the summary claim sees them.
async fn uses_past_the_budget_are_folded(store: &SqlStore) {
    let t = cooling_token(store).await;
    // One group within the budget, then groups past it.
    let first = store
        .record_group(&flood(&t.id, 0, 3, "eventbridge"))
        .await
        .unwrap();
    assert_eq!(first.new, [true; 3]);
    assert_eq!(first.folded, [false; 3]);
    assert_eq!(first.windowed, [true; 3], "gathered into the window");
    for g in 0..4 {
        let r = store
            .record_group(&flood(&t.id, 3 + g * 5, 5, "eventbridge"))
            .await
            .unwrap();
        assert_eq!(r.new, [true; 5]);
        assert_eq!(r.folded, [true; 5], "group {g}");
        assert_eq!(r.windowed, [true; 5]);
        assert_eq!(r.to_plan, 0);
    }
    assert_eq!(
        store.list_hits(&t.id, 100, 0).await.unwrap().len(),
        4,
        "1 + budget rows"
    );
    assert_eq!(
        store.count_hits(&t.id).await.unwrap(),
        24,
        "every use counted"
    );
    // The console's figures count them too.
    let stats = store.token_hit_stats().await.unwrap();
    assert_eq!((stats.len(), stats[0].hits), (1, 24));
    assert_eq!(stats[0].last_hit, Some(222));
    assert_eq!(store.count_hits_since(0).await.unwrap(), 24);
    assert_eq!(store.count_pending_alerts().await.unwrap(), 0);

    let closed = store.closed_windows(CLOSES).await.unwrap();
    assert_eq!(closed.len(), 1);
    let w = &closed[0];
    assert_eq!((w.hits, w.folded.count), (3, 20));
    assert_eq!(
        (w.folded.first_event_time, w.folded.last_event_time),
        (Some(203), Some(222))
    );
    let addresses: u64 = w.folded.addresses.counts.iter().map(|(_, n)| n).sum();
    assert_eq!((w.folded.addresses.counts.len(), addresses), (3, 20));
    assert_eq!(
        w.folded.events.counts,
        [("GetCallerIdentity".to_owned(), 20)]
    );
    assert_eq!(w.folded.agents.counts[0].1, 20);
    let summary = delivery(&t, &w.id, ChannelKind::Webhook);
    assert!(store.plan_summary(w, &[summary], None).await.unwrap());
}

/// The same events again by other paths: not counted twice, whether they were stored or
/// folded, inside the window or after it closed.
async fn a_repeat_by_another_path_is_not_counted_twice(store: &SqlStore) {
    let t = cooling_token(store).await;
    store
        .record_group(&flood(&t.id, 0, 3, "eventbridge"))
        .await
        .unwrap();
    store
        .record_group(&flood(&t.id, 3, 7, "eventbridge"))
        .await
        .unwrap();
    assert_eq!(store.count_hits(&t.id).await.unwrap(), 11);
    assert_eq!(store.list_hits(&t.id, 100, 0).await.unwrap().len(), 4);

    // Inside the window: stored ones (0..3) and folded ones (3..10), plus two new uses.
    let again = store
        .record_group(&flood(&t.id, 0, 12, "s3"))
        .await
        .unwrap();
    assert_eq!(again.new.iter().filter(|n| **n).count(), 2);
    assert!(again.new[10] && again.new[11] && again.folded[10]);
    assert_eq!(store.count_hits(&t.id).await.unwrap(), 13);

    // The window closes and is summarized; the repeats come a third time, by CloudWatch Logs.
    let w = store.closed_windows(CLOSES).await.unwrap().remove(0);
    assert_eq!(w.folded.count, 9);
    let summary = delivery(&t, &w.id, ChannelKind::Webhook);
    assert!(store.plan_summary(&w, &[summary], None).await.unwrap());
    let mut late = flood(&t.id, 0, 12, "cloudwatch-logs");
    for h in &mut late {
        h.received_at = CLOSES + 10;
    }
    let after = store.record_group(&late).await.unwrap();
    assert_eq!(after.new, [false; 12], "all repeats");
    assert_eq!(store.count_hits(&t.id).await.unwrap(), 13);
    // A new use after the close is stored and alerts: no window holds it.
    let mut fresh = flood(&t.id, 50, 1, "cloudwatch-logs");
    fresh[0].received_at = CLOSES + 10;
    let r = store.record_group(&fresh).await.unwrap();
    assert_eq!((r.new[0], r.folded[0], r.to_plan), (true, false, 1));
    assert_eq!(store.count_hits(&t.id).await.unwrap(), 14);

    // Retention prunes the folded hashes with the hits of their time.
    store.delete_hits_before(i64::MAX).await.unwrap();
    assert_eq!(store.count_hits(&t.id).await.unwrap(), 0);
}

/// A summary read before more uses were folded into its window is not claimed: the next round
/// reads the window afresh, so the folded count it sends is whole.
async fn a_fold_after_the_read_defers_the_summary(store: &SqlStore) {
    let t = cooling_token(store).await;
    store
        .record_group(&flood(&t.id, 0, 3, "eventbridge"))
        .await
        .unwrap();
    store
        .record_group(&flood(&t.id, 3, 2, "eventbridge"))
        .await
        .unwrap();
    let stale = store.closed_windows(CLOSES).await.unwrap().remove(0);
    store
        .record_group(&flood(&t.id, 5, 1, "eventbridge"))
        .await
        .unwrap();
    let summary = delivery(&t, &stale.id, ChannelKind::Webhook);
    assert!(!store
        .plan_summary(&stale, std::slice::from_ref(&summary), None)
        .await
        .unwrap());
    let w = store.closed_windows(CLOSES).await.unwrap().remove(0);
    assert_eq!(w.folded.count, 3);
    assert!(store.plan_summary(&w, &[summary], None).await.unwrap());
}

/// Outside a window nothing is folded, however many uses come.
async fn no_window_no_folding(store: &SqlStore) {
    store.set_stored_hits_per_window(1);
    let t = token(1_000);
    store.insert_token(&t).await.unwrap();
    let r = store
        .record_group(&flood(&t.id, 0, 20, "sensor"))
        .await
        .unwrap();
    assert_eq!(r.new, [true; 20]);
    assert_eq!(r.folded, [false; 20]);
    assert_eq!(r.to_plan, 20);
    assert_eq!(store.list_hits(&t.id, 100, 0).await.unwrap().len(), 20);
}

/// One group over many tokens whose windows are all full (more than one statement's worth of
/// windows: 70 is 64, 4 and 2): each window counts exactly its own folded uses.
async fn a_group_over_many_full_windows_counts_each_its_own(store: &SqlStore) {
    let mut tokens = Vec::new();
    for _ in 0..70 {
        tokens.push(cooling_token(store).await);
    }
    let hits_of = |k: usize, t: &TokenRecord, from: i64, n: i64| -> Vec<HitRecord> {
        (from..from + n)
            .map(|i| hit(&t.id, &format!("many-{k}-{i}"), 200 + i))
            .collect()
    };
    let fill: Vec<HitRecord> = (tokens.iter().enumerate())
        .flat_map(|(k, t)| hits_of(k, t, 0, BUDGET as i64))
        .collect();
    let r = store.record_group(&fill).await.unwrap();
    assert!(r.new.iter().all(|n| *n) && r.folded.iter().all(|f| !*f));
    // Token k gets k % 4 + 1 uses past its budget, all in this one group.
    let past: Vec<HitRecord> = (tokens.iter().enumerate())
        .flat_map(|(k, t)| hits_of(k, t, 10, k as i64 % 4 + 1))
        .collect();
    let r = store.record_group(&past).await.unwrap();
    assert!(r.new.iter().all(|n| *n), "every use counted");
    assert!(r.folded.iter().all(|f| *f), "every use folded");
    let closed = store.closed_windows(CLOSES).await.unwrap();
    assert_eq!(closed.len(), tokens.len());
    for (k, t) in tokens.iter().enumerate() {
        let w = closed.iter().find(|w| w.token_id == t.id).unwrap();
        let n = k as i64 % 4 + 1;
        assert_eq!(
            (
                w.hits,
                w.folded.count,
                w.folded.first_event_time,
                w.folded.last_event_time
            ),
            (BUDGET, n as u64, Some(210), Some(209 + n)),
            "token {k}"
        );
        assert_eq!(
            store.count_hits(&t.id).await.unwrap(),
            1 + BUDGET + n as u64
        );
    }
}

canarykeys_testkit::on_both_backends!(
    uses_past_the_budget_are_folded,
    a_repeat_by_another_path_is_not_counted_twice,
    a_fold_after_the_read_defers_the_summary,
    no_window_no_folding,
    a_group_over_many_full_windows_counts_each_its_own,
);
