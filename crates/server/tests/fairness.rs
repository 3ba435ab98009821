//! Fairness of the outbox: a backlog on one token cannot hold back another token's alert.
//! Token B's alert and a backlog of token A's alerts, larger than a round's batch, fall due at
//! the same moment on the test's clock; B's alert must not wait for A's backlog to drain.

use std::time::Duration;

use canarykeys_server::config::{Config, Secret};
use canarykeys_testkit::receiver::Receiver;
use canarykeys_testkit::{spawn_app_with, wait_for, TestApp, WAIT};
use serde_json::{json, Value};

const INGEST: &str = "fairness-ingest-secret";
/// A's backlog: more than one round's batch (64 lanes' sends, 128 rows of a lane).
const BACKLOG: usize = 400;

fn record(token: &Value, event_id: &str) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": token["aws"]["access_key_id"],
            "userName": token["aws"]["username"], "accountId": token["aws"]["account_id"]},
        "eventTime": "2026-11-28T10:00:00Z",
        "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9", "eventID": event_id
    })
}

async fn ingest(app: &TestApp, body: &Value) {
    let resp = app
        .http
        .post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(INGEST)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

/// The token's delivery rows (at most 200, newest first).
async fn deliveries(app: &TestApp, token: &Value) -> Vec<Value> {
    let id = token["id"].as_str().unwrap();
    let secret = token["manage_secret"].as_str().unwrap();
    let v: Value = app
        .get_authed(&format!("/api/v1/tokens/{id}/deliveries"), secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["deliveries"].as_array().unwrap().clone()
}

/// Runs outbox rounds until one finds nothing due (the background worker runs too, so a row
/// it holds is waited for by the next check) and `done` holds.
async fn settle<F, Fut>(app: &TestApp, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_for(what, WAIT, || {
        let round = app.jobs.deliver_once();
        let check = done();
        async move { (round.await.unwrap() == 0 && check.await).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn a_backlog_on_one_token_does_not_hold_back_another_tokens_alert() {
    let receiver = Receiver::start().await;
    receiver.down();
    let app = spawn_app_with(|c: &mut Config| {
        c.ingest.secret = Some(Secret::new(INGEST));
        c.alerts.allow_private_webhooks = true;
        c.alerts.cooldown = Duration::ZERO;
    })
    .await;
    let mut tokens = Vec::new();
    for memo in ["a .env", "b .env"] {
        let resp = app
            .post_token(&json!({"memo": memo, "webhook_url": receiver.url()}))
            .await;
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        tokens.push(resp.json::<Value>().await.unwrap());
    }
    let (a, b) = (&tokens[0], &tokens[1]);

    // B's alert fails twice while the receiver is down: its next try is a minute or more away.
    ingest(&app, &record(b, "b-0")).await;
    settle(&app, "B's alert tried once", || async {
        deliveries(&app, b).await[0]["attempts"] == 1
    })
    .await;
    app.advance(Duration::from_secs(40));
    settle(&app, "B's alert tried twice", || async {
        deliveries(&app, b).await[0]["attempts"] == 2
    })
    .await;
    // A's backlog arrives now and fails at once: every one of its rows is due again before
    // B's, so a queue in order of due time would send all of them first.
    let records: Vec<Value> = (0..BACKLOG).map(|i| record(a, &format!("a-{i}"))).collect();
    ingest(&app, &json!({ "Records": records })).await;
    // Planned (the API lists the newest 200) and nothing due: what could be tried was.
    settle(&app, "A's backlog planned and tried", || async {
        deliveries(&app, a).await.len() == 200
    })
    .await;

    // The receiver is back and everything is due at once.
    receiver.up().await;
    app.advance(Duration::from_secs(3600));
    let b_id = b["id"].as_str().unwrap().to_owned();
    let bodies = wait_for("B's alert arrives", WAIT, || {
        let round = app.jobs.deliver_once();
        let b_id = &b_id;
        let receiver = &receiver;
        async move {
            round.await.unwrap();
            let bodies = receiver.bodies();
            bodies
                .iter()
                .any(|x| x["token"]["id"] == *b_id)
                .then_some(bodies)
        }
    })
    .await;
    let before_b = bodies
        .iter()
        .take_while(|x| x["token"]["id"] != b_id)
        .count();
    println!("fairness: {before_b} of A's {BACKLOG} alerts arrived before B's");
    // B's lane is claimed with the first of A's: it goes out alongside A's first batch, not
    // after A's backlog.
    assert!(
        before_b < BACKLOG / 2,
        "B's alert waited for {before_b} of A's backlog"
    );
    // And A's backlog still arrives, all of it, once each.
    wait_for("A's backlog drains", WAIT, || {
        let round = app.jobs.deliver_once();
        let receiver = &receiver;
        async move {
            round.await.unwrap();
            (receiver.count() > BACKLOG).then_some(())
        }
    })
    .await;
    assert_eq!(receiver.count(), BACKLOG + 1);
    app.stop().await;
}
