//! Records that arrive after their token ended (CloudTrail is minutes late, and nothing bounds
//! it): a use from before the delete or expiry is a hit and its alert says the token is gone and
//! when; a use from after it (plus the clock skew), or one with no usable time, alerts as a use
//! of a retired key; none is ever counted as a duplicate; a tombstone without hits is kept for
//! the late-event window, then pruned. Time is the app's test clock.

use std::time::Duration;

use canarykeys_server::clock::Clock;
use canarykeys_server::config::Secret;
use canarykeys_testkit::receiver::Receiver;
use canarykeys_testkit::{id_and_secret, spawn_app_with, wait_for, TestApp, WAIT};
use serde_json::{json, Value};

const INGEST: &str = "late-events-ingest-secret";
const SECOND: i64 = 1000;
const MINUTE: i64 = 60 * SECOND;
const DAY: Duration = Duration::from_secs(86_400);

async fn app() -> TestApp {
    spawn_app_with(|c| {
        c.ingest.secret = Some(Secret::new(INGEST));
        c.alerts.allow_private_webhooks = true;
        c.alerts.cooldown = Duration::ZERO;
    })
    .await
}

async fn token(app: &TestApp, rx: &Receiver, extra: Value) -> Value {
    let mut body = json!({"memo": "ci runner 42", "webhook_url": rx.url()});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let resp = app.post_token(&body).await;
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The time as alerts show it to people.
fn human(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000).unwrap();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A CloudTrail record of the token's key; `at: None` leaves `eventTime` out.
fn record(created: &Value, event_id: &str, at: Option<i64>) -> Value {
    let mut r = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": created["aws"]["access_key_id"],
            "userName": created["aws"]["username"], "accountId": created["aws"]["account_id"]},
        "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9", "eventID": event_id
    });
    if let Some(at) = at {
        r["eventTime"] = json!(rfc3339(at));
    }
    r
}

async fn ingest(app: &TestApp, record: &Value) -> Value {
    let resp = app
        .http
        .post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(INGEST)
        .json(record)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Deletes with the manage secret. That is loud: the token's tamper alert goes out.
async fn delete(app: &TestApp, rx: &Receiver, created: &Value) {
    let (id, secret) = id_and_secret(created);
    let tampers = |rx: &Receiver| {
        rx.bodies()
            .iter()
            .filter(|b| b["type"] == "tamper" && b["token"]["id"] == id.as_str())
            .count()
    };
    let before = tampers(rx);
    let resp = app
        .http
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    wait_for("the delete's tamper alert", WAIT, || async {
        app.deliver_once().await;
        (tampers(rx) > before).then_some(())
    })
    .await;
}

/// Runs the outbox until the receiver holds `n` alerts of uses (tamper alerts left out: each
/// `delete` has checked its own), and returns those in the order of their events' times: two
/// alerts the planner takes in one round go out in the order of their ids, and hits stored in
/// the same millisecond (the test clock stands still) share their ids' time prefix.
async fn delivered(app: &TestApp, rx: &Receiver, n: usize) -> Vec<Value> {
    let mut uses = wait_for(&format!("{n} alerts delivered"), WAIT, || async {
        app.deliver_once().await;
        let uses: Vec<Value> = rx
            .bodies()
            .into_iter()
            .filter(|b| b["type"] != "tamper")
            .collect();
        (uses.len() >= n).then_some(uses)
    })
    .await;
    // Parsed: the text drops trailing zeros of the milliseconds, so it does not sort as time.
    uses.sort_by_key(|b| {
        let at = b["event"]["event_time"].as_str().unwrap_or_default();
        time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .map(|t| t.unix_timestamp_nanos())
            .unwrap_or_default()
    });
    uses
}

fn counts(report: &Value) -> (u64, u64, u64, u64, u64) {
    let n = |k: &str| report[k].as_u64().unwrap();
    (
        n("matched"),
        n("new_hits"),
        n("duplicates"),
        n("retired"),
        n("unknown_keys"),
    )
}

#[tokio::test]
async fn a_use_from_before_a_delete_that_arrives_after_it_is_alerted_and_says_when() {
    let (app, rx) = (app().await, Receiver::start().await);
    let created = token(&app, &rx, json!({})).await;
    let died = app.clock.now_millis();
    delete(&app, &rx, &created).await;
    app.advance(Duration::from_secs(600));

    let report = ingest(
        &app,
        &record(&created, "before-delete", Some(died - SECOND)),
    )
    .await;
    assert_eq!(
        counts(&report),
        (1, 1, 0, 0, 0),
        "a hit, not a duplicate: {report}"
    );
    let alert = delivered(&app, &rx, 1).await.remove(0);
    assert_eq!(alert["type"], "hit");
    assert_eq!(alert["retired"], false);
    assert_eq!(alert["token"]["memo"], "ci runner 42");
    let note = alert["event"]["note"].as_str().unwrap();
    assert!(
        note.contains(&format!("was deleted after this use (at {})", human(died))),
        "{note}"
    );
    assert!(!alert["headline"].as_str().unwrap().starts_with("Retired"));
    app.stop().await;
}

#[tokio::test]
async fn a_use_from_before_an_expiry_is_alerted_as_expired_and_one_after_as_a_retired_key() {
    let (app, rx) = (app().await, Receiver::start().await);
    let created = token(&app, &rx, json!({"expires_in": "1h"})).await;
    app.advance(Duration::from_secs(2 * 3600));
    let died = app.clock.now_millis();
    assert_eq!(app.jobs.expire_once().await.unwrap(), 1);
    app.advance(Duration::from_secs(3600));

    let report = ingest(
        &app,
        &record(&created, "before-expiry", Some(died - SECOND)),
    )
    .await;
    assert_eq!(counts(&report), (1, 1, 0, 0, 0), "{report}");
    let first = delivered(&app, &rx, 1).await.remove(0);
    assert_eq!(first["retired"], false);
    let note = first["event"]["note"].as_str().unwrap();
    assert!(
        note.contains(&format!(
            "has expired and was deleted after this use (at {})",
            human(died)
        )),
        "{note}"
    );

    // Past the end plus the 5-minute skew: someone still holds the key.
    let after = record(&created, "after-expiry", Some(died + 6 * MINUTE));
    let report = ingest(&app, &after).await;
    assert_eq!(counts(&report), (1, 1, 0, 1, 0), "{report}");
    let retired = delivered(&app, &rx, 2).await.remove(1);
    assert_eq!(retired["type"], "hit");
    assert_eq!(retired["retired"], true);
    assert!(retired["headline"]
        .as_str()
        .unwrap()
        .starts_with("Retired key used: GetCallerIdentity"));
    let note = retired["event"]["note"].as_str().unwrap();
    assert!(
        note.contains(&format!("expired and was deleted at {}", human(died))),
        "{note}"
    );
    // The same record again is a duplicate, as any repeat is.
    let report = ingest(&app, &after).await;
    assert_eq!(counts(&report), (1, 0, 1, 1, 0), "{report}");
    app.stop().await;
}

#[tokio::test]
async fn a_use_after_a_delete_alerts_as_a_retired_key() {
    let (app, rx) = (app().await, Receiver::start().await);
    let created = token(&app, &rx, json!({})).await;
    let died = app.clock.now_millis();
    delete(&app, &rx, &created).await;
    app.advance(Duration::from_secs(3600));

    // Inside the skew it is still a use before the end.
    let report = ingest(&app, &record(&created, "skewed", Some(died + 4 * MINUTE))).await;
    assert_eq!(counts(&report), (1, 1, 0, 0, 0), "{report}");
    let report = ingest(&app, &record(&created, "after", Some(died + 30 * MINUTE))).await;
    assert_eq!(counts(&report), (1, 1, 0, 1, 0), "{report}");
    let alerts = delivered(&app, &rx, 2).await;
    assert_eq!(alerts[0]["retired"], false, "{}", alerts[0]);
    assert_eq!(alerts[1]["retired"], true, "{}", alerts[1]);
    assert!(alerts[1]["headline"]
        .as_str()
        .unwrap()
        .starts_with("Retired key used:"));
    let note = alerts[1]["event"]["note"].as_str().unwrap();
    assert!(
        note.contains(&format!("was deleted at {}, before this use", human(died))),
        "{note}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_record_with_no_usable_time_for_a_deleted_token_is_a_retired_use() {
    let (app, rx) = (app().await, Receiver::start().await);
    let created = token(&app, &rx, json!({})).await;
    delete(&app, &rx, &created).await;

    let report = ingest(&app, &record(&created, "timeless", None)).await;
    assert_eq!(counts(&report), (1, 1, 0, 1, 0), "never dropped: {report}");
    let alert = delivered(&app, &rx, 1).await.remove(0);
    assert_eq!(alert["retired"], true, "{alert}");
    app.stop().await;
}

#[tokio::test]
async fn a_tombstone_without_hits_is_kept_for_the_window_then_pruned() {
    let (app, rx) = (app().await, Receiver::start().await);
    let quiet = token(&app, &rx, json!({})).await;
    let used = token(&app, &rx, json!({})).await;
    let died = app.clock.now_millis();
    delete(&app, &rx, &quiet).await;
    delete(&app, &rx, &used).await;

    // Six days on, both are still there: a late record of either is still a hit.
    app.advance(6 * DAY);
    assert_eq!(app.jobs.retention_once().await.unwrap().tombstones, 0);
    let report = ingest(&app, &record(&used, "six-days-late", Some(died - SECOND))).await;
    assert_eq!(counts(&report), (1, 1, 0, 0, 0), "{report}");

    // Past the 7-day window the one without hits goes; the one with a hit stays with it.
    app.advance(2 * DAY);
    assert_eq!(app.jobs.retention_once().await.unwrap().tombstones, 1);
    assert_eq!(app.jobs.retention_once().await.unwrap().tombstones, 0);
    let report = ingest(&app, &record(&quiet, "too-late", Some(died - SECOND))).await;
    assert_eq!(
        counts(&report),
        (0, 0, 0, 0, 1),
        "nothing is matched past the window: {report}"
    );
    app.stop().await;
}

/// SQLite has no notifications: a delete by the CLI (another process) reaches the running
/// server through the tokens' version, which it polls.
#[tokio::test]
async fn a_cli_delete_reaches_the_running_server() {
    let (app, rx) = (app().await, Receiver::start().await);
    let created = token(&app, &rx, json!({})).await;
    let live = ingest(
        &app,
        &record(&created, "live", Some(app.clock.now_millis())),
    )
    .await;
    assert_eq!(counts(&live), (1, 1, 0, 0, 0), "{live}");

    let (id, _) = id_and_secret(&created);
    let data_dir = app.data_dir.display().to_string();
    let out = canarykeys_testkit::cli::run(
        &app.data_dir,
        &["token", "delete", &id],
        &[("CANARYKEYS_DATA_DIR", data_dir.as_str())],
    );
    canarykeys_testkit::cli::ok(out);

    // The CLI stamps the wall clock; an hour past the app's clock is after the end either way.
    let after = record(
        &created,
        "after-cli-delete",
        Some(app.clock.now_millis() + 3_600_000),
    );
    wait_for("the server knows the key is retired", WAIT, || async {
        let report = ingest(&app, &after).await;
        (report["retired"] == 1).then_some(())
    })
    .await;
    app.stop().await;
}
