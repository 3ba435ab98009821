//! What each stream gets, and when, black-box on SQLite and PostgreSQL:
//! - `tokens = "operators"` (the default) streams the alerts of tokens made with an operator's
//!   API key, not a stranger's; `include` adds operator alerts and audit entries;
//! - a stream that is down for a while (on the test clock) gets every alert once, in order,
//!   when it is back, while another stream and the token's own webhook are not held up.

mod streams_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use canarykeys_server::config::{
    Include, PagerdutyStream, Secret, SplunkHecStream, StreamCommon, TokenScope,
};
use canarykeys_server::services::operator_alerts::Condition;
use canarykeys_server::services::Scope;
use canarykeys_server::Services;
use canarykeys_testkit::receiver::Receiver;
use serde_json::{json, Value};
use streams_support::{hit, start, token, Db, Rx, WAIT};

fn hec(rx: &Rx, common: StreamCommon) -> SplunkHecStream {
    SplunkHecStream {
        common,
        url: format!("{}/services/collector/event", rx.base),
        token: Some(Secret::new("hec-token-0123")),
        index: None,
    }
}

fn pagerduty(rx: &Rx, common: StreamCommon) -> PagerdutyStream {
    PagerdutyStream {
        common,
        routing_key: Some(Secret::new("R0UT1NGKEY0123456789012345678901")),
        url: format!("{}/v2/enqueue", rx.base),
        severity: "critical".into(),
    }
}

/// The generic records a receiver got: each HEC event's `event` (several may share a
/// request), PagerDuty's `custom_details`.
fn records(rx: &Rx) -> Vec<Value> {
    rx.all()
        .iter()
        .flat_map(|g| {
            serde_json::Deserializer::from_slice(&g.body)
                .into_iter::<Value>()
                .map(Result::unwrap)
                .collect::<Vec<_>>()
        })
        .map(|v| {
            if v.get("event").is_some() {
                v["event"].clone()
            } else {
                v["payload"]["custom_details"].clone()
            }
        })
        .collect()
}

async fn whose_tokens_and_what_is_included(db: Db) {
    let alerts = Rx::ok().await;
    let audit = Rx::start(|_| (StatusCode::ACCEPTED, "{}".into())).await;
    let (app, config, _pg) = start(db, "ck_streams_routing", |c| {
        // Defaults: token and operator alerts, of operators' tokens.
        c.streams.splunk_hec = Some(hec(&alerts, StreamCommon::default()));
        c.streams.pagerduty = Some(pagerduty(
            &audit,
            StreamCommon {
                include: vec![Include::Audit],
                tokens: TokenScope::All,
            },
        ));
    })
    .await;
    // An operator and an API key of theirs, made through the services (audited, streamed).
    let svc = Services::open(&config).await.unwrap();
    let op = svc
        .access
        .create_operator("ops", canarykeys_testkit::access::PASSWORD)
        .await
        .unwrap();
    let (_, key) = svc
        .access
        .create_api_key(&op, "soc", &[Scope::TokensWrite])
        .await
        .unwrap();
    svc.close().await;
    let hook = Receiver::start().await;
    let stranger = token(&app, Some(&hook.url())).await;
    let resp = app
        .http
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(&key)
        .json(&json!({"memo": "ops token", "webhook_url": hook.url()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let owned: Value = resp.json().await.unwrap();
    hit(&app, &stranger, "stranger-1", "aws-cli").await;
    hit(&app, &owned, "owned-1", "aws-cli").await;
    app.deliver_until("both hits reach the webhook, one the stream", WAIT, || {
        (hook.count() == 2 && records(&alerts).len() == 1).then_some(())
    })
    .await;
    let got = records(&alerts);
    assert_eq!(
        got[0]["token"]["id"], owned["id"],
        "only the operator's token"
    );

    // An operator alert reaches the stream that includes them (the default does).
    app.jobs
        .operator_alerts()
        .report(Condition::SafetyNet {
            account_id: "123456789012".into(),
            error: Some("AccessDenied <b>x</b>".into()),
        })
        .await
        .unwrap();
    app.deliver_until("the operator alert is streamed", WAIT, || {
        (records(&alerts).len() == 2).then_some(())
    })
    .await;
    let got = records(&alerts);
    assert_eq!(got[1]["schema"], "canarykeys.operator/v1");
    assert_eq!(got[1]["type"], "safety_net");

    // The audit stream got the entries (and no alert): the operator, the key, both tokens.
    app.deliver_until("the audit entries are streamed", WAIT, || {
        let actions: Vec<String> = records(&audit)
            .iter()
            .map(|r| r["action"].as_str().unwrap_or("").to_owned())
            .collect();
        (actions.iter().filter(|a| *a == "token.create").count() == 2).then_some(actions)
    })
    .await;
    let got = records(&audit);
    assert!(
        got.iter().all(|r| r["schema"] == "canarykeys.audit/v1"),
        "{got:#?}"
    );
    assert!(
        got.iter().any(|r| r["action"] == "operator.create"),
        "{got:#?}"
    );
    assert!(got
        .iter()
        .any(|r| r["action"] == "token.create" && r["actor"] == "ops"));
    let sent: Vec<Value> = audit.all().iter().map(|g| g.json()).collect();
    assert!(sent.iter().all(|e| e["payload"]["severity"] == "info"));
}

#[tokio::test]
async fn whose_tokens_and_what_is_included_sqlite() {
    whose_tokens_and_what_is_included(Db::Sqlite).await;
}

#[tokio::test]
async fn whose_tokens_and_what_is_included_postgres() {
    whose_tokens_and_what_is_included(Db::Postgres).await;
}

async fn an_outage_delays_only_its_stream(db: Db) {
    let up = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let (flag, taken) = (up.clone(), accepted.clone());
    let pd = Rx::start(move |got| {
        if flag.load(Ordering::SeqCst) {
            let key = got.json()["dedup_key"].as_str().unwrap().to_owned();
            taken.lock().unwrap().push(key);
            (StatusCode::ACCEPTED, "{}".into())
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "down".into())
        }
    })
    .await;
    let other = Rx::ok().await;
    let all = || StreamCommon {
        tokens: TokenScope::All,
        ..StreamCommon::default()
    };
    let (app, _config, _pg) = start(db, "ck_streams_outage", |c| {
        c.streams.pagerduty = Some(pagerduty(&pd, all()));
        c.streams.splunk_hec = Some(hec(&other, all()));
    })
    .await;
    let hook = Receiver::start().await;
    let a = token(&app, Some(&hook.url())).await;
    let b = token(&app, Some(&hook.url())).await;
    for n in 0..3 {
        hit(&app, &a, &format!("a-{n}"), "aws-cli").await;
        hit(&app, &b, &format!("b-{n}"), "aws-cli").await;
    }
    // While PagerDuty is down, the webhook and the other stream get everything.
    app.deliver_until("the webhook and the other stream get all six", WAIT, || {
        (hook.count() == 6 && records(&other).len() == 6).then_some(())
    })
    .await;
    assert!(pd.count() >= 1, "PagerDuty was tried");
    let backlog = app.metrics().await;
    assert!(
        backlog.contains("canarykeys_stream_backlog{stream=\"pagerduty\"} 6"),
        "{backlog}"
    );
    assert!(!backlog.contains("canarykeys_stream_failures_total{stream=\"pagerduty\"} 0"));
    // Down for hours on the test clock, then back.
    for _ in 0..5 {
        app.advance(Duration::from_secs(3600));
        app.deliver_once().await;
    }
    assert!(accepted.lock().unwrap().is_empty());
    up.store(true, Ordering::SeqCst);
    app.advance(Duration::from_secs(3600));
    app.deliver_until("PagerDuty gets the six once back", WAIT, || {
        (accepted.lock().unwrap().len() >= 6).then_some(())
    })
    .await;
    app.advance(Duration::from_secs(3600));
    app.deliver_once().await;
    let accepted = accepted.lock().unwrap().clone();
    let order: Vec<String> = records(&other)
        .iter()
        .map(|r| r["alert_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(accepted, order, "every alert once, in the order written");
}

#[tokio::test]
async fn an_outage_delays_only_its_stream_sqlite() {
    an_outage_delays_only_its_stream(Db::Sqlite).await;
}

#[tokio::test]
async fn an_outage_delays_only_its_stream_postgres() {
    an_outage_delays_only_its_stream(Db::Postgres).await;
}
