//! The store's contract, as named tests that each run on both backends (`sqlite::<name>` on a
//! temp file, `postgres::<name>` on a fresh database from `CANARYKEYS_TEST_POSTGRES_URL`, default
//! the machine's trust-auth server). A missing PostgreSQL fails the tests: both backends are
//! supported, so both are tested.

use canarykeys_core::{AccessKeyId, AccountId, TokenId};
use canarykeys_store::{
    AlertPlan, ChannelKind, ChannelSwitches, HitStore, OutboxStore, SettingsStore, SqlStore,
    StoreError, TokenRecord, TokenStore,
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
    assert!(store.delete_token(&a.id).await.unwrap());
    assert!(!store.delete_token(&a.id).await.unwrap());
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
    store.delete_token(&expiring.id).await.unwrap();
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

canarykeys_testkit::on_both_backends!(
    tokens,
    lookups,
    hits,
    outbox_plans_claims_and_health,
    delete_keeps_hits_and_alerts,
    expiry,
    retention,
    settings,
);

/// Claims every due lane (up to ten rows each), flattened.
async fn claim(store: &SqlStore, now: i64) -> Vec<canarykeys_store::DeliveryRecord> {
    let lanes = store.claim_lanes(now, 1_000, 10, 10).await.unwrap();
    lanes.into_iter().flatten().collect()
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
    assert!(store
        .plan_alert(second, &a.id, &AlertPlan::Group)
        .await
        .unwrap());
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

    // The window: not closed before its end, closed after; the summary takes the grouped alert.
    assert!(store.closed_windows(4_999).await.unwrap().is_empty());
    assert_eq!(
        store.closed_windows(5_000).await.unwrap(),
        vec![a.id.clone()]
    );
    let grouped = store.grouped_alerts(&a.id).await.unwrap();
    assert_eq!(grouped.len(), 1);
    let summary = delivery(a, "summary-1", ChannelKind::Webhook);
    let ids = [grouped[0].alert_id.clone()];
    assert!(store
        .plan_summary(&a.id, "summary-1", &ids, &[summary], Some(9_000))
        .await
        .unwrap());
    assert!(store.grouped_alerts(&a.id).await.unwrap().is_empty());
    // A second worker that read the same grouped alerts writes nothing.
    let late = delivery(a, "summary-2", ChannelKind::Webhook);
    assert!(!store
        .plan_summary(&a.id, "summary-2", &ids, &[late], Some(9_000))
        .await
        .unwrap());

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
