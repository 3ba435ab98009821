//! Alert delivery end to end: hits become webhook calls through the durable outbox, with
//! retries through an outage, re-delivery after a restart mid-send, the cooldown summary, the
//! ignore list, permanent failures switching a channel off, test alerts and the history export.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use canarykeys_server::clock::ManualClock;
use canarykeys_server::config::{Config, Secret};
use canarykeys_testkit::{id_and_secret, wait_for, TestApp, WAIT};
use serde_json::{json, Value};

const INGEST: &str = "alerts-test-ingest-secret";
const SIGNING: &str = "alerts-test-webhook-signing";

/// What the receiver answers.
const OK: u8 = 0;
/// Past the longest retry delay `tune` sets (400 ms, plus 10 % jitter).
const RETRY_PAST: Duration = Duration::from_secs(1);
const DOWN: u8 = 1;
const GONE: u8 = 2;
const HANG: u8 = 3;

#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    mode: Arc<AtomicU8>,
    /// Requests now stuck in HANG: a test waits on this instead of sleeping.
    hanging: Arc<AtomicUsize>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    match r.mode.load(Ordering::SeqCst) {
        DOWN => StatusCode::SERVICE_UNAVAILABLE,
        GONE => StatusCode::NOT_FOUND,
        HANG => {
            r.hanging.fetch_add(1, Ordering::SeqCst);
            // Never answers within any test: the sender's timeout or shutdown ends it.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK
        }
        _ => {
            r.calls.lock().unwrap().push((headers, body));
            StatusCode::OK
        }
    }
}

impl Receiver {
    async fn start() -> (Self, String) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, url)
    }

    fn bodies(&self) -> Vec<Value> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).unwrap())
            .collect()
    }

    /// Waits (bounded) until `n` calls arrived; the test asserts on what arrived, not on time.
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        for _ in 0..400 {
            if self.calls.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.bodies()
    }
}

fn tune(c: &mut Config) {
    c.ingest.secret = Some(Secret::new(INGEST));
    c.alerts.allow_private_webhooks = true;
    c.alerts.webhook_signing_secret = Some(Secret::new(SIGNING));
    c.alerts.retry_base_delay = Duration::from_millis(100);
    c.alerts.retry_max_delay = Duration::from_millis(400);
    c.alerts.cooldown = Duration::from_secs(0);
}

async fn webhook_token(app: &TestApp, url: &str) -> Value {
    let resp = app
        .post_token(&json!({"memo": "web01 .env", "webhook_url": url}))
        .await;
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

async fn hit(app: &TestApp, created: &Value, event_id: &str, ip: &str) {
    let record = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": created["aws"]["access_key_id"],
            "userName": created["aws"]["username"], "accountId": created["aws"]["account_id"]},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1", "sourceIPAddress": ip, "userAgent": "TruffleHog <b>x</b>", "eventID": event_id
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

async fn get(app: &TestApp, created: &Value, path: &str) -> Value {
    let (id, secret) = id_and_secret(created);
    app.get_authed(&format!("/api/v1/tokens/{id}{path}"), &secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_hit_becomes_one_signed_webhook_call() {
    let (rx, url) = Receiver::start().await;
    let app = canarykeys_testkit::spawn_app_with(tune).await;
    let created = webhook_token(&app, &url).await;
    hit(&app, &created, "evt-1", "203.0.113.7").await;
    let calls = rx.wait_for(1).await;
    assert_eq!(calls.len(), 1);
    let body = &calls[0];
    assert_eq!(body["schema"], "canarykeys.alert/v1");
    assert_eq!(body["type"], "hit");
    assert_eq!(body["token"]["memo"], "web01 .env");
    let (headers, raw) = rx.calls.lock().unwrap()[0].clone();
    let sig = headers["x-canarykeys-signature"].to_str().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    canarykeys_core::signing::verify(SIGNING.as_bytes(), sig, &raw, now).unwrap();
    assert!(!headers["idempotency-key"].is_empty());
    let delivery = get(&app, &created, "").await;
    assert_eq!(delivery["delivery"]["webhook"]["last_state"], "delivered");
}

#[tokio::test]
async fn an_outage_delays_alerts_but_loses_none() {
    let (rx, url) = Receiver::start().await;
    rx.mode.store(DOWN, Ordering::SeqCst);
    let app = canarykeys_testkit::spawn_app_with(tune).await;
    let created = webhook_token(&app, &url).await;
    for i in 0..5 {
        hit(&app, &created, &format!("outage-{i}"), "203.0.113.7").await;
    }
    // Outbox rounds, each past the retry delay, until the oldest alert has failed twice (the
    // background loop may hold a row in flight during one of ours, so this waits, bounded).
    // The token's later alerts wait behind it, untried: they go out in order.
    wait_for(
        "the oldest alert failed twice against the outage",
        WAIT,
        || async {
            app.advance(RETRY_PAST);
            app.deliver_once().await;
            let waiting = get(&app, &created, "/deliveries").await;
            let rows = waiting["deliveries"].as_array().unwrap().clone();
            // Newest first: the oldest is last.
            let attempts: Vec<i64> = rows
                .iter()
                .rev()
                .map(|d| d["attempts"].as_i64().unwrap())
                .collect();
            (rows.len() == 5
                && rows.iter().all(|d| d["state"] == "pending")
                && attempts[0] >= 2
                && attempts[1..].iter().all(|a| *a == 0))
            .then_some(())
        },
    )
    .await;
    assert!(rx.bodies().is_empty());
    rx.mode.store(OK, Ordering::SeqCst);
    app.advance(RETRY_PAST);
    app.deliver_once().await;
    let calls = rx.wait_for(5).await;
    assert_eq!(
        calls.len(),
        5,
        "every alert arrives once the receiver is back"
    );
    let keys: std::collections::HashSet<String> = rx
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|(h, _)| h["idempotency-key"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 5, "one idempotency key per alert");
}

#[tokio::test]
async fn a_restart_mid_delivery_loses_nothing() {
    let (rx, url) = Receiver::start().await;
    rx.mode.store(HANG, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_now();
    let start = |d: std::path::PathBuf, clock: ManualClock| async move {
        let mut c = canarykeys_testkit::test_config(&d);
        tune(&mut c);
        c.alerts.claim_lease = Duration::from_millis(500);
        canarykeys_testkit::start_config_with_clock(c, clock).await
    };
    let app = start(dir.path().to_owned(), clock.clone()).await;
    let created = webhook_token(&app, &url).await;
    hit(&app, &created, "restart-1", "203.0.113.7").await;
    // The worker has claimed the row and is stuck in the send: stop the server there.
    wait_for("the worker is stuck in the send", WAIT, || async {
        (rx.hanging.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    app.stop().await;
    rx.mode.store(OK, Ordering::SeqCst);
    // The claim's lease runs out while the server is down.
    clock.advance(Duration::from_secs(1));
    let app = start(dir.path().to_owned(), clock).await;
    app.deliver_once().await;
    let calls = rx.wait_for(1).await;
    assert_eq!(
        calls.len(),
        1,
        "the claimed delivery was sent after the restart"
    );
    assert_eq!(calls[0]["type"], "hit");
    drop(app);
}

#[tokio::test]
async fn a_burst_gives_one_alert_and_one_summary_and_keeps_every_hit() {
    let (rx, url) = Receiver::start().await;
    let app = canarykeys_testkit::spawn_app_with(|c| {
        tune(c);
        c.alerts.cooldown = Duration::from_secs(5);
    })
    .await;
    let created = webhook_token(&app, &url).await;
    for i in 0..50 {
        hit(
            &app,
            &created,
            &format!("burst-{i}"),
            if i % 2 == 0 {
                "203.0.113.7"
            } else {
                "198.51.100.4"
            },
        )
        .await;
    }
    // The first hit is sent at once; the window closes when the clock passes the cooldown.
    app.deliver_once().await;
    assert_eq!(rx.wait_for(1).await.len(), 1, "one alert at once");
    app.advance(Duration::from_secs(6));
    app.deliver_once().await;
    let calls = rx.wait_for(2).await;
    assert_eq!(
        calls.len(),
        2,
        "one alert at once, one summary when the window closes"
    );
    assert_eq!(calls[0]["type"], "hit");
    assert_eq!(calls[1]["type"], "summary");
    let summary = serde_json::to_string(&calls[1]).unwrap();
    assert!(
        summary.contains("49 more calls from 2 addresses"),
        "{summary}"
    );
    // Another window later, the outbox has nothing more to send.
    app.advance(Duration::from_secs(6));
    app.deliver_once().await;
    assert_eq!(rx.bodies().len(), 2, "nothing else was sent");
    assert_eq!(get(&app, &created, "/alerts").await["total"], 50);
}

/// A window names at most five addresses and says there were more; its count is exact.
#[tokio::test]
async fn a_summary_names_five_addresses_and_says_there_were_more() {
    let (rx, url) = Receiver::start().await;
    let app = canarykeys_testkit::spawn_app_with(|c| {
        tune(c);
        c.alerts.cooldown = Duration::from_secs(5);
    })
    .await;
    let created = webhook_token(&app, &url).await;
    hit(&app, &created, "wide-0", "203.0.113.1").await;
    assert_eq!(rx.wait_for(1).await.len(), 1, "the first use at once");
    for i in 1..=12 {
        hit(
            &app,
            &created,
            &format!("wide-{i}"),
            &format!("198.51.100.{i}"),
        )
        .await;
    }
    app.advance(Duration::from_secs(6));
    app.deliver_once().await;
    let calls = rx.wait_for(2).await;
    assert_eq!(calls.len(), 2);
    let summary = &calls[1];
    assert_eq!(summary["summary"]["count"], 12);
    assert_eq!(summary["summary"]["addresses"].as_array().unwrap().len(), 5);
    assert_eq!(summary["summary"]["addresses"][0], "198.51.100.1");
    assert_eq!(
        summary["event"]["source_ip"], "198.51.100.12",
        "the last call"
    );
    let text = serde_json::to_string(summary).unwrap();
    assert!(
        text.contains("12 more calls from more than 5 addresses: GetCallerIdentity"),
        "{text}"
    );
}

#[tokio::test]
async fn ignored_sources_are_recorded_and_marked_not_alerted() {
    let (rx, url) = Receiver::start().await;
    let app = canarykeys_testkit::spawn_app_with(tune).await;
    let created = webhook_token(&app, &url).await;
    let (id, secret) = id_and_secret(&created);
    let resp = app
        .http
        .patch(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&secret)
        .json(&json!({"ignore_sources": ["198.51.100.0/24", "not-an-ip"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let v: Value = app
        .http
        .patch(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&secret)
        .json(&json!({"ignore_sources": ["198.51.100.0/24"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["ignore_sources"], json!(["198.51.100.0/24"]));
    // Changing the ignore list with the manage secret is itself told (a tamper alert), first in
    // the token's webhook lane.
    assert_eq!(rx.wait_for(1).await[0]["type"], "tamper");
    hit(&app, &created, "ignored-1", "198.51.100.9").await;
    hit(&app, &created, "alerted-1", "203.0.113.7").await;
    let calls = rx.wait_for(2).await;
    // A round after the alert: nothing is due for the ignored source.
    app.advance(RETRY_PAST);
    app.deliver_once().await;
    assert_eq!(rx.bodies().len(), 2);
    assert_eq!(calls[1]["event"]["source_ip"], "203.0.113.7");
    let alerts = get(&app, &created, "/alerts").await;
    assert_eq!(alerts["total"], 2, "both are recorded");
    let ignored = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["event_id"] == "ignored-1")
        .unwrap();
    assert!(ignored["suppressed"]
        .as_str()
        .unwrap()
        .contains("ignore list"));
}

#[tokio::test]
async fn permanent_failures_switch_the_channel_off_and_say_why() {
    let (rx, url) = Receiver::start().await;
    rx.mode.store(GONE, Ordering::SeqCst);
    let app = canarykeys_testkit::spawn_app_with(|c| {
        tune(c);
        c.alerts.disable_after_failures = 2;
    })
    .await;
    let created = webhook_token(&app, &url).await;
    hit(&app, &created, "gone-1", "203.0.113.7").await;
    hit(&app, &created, "gone-2", "203.0.113.7").await;
    let mut token = Value::Null;
    for _ in 0..100 {
        token = get(&app, &created, "").await;
        if token["channels"]["webhook"]["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(token["channels"]["webhook"]["enabled"], false);
    let reason = token["channels"]["webhook"]["disabled_reason"]
        .as_str()
        .unwrap();
    assert!(
        reason.contains("2 permanent failures") && reason.contains("404"),
        "{reason}"
    );
    let page = app
        .http
        .get(created["manage_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"id="webhook-disabled""#));
    // Switching it back on clears the reason.
    let (id, secret) = id_and_secret(&created);
    let v: Value = app
        .http
        .patch(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&secret)
        .json(&json!({"webhook_enabled": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["channels"]["webhook"]["disabled_reason"], Value::Null);
}

#[tokio::test]
async fn test_alerts_and_history_export() {
    let (rx, url) = Receiver::start().await;
    let app = canarykeys_testkit::spawn_app_with(tune).await;
    let created = webhook_token(&app, &url).await;
    let (id, secret) = id_and_secret(&created);
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/tokens/{id}/test-alert")))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let calls = rx.wait_for(1).await;
    assert_eq!(calls[0]["type"], "test");
    assert_eq!(
        get(&app, &created, "/alerts").await["total"],
        0,
        "a test is not a hit"
    );

    let record = json!({"eventVersion": "1.09", "userIdentity": {"type": "IAMUser", "accessKeyId": created["aws"]["access_key_id"]},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets",
        "sourceIPAddress": "203.0.113.7", "userAgent": "=cmd|' /C calc'!A0", "eventID": "csv-1"});
    app.http
        .post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(INGEST)
        .json(&record)
        .send()
        .await
        .unwrap();
    let csv = app
        .get_authed(
            &format!("/api/v1/tokens/{id}/alerts/export?format=csv"),
            &secret,
        )
        .send()
        .await
        .unwrap();
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("event_time,received_at,event_name"));
    assert!(
        csv.contains("\"'=cmd|' /C calc'!A0\"") || csv.contains("'=cmd|' /C calc'!A0"),
        "{csv}"
    );
    let json: Value = app
        .get_authed(
            &format!("/api/v1/tokens/{id}/alerts/export?format=json"),
            &secret,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json["hits"][0]["user_agent"], "=cmd|' /C calc'!A0");
    let bad = app
        .get_authed(
            &format!("/api/v1/tokens/{id}/alerts/export?format=xls"),
            &secret,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn a_hit_reaches_email_and_webhook_through_the_outbox() {
    let sink = canarykeys_testkit::smtp_sink::SmtpSink::start();
    let (rx, url) = Receiver::start().await;
    let port = sink.port();
    let app = canarykeys_testkit::spawn_app_with(move |c| {
        tune(c);
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = port;
        c.smtp.tls = canarykeys_server::config::SmtpTls::None;
        c.smtp.from = Some("canarykeys@example.com".into());
    })
    .await;
    let resp = app
        .post_token(
            &json!({"memo": "<prod> db host", "email": "soc@example.com", "webhook_url": url}),
        )
        .await;
    let created: Value = resp.json().await.unwrap();
    hit(&app, &created, "both-1", "203.0.113.7").await;
    assert_eq!(rx.wait_for(1).await.len(), 1);
    let mails = tokio::task::spawn_blocking(move || sink.wait_for_mails(1))
        .await
        .unwrap();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(mail.header("subject").unwrap().contains("<prod> db host"));
    let html = mail.part("text/html").unwrap();
    assert!(
        html.contains("TruffleHog &lt;b&gt;x&lt;&#x2f;b&gt;") && !html.contains("<b>x</b>"),
        "{html}"
    );
    assert!(html.contains("secret scanner"), "enriched: {html}");
    let text = mail.part("text/plain").unwrap();
    assert!(
        text.contains("GetCallerIdentity on sts.amazonaws.com in us-east-1 from 203.0.113.7"),
        "{text}"
    );
    let token = get(&app, &created, "").await;
    assert_eq!(token["delivery"]["email"]["last_state"], "delivered");
}

#[tokio::test]
async fn a_hit_before_its_token_is_deleted_is_still_alerted_and_says_so() {
    let (rx, url) = Receiver::start().await;
    let app = canarykeys_testkit::spawn_app_with(|c| {
        tune(c);
        // The second hit waits in the window for a summary: it is still queued at the delete.
        c.alerts.cooldown = Duration::from_secs(3600);
    })
    .await;
    let created = webhook_token(&app, &url).await;
    hit(&app, &created, "before-delete-1", "203.0.113.7").await;
    assert_eq!(rx.wait_for(1).await.len(), 1);
    hit(&app, &created, "before-delete-2", "198.51.100.4").await;
    let (id, secret) = id_and_secret(&created);
    let resp = app
        .http
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    // Windows are looked at once per poll interval of the (test) clock: let one pass.
    app.advance(Duration::from_secs(2));
    app.deliver_once().await;
    // The delete with the manage secret is told first (a tamper alert, written with the
    // delete), then the queued use.
    let calls = rx.wait_for(3).await;
    assert_eq!(calls.len(), 3, "the queued use is still alerted");
    assert_eq!(calls[1]["type"], "tamper");
    let late = serde_json::to_string(&calls[2]).unwrap();
    assert!(late.contains("198.51.100.4"), "{late}");
    assert!(late.contains("was deleted after this use"), "{late}");
    assert!(
        late.contains("web01 .env"),
        "the memo survives the delete: {late}"
    );
}
