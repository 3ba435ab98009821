//! The operator channel (`[operator_alerts]`), black-box on SQLite and PostgreSQL: a condition's
//! changes reach a webhook receiver and an SMTP sink once each (the same state reported five
//! times is one alert), with reported text escaped; the watchdog sends one `alive` per interval
//! as the clock advances; an operator alert whose receiver is down is retried in its own lane
//! while token alerts go out. The producers (safety net, disk) are in `operator_producers.rs`.

use std::time::Duration;

use canarykeys_core::detection::{DetectionReport, PathState};
use canarykeys_server::config::{Config, Secret, SmtpTls};
use canarykeys_server::services::operator_alerts::Condition;
use canarykeys_server::services::Scope;
use canarykeys_server::Services;
use canarykeys_testkit::console::{ingest, INGEST_SECRET};
use canarykeys_testkit::receiver::Receiver;
use canarykeys_testkit::smtp_sink::SmtpSink;
use canarykeys_testkit::{spawn_app_with, wait_for, TestApp, TestDatabase};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
/// Markup for every channel and a line break: what an error quoting AWS or a receiver could hold.
const HOSTILE: &str = "<script>alert(1)</script> <!channel> @everyone *b*\nForged: line";

#[derive(Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

/// An app on `db`, with `tweak` applied; the configuration is returned to open its services.
async fn start(db: Db, tweak: impl FnOnce(&mut Config)) -> (TestApp, Config, Option<TestDatabase>) {
    let pg = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(TestDatabase::create("ck_operator_alerts").await),
    };
    let mut kept = None;
    let url = pg.as_ref().map(|d| d.url().to_owned());
    let app = spawn_app_with(|c| {
        c.database_url = url;
        c.ingest.secret = Some(Secret::new(INGEST_SECRET));
        c.alerts.allow_private_webhooks = true;
        tweak(c);
        kept = Some(c.clone());
    })
    .await;
    (app, kept.unwrap(), pg)
}

fn smtp(c: &mut Config, sink: &SmtpSink) {
    c.smtp.host = Some("127.0.0.1".into());
    c.smtp.port = sink.port();
    c.smtp.tls = SmtpTls::None;
    c.smtp.from = Some("canarykeys <alerts@canarykeys.example>".into());
}

/// An API key that may read `/healthz/detail`.
async fn monitor_key(config: &Config) -> String {
    let svc = Services::open(config).await.unwrap();
    let op = svc
        .access
        .create_operator("ops", canarykeys_testkit::access::PASSWORD)
        .await
        .unwrap();
    let (_, key) = svc
        .access
        .create_api_key(&op, "monitor", &[Scope::AlertsRead])
        .await
        .unwrap();
    svc.close().await;
    key
}

async fn detail(app: &TestApp, key: &str) -> Value {
    let resp = app
        .http
        .get(app.url("/healthz/detail"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn path(state: PathState) -> Condition {
    Condition::Detection(DetectionReport {
        account_id: "123456789012".into(),
        region: "eu-west-1".into(),
        path: "eventbridge".into(),
        state,
        last_seen_at: Some(1_800_000_000_000),
        latency_ms: Some(4_200),
    })
}

async fn changes_alert_once_by_webhook_and_mail(db: Db) {
    let sink = SmtpSink::start();
    let rx = Receiver::start().await;
    let (app, config, pg) = start(db, |c| {
        smtp(c, &sink);
        c.operator_alerts.email = vec!["ops@example.com".into()];
        c.operator_alerts.webhook_url = Some(rx.url());
    })
    .await;
    let ops = app.jobs.operator_alerts().clone();
    let net = |error: Option<&str>| Condition::SafetyNet {
        account_id: "123456789012".into(),
        error: error.map(str::to_owned),
    };
    // A first report that all is well sends nothing.
    ops.report(Condition::HeartbeatCall {
        account_id: "123456789012".into(),
        region: "eu-west-1".into(),
        refused: None,
    })
    .await
    .unwrap();
    for _ in 0..5 {
        ops.report(net(Some(HOSTILE))).await.unwrap();
        ops.report(path(PathState::Silent)).await.unwrap();
    }
    // `late` is recorded, not alerted; `ok` after silent is the recovery.
    ops.report(path(PathState::Late)).await.unwrap();
    for _ in 0..5 {
        ops.report(path(PathState::Ok)).await.unwrap();
        ops.report(net(None)).await.unwrap();
    }
    app.deliver_until("four operator alerts by webhook and by mail", WAIT, || {
        (rx.count() >= 4 && sink.count() >= 4).then_some(())
    })
    .await;
    let mails = sink.wait_for_mails(4);
    app.deliver_once().await;
    assert_eq!(rx.count(), 4, "one alert per change: {:?}", rx.bodies());

    let bodies = rx.bodies();
    let seen: Vec<(String, String)> = bodies
        .iter()
        .map(|b| {
            assert_eq!(b["schema"], "canarykeys.operator/v1", "{b}");
            (
                b["type"].as_str().unwrap().into(),
                b["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    for want in [
        ("safety_net", "problem"),
        ("detection", "problem"),
        ("detection", "recovered"),
        ("safety_net", "recovered"),
    ] {
        assert!(
            seen.contains(&(want.0.into(), want.1.into())),
            "{want:?} in {seen:?}"
        );
    }
    let silent = bodies
        .iter()
        .find(|b| b["type"] == "detection" && b["status"] == "problem")
        .unwrap();
    assert_eq!(
        silent["detection"],
        json!({"account_id": "123456789012", "region": "eu-west-1", "path": "eventbridge",
               "state": "silent", "last_seen_at": "2027-01-15T08:00:00Z", "latency_ms": 4200})
    );
    assert!(silent["safety_net"].is_null() && silent["disk"].is_null());
    // The generic schema passes the error as it was; the receiver escapes it.
    let failing = &rx
        .of_type("safety_net")
        .into_iter()
        .find(|b| b["status"] == "problem")
        .unwrap();
    assert_eq!(failing["safety_net"]["error"], HOSTILE);

    let mails = if mails.len() < 4 {
        sink.wait_for_mails(4)
    } else {
        mails
    };
    assert_eq!(mails.len(), 4, "one mail per change");
    let problem = mails
        .iter()
        .find(|m| m.header("Subject") == Some("[canarykeys] Safety-net rounds failing"))
        .expect("the safety-net mail");
    let html = problem.part("text/html").unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    let text = problem.part("text/plain").unwrap();
    assert!(!text.contains("\nForged"), "{text}");

    let key = monitor_key(&config).await;
    let d = detail(&app, &key).await;
    assert_eq!(
        d["operator"]["channels"],
        json!(["email", "webhook"]),
        "{d}"
    );
    assert_eq!(d["operator"]["pending"], 0, "{d}");
    assert_eq!(d["operator"]["alive_every_seconds"], Value::Null, "{d}");
    app.stop().await;
    if let Some(pg) = pg {
        pg.drop_database().await;
    }
}

async fn alive_once_per_interval(db: Db) {
    let rx = Receiver::start().await;
    let (app, config, pg) = start(db, |c| {
        c.operator_alerts.webhook_url = Some(rx.url());
        c.operator_alerts.alive_every = Some(Duration::from_secs(60));
    })
    .await;
    let alive = || rx.of_type("alive").len();
    // The watchdog's loop may take the first turn before this call does: count what arrives.
    app.jobs.alive_once().await.unwrap();
    app.deliver_until("the first alive", WAIT, || (alive() >= 1).then_some(()))
        .await;
    for _ in 0..3 {
        assert!(!app.jobs.alive_once().await.unwrap(), "not due yet");
    }
    app.advance(Duration::from_secs(59));
    assert!(!app.jobs.alive_once().await.unwrap(), "not due yet");
    app.advance(Duration::from_secs(1));
    app.jobs.alive_once().await.unwrap();
    app.deliver_until("the second alive", WAIT, || (alive() >= 2).then_some(()))
        .await;
    assert!(!app.jobs.alive_once().await.unwrap());
    app.deliver_once().await;
    assert_eq!(alive(), 2, "one per interval");
    let beat = &rx.of_type("alive")[0];
    assert_eq!(beat["status"], "alive");
    assert_eq!(beat["alive"]["every_seconds"], 60);

    let key = monitor_key(&config).await;
    let d = detail(&app, &key).await;
    assert_eq!(d["operator"]["alive_every_seconds"], 60, "{d}");
    assert!(d["operator"]["last_alive_at"].is_string(), "{d}");
    assert!(d["operator"]["next_alive_at"].is_string(), "{d}");
    app.stop().await;
    if let Some(pg) = pg {
        pg.drop_database().await;
    }
}

async fn a_down_receiver_retries_in_its_own_lane(db: Db) {
    let op_rx = Receiver::start().await;
    let token_rx = Receiver::start().await;
    let (app, config, pg) = start(db, |c| {
        c.operator_alerts.webhook_url = Some(op_rx.url());
    })
    .await;
    op_rx.down();
    let ops = app.jobs.operator_alerts().clone();
    ops.report(Condition::Disk {
        low: true,
        free_bytes: 1024,
    })
    .await
    .unwrap();
    let key = monitor_key(&config).await;
    // Tried and failed: it waits for its retry, and says why.
    wait_for("the operator delivery's first failure", WAIT, || async {
        app.deliver_once().await;
        let d = detail(&app, &key).await;
        d["operator"]["last_error"].is_string().then_some(())
    })
    .await;

    // A token's alert meanwhile goes out at once.
    let resp = app
        .post_token(&json!({"kind": "aws_keys", "memo": "web01", "webhook_url": token_rx.url()}))
        .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    ingest(
        &app,
        created["aws"]["access_key_id"].as_str().unwrap(),
        "ev-1",
        "curl",
    )
    .await;
    app.deliver_until("the token's alert", WAIT, || {
        (!token_rx.of_type("hit").is_empty()).then_some(())
    })
    .await;
    assert_eq!(op_rx.count(), 0);
    let d = detail(&app, &key).await;
    assert_eq!(d["operator"]["pending"], 1, "{d}");
    // Never switched off: once the receiver is back and the retry is due, it arrives.
    op_rx.up().await;
    app.advance(Duration::from_secs(600));
    app.deliver_until("the operator alert after its retry", WAIT, || {
        (op_rx.count() == 1).then_some(())
    })
    .await;
    assert_eq!(op_rx.of_type("disk")[0]["disk"]["low"], true);
    app.stop().await;
    if let Some(pg) = pg {
        pg.drop_database().await;
    }
}

macro_rules! on_both {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name(super::Db::Sqlite).await } )+
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name(super::Db::Postgres).await } )+
        }
    };
}

on_both!(
    changes_alert_once_by_webhook_and_mail,
    alive_once_per_interval,
    a_down_receiver_retries_in_its_own_lane,
);
