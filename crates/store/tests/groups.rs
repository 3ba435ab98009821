//! Large hit groups, on both backends: a group of more hits than one multi-row statement holds
//! (PostgreSQL sends the whole group as one JSON parameter, SQLite in chunks of up to 64 rows),
//! with hostile text in every field, repeats and a token that is gone scattered through it. Each
//! hit is told apart in order, every stored field reads back as it was sent, and each new hit
//! has its one alert row. And a group over tokens in and out of their cooldown windows, whose
//! hits each go to their own token's window or alert row.

#[allow(dead_code)]
mod support;

use canarykeys_store::{
    AlertPlan, ChannelKind, HitRecord, HitStore, OutboxStore, SqlStore, TokenStore,
};
use support::{delivery, hit, token};

/// Text a record may carry: quotes, backslashes, JSON and SQL syntax, control characters,
/// separators JavaScript treats as line ends, and characters outside the BMP.
fn hostile(i: usize) -> String {
    format!("\"'\\{i}\\\\u0041 \u{1}\u{7f}\u{2028}\u{2029} ); DROP TABLE hits; -- {{\"a\":[1]}} 🐦 $1 ?")
}

async fn a_large_group_with_hostile_text_repeats_and_a_gone_token(store: &SqlStore) {
    let live = token(1_000);
    store.insert_token(&live).await.unwrap();
    let gone = token(2_000);
    // Stored before: the group's repeats of these are not new.
    let before: Vec<HitRecord> = (0..10)
        .map(|i| hit(&live.id, &format!("seen-{i}"), i))
        .collect();
    store.record_group(&before).await.unwrap();

    let mut group = Vec::new();
    let mut expect_new = Vec::new();
    let mut expect_gone = Vec::new();
    for i in 0..150 {
        let mut h = match i % 15 {
            // A repeat of an event stored before, with a fresh row id.
            7 => {
                let mut h = hit(&live.id, &format!("seen-{}", i % 10), 5);
                h.id = format!("again-{i}");
                h
            }
            // A token that is in neither table.
            11 => hit(&gone.id, &format!("gone-{i}"), 5),
            _ => hit(
                &live.id,
                &format!("new-{i}-{}", hostile(i)),
                1_000 + i as i64,
            ),
        };
        let (new, is_gone) = (i % 15 != 7 && i % 15 != 11, i % 15 == 11);
        h.user_agent = hostile(i);
        h.event_name = hostile(i + 1);
        h.note = Some(hostile(i + 2));
        h.error_message = (i % 2 == 0).then(|| hostile(i + 3));
        h.raw = format!("{{\"eventID\":\"{i}\",\"userAgent\":{:?}}}", hostile(i));
        group.push(h);
        expect_new.push(new);
        expect_gone.push(is_gone);
    }
    let recorded = store.record_group(&group).await.unwrap();
    assert_eq!(recorded.new, expect_new);
    assert_eq!(recorded.gone, expect_gone);

    let stored = store.list_hits(&live.id, 1_000, 0).await.unwrap();
    let new = expect_new.iter().filter(|n| **n).count();
    assert_eq!(stored.len(), 10 + new);
    // One alert row per new hit, waiting for the planner (no window is open).
    assert_eq!(store.count_pending_alerts().await.unwrap(), 10 + new as u64);
    for (h, _) in group.iter().zip(&expect_new).filter(|(_, n)| **n) {
        let back = stored.iter().find(|s| s.id == h.id).expect("stored");
        assert_eq!(back, h, "every field reads back as sent");
    }
}

/// A hit of `token` from `address`.
fn from(token: &canarykeys_core::TokenId, event: &str, address: &str) -> HitRecord {
    let mut h = hit(token, event, 200);
    h.source_ip = address.into();
    h
}

/// One group over a token in its cooldown window and one never alerted, then a second group
/// into that window: each hit goes to its own token's window or alert row, and the window's
/// distinct addresses hold every group's (PostgreSQL reads them in the hits' statement).
async fn a_group_over_tokens_in_and_out_of_windows(store: &SqlStore) {
    let (cooling, quiet) = (token(1_000), token(2_000));
    store.insert_token(&cooling).await.unwrap();
    store.insert_token(&quiet).await.unwrap();
    store
        .record_group(&[hit(&cooling.id, "opens", 100)])
        .await
        .unwrap();
    let first = store.new_alerts(10).await.unwrap().remove(0).alert_id;
    let send = AlertPlan::Send {
        deliveries: vec![delivery(&cooling, &first, ChannelKind::Webhook)],
        cooldown_until: Some(1_000_000),
    };
    assert!(store.plan_alert(&first, &cooling.id, &send).await.unwrap());

    let group = [
        from(&cooling.id, "w-1", "198.51.100.1"),
        from(&quiet.id, "q-1", "198.51.100.9"),
        from(&cooling.id, "w-2", "198.51.100.2"),
        // A repeat of the first use, with a fresh row id (as the server gives every hit).
        HitRecord {
            id: "again-opens".into(),
            ..hit(&cooling.id, "opens", 100)
        },
    ];
    let recorded = store.record_group(&group).await.unwrap();
    assert_eq!(recorded.new, [true, true, true, false]);
    assert_eq!(recorded.windowed, [true, false, true, false]);
    assert_eq!(
        recorded.to_plan, 1,
        "the quiet token's hit alone is planned"
    );
    let pending = store.new_alerts(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].hit.event_id, "q-1");

    let again = store
        .record_group(&[from(&cooling.id, "w-3", "198.51.100.3")])
        .await
        .unwrap();
    assert_eq!((again.windowed, again.to_plan), (vec![true], 0));
    let closed = store.closed_windows(1_000_000).await.unwrap();
    assert_eq!(closed.len(), 1);
    let w = &closed[0];
    assert_eq!((&w.token_id, w.hits), (&cooling.id, 3));
    let mut addresses = w.addresses.values.clone();
    addresses.sort();
    assert_eq!(addresses, ["198.51.100.1", "198.51.100.2", "198.51.100.3"]);
    assert_eq!(w.last_hit.as_ref().unwrap().event_id, "w-3");
}

canarykeys_testkit::on_both_backends!(
    a_large_group_with_hostile_text_repeats_and_a_gone_token,
    a_group_over_tokens_in_and_out_of_windows,
);
