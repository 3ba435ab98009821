//! The store's contract, as named tests that each run on both backends (`sqlite::<name>` on a
//! temp file, `postgres::<name>` on a fresh database from `CANARYKEYS_TEST_POSTGRES_URL`, default
//! the machine's trust-auth server). A missing PostgreSQL fails the tests: both backends are
//! supported, so both are tested.

use canarykeys_core::{AccessKeyId, AccountId, TokenId};
use canarykeys_store::{
    AlertPlan, ChannelKind, ChannelSwitches, HitStore, OutboxStore, SettingsStore, SqlStore,
    StoreError, TokenRecord, TokenStore, WindowHit,
};

mod support;

use support::{delivery, hit, token};

/// Tokens: conflicts on id and key, reads, newest-first listing, channel switches.
async fn tokens(store: &SqlStore) {
    let a = token(1_000);
    let b = token(2_000);
    store.insert_token(&a).await.unwrap();
    store.insert_token(&b).await.unwrap();

    // Same id again, and same access key id under a new id: both are conflicts.
    assert!(matches!(
        store.insert_token(&a).await,
        Err(StoreError::Conflict)
    ));
    let mut dup_key = token(3_000);
    dup_key.access_key_id = a.access_key_id.clone();
    assert!(matches!(
        store.insert_token(&dup_key).await,
        Err(StoreError::Conflict)
    ));

    let got = store.get_token(&a.id).await.unwrap().unwrap();
    assert_eq!(got.access_key_id, a.access_key_id);
    assert_eq!(got.memo, a.memo);
    assert_eq!(got.email, a.email);
    assert_eq!(got.webhook, a.webhook);
    assert!(got.manage_hash == a.manage_hash);
    assert_eq!(got.username, a.username);
    assert!(store
        .get_token(&TokenId::generate())
        .await
        .unwrap()
        .is_none());

    let all: Vec<_> = store
        .list_tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(all, vec![b.id.clone(), a.id.clone()], "newest first");

    assert!(store
        .set_channels(
            &a.id,
            ChannelSwitches {
                email: Some(false),
                webhook: None
            }
        )
        .await
        .unwrap());
    let got = store.get_token(&a.id).await.unwrap().unwrap();
    assert!(!got.email_enabled && got.webhook_enabled);
    assert!(!store
        .set_channels(&TokenId::generate(), ChannelSwitches::default())
        .await
        .unwrap());
}

async fn lookups(store: &SqlStore) {
    let a = token(1_000);
    let b = token(2_000);
    store.insert_token(&a).await.unwrap();
    store.insert_token(&b).await.unwrap();

    // Lookups by key and by account + user name.
    assert_eq!(
        store
            .find_token_by_key(&b.access_key_id)
            .await
            .unwrap()
            .unwrap()
            .id,
        b.id
    );
    let other_key = AccessKeyId::generate_for(b.account_id);
    assert!(store.find_token_by_key(&other_key).await.unwrap().is_none());
    assert_eq!(
        store
            .find_token_by_user(&b.account_id, &b.username)
            .await
            .unwrap()
            .unwrap()
            .id,
        b.id
    );
    let elsewhere = AccountId::parse("999999999999").unwrap();
    assert!(store
        .find_token_by_user(&elsewhere, &b.username)
        .await
        .unwrap()
        .is_none());
}

async fn hits(store: &SqlStore) {
    let a = token(1_000);
    store.insert_token(&a).await.unwrap();
    // Hits: insert-or-ignore by event id (also within one batch), one alert row per new hit.
    assert_eq!(store.latest_hit_time(&a.id).await.unwrap(), None);
    let first = store
        .record_hits(&[hit(&a.id, "e1", 10), hit(&a.id, "e1", 10)])
        .await
        .unwrap();
    assert_eq!(
        first,
        [true, false],
        "same event twice in a batch is one hit"
    );
    let mut again = hit(&a.id, "e1", 10);
    again.id = "h-e1-redelivered".into();
    again.path = "eventbridge".into();
    assert_eq!(
        store.record_hits(&[again]).await.unwrap(),
        [false],
        "a second path is a duplicate"
    );
    assert_eq!(
        store
            .record_hits(&[hit(&a.id, "e2", 30), hit(&a.id, "e3", 20)])
            .await
            .unwrap(),
        [true, true]
    );
    assert_eq!(store.count_pending_alerts().await.unwrap(), 3);
    assert_eq!(store.latest_hit_time(&a.id).await.unwrap(), Some(30));
    let hits = store.list_hits(&a.id, 2, 0).await.unwrap();
    assert_eq!(
        hits.iter().map(|h| h.event_id.as_str()).collect::<Vec<_>>(),
        ["e2", "e3"]
    );
    assert_eq!(
        hits[0].user_agent, "<script>alert(1)</script>",
        "stored as received"
    );
    assert_eq!(hits[0].tls_host.as_deref(), Some("sts.amazonaws.com"));
    assert_eq!(store.list_hits(&a.id, 2, 2).await.unwrap().len(), 1);
    assert_eq!(store.count_hits(&a.id).await.unwrap(), 3);
    let e1 = store
        .list_hits(&a.id, 10, 0)
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.event_id == "e1")
        .unwrap();
    assert_eq!(e1.path, "cloudwatch-logs", "the earliest arrival is kept");

    // Per-day counts: event times 10, 20, 30 ms are all on day 0.
    assert_eq!(store.hits_per_day(&a.id, 0).await.unwrap(), vec![(0, 3)]);

    // A group mixing a new hit, a repeat and a hit of a token that is gone falls short of its
    // row count; each is still told apart, and only the new one waits for the planner.
    let mut repeat = hit(&a.id, "e2", 30);
    repeat.id = "h-e2-again".into();
    let gone = token(2_000);
    let recorded = store
        .record_group(&[hit(&a.id, "e4", 40), repeat, hit(&gone.id, "e5", 50)])
        .await
        .unwrap();
    assert_eq!(recorded.new, [true, false, false]);
    assert_eq!(recorded.to_plan, 1);
    assert_eq!(store.count_pending_alerts().await.unwrap(), 4);
}

/// Three new hits for `a` (e1, e2, e3), whose alerts the outbox and delete tests start from.
async fn three_hits(store: &SqlStore, a: &TokenRecord) {
    store.insert_token(a).await.unwrap();
    let events = [
        hit(&a.id, "e1", 10),
        hit(&a.id, "e2", 30),
        hit(&a.id, "e3", 20),
    ];
    assert_eq!(
        store.record_hits(&events).await.unwrap(),
        [true, true, true]
    );
}

async fn outbox_plans_claims_and_health(store: &SqlStore) {
    let a = token(1_000);
    three_hits(store, &a).await;
    outbox(store, &a).await;
}

async fn delete_keeps_hits_and_alerts(store: &SqlStore) {
    let a = token(1_000);
    let b = token(2_000);
    three_hits(store, &a).await;
    store.insert_token(&b).await.unwrap();
    // Deleting a token keeps its hits, alerts and queued deliveries, and a copy of the token
    // (without its sealed secret) for the messages still to be sent.
    let pending = store.list_deliveries(&a.id, 10).await.unwrap().len();
    assert!(store.delete_token(&a.id, 5_000).await.unwrap());
    assert!(!store.delete_token(&a.id, 5_000).await.unwrap());
    assert!(store.get_token(&a.id).await.unwrap().is_none());
    assert_eq!(store.count_hits(&a.id).await.unwrap(), 3);
    assert_eq!(store.count_pending_alerts().await.unwrap(), 3);
    assert_eq!(
        store.list_deliveries(&a.id, 10).await.unwrap().len(),
        pending
    );
    let gone = store.get_deleted_token(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (gone.memo.as_str(), gone.secret_sealed.as_str()),
        (a.memo.as_str(), "")
    );
    assert!(store.get_token(&b.id).await.unwrap().is_some());
    // A deleted token's alert can still be planned and sent.
    let late = store.new_alerts(10).await.unwrap();
    let send = AlertPlan::Send {
        deliveries: vec![delivery(&a, &late[0].alert_id, ChannelKind::Email)],
        cooldown_until: None,
    };
    assert!(store
        .plan_alert(&late[0].alert_id, &a.id, &send)
        .await
        .unwrap());
}

async fn expiry(store: &SqlStore) {
    // Expiry: only tokens whose time has come.
    let mut expiring = token(4_000);
    expiring.expires_at = Some(10_000);
    store.insert_token(&expiring).await.unwrap();
    assert!(store.expired_tokens(9_999).await.unwrap().is_empty());
    assert_eq!(
        store.expired_tokens(10_000).await.unwrap()[0].id,
        expiring.id
    );
    store.delete_token(&expiring.id, 10_000).await.unwrap();
}

async fn retention(store: &SqlStore) {
    let b = token(2_000);
    store.insert_token(&b).await.unwrap();
    // Retention: hits before a time go, with their alerts.
    store
        .record_hits(&[hit(&b.id, "old", 1), hit(&b.id, "recent", 1_000)])
        .await
        .unwrap();
    assert_eq!(store.delete_hits_before(500).await.unwrap(), 1);
    assert_eq!(store.count_hits(&b.id).await.unwrap(), 1);
}

async fn settings(store: &SqlStore) {
    // A setting is chosen once.
    assert_eq!(
        store.setting_or_insert("k", "first").await.unwrap(),
        "first"
    );
    assert_eq!(
        store.setting_or_insert("k", "second").await.unwrap(),
        "first"
    );
    assert_eq!(store.get_setting("absent").await.unwrap(), None);
    store.put_setting("cursor", "a").await.unwrap();
    store.put_setting("cursor", "b").await.unwrap();
    assert_eq!(
        store.get_setting("cursor").await.unwrap().as_deref(),
        Some("b")
    );
}

/// Keyset pages list every token once, in `list_tokens`' order, ties on the creation time
/// included; and the email count counts only switched-on email channels.
async fn tokens_in_pages(store: &SqlStore) {
    use canarykeys_store::ConsoleStore;
    for (i, t) in [1, 2, 2, 2, 3, 3, 4].into_iter().enumerate() {
        let mut tok = token(t);
        if i == 0 {
            tok.email = None;
        }
        if i == 1 {
            tok.email_enabled = false;
        }
        store.insert_token(&tok).await.unwrap();
    }
    let all: Vec<String> = store
        .list_tokens()
        .await
        .unwrap()
        .iter()
        .map(|t| t.id.to_string())
        .collect();
    let mut paged = Vec::new();
    let mut last: Option<canarykeys_store::TokenRecord> = None;
    loop {
        let page = store
            .tokens_after(last.as_ref().map(|t| (t.created_at, &t.id)), 2, 0)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        paged.extend(page.iter().map(|t| t.id.to_string()));
        match page.last() {
            Some(t) => last = Some(t.clone()),
            None => break,
        }
    }
    assert_eq!(paged, all);
    // An offset skips that many more after the cursor.
    let first = &store.tokens_after(None, 1, 0).await.unwrap()[0];
    let skipped = store
        .tokens_after(Some((first.created_at, &first.id)), 2, 3)
        .await
        .unwrap();
    assert_eq!(
        skipped.iter().map(|t| t.id.to_string()).collect::<Vec<_>>(),
        all[4..6]
    );
    assert_eq!(store.count_email_alerting().await.unwrap(), 5);
    assert_eq!(store.count_tokens().await.unwrap(), 7);
    // The overview's counts: one expired, one expiring within the horizon, the rest open.
    for expires in [50, 500, 5_000] {
        let mut tok = token(9);
        tok.expires_at = Some(expires);
        store.insert_token(&tok).await.unwrap();
    }
    let counts = store.token_counts(100, 1_000).await.unwrap();
    assert_eq!(
        (counts.total, counts.active, counts.expiring),
        (10, 9, 2),
        "{counts:?}"
    );
}

canarykeys_testkit::on_both_backends!(
    tokens_in_pages,
    tokens,
    lookups,
    hits,
    outbox_plans_claims_and_health,
    delete_keeps_hits_and_alerts,
    expiry,
    retention,
    settings,
    a_flood_in_a_window_is_one_row,
);

/// Claims every due lane (up to ten rows each), flattened.
async fn claim(store: &SqlStore, now: i64) -> Vec<canarykeys_store::DeliveryRecord> {
    let lanes = store.claim_lanes(now, 1_000, 10, 10).await.unwrap();
    lanes.into_iter().flatten().collect()
}

/// 10,000 hits inside one open window, committed in groups as group commit sends them, leave
/// one window row counting them all and nothing for the planner; closing reads that one row.
async fn a_flood_in_a_window_is_one_row(store: &SqlStore) {
    // Every hit stored here: folding past a budget has its own tests (folding.rs).
    store.set_stored_hits_per_window(u64::MAX);
    let t = token(1_000);
    store.insert_token(&t).await.unwrap();
    let opens = store
        .record_group(&[hit(&t.id, "opens", 100)])
        .await
        .unwrap();
    assert_eq!(opens.to_plan, 1, "the first hit is the planner's");
    let first = store.new_alerts(10).await.unwrap().remove(0).alert_id;
    let send = AlertPlan::Send {
        deliveries: vec![delivery(&t, &first, ChannelKind::Webhook)],
        cooldown_until: Some(1_000_000),
    };
    assert!(store.plan_alert(&first, &t.id, &send).await.unwrap());
    for group in 0..10 {
        let hits: Vec<_> = (0..1_000)
            .map(|i| {
                let n = group * 1_000 + i;
                let mut h = hit(&t.id, &format!("flood-{n}"), 200 + n);
                h.source_ip = format!("198.51.100.{}", n % 7);
                h
            })
            .collect();
        let recorded = store.record_group(&hits).await.unwrap();
        assert!(recorded.new.iter().all(|n| *n));
        assert_eq!(
            recorded.to_plan, 0,
            "hits in an open window need no planning"
        );
    }
    assert_eq!(store.count_pending_alerts().await.unwrap(), 0);
    assert!(store.new_alerts(10).await.unwrap().is_empty());
    assert!(store.closed_windows(999_999).await.unwrap().is_empty());
    let closed = store.closed_windows(1_000_000).await.unwrap();
    assert_eq!(closed.len(), 1, "one row for the whole window");
    let w = &closed[0];
    assert_eq!(w.hits, 10_000);
    assert_eq!((w.first_event_time, w.last_event_time), (200, 10_199));
    // Five addresses named; .5 and .6 are counted (1,428 hits each), not named.
    assert_eq!(w.addresses.values.len(), 5);
    assert_eq!(w.addresses.others, 2 * 1_428);
    assert_eq!(w.events.values, ["GetCallerIdentity"]);
    assert_eq!(w.last_hit.as_ref().unwrap().event_id, "flood-9999");
    let summary = delivery(&t, &w.id, ChannelKind::Webhook);
    assert!(store.plan_summary(w, &[summary], None).await.unwrap());
    assert!(store.closed_windows(i64::MAX).await.unwrap().is_empty());
    assert_eq!(store.list_deliveries(&t.id, 10).await.unwrap().len(), 2);
}

/// The outbox on top of [`three_hits`] for `a` (alerts e1, e2, e3 are new).
async fn outbox(store: &SqlStore, a: &TokenRecord) {
    let new = store.new_alerts(10).await.unwrap();
    assert_eq!(new.len(), 3);
    let (first, second, third) = (&new[0].alert_id, &new[1].alert_id, &new[2].alert_id);
    let send = AlertPlan::Send {
        deliveries: vec![delivery(a, first, ChannelKind::Email)],
        cooldown_until: Some(5_000),
    };
    assert!(store.plan_alert(first, &a.id, &send).await.unwrap());
    assert!(
        !store.plan_alert(first, &a.id, &send).await.unwrap(),
        "planned once"
    );
    assert_eq!(
        store
            .get_token(&a.id)
            .await
            .unwrap()
            .unwrap()
            .alerting
            .cooldown_until,
        Some(5_000)
    );
    let gathered = AlertPlan::Group(WindowHit::from(&new[1].hit));
    assert!(store.plan_alert(second, &a.id, &gathered).await.unwrap());
    let ignore = AlertPlan::Ignore {
        reason: "ignored source".into(),
    };
    assert!(store.plan_alert(third, &a.id, &ignore).await.unwrap());
    assert_eq!(store.count_pending_alerts().await.unwrap(), 0);
    assert!(store
        .list_hits(&a.id, 10, 0)
        .await
        .unwrap()
        .iter()
        .any(|h| h.suppressed.as_deref() == Some("ignored source")));

    // The window: not closed before its end, closed after; its one row holds the summary.
    assert!(store.closed_windows(4_999).await.unwrap().is_empty());
    let closed = store.closed_windows(5_000).await.unwrap();
    assert_eq!(closed.len(), 1);
    let w = &closed[0];
    assert_eq!((&w.token_id, w.hits), (&a.id, 1));
    assert_eq!(w.last_hit.as_ref().map(|h| &h.id), Some(&new[1].hit.id));
    let summary = delivery(a, &w.id, ChannelKind::Webhook);
    assert!(store
        .plan_summary(w, &[summary], Some(9_000))
        .await
        .unwrap());
    assert!(store.closed_windows(i64::MAX).await.unwrap().is_empty());
    // A second worker that read the same window writes nothing.
    let late = delivery(a, "summary-2", ChannelKind::Webhook);
    assert!(!store.plan_summary(w, &[late], Some(9_000)).await.unwrap());

    // Claims are leases: a claimed row is not claimed again until the lease runs out.
    let claimed = claim(store, 200).await;
    assert_eq!(claimed.len(), 2);
    assert!(claim(store, 300).await.is_empty());
    assert_eq!(store.next_due().await.unwrap(), Some(1_200));
    assert_eq!(
        claim(store, 1_200).await.len(),
        2,
        "lease ran out: sent again"
    );
    let (email, hook) = (
        &claimed.iter().find(|d| d.channel == "email").unwrap().id,
        &claimed.iter().find(|d| d.channel == "webhook").unwrap().id,
    );
    store
        .mark_retry(email, 5_000, "421 try later")
        .await
        .unwrap();
    store.mark_delivered(hook, 1_300).await.unwrap();
    assert!(claim(store, 4_999).await.is_empty());
    assert_eq!(claim(store, 5_000).await.len(), 1);
    store.mark_failed(email, "550 no such user").await.unwrap();
    assert_eq!(store.next_due().await.unwrap(), None);
    let rows = store.list_deliveries(&a.id, 10).await.unwrap();
    let email_row = rows.iter().find(|d| d.channel == "email").unwrap();
    assert_eq!(
        (email_row.state.as_str(), email_row.attempts),
        ("failed", 2)
    );
    assert_eq!(email_row.last_error.as_deref(), Some("550 no such user"));
    assert_eq!(
        rows.iter()
            .find(|d| d.channel == "webhook")
            .unwrap()
            .delivered_at,
        Some(1_300)
    );

    // Channel health: consecutive permanent failures, reset by a success; switching off.
    assert_eq!(
        store
            .channel_result(&a.id, ChannelKind::Email, true)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .channel_result(&a.id, ChannelKind::Email, true)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .channel_result(&a.id, ChannelKind::Email, false)
            .await
            .unwrap(),
        0
    );
    store
        .disable_channel(&a.id, ChannelKind::Email, "550 no such user")
        .await
        .unwrap();
    let t = store.get_token(&a.id).await.unwrap().unwrap();
    assert!(!t.email_enabled);
    assert_eq!(
        t.alerting.email_disabled_reason.as_deref(),
        Some("550 no such user")
    );
    store
        .set_channels(
            &a.id,
            ChannelSwitches {
                email: Some(true),
                webhook: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_token(&a.id)
            .await
            .unwrap()
            .unwrap()
            .alerting
            .email_disabled_reason,
        None
    );

    assert!(store
        .set_ignore_sources(&a.id, &["198.51.100.0/24".into(), "203.0.113.9/32".into()])
        .await
        .unwrap());
    assert_eq!(
        store
            .get_token(&a.id)
            .await
            .unwrap()
            .unwrap()
            .alerting
            .ignore_sources
            .len(),
        2
    );
}

#[tokio::test]
async fn sqlite_reopens_without_migrating_twice() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let store = SqlStore::connect(&url).await.unwrap();
    store.insert_token(&token(1_000)).await.unwrap();
    store.close().await;
    // Reopening runs no migration twice and keeps the data.
    let store = SqlStore::connect(&url).await.unwrap();
    assert_eq!(store.list_tokens().await.unwrap().len(), 1);
}
