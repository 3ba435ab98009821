//! Time passing on the app's clock: a token past its expiry is deleted by the expiry job, and hits
//! older than the history retention by the retention job. The test moves the clock and runs each
//! job once; nothing waits for the wall clock.

use std::time::Duration;

use canarykeys_server::clock::Clock;
use canarykeys_server::config::Secret;
use canarykeys_testkit::{id_and_secret, spawn_app_with};
use serde_json::{json, Value};

const INGEST: &str = "clock-test-ingest-secret";
const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test]
async fn a_token_is_deleted_once_its_expiry_has_come() {
    let app = spawn_app_with(|_| {}).await;
    let resp = app
        .post_token(&json!({"memo": "ci runner", "email": "soc@example.com", "expires_in": "7d"}))
        .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let (id, secret) = id_and_secret(&created);
    let path = format!("/api/v1/tokens/{id}");

    app.advance(6 * DAY);
    assert_eq!(app.jobs.expire_once().await.unwrap(), 0, "not yet");
    let resp = app.get_authed(&path, &secret).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    app.advance(2 * DAY);
    assert_eq!(app.jobs.expire_once().await.unwrap(), 1);
    let resp = app.get_authed(&path, &secret).send().await.unwrap();
    assert_eq!(resp.status(), 404, "the expired token is gone");
    app.stop().await;
}

#[tokio::test]
async fn hits_older_than_the_retention_are_deleted() {
    let app = spawn_app_with(|c| {
        c.ingest.secret = Some(Secret::new(INGEST));
        c.alerts.history_retention_days = 30;
    })
    .await;
    let created = app.create_token().await;
    let (id, secret) = id_and_secret(&created);
    // A use "now" by the app's clock, as CloudTrail would stamp it.
    let now = app
        .clock
        .now()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let record = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": created["aws"]["access_key_id"],
            "userName": created["aws"]["username"], "accountId": created["aws"]["account_id"]},
        "eventTime": now, "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.7", "eventID": "retained-1"
    });
    let resp = app
        .http
        .post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(INGEST)
        .json(&record)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let hits_path = format!("/api/v1/tokens/{id}/hits");
    let total = |v: Value| v["total"].as_u64().unwrap();

    app.advance(29 * DAY);
    assert_eq!(
        app.jobs.retention_once().await.unwrap().hits,
        0,
        "still kept"
    );
    let page = app.get_authed(&hits_path, &secret).send().await.unwrap();
    assert_eq!(total(page.json().await.unwrap()), 1);

    app.advance(2 * DAY);
    assert_eq!(app.jobs.retention_once().await.unwrap().hits, 1);
    let page = app.get_authed(&hits_path, &secret).send().await.unwrap();
    assert_eq!(total(page.json().await.unwrap()), 0, "the old hit is gone");
    app.stop().await;
}
