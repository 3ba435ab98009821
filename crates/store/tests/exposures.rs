//! Exposures on both backends: one row per token and source, outbox rows only with the first,
//! later sightings counted, copies of the same event not.

use canarykeys_core::{
    names::ordinary_user_name, AccessKeyId, AccountId, Email, ManageSecret, Memo, OutputFormat,
    Region, TokenId, TokenKind,
};
use canarykeys_store::{
    ChannelKind, ExposureOutcome, ExposureRecord, ExposureSource, ExposureStore, NewDelivery,
    OutboxStore, SqlStore, TokenRecord, TokenStore,
};

fn token() -> TokenRecord {
    let account = AccountId::parse("210987654321").unwrap();
    TokenRecord {
        id: TokenId::generate(),
        kind: TokenKind::AwsKeys,
        memo: Memo::parse("ci runner .env").unwrap(),
        email: Some(Email::parse("soc@example.com").unwrap()),
        email_enabled: true,
        webhook: None,
        webhook_enabled: true,
        manage_hash: ManageSecret::generate().hash(),
        minter: "local".into(),
        access_key_id: AccessKeyId::generate_for(account),
        secret_sealed: "sealed".into(),
        username: ordinary_user_name(),
        account_id: account,
        region: Region::parse("us-east-1").unwrap(),
        output: OutputFormat::Json,
        created_at: 1,
        expires_at: None,
        alerting: Default::default(),
    }
}

fn exposure(t: &TokenRecord, id: &str, source: ExposureSource, r: &str, at: i64) -> ExposureRecord {
    ExposureRecord {
        id: id.into(),
        token_id: t.id.clone(),
        source,
        event_type: "AWS_RISK_CREDENTIALS_EXPOSED".into(),
        last_ref: r.into(),
        description: "<b>found</b>".into(),
        location: (at > 100).then(|| "https://example.com/leak".to_owned()),
        event_time: at,
        first_seen: at,
        last_seen: at,
        seen_count: 1,
        raw: "{}".into(),
    }
}

fn delivery(t: &TokenRecord, message: &str) -> NewDelivery {
    NewDelivery {
        id: format!("d-{message}"),
        token_id: Some(t.id.clone()),
        message_id: message.into(),
        kind: "exposure".into(),
        channel: ChannelKind::Email,
        target: "soc@example.com".into(),
        payload: "{}".into(),
        state: "pending".into(),
        last_error: None,
        created_at: 1,
    }
}

async fn exposures(store: &SqlStore) {
    let t = token();
    store.insert_token(&t).await.unwrap();
    let first = exposure(&t, "x1", ExposureSource::Health, "arn:1", 10);
    let out = store
        .record_exposure(&first, &[delivery(&t, "x1")])
        .await
        .unwrap();
    assert_eq!(out, ExposureOutcome::New);
    // The backup region's copy of the same event: only last_seen moves, no second alert.
    let copy = exposure(&t, "x2", ExposureSource::Health, "arn:1", 20);
    let out = store
        .record_exposure(&copy, &[delivery(&t, "x2")])
        .await
        .unwrap();
    assert_eq!(out, ExposureOutcome::Repeat);
    // A later event adds to the row and fills the location it lacked.
    let later = exposure(&t, "x3", ExposureSource::Health, "arn:2", 300);
    let out = store
        .record_exposure(&later, &[delivery(&t, "x3")])
        .await
        .unwrap();
    assert_eq!(out, ExposureOutcome::Updated);
    // The quarantine path is its own source: its own row and alert.
    let q = exposure(&t, "q1", ExposureSource::Quarantine, "policy", 400);
    let out = store
        .record_exposure(&q, &[delivery(&t, "q1")])
        .await
        .unwrap();
    assert_eq!(out, ExposureOutcome::New);

    let rows = store.list_exposures(&t.id).await.unwrap();
    assert_eq!(rows.len(), 2);
    let health = rows
        .iter()
        .find(|r| r.source == ExposureSource::Health)
        .unwrap();
    assert_eq!(health.id, "x1");
    assert_eq!((health.seen_count, health.last_seen), (2, 300));
    assert_eq!(health.location.as_deref(), Some("https://example.com/leak"));
    assert_eq!(health.description, "<b>found</b>");

    let deliveries = store.list_deliveries(&t.id, 10).await.unwrap();
    let mut messages: Vec<_> = deliveries.iter().map(|d| d.message_id.as_str()).collect();
    messages.sort_unstable();
    assert_eq!(messages, ["q1", "x1"]);

    let (feed, total) = store.exposures_feed(None, 1, 0).await.unwrap();
    assert_eq!((feed.len(), total), (1, 2));
    assert_eq!(feed[0].0.id, "q1");
    assert_eq!(feed[0].1, "ci runner .env");
    let (mine, total) = store.exposures_feed(Some(&t.id), 10, 1).await.unwrap();
    assert_eq!((mine.len(), total), (1, 2));

    // Deleting the token takes its exposures along.
    assert!(store.delete_token(&t.id, 5_000).await.unwrap());
    assert!(store.list_exposures(&t.id).await.unwrap().is_empty());
}

/// Retention: an exposure last seen before the cut goes, one seen since (even if first seen
/// long ago) stays, and the count says how many went.
async fn retention(store: &SqlStore) {
    let old = token();
    let renewed = token();
    store.insert_token(&old).await.unwrap();
    store.insert_token(&renewed).await.unwrap();
    let stale = exposure(&old, "s1", ExposureSource::Health, "arn:s", 10);
    store.record_exposure(&stale, &[]).await.unwrap();
    let q = exposure(&renewed, "r1", ExposureSource::Quarantine, "policy", 20);
    store.record_exposure(&q, &[]).await.unwrap();
    // The next safety-net round sees the policy again: only last_seen moves, to 900.
    let again = exposure(&renewed, "r2", ExposureSource::Quarantine, "policy", 900);
    let out = store.record_exposure(&again, &[]).await.unwrap();
    assert_eq!(out, ExposureOutcome::Repeat);

    assert_eq!(
        store.delete_exposures_before(10).await.unwrap(),
        0,
        "strictly before"
    );
    assert_eq!(store.delete_exposures_before(500).await.unwrap(), 1);
    assert!(store.list_exposures(&old.id).await.unwrap().is_empty());
    let kept = store.list_exposures(&renewed.id).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].id.as_str(), kept[0].first_seen), ("r1", 20));
    assert_eq!(store.delete_exposures_before(500).await.unwrap(), 0);
}

canarykeys_testkit::on_both_backends!(exposures, retention);
