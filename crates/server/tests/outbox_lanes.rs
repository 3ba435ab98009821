//! The outbox under a slow or rate-limiting receiver: a lane that hangs holds no other lane's
//! alert; a receiver's `Retry-After` sets the retry; a claim lease shorter than a send is
//! refused at start; retention prunes old deliveries and the audit log; test alerts are
//! rate-limited per token and per address.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use canarykeys_server::clock::ManualClock;
use canarykeys_server::config::{Config, ConfigError, Secret};
use canarykeys_testkit::{id_and_secret, wait_for, TestApp};
use serde_json::{json, Value};

const INGEST: &str = "outbox-lanes-ingest-secret";
/// Well under the webhook timeout (10 s): a lane that waited for the hanging one would miss it.
const SHORT: Duration = Duration::from_secs(6);
const T0: i64 = 1_800_000_000_000;

#[derive(Clone, Default)]
struct Receiver {
    /// The paths that answered 200, in order.
    delivered: Arc<Mutex<Vec<String>>>,
    hanging: Arc<AtomicUsize>,
}

/// `/slow` never answers, `/limited` answers 429 with `Retry-After: 120`, anything else 200.
async fn receive(State(r): State<Receiver>, Path(path): Path<String>, _body: Bytes) -> Response {
    match path.as_str() {
        "slow" => {
            r.hanging.fetch_add(1, Ordering::SeqCst);
            // Never answers: the sender's own timeout is what ends the request.
            std::future::pending::<Response>().await
        }
        "limited" => {
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", HeaderValue::from_static("120"));
            (StatusCode::TOO_MANY_REQUESTS, headers, "slow down").into_response()
        }
        _ => {
            r.delivered.lock().unwrap().push(path);
            StatusCode::OK.into_response()
        }
    }
}

async fn receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route("/{path}", axum::routing::post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, base)
}

fn tune(c: &mut Config) {
    c.ingest.secret = Some(Secret::new(INGEST));
    c.alerts.allow_private_webhooks = true;
    c.alerts.cooldown = Duration::from_secs(0);
}

async fn app() -> TestApp {
    let dir = tempfile::tempdir().unwrap().keep();
    let mut c = canarykeys_testkit::test_config(&dir);
    tune(&mut c);
    canarykeys_testkit::start_config_with_clock(c, ManualClock::at(T0)).await
}

async fn webhook_token(app: &TestApp, url: &str) -> Value {
    let resp = app
        .post_token(&json!({"memo": "lanes", "webhook_url": url}))
        .await;
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

async fn hit(app: &TestApp, created: &Value, event_id: &str) {
    let record = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": created["aws"]["access_key_id"],
            "userName": created["aws"]["username"], "accountId": created["aws"]["account_id"]},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity", "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7", "userAgent": "aws-cli", "eventID": event_id
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
}

async fn deliveries(app: &TestApp, created: &Value) -> Vec<Value> {
    let (id, secret) = id_and_secret(created);
    let body: Value = app
        .get_authed(&format!("/api/v1/tokens/{id}/deliveries"), &secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["deliveries"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_hanging_receiver_holds_no_other_tokens_alert() {
    let (rx, base) = receiver().await;
    let app = app().await;
    let slow = webhook_token(&app, &format!("{base}/slow")).await;
    let fast = webhook_token(&app, &format!("{base}/fast")).await;
    hit(&app, &slow, "slow-1").await;
    wait_for("the slow lane is in its send", SHORT, || async {
        (rx.hanging.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    // The worker's loop, not a test-driven round: it must not wait for the hanging send.
    hit(&app, &fast, "fast-1").await;
    wait_for("the other token's alert is delivered", SHORT, || async {
        (rx.delivered.lock().unwrap().as_slice() == ["fast"]).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn retry_after_from_the_receiver_sets_the_retry() {
    let (_rx, base) = receiver().await;
    let app = app().await;
    let created = webhook_token(&app, &format!("{base}/limited")).await;
    hit(&app, &created, "limited-1").await;
    let row = wait_for("the 429 is recorded", SHORT, || async {
        let rows = deliveries(&app, &created).await;
        rows.into_iter().find(|d| d["attempts"] == 1)
    })
    .await;
    assert_eq!(row["state"], "pending");
    assert!(row["last_error"].as_str().unwrap().contains("429"), "{row}");
    // The clock has not moved: the send was at T0, and the receiver asked for 120 s.
    assert_eq!(
        row["next_attempt_at"],
        canarykeys_server::render::rfc3339(T0 + 120_000)
    );
    app.stop().await;
}

#[test]
fn a_lease_shorter_than_a_send_is_refused() {
    let mut config = Config::default();
    assert!(config.check().is_ok(), "the defaults fit");
    // Webhooks time out after 10 s: 15 s is the least.
    config.alerts.claim_lease = Duration::from_secs(14);
    match config.check() {
        Err(ConfigError::Value { key, problem }) => {
            assert_eq!(key, "alerts.claim_lease");
            assert!(problem.contains("at least 15 s"), "{problem}");
        }
        other => panic!("{other:?}"),
    }
    config.alerts.claim_lease = Duration::from_secs(15);
    assert!(config.check().is_ok());
    // With email on, the SMTP timeout counts too.
    config.smtp.host = Some("smtp.example.com".into());
    config.smtp.from = Some("canarykeys <alerts@example.com>".into());
    config.smtp.timeout_secs = 15;
    assert!(
        config.check().is_err(),
        "20 s needed for a 15 s SMTP timeout"
    );
    config.alerts.claim_lease = Duration::from_secs(20);
    assert!(config.check().is_ok());
}

#[tokio::test]
async fn retention_prunes_old_deliveries_and_the_audit_log() {
    let (rx, base) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = canarykeys_testkit::test_config(dir.path());
    tune(&mut c);
    c.alerts.history_retention_days = 30;
    c.access.audit_retention_days = 90;
    let app = canarykeys_testkit::start_config_with_clock(c, ManualClock::at(T0)).await;
    let created = webhook_token(&app, &format!("{base}/ok")).await;
    hit(&app, &created, "old-1").await;
    // A test alert: one more delivery, and an audit entry.
    let (id, secret) = id_and_secret(&created);
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/tokens/{id}/test-alert")))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    wait_for("both delivered and marked", SHORT, || async {
        let rows = deliveries(&app, &created).await;
        let done = rows.len() == 2 && rows.iter().all(|d| d["state"] == "delivered");
        (done && rx.delivered.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    // Within both retentions: nothing goes.
    let pruned = app.jobs.retention_once().await.unwrap();
    assert_eq!((pruned.deliveries, pruned.audit), (0, 0));
    // Past the history retention, not the audit one: the delivery goes, the audit stays.
    app.advance(Duration::from_secs(31 * 86_400));
    let pruned = app.jobs.retention_once().await.unwrap();
    assert_eq!(pruned.deliveries, 2);
    assert_eq!(pruned.audit, 0);
    assert!(deliveries(&app, &created).await.is_empty());
    // Past the audit retention too: the test alert's entry goes.
    app.advance(Duration::from_secs(60 * 86_400));
    let pruned = app.jobs.retention_once().await.unwrap();
    assert!(pruned.audit >= 1, "{pruned:?}");
    app.stop().await;
}

#[tokio::test]
async fn test_alerts_are_rate_limited_per_token_and_per_address() {
    let (_rx, base) = receiver().await;
    let app = app().await;
    let send = |created: Value| {
        let app = &app;
        async move {
            let (id, secret) = id_and_secret(&created);
            app.http
                .post(app.url(&format!("/api/v1/tokens/{id}/test-alert")))
                .bearer_auth(&secret)
                .send()
                .await
                .unwrap()
        }
    };
    let first = webhook_token(&app, &format!("{base}/ok")).await;
    for _ in 0..3 {
        assert_eq!(send(first.clone()).await.status(), 202);
    }
    let limited = send(first.clone()).await;
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // Other tokens from the same address: the address's own budget (10 at once) runs out.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let other = webhook_token(&app, &format!("{base}/ok")).await;
        for _ in 0..3 {
            statuses.push(send(other.clone()).await.status().as_u16());
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        6,
        "{statuses:?}"
    );
    assert!(statuses[6..].iter().all(|s| *s == 429), "{statuses:?}");
    app.stop().await;
}
