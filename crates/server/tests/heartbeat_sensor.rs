//! Proof of life through the sensor, as in the quickstart's loop (the `local` minter, the
//! heartbeat pointed at the sensor): the sensor path reads `ok` in the API, the console and the
//! OpenAPI-typed answer; and replicas on PostgreSQL make one call per interval per region in
//! all, whichever takes the slot. On SQLite and PostgreSQL.

mod heartbeat_support;

use canarykeys_server::clock::ManualClock;
use canarykeys_testkit::smtp_sink::free_port;
use canarykeys_testkit::{start_config_with_clock, wait_for, WAIT};
use heartbeat_support::*;
use serde_json::Value;

async fn the_sensor_is_a_live_path(postgres: bool) {
    let db = Db::new(postgres, "ck_heartbeat_sensor").await;
    let port = free_port();
    let mut config = sensor_config(&db, "a", port);
    config.sensor.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let key = api_key(&config).await;
    let app = start_config_with_clock(config.clone(), ManualClock::starting_now()).await;
    let store = db.store(&config).await;
    wait_for("a receipt per region from the sensor", WAIT, || async {
        (receipts(&store).await == 2).then_some(())
    })
    .await;
    let d = detection(&app, &key).await;
    let paths: Vec<String> = d["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}/{}={}",
                p["region"].as_str().unwrap(),
                p["path"].as_str().unwrap(),
                p["state"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(paths, ["eu-west-1/sensor=ok", "us-east-1/sensor=ok"]);
    assert_eq!(d["paths"][0]["latency_ms"], 0);
    assert_eq!(app.deliver_once().await, 0, "a heartbeat alerts nobody");

    // The console overview has a row per path, for an operator session as for the API.
    let session = canarykeys_testkit::access::login(&app, "ops").await;
    let resp = app
        .http
        .get(app.url("/api/v1/detection"))
        .header("cookie", format!("ck_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let html = app
        .http
        .get(app.url("/console"))
        .header("cookie", format!("ck_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"id="detection-eu-west-1-sensor""#),
        "{html}"
    );
    assert!(html.contains(r#"id="detection-us-east-1-sensor""#));
    assert!(!html.contains("quiet for more than"));

    // The response is typed in the OpenAPI document, field for field.
    let doc: Value = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/detection"]["get"].is_object());
    let props = |name: &str| {
        let mut p: Vec<String> = doc["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema {name}"))
            .keys()
            .cloned()
            .collect();
        p.sort();
        p
    };
    assert_eq!(props("DetectionOverview"), ["heartbeat", "paths"]);
    assert_eq!(
        props("HeartbeatInfo"),
        ["interval_seconds", "keys", "regions"]
    );
    assert_eq!(props("HeartbeatKeyInfo"), ["access_key_id", "account_id"]);
    assert_eq!(
        props("PathStatus"),
        [
            "account_id",
            "last_seen_at",
            "latency_ms",
            "latency_p50_ms",
            "latency_p95_ms",
            "path",
            "region",
            "state"
        ]
    );
    store.close().await;
    app.stop().await;
    db.done().await;
}

#[tokio::test]
async fn the_sensor_is_a_live_path_sqlite() {
    the_sensor_is_a_live_path(false).await;
}

#[tokio::test]
async fn the_sensor_is_a_live_path_postgres() {
    the_sensor_is_a_live_path(true).await;
}

#[tokio::test]
async fn two_replicas_make_one_call_per_interval_per_region() {
    let db = Db::new(true, "ck_heartbeat_replicas").await;
    let port = free_port();
    let mut a_config = sensor_config(&db, "a", port);
    a_config.sensor.listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let b_config = sensor_config(&db, "b", port);
    let clock = ManualClock::starting_now();
    let a = start_config_with_clock(a_config.clone(), clock.clone()).await;
    let store = db.store(&a_config).await;
    // The first tick (at start) calls both regions once, whichever replica takes the slots.
    wait_for("the first interval's calls", WAIT, || async {
        (receipts(&store).await == 2).then_some(())
    })
    .await;
    let b = start_config_with_clock(b_config, clock.clone()).await;
    for round in 1..=3 {
        clock.advance(HOUR);
        let (ra, rb) = tokio::join!(a.jobs.heartbeat_once(), b.jobs.heartbeat_once());
        let calls = ra.unwrap().0.calls + rb.unwrap().0.calls;
        assert!(calls <= 2, "round {round}: {calls} calls");
        // B's own first tick may take this interval's slots instead of either call above.
        wait_for("one call per region this interval", WAIT, || async {
            (receipts(&store).await == 2 * (round + 1)).then_some(())
        })
        .await;
    }
    assert_eq!(receipts(&store).await, 8);
    store.close().await;
    a.stop().await;
    b.stop().await;
    db.done().await;
}
