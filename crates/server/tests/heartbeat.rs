//! Proof of life with moto as AWS and the `iam` minter: the heartbeat identity is an IAM user
//! with no permissions whose calls reach moto's STS; its CloudTrail events, fed through
//! EventBridge and CloudWatch Logs ingest, the S3 poller and the safety net, are receipts (never
//! hits), and each path goes `ok`, `silent` when the feed stops, `ok` again, on the test clock.
//! A deleted heartbeat user is refused and replaced. On SQLite and PostgreSQL.

mod heartbeat_support;

use std::time::Duration;

use canarykeys_aws::sdk_config;
use canarykeys_aws::testing::Moto;
use canarykeys_server::clock::ManualClock;
use canarykeys_testkit::pollers::{put, s3_client, trail_key, BUCKET};
use canarykeys_testkit::receiver::Receiver;
use canarykeys_testkit::{id_and_secret, start_config_with_clock};
use heartbeat_support::*;
use serde_json::{json, Value};

async fn heartbeat_paths_through_every_path(postgres: bool) {
    let moto = Moto::start();
    let s3 = s3_client(&moto).await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let db = Db::new(postgres, "ck_heartbeat_paths").await;
    let ops = Receiver::start().await;
    let mut config = with_safety_net(iam_config(&db, &moto));
    config.operator_alerts.webhook_url = Some(ops.url());
    let key = api_key(&config).await;
    let app = start_config_with_clock(config.clone(), ManualClock::starting_now()).await;
    first_call(&app).await;
    let token = app.create_token().await;

    // One identity, an ordinary IAM user with no permissions, and its call answered by moto's
    // STS as that user (anything else counts as refused).
    let d = detection(&app, &key).await;
    assert_eq!(d["heartbeat"]["interval_seconds"], 3600);
    assert_eq!(d["heartbeat"]["regions"], json!(["us-east-1"]));
    let hb_key = d["heartbeat"]["keys"][0]["access_key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(d["heartbeat"]["keys"][0]["account_id"], ACCOUNT);
    let iam = aws_sdk_iam::Client::new(&sdk_config(&moto.settings()).await);
    let users = iam.list_users().send().await.unwrap();
    let hb_user = users
        .users()
        .iter()
        .map(|u| u.user_name().to_owned())
        .find(|u| *u != token["aws"]["username"].as_str().unwrap())
        .expect("the heartbeat user");
    let lower = hb_user.to_lowercase();
    assert!(
        !lower.contains("heartbeat") && !lower.contains("canary"),
        "{hb_user}"
    );
    let attached = iam
        .list_attached_user_policies()
        .user_name(&hb_user)
        .send()
        .await
        .unwrap();
    assert!(attached.attached_policies().is_empty());
    let inline = iam
        .list_user_policies()
        .user_name(&hb_user)
        .send()
        .await
        .unwrap();
    assert!(inline.policy_names().is_empty());
    let groups = iam
        .list_groups_for_user()
        .user_name(&hb_user)
        .send()
        .await
        .unwrap();
    assert!(groups.groups().is_empty());
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("canarykeys_heartbeat_calls_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    // (The safety net's first round, at start, may already have seen the call.)
    assert_eq!(
        states(&d)[..3],
        ["cloudwatch-logs=never", "eventbridge=never", "s3=never"]
    );

    // The call's events, a minute late, through each path: receipts, never hits.
    let feed = |n: u32| {
        let at = app.clock.shared().now_millis() - 60_000;
        let s3 = s3.clone();
        let hb_key = hb_key.clone();
        let app = &app;
        async move {
            let v = post_eventbridge(app, &heartbeat_event(&hb_key, &format!("eb-{n}"), at)).await;
            assert_eq!(
                (v["heartbeats"].as_u64(), v["matched"].as_u64()),
                (Some(1), Some(0))
            );
            assert_eq!(v["unknown_keys"], 0);
            let v = post_logs(app, &heartbeat_event(&hb_key, &format!("cwl-{n}"), at)).await;
            assert_eq!(v["heartbeats"], 1);
            let stamp = format!("20261128T{:02}00Z", 10 + n);
            put(
                &s3,
                &trail_key("us-east-1", &stamp, "x"),
                &[heartbeat_event(&hb_key, &format!("s3-{n}"), at)],
            )
            .await;
            app.jobs.poll_once().await.unwrap();
        }
    };
    feed(0).await;
    let (_, paths) = app.jobs.heartbeat_once().await.unwrap();
    assert!(paths.iter().all(|p| p.state.as_str() == "ok"), "{paths:?}");
    let d = detection(&app, &key).await;
    // moto moves the heartbeat key's last-used date on the call, as IAM does: the safety net's
    // round (in poll_once) made that path's receipt.
    assert_eq!(
        states(&d),
        [
            "cloudwatch-logs=ok",
            "eventbridge=ok",
            "s3=ok",
            "safety-net=ok"
        ]
    );
    for p in d["paths"].as_array().unwrap().iter().take(3) {
        assert_eq!(
            (p["account_id"].as_str(), p["region"].as_str()),
            (Some(ACCOUNT), Some("us-east-1"))
        );
        assert_eq!(p["latency_ms"], 60_000, "{p}");
        assert_eq!(p["latency_p50_ms"], 60_000);
        assert_eq!(p["latency_p95_ms"], 60_000);
        assert!(p["last_seen_at"].is_string());
    }
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("canarykeys_detection_path_up{region=\"us-east-1\",path=\"s3\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("canarykeys_detection_latency_seconds_count 4"),
        "{metrics}"
    );
    assert!(!metrics.contains(ACCOUNT), "no account id in /metrics");

    // The feed stops: past silent_after every path is silent, and comes back with the feed.
    app.advance(3 * HOUR + Duration::from_secs(1));
    app.jobs.heartbeat_once().await.unwrap();
    assert_eq!(
        states(&detection(&app, &key).await),
        [
            "cloudwatch-logs=silent",
            "eventbridge=silent",
            "s3=silent",
            "safety-net=silent"
        ]
    );
    // The operator hears of each silent path once, whatever the ticks in between.
    app.jobs.heartbeat_once().await.unwrap();
    let silent = app
        .deliver_until("an operator alert per silent path", WAIT, || {
            let d = detection_alerts(&ops, "problem");
            (d.len() >= 4).then_some(d)
        })
        .await;
    assert_eq!(
        silent,
        [
            "cloudwatch-logs=silent",
            "eventbridge=silent",
            "s3=silent",
            "safety-net=silent"
        ]
    );
    feed(1).await;
    app.jobs.heartbeat_once().await.unwrap();
    // (moto stamps last use in whole wall-clock seconds, so the safety net's second receipt
    // is not waited for here.)
    assert_eq!(
        states(&detection(&app, &key).await)[..3],
        ["cloudwatch-logs=ok", "eventbridge=ok", "s3=ok"]
    );
    let back = app
        .deliver_until("an operator alert per path back", WAIT, || {
            let d = detection_alerts(&ops, "recovered");
            (d.len() >= 3).then_some(d)
        })
        .await;
    // (The safety net's may be among them, by the same whole-second luck.)
    assert_eq!(back[..3], ["cloudwatch-logs=ok", "eventbridge=ok", "s3=ok"]);
    assert_eq!(detection_alerts(&ops, "problem").len(), 4, "no repeat");

    // None of it is a hit, an alert or a token's history.
    let (id, secret) = id_and_secret(&token);
    let a: Value = app
        .get_authed(&format!("/api/v1/tokens/{id}/alerts"), &secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["total"], 0);
    let feed_page: Value = app
        .get_authed("/api/v1/alerts", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(feed_page["total"], 0, "{feed_page}");
    // Nothing but the operator's alerts was ever sent.
    assert_eq!(app.deliver_once().await, 0);
    assert!(ops.bodies().iter().all(|b| b["type"] == "detection"));
    app.stop().await;
    db.done().await;
}

#[tokio::test]
async fn heartbeat_paths_through_every_path_sqlite() {
    heartbeat_paths_through_every_path(false).await;
}

#[tokio::test]
async fn heartbeat_paths_through_every_path_postgres() {
    heartbeat_paths_through_every_path(true).await;
}

async fn a_deleted_heartbeat_user_is_replaced(postgres: bool) {
    let moto = Moto::start();
    let db = Db::new(postgres, "ck_heartbeat_refused").await;
    let ops = Receiver::start().await;
    let mut config = iam_config(&db, &moto);
    config.detection.s3.bucket = None;
    config.operator_alerts.webhook_url = Some(ops.url());
    let key = api_key(&config).await;
    let app = start_config_with_clock(config.clone(), ManualClock::starting_now()).await;
    first_call(&app).await;
    let d = detection(&app, &key).await;
    let old = d["heartbeat"]["keys"][0]["access_key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let iam = aws_sdk_iam::Client::new(&sdk_config(&moto.settings()).await);
    let user = iam.list_users().send().await.unwrap().users()[0]
        .user_name()
        .to_owned();
    iam.delete_access_key()
        .user_name(&user)
        .access_key_id(&old)
        .send()
        .await
        .unwrap();
    iam.delete_user().user_name(&user).send().await.unwrap();

    app.advance(HOUR);
    let (beat, _) = app.jobs.heartbeat_once().await.unwrap();
    assert_eq!(
        (beat.calls, beat.refused, beat.minted),
        (1, 1, 1),
        "{beat:?}"
    );
    let d = detection(&app, &key).await;
    let keys = d["heartbeat"]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let new = keys[0]["access_key_id"].as_str().unwrap();
    assert_ne!(new, old);
    let users = iam.list_users().send().await.unwrap();
    assert_eq!(users.users().len(), 1, "one heartbeat user again");
    let refused = app
        .deliver_until("a heartbeat refused operator alert", WAIT, || {
            ops.of_type("heartbeat").into_iter().next()
        })
        .await;
    assert_eq!(refused["status"], "problem", "{refused}");

    // The new identity works at the next interval.
    app.advance(HOUR);
    let (beat, _) = app.jobs.heartbeat_once().await.unwrap();
    assert_eq!(
        (beat.calls, beat.refused, beat.minted),
        (1, 0, 0),
        "{beat:?}"
    );
    let recovered = app
        .deliver_until("the heartbeat working again", WAIT, || {
            (ops.of_type("heartbeat").len() >= 2).then(|| ops.of_type("heartbeat")[1].clone())
        })
        .await;
    assert_eq!(recovered["status"], "recovered", "{recovered}");
    app.stop().await;
    db.done().await;
}

#[tokio::test]
async fn a_deleted_heartbeat_user_is_replaced_sqlite() {
    a_deleted_heartbeat_user_is_replaced(false).await;
}

#[tokio::test]
async fn a_deleted_heartbeat_user_is_replaced_postgres() {
    a_deleted_heartbeat_user_is_replaced(true).await;
}

const WAIT: Duration = Duration::from_secs(30);

/// The operator's `detection` alerts of `status`, as "path=state", sorted.
fn detection_alerts(ops: &Receiver, status: &str) -> Vec<String> {
    let mut seen: Vec<String> = ops
        .of_type("detection")
        .iter()
        .filter(|b| b["status"] == status)
        .map(|b| {
            format!(
                "{}={}",
                b["detection"]["path"].as_str().unwrap(),
                b["detection"]["state"].as_str().unwrap()
            )
        })
        .collect();
    seen.sort();
    seen
}
