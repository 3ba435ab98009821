//! A key holder flooding a decoy key fills no disk: inside an open cooldown window, past
//! `[alerts] stored_hits_per_window` stored hits, further uses are folded into the window row.
//! Every use is still counted (the API's `total`), the summary says how many were folded, and
//! the same events re-sent by another path are not counted again, inside the window or after it.

use std::path::Path;
use std::time::Duration;

use canarykeys_core::signing;
use canarykeys_server::config::{Config, Secret};
use canarykeys_testkit::receiver::Receiver;
use canarykeys_testkit::{id_and_secret, spawn_app_with, wait_for, TestApp, WAIT};
use serde_json::{json, Value};

const INGEST: &str = "flood-ingest-secret-0123456789";

fn tune(c: &mut Config) {
    c.ingest.secret = Some(Secret::new(INGEST));
    c.alerts.allow_private_webhooks = true;
    c.alerts.cooldown = Duration::from_secs(60);
    c.alerts.stored_hits_per_window = 5;
}

fn record(created: &Value, event_id: &str) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": created["aws"]["access_key_id"],
            "userName": created["aws"]["username"], "accountId": created["aws"]["account_id"]},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity", "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7", "userAgent": "flood <b>x</b>", "eventID": event_id
    })
}

/// Sends `ids` as one signed request of `path` (each a record of `created`'s key).
async fn send(app: &TestApp, created: &Value, ids: &[String], path: &str) -> Value {
    let records: Vec<Value> = ids.iter().map(|id| record(created, id)).collect();
    let body = serde_json::to_vec(&json!({ "Records": records })).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let resp = app
        .http
        .post(app.url("/ingest/v1/cloudtrail"))
        .header(
            "x-canarykeys-signature",
            signing::sign(INGEST.as_bytes(), now, &body),
        )
        .header("x-canarykeys-path", path)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// The token's hit page: (`total`, hits listed).
async fn hits(app: &TestApp, created: &Value) -> (u64, usize) {
    let (id, secret) = id_and_secret(created);
    let page: Value = app
        .get_authed(&format!("/api/v1/tokens/{id}/alerts?limit=100"), &secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        page["total"].as_u64().unwrap(),
        page["alerts"].as_array().unwrap().len(),
    )
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("flood-{i}")).collect()
}

#[tokio::test]
async fn an_ingest_flood_past_the_budget_is_counted_not_stored_and_never_twice() {
    let rx = Receiver::start().await;
    let app = spawn_app_with(tune).await;
    let resp = app
        .post_token(&json!({"memo": "flooded", "webhook_url": rx.url()}))
        .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();

    // The first use alerts and opens the window.
    send(&app, &created, &ids(0..1), "eventbridge").await;
    app.deliver_once().await;
    wait_for("the first alert", WAIT, || async {
        (rx.count() == 1).then_some(())
    })
    .await;
    // Five stored in the window (one request each, as a flood arrives), then 40 folded.
    for i in 1..6 {
        send(&app, &created, &ids(i..i + 1), "eventbridge").await;
    }
    for chunk in (6..46).collect::<Vec<_>>().chunks(8) {
        send(
            &app,
            &created,
            &ids(chunk[0]..chunk[0] + chunk.len()),
            "eventbridge",
        )
        .await;
    }
    assert_eq!(
        hits(&app, &created).await,
        (46, 6),
        "all counted, 1 + 5 stored"
    );

    // The same events by another path, inside the window: repeats.
    let again = send(&app, &created, &ids(0..46), "cloudwatch-logs").await;
    assert_eq!(again["new_hits"], 0, "{again}");
    assert_eq!(again["duplicates"], 46, "{again}");
    assert_eq!(hits(&app, &created).await, (46, 6));

    // The window closes: its summary counts the 45 calls and says 40 were folded.
    app.advance(Duration::from_secs(61));
    app.deliver_once().await;
    let calls = wait_for("the summary", WAIT, || async {
        (rx.count() >= 2).then(|| rx.bodies())
    })
    .await;
    let summary = &calls[1];
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["summary"]["count"], 45, "{summary}");
    assert_eq!(summary["summary"]["folded"], 40, "{summary}");
    let headline = summary["headline"].as_str().unwrap();
    assert!(headline.starts_with("45 more calls"), "{headline}");
    assert!(
        headline.contains("40 of them past the stored-call budget"),
        "{headline}"
    );

    // After the close, by S3 this time: still repeats.
    let late = send(&app, &created, &ids(0..46), "s3").await;
    assert_eq!(late["new_hits"], 0, "{late}");
    assert_eq!(hits(&app, &created).await, (46, 6));
    app.deliver_once().await;
    assert_eq!(rx.count(), 2, "no alert for repeats");
    app.stop().await;
}

/// The bytes of every file under `dir` (the SQLite database with its -wal and -shm files).
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_size(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

#[tokio::test]
async fn replays_of_one_presigned_url_are_all_counted_in_bounded_disk() {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_s3::presigning::PresigningConfig;

    const REPLAYS: usize = 20_000;
    const CONCURRENCY: usize = 16;

    let app = spawn_app_with(|c| {
        c.sensor.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let created = app.create_token().await;
    let aws = |f: &str| created["aws"][f].as_str().unwrap().to_owned();
    let credentials = Credentials::new(
        aws("access_key_id"),
        aws("secret_access_key"),
        None,
        None,
        "file",
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(credentials)
            .region(Region::new("us-east-1"))
            .endpoint_url(app.sensor_address.clone().unwrap())
            .force_path_style(true)
            .build(),
    );
    let url = s3
        .get_object()
        .bucket("prod-backups")
        .key("db/2026-11-27.sql.gz")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(3600)).unwrap())
        .await
        .unwrap()
        .uri()
        .to_owned();

    // The first use alerts and opens the cooldown window.
    let first = app.http.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 403);
    app.deliver_once().await;
    let before = dir_size(&app.data_dir);

    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (http, url) = (app.http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..REPLAYS / CONCURRENCY {
                let resp = http.get(&url).send().await.unwrap();
                assert_eq!(resp.status(), 403, "AWS's answer to a wrong object");
                resp.bytes().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (total, listed) = hits(&app, &created).await;
    assert_eq!(total, REPLAYS as u64 + 1, "every replay counted");
    assert!(listed <= 100);
    let grown = dir_size(&app.data_dir).saturating_sub(before);
    assert!(grown < 16 << 20, "the data directory grew {grown} bytes");
    app.stop().await;
}
