//! Session decoys with the `iam` minter against moto, on SQLite and PostgreSQL: the decoy
//! user's long-term key stays with the server and `sts:GetSessionToken` issues what is handed
//! out; CloudTrail read by the S3 poller makes the session's uses hits (also after its expiry and
//! after a refresh), while the server's own GetSessionToken is recorded as an issue, not a hit.

use std::sync::Arc;
use std::time::Duration;

use canarykeys_aws::testing::Moto;
use canarykeys_aws::{sdk_config, S3TrailBucket};
use canarykeys_core::cloudtrail::Limits;
use canarykeys_server::config::{DecoyAccountConfig, MinterKind, Secret};
use canarykeys_server::jobs::s3_poller::S3Poller;
use canarykeys_server::metrics::Metrics;
use canarykeys_server::services::IngestService;
use canarykeys_store::{SqlStore, Store};
use canarykeys_testkit::pollers::{alert_total, put, s3_client, trail_key, BUCKET};
use canarykeys_testkit::{id_and_secret, spawn_app_with, TestApp, TestDatabase};
use serde_json::{json, Value};

async fn iam_app(moto: &Moto, database_url: Option<String>) -> TestApp {
    let url = moto.url();
    spawn_app_with(move |c| {
        c.minter.kind = MinterKind::Iam;
        c.minter.session_duration = Duration::from_secs(3600);
        c.minter.accounts = vec![DecoyAccountConfig {
            account_id: Some("123456789012".into()),
            endpoint_url: Some(url),
            access_key_id: Some("testing".into()),
            secret_access_key: Some(Secret::new("testing")),
            ..DecoyAccountConfig::default()
        }];
        c.database_url = database_url;
    })
    .await
}

/// A CloudTrail record of `key` used by the decoy user, as CloudTrail logs session calls.
fn used(created: &Value, key: &str, event_id: &str, minute: u32) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": key,
            "userName": created["aws"]["username"], "accountId": "123456789012",
            "sessionContext": {"attributes": {"mfaAuthenticated": "false"}}},
        "eventTime": format!("2026-11-28T10:{minute:02}:00Z"),
        "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets", "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.9", "userAgent": "aws-cli/2", "eventID": event_id,
        "eventType": "AwsApiCall", "recipientAccountId": "123456789012"
    })
}

async fn scenario(moto: Moto, app: TestApp, store_url: String) {
    let s3 = s3_client(&moto).await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let resp = app
        .post_token(&json!({"kind": "aws_session", "memo": "ci", "email": "soc@example.com"}))
        .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let (id, manage) = id_and_secret(&created);
    assert_eq!(created["keys_valid_at_aws"], true);
    let issued = created["aws"]["access_key_id"].as_str().unwrap().to_owned();
    assert!(created["aws"]["session_token"].is_string());
    // The user's own long-term key is in IAM, and is not what was handed out.
    let iam = aws_sdk_iam::Client::new(&sdk_config(&moto.settings()).await);
    let user = created["aws"]["username"].as_str().unwrap();
    let keys = iam.list_access_keys().user_name(user).send().await.unwrap();
    let long_term = keys.access_key_metadata()[0]
        .access_key_id()
        .unwrap()
        .to_owned();
    assert_ne!(long_term, issued);
    // What GetSessionToken answered is what the holder is shown later.
    let shown: Value = app
        .get_authed(&format!("/api/v1/tokens/{id}"), &manage)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["aws"]["access_key_id"], issued.as_str());

    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&store_url).await.unwrap());
    let ingest = IngestService::new(
        store.clone(),
        Limits::default(),
        Arc::new(Metrics::default()),
    );
    let bucket = Arc::new(S3TrailBucket::new(&sdk_config(&moto.settings()).await));
    let mut poller = S3Poller::new(
        bucket,
        store.clone(),
        ingest,
        BUCKET.into(),
        "AWSLogs/".into(),
        1 << 20,
    );
    // The server's own call, with the long-term key, answering the key it issued.
    let own = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": long_term, "userName": user,
            "accountId": "123456789012"},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "sts.amazonaws.com",
        "eventName": "GetSessionToken", "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.1", "userAgent": "aws-sdk-rust", "eventID": "issue-1",
        "eventType": "AwsApiCall", "recipientAccountId": "123456789012",
        "responseElements": {"credentials": {"accessKeyId": issued,
            "expiration": "Nov 28, 2026, 11:00:00 AM"}}
    });
    put(
        &s3,
        &trail_key("us-east-1", "20261128T1000Z", "a"),
        &[own, used(&created, &issued, "use-1", 1)],
    )
    .await;
    let r = poller.round().await.unwrap();
    assert_eq!(r.new_hits, 1);
    assert_eq!(alert_total(&app, &created).await, 1);

    // After the session expired: a record of it is still a hit.
    app.advance(Duration::from_secs(2 * 3600));
    put(
        &s3,
        &trail_key("us-east-1", "20261128T1005Z", "b"),
        &[used(&created, &issued, "use-2", 6)],
    )
    .await;
    assert_eq!(poller.round().await.unwrap().new_hits, 1);

    // After a refresh: the old key and the new one both are the token's.
    let refresh_secret = created["refresh_secret"].as_str().unwrap();
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/tokens/{id}/session")))
        .bearer_auth(refresh_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let fresh: Value = resp.json().await.unwrap();
    let renewed = fresh["aws"]["access_key_id"].as_str().unwrap().to_owned();
    put(
        &s3,
        &trail_key("us-east-1", "20261128T1010Z", "c"),
        &[
            used(&created, &issued, "use-3", 11),
            used(&created, &renewed, "use-4", 12),
        ],
    )
    .await;
    assert_eq!(poller.round().await.unwrap().new_hits, 2);
    assert_eq!(alert_total(&app, &created).await, 4);
    app.stop().await;
}

#[tokio::test]
async fn sts_sessions_on_sqlite() {
    let moto = Moto::start();
    let app = iam_app(&moto, None).await;
    let url = format!("sqlite:{}", app.data_dir.join("canarykeys.db").display());
    scenario(moto, app, url).await;
}

#[tokio::test]
async fn sts_sessions_on_postgres() {
    let db = TestDatabase::create("ck_session_sts").await;
    let moto = Moto::start();
    let app = iam_app(&moto, Some(db.url().to_owned())).await;
    scenario(moto, app, db.url().to_owned()).await;
    db.drop_database().await;
}
