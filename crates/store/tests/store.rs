//! The same behaviour suite against both backends: a temp SQLite file, and a fresh PostgreSQL
//! database on the local server (`CANARYKEYS_TEST_POSTGRES_URL`, default the machine's trust-auth
//! server). A missing PostgreSQL fails the test: both backends are supported, so both are tested.

use canarykeys_core::{
    names::ordinary_user_name, AccessKeyId, AccountId, Email, ManageSecret, Memo, OutputFormat,
    Region, TokenId, TokenKind, WebhookUrl,
};
use canarykeys_store::{
    ChannelSwitches, HitRecord, HitStore, SettingsStore, SqlStore, StoreError, TokenRecord,
    TokenStore,
};
use rand::Rng;

fn token(created_at: i64) -> TokenRecord {
    let account = AccountId::parse("210987654321").unwrap();
    TokenRecord {
        id: TokenId::generate(),
        kind: TokenKind::AwsKeys,
        memo: Memo::parse("web01 /srv/app/.env").unwrap(),
        email: Some(Email::parse("soc@example.com").unwrap()),
        email_enabled: true,
        webhook: Some(WebhookUrl::parse("https://hooks.example.com/x").unwrap()),
        webhook_enabled: true,
        manage_hash: ManageSecret::generate().hash(),
        minter: "local".into(),
        access_key_id: AccessKeyId::generate_for(account),
        secret_sealed: "sealed".into(),
        username: ordinary_user_name(),
        account_id: account,
        region: Region::parse("us-east-1").unwrap(),
        output: OutputFormat::Json,
        created_at,
    }
}

fn hit(token: &TokenId, event_id: &str, t: i64) -> HitRecord {
    HitRecord {
        id: format!("h-{event_id}"),
        token_id: token.clone(),
        event_id: event_id.into(),
        event_time: t,
        received_at: t + 1000,
        event_name: "GetCallerIdentity".into(),
        event_source: "sts.amazonaws.com".into(),
        region: "us-east-1".into(),
        source_ip: "203.0.113.7".into(),
        user_agent: "<script>alert(1)</script>".into(),
        error_code: Some("AccessDenied".into()),
        error_message: None,
        account_id: Some("210987654321".into()),
        access_key_id: None,
        tls_host: Some("sts.amazonaws.com".into()),
        vpc_endpoint_id: None,
        request_id: Some("req-1".into()),
        path: "cloudwatch-logs".into(),
        note: None,
        raw: "{}".into(),
    }
}

async fn suite(store: &SqlStore) {
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

    // Deleting a token takes its hits and alerts with it.
    assert!(store.delete_token(&a.id).await.unwrap());
    assert!(!store.delete_token(&a.id).await.unwrap());
    assert_eq!(store.count_hits(&a.id).await.unwrap(), 0);
    assert_eq!(store.count_pending_alerts().await.unwrap(), 0);
    assert!(store.get_token(&b.id).await.unwrap().is_some());

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

#[tokio::test]
async fn sqlite_backend() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let store = SqlStore::connect(&url).await.unwrap();
    suite(&store).await;
    store.close().await;
    // Reopening runs no migration twice and keeps the data.
    let store = SqlStore::connect(&url).await.unwrap();
    assert_eq!(store.list_tokens().await.unwrap().len(), 1);
}

#[tokio::test]
async fn postgres_backend() {
    let admin_url = std::env::var("CANARYKEYS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin = connect_admin(&admin_url).await;
    let db = format!("ck_test_{}", rand::thread_rng().gen::<u64>());
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&admin)
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').unwrap().0;
    let store = SqlStore::connect(&format!("{base}/{db}")).await.unwrap();
    suite(&store).await;
    store.close().await;
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
}

async fn connect_admin(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is needed for this test at {url} ({e}); set CANARYKEYS_TEST_POSTGRES_URL"
        )
    })
}
