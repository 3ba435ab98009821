//! Fault suite: a 24-hour outage of both alert channels, on a clock the test controls. The
//! webhook receiver and the SMTP server are unreachable while hits arrive; the test advances the
//! `ManualClock` through a day in steps, running outbox rounds, then brings both back. Every alert
//! must arrive within the default retry horizon, by each channel, and the webhook calls of one
//! token in the order of its hits.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use canarykeys_server::clock::{Clock, ManualClock};
use canarykeys_server::config::{Config, Secret, SmtpTls};
use canarykeys_testkit::receiver::Receiver;
use canarykeys_testkit::smtp_sink::{free_port, SmtpSink};
use canarykeys_testkit::{spawn_app_with, TestApp};
use serde_json::{json, Value};

const INGEST: &str = "faults-outage-ingest-secret";
const TOKENS: usize = 3;
const HITS_PER_TOKEN: usize = 3;
/// How long both channels are down.
const OUTAGE: Duration = Duration::from_secs(24 * 3600);
/// Once the channels are back, every lane's waiting row is retried within `retry_max_delay`
/// (the default, 1 h, ±10 %), and the rows behind it follow in the same round.
const MAX_DELAY: Duration = Duration::from_secs(3600);
/// How far the clock moves between two outbox rounds.
const STEP: Duration = Duration::from_secs(5 * 60);

async fn ingest(app: &TestApp, token: &Value, event_id: &str, second: usize) {
    let record = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": token["aws"]["access_key_id"],
            "userName": token["aws"]["username"], "accountId": token["aws"]["account_id"]},
        "eventTime": format!("2026-11-28T10:00:{second:02}Z"),
        "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9", "eventID": event_id
    });
    let resp = app
        .http
        .post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(INGEST)
        .json(&record)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

/// Advances the clock by `STEP` and runs one outbox round; returns the clock's new time.
async fn step(app: &TestApp, clock: &ManualClock) -> i64 {
    clock.advance(STEP);
    app.jobs.deliver_once().await.expect("an outbox round");
    clock.now_millis()
}

#[tokio::test]
async fn alerts_survive_a_day_long_outage_of_both_channels() {
    let per_token = outage().await;
    let out_of_order: Vec<_> = per_token
        .iter()
        .filter(|(_, times)| !times.is_sorted())
        .collect();
    println!(
        "faults: outage: {} of {TOKENS} tokens' alerts arrived out of order",
        out_of_order.len()
    );
    assert!(
        out_of_order.is_empty(),
        "each token's alerts arrive in the order of its hits: {out_of_order:?}"
    );
}

/// The horizon the server runs with when nothing is configured.
fn default_horizon() -> Duration {
    Config::default().alerts.retry_horizon
}

/// Runs the outage and checks that every alert arrived exactly once by each channel within the
/// horizon; returns each token's webhook alerts' event times in arrival order.
async fn outage() -> BTreeMap<String, Vec<String>> {
    let webhook = Receiver::start().await;
    webhook.down();
    let smtp_port = free_port();
    let app = spawn_app_with(|c: &mut Config| {
        c.ingest.secret = Some(Secret::new(INGEST));
        c.alerts.allow_private_webhooks = true;
        c.alerts.cooldown = Duration::ZERO;
        // The app's own worker runs beside the test's rounds, on the same test clock: a step of
        // STEP would expire a claim it holds mid-send and hand the lane to the test's round, a
        // second copy no real clock makes (a lane's claim lasts one send past its 200 ms budget,
        // far inside the 120 s lease). Only crash tests need the lease to run out.
        c.alerts.claim_lease = Duration::from_secs(7 * 24 * 3600);
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = smtp_port;
        c.smtp.tls = SmtpTls::None;
        c.smtp.from = Some("alerts <alerts@example.net>".into());
    })
    .await;
    let clock = app.clock.clone();

    let mut tokens = Vec::new();
    for n in 0..TOKENS {
        let resp = app
            .post_token(
                &json!({"memo": format!("host{n} .env"), "email": "soc@example.com",
                "webhook_url": webhook.url()}),
            )
            .await;
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
        tokens.push(resp.json::<Value>().await.unwrap());
    }
    // The defaults under test: the horizon outlasts the outage, and the longest retry delay.
    assert!(default_horizon() >= OUTAGE + 2 * MAX_DELAY);
    assert_eq!(Config::default().alerts.retry_max_delay, MAX_DELAY);
    let started = clock.now_millis();
    // Hits alternate between tokens, one simulated second apart.
    for h in 0..HITS_PER_TOKEN {
        for (n, token) in tokens.iter().enumerate() {
            ingest(&app, token, &format!("outage-{n}-{h}"), h).await;
            clock.advance(Duration::from_secs(1));
        }
    }

    // A day of both channels down: nothing can arrive, nothing may be given up.
    let down_until = started + millis(OUTAGE);
    while step(&app, &clock).await < down_until {}
    assert_eq!(webhook.count(), 0);

    webhook.up().await;
    let sink = SmtpSink::start_on(smtp_port);
    let total = TOKENS * HITS_PER_TOKEN;
    let mut now = clock.now_millis();
    while webhook.count() < total && now < started + millis(default_horizon()) {
        now = step(&app, &clock).await;
    }
    let recovered_after = (now - down_until) / 1000;
    println!("faults: outage: all {total} webhook alerts in {recovered_after} simulated s after recovery");
    assert_eq!(
        webhook.count(),
        total,
        "every alert arrives within the retry horizon"
    );
    assert!(
        recovered_after <= (millis(MAX_DELAY) * 11 / 10 + millis(STEP)) / 1000,
        "once back, every alert is retried within the longest retry delay"
    );
    // Each channel's lane retries on its own jittered delay: the mails' may fall up to a tenth
    // of the longest delay after the webhooks'. Rounds until every lane has been retried.
    let all_retried = down_until + millis(MAX_DELAY) * 11 / 10 + millis(STEP);
    while step(&app, &clock).await < all_retried {}
    let mails = sink.wait_for_mails(total);
    assert_eq!(mails.len(), total, "one mail per hit");

    // Exactly once each.
    let bodies = webhook.bodies();
    let ids: BTreeSet<_> = bodies.iter().map(|b| b["alert_id"].to_string()).collect();
    assert_eq!(ids.len(), total, "no alert sent twice: {bodies:#?}");
    let mut per_token: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for b in &bodies {
        assert_eq!(b["type"], "hit");
        per_token
            .entry(b["token"]["id"].as_str().unwrap().to_owned())
            .or_default()
            .push(b["event"]["event_time"].as_str().unwrap().to_owned());
    }
    assert_eq!(per_token.len(), TOKENS);
    app.stop().await;
    per_token
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap()
}
