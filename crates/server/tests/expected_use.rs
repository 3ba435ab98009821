//! A decoy with an expected-use window (`expected_use: until_confirm`, a CI run's), on SQLite
//! and PostgreSQL, on the test clock: uses before the confirm are recorded but not alerted; the
//! confirm sends them as one digest; later uses alert at once; a window never confirmed sends
//! its digest at the expiry.

use std::time::Duration;

use canarykeys_server::config::{Config, Secret};
use canarykeys_testkit::receiver::Receiver;
use canarykeys_testkit::{id_and_secret, spawn_app_with, wait_for, TestApp, TestDatabase};
use serde_json::{json, Value};

const INGEST: &str = "expected-use-ingest-secret-0123456789";

fn tune(url: Option<String>) -> impl FnOnce(&mut Config) {
    move |c| {
        c.ingest.secret = Some(Secret::new(INGEST));
        c.alerts.allow_private_webhooks = true;
        // No cooldown: outside a window every use is its own alert.
        c.alerts.cooldown = Duration::from_secs(0);
        c.database_url = url;
    }
}

async fn held(app: &TestApp, hook: &str, expires_in: &str) -> Value {
    let resp = app
        .post_token(&json!({"memo": "ci acme/api run 7", "webhook_url": hook,
            "expires_in": expires_in, "expected_use": "until_confirm"}))
        .await;
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

async fn use_key(app: &TestApp, created: &Value, event_id: &str) {
    let rec = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": created["aws"]["access_key_id"]},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "s3.amazonaws.com",
        "eventName": "ListBuckets", "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2", "eventID": event_id, "eventType": "AwsApiCall"
    });
    let resp = app
        .http
        .post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(INGEST)
        .header("content-type", "application/json")
        .body(json!({ "Records": [rec] }).to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
}

async fn hit_total(app: &TestApp, created: &Value) -> u64 {
    let (id, secret) = id_and_secret(created);
    let v: Value = app
        .get_authed(&format!("/api/v1/tokens/{id}/alerts"), &secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["total"].as_u64().unwrap()
}

async fn confirm(app: &TestApp, created: &Value) -> bool {
    let (id, secret) = id_and_secret(created);
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/tokens/{id}/confirm")))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["confirmed"]
        .as_bool()
        .unwrap()
}

/// Runs outbox rounds until the receiver holds `n` bodies.
async fn delivered(app: &TestApp, rx: &Receiver, n: usize) {
    wait_for("deliveries", Duration::from_secs(20), || async {
        app.deliver_once().await;
        (rx.count() >= n).then_some(())
    })
    .await;
}

async fn scenario(app: TestApp, rx: Receiver) {
    let created = held(&app, &rx.url(), "2h").await;
    use_key(&app, &created, "during-1").await;
    use_key(&app, &created, "during-2").await;
    assert_eq!(hit_total(&app, &created).await, 2);
    for _ in 0..3 {
        app.deliver_once().await;
    }
    assert_eq!(rx.count(), 0, "uses during the window are held");

    // The confirm: the held uses go out as one digest; confirming twice changes nothing.
    assert!(confirm(&app, &created).await);
    assert!(!confirm(&app, &created).await);
    // The outbox looks at windows once per poll interval, on the clock.
    app.advance(Duration::from_secs(60));
    delivered(&app, &rx, 1).await;
    let digest = rx.of_type("summary");
    assert_eq!(digest.len(), 1, "{:#?}", rx.bodies());
    // After the window, a use alerts at once.
    use_key(&app, &created, "after-1").await;
    delivered(&app, &rx, 2).await;
    assert_eq!(rx.of_type("hit").len(), 1, "{:#?}", rx.bodies());

    // Never confirmed: the digest goes out at the expiry.
    let other = held(&app, &rx.url(), "1h").await;
    use_key(&app, &other, "orphan-1").await;
    app.deliver_once().await;
    assert_eq!(rx.count(), 2);
    app.advance(Duration::from_secs(2 * 3600));
    app.jobs.expire_once().await.unwrap();
    delivered(&app, &rx, 3).await;
    assert_eq!(rx.of_type("summary").len(), 2, "{:#?}", rx.bodies());
    app.stop().await;
}

#[tokio::test]
async fn expected_use_window_on_sqlite() {
    let rx = Receiver::start().await;
    scenario(spawn_app_with(tune(None)).await, rx).await;
}

#[tokio::test]
async fn expected_use_window_on_postgres() {
    let db = TestDatabase::create("ck_expected_use").await;
    let rx = Receiver::start().await;
    scenario(spawn_app_with(tune(Some(db.url().to_owned()))).await, rx).await;
    db.drop_database().await;
}
