//! The HTTP streams (`[streams.splunk_hec]`, `elastic`, `ocsf`, `pagerduty`), black-box on
//! SQLite and PostgreSQL against receivers that check each documented wire format: headers,
//! body shape, `_bulk` NDJSON. A hostile user agent stays data; a test alert is never
//! streamed; `/metrics` shows each stream's backlog and failures.

mod streams_support;

use std::path::PathBuf;

use axum::http::StatusCode;
use canarykeys_server::config::{
    ElasticStream, OcsfStream, PagerdutyStream, Secret, SplunkHecStream, StreamCommon, TokenScope,
};
use canarykeys_testkit::receiver::Receiver;
use serde_json::Value;
use streams_support::{bulk_ok, hit, start, token, Db, Rx, HOSTILE_UA, WAIT};

fn all_tokens() -> StreamCommon {
    StreamCommon {
        tokens: TokenScope::All,
        ..StreamCommon::default()
    }
}

fn ocsf_validator() -> jsonschema::Validator {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/webhooks/ocsf-1.1.0-detection_finding.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the OCSF schema compiles")
}

async fn wire_formats(db: Db) {
    let hec = Rx::start(|_| (StatusCode::OK, r#"{"text":"Success","code":0}"#.into())).await;
    let pd = Rx::start(|_| {
        (
            StatusCode::ACCEPTED,
            r#"{"status":"success","message":"Event processed"}"#.into(),
        )
    })
    .await;
    let es = Rx::start(bulk_ok).await;
    let ocsf = Rx::ok().await;
    let hook = Receiver::start().await;
    let (app, _config, _pg) = start(db, "ck_streams_wire", |c| {
        c.streams.splunk_hec = Some(SplunkHecStream {
            common: all_tokens(),
            url: format!("{}/services/collector/event", hec.base),
            token: Some(Secret::new("hec-token-0123")),
            index: Some("security".into()),
        });
        c.streams.pagerduty = Some(PagerdutyStream {
            common: all_tokens(),
            routing_key: Some(Secret::new("R0UT1NGKEY0123456789012345678901")),
            url: format!("{}/v2/enqueue", pd.base),
            severity: "critical".into(),
        });
        c.streams.elastic = Some(ElasticStream {
            common: all_tokens(),
            url: format!("{}/", es.base),
            index: Some("canary-alerts".into()),
            api_key: Some(Secret::new("ZWxhc3RpYzprZXk=")),
            username: None,
            password: None,
        });
        c.streams.ocsf = Some(OcsfStream {
            common: all_tokens(),
            url: format!("{}/ocsf", ocsf.base),
            bearer_token: Some(Secret::new("ocsf-bearer-0123")),
            hmac_secret: Some(Secret::new("ocsf-hmac-secret-0123456789")),
            batch: false,
        });
    })
    .await;
    let created = token(&app, Some(&hook.url())).await;
    hit(&app, &created, "wire-1", HOSTILE_UA).await;
    app.deliver_until("every stream and the webhook got the hit", WAIT, || {
        (hec.count() == 1
            && pd.count() == 1
            && es.count() == 1
            && ocsf.count() == 1
            && hook.count() == 1)
            .then_some(())
    })
    .await;
    let generic = &hook.bodies()[0];
    let alert_id = generic["alert_id"].as_str().unwrap();
    let ua = generic["event"]["user_agent"].as_str().unwrap();
    assert!(ua.contains("<script>") && ua.contains("\"]"), "{ua:?}");

    // Splunk HEC: https://docs.splunk.com/Documentation/Splunk/latest/Data/FormateventsforHTTPEventCollector
    let got = &hec.all()[0];
    assert_eq!(got.path, "/services/collector/event");
    assert_eq!(got.header("authorization"), "Splunk hec-token-0123");
    let e = got.json();
    assert_eq!(e["sourcetype"], "canarykeys:alert");
    assert_eq!(e["source"], "canarykeys");
    assert_eq!(e["index"], "security");
    assert!(e["host"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(e["time"].as_f64().is_some_and(|t| t > 1.7e9));
    assert_eq!(&e["event"], generic, "the event is the generic alert");

    // PagerDuty Events API v2: https://developer.pagerduty.com/docs/send-alert-event
    let got = &pd.all()[0];
    assert_eq!(got.path, "/v2/enqueue");
    assert_eq!(got.header("content-type"), "application/json");
    let e = got.json();
    assert_eq!(e["routing_key"], "R0UT1NGKEY0123456789012345678901");
    assert_eq!(e["event_action"], "trigger");
    assert_eq!(e["dedup_key"], alert_id);
    assert_eq!(e["payload"]["severity"], "critical");
    assert_eq!(e["payload"]["timestamp"], "2026-11-28T10:00:00Z");
    assert!(e["payload"]["summary"].as_str().unwrap().len() <= 1024);
    assert!(!e["payload"]["source"].as_str().unwrap().is_empty());
    assert_eq!(&e["payload"]["custom_details"], generic);

    // Elastic _bulk: https://www.elastic.co/guide/en/elasticsearch/reference/8.17/docs-bulk.html
    let got = &es.all()[0];
    assert_eq!(got.path, "/_bulk");
    assert_eq!(got.header("content-type"), "application/x-ndjson");
    assert_eq!(got.header("authorization"), "ApiKey ZWxhc3RpYzprZXk=");
    let text = String::from_utf8(got.body.to_vec()).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["create"]["_index"], "canary-alerts");
    assert_eq!(lines[0]["create"]["_id"], alert_id);
    let doc = &lines[1];
    assert_eq!(doc["@timestamp"], "2026-11-28T10:00:00Z");
    assert_eq!(doc["event"]["kind"], "alert");
    assert_eq!(doc["event"]["id"], alert_id);
    assert_eq!(doc["event"]["action"], "GetCallerIdentity");
    assert_eq!(doc["source"]["ip"], "203.0.113.7");
    assert_eq!(doc["user_agent"]["original"], ua);
    assert_eq!(doc["cloud"]["provider"], "aws");
    assert_eq!(doc["cloud"]["account"]["id"], created["aws"]["account_id"]);
    assert_eq!(doc["cloud"]["region"], "us-east-1");
    assert_eq!(doc["related"]["ip"][0], "203.0.113.7");
    assert_eq!(&doc["canarykeys"], generic);

    // OCSF Detection Finding: https://schema.ocsf.io/1.1.0/classes/detection_finding
    let got = &ocsf.all()[0];
    assert_eq!(got.header("authorization"), "Bearer ocsf-bearer-0123");
    assert!(got.header("x-canarykeys-signature").starts_with("t="));
    let finding = got.json();
    let validator = ocsf_validator();
    let errors: Vec<String> = validator
        .iter_errors(&finding)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{finding:#}");
    assert_eq!(finding["class_uid"], 2004);
    assert_eq!(finding["finding_info"]["uid"], alert_id);
    assert_eq!(finding["evidences"][0]["data"]["user_agent"], ua);

    // A test alert goes to the token's webhook, never to a stream.
    let (id, secret) = canarykeys_testkit::id_and_secret(&created);
    let resp = app
        .http
        .post(app.url(&format!("/api/v1/tokens/{id}/test-alert")))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    app.deliver_until("the test alert reaches the webhook", WAIT, || {
        (hook.count() == 2).then_some(())
    })
    .await;
    assert_eq!(
        (hec.count(), pd.count(), es.count(), ocsf.count()),
        (1, 1, 1, 1)
    );

    let metrics = app.metrics().await;
    for stream in ["splunk_hec", "pagerduty", "elastic", "ocsf"] {
        assert!(
            metrics.contains(&format!(
                "canarykeys_stream_backlog{{stream=\"{stream}\"}} 0"
            )),
            "{metrics}"
        );
        assert!(
            metrics.contains(&format!(
                "canarykeys_stream_failures_total{{stream=\"{stream}\"}} 0"
            )),
            "{metrics}"
        );
    }
    for secret in [
        "hec-token-0123",
        "R0UT1NGKEY",
        "ZWxhc3RpYzprZXk",
        "ocsf-bearer",
        "ocsf-hmac",
    ] {
        assert!(!metrics.contains(secret));
    }
}

#[tokio::test]
async fn wire_formats_sqlite() {
    wire_formats(Db::Sqlite).await;
}

#[tokio::test]
async fn wire_formats_postgres() {
    wire_formats(Db::Postgres).await;
}

/// Three alerts in one bulk; Elastic refuses the second (429): only it is sent again.
async fn a_partly_failed_bulk_retries_only_its_failed_item(db: Db) {
    // Down (503) at first, so the three alerts wait in the lane and then go in one bulk.
    let es = Rx::start(|_| (StatusCode::SERVICE_UNAVAILABLE, "{}".into())).await;
    let (app, _config, _pg) = start(db, "ck_streams_bulk", |c| {
        c.streams.elastic = Some(ElasticStream {
            common: all_tokens(),
            url: es.base.clone(),
            index: None,
            api_key: None,
            username: Some("elastic".into()),
            password: Some(Secret::new("changeme-0123")),
        });
    })
    .await;
    let hook = Receiver::start().await;
    let created = token(&app, Some(&hook.url())).await;
    for n in 0..3 {
        hit(&app, &created, &format!("bulk-{n}"), "aws-cli").await;
    }
    app.deliver_until("the alerts are planned and the stream tried", WAIT, || {
        (hook.count() == 3 && es.count() >= 1).then_some(())
    })
    .await;
    // The clock moves only once the server has recorded each refusal: a retry time written
    // after the jump would fall an hour later than the test expects.
    let sent_items = |es: &Rx| -> u64 {
        es.all()
            .iter()
            .map(|g| String::from_utf8_lossy(&g.body).lines().count() as u64 / 2)
            .sum()
    };
    canarykeys_testkit::wait_for("the refusals are recorded", WAIT, || async {
        (elastic_metric(&app, "canarykeys_stream_failures_total").await == sent_items(&es))
            .then_some(())
    })
    .await;
    let refused = es.count();
    es.answer_with(|got| {
        let (status, body) = bulk_ok(got);
        let mut v: Value = serde_json::from_str(&body).unwrap();
        let items = v["items"].as_array_mut().unwrap();
        if items.len() == 3 {
            items[1]["create"]["status"] = 429.into();
            items[1]["create"]["error"] = serde_json::json!({
                "type": "es_rejected_execution_exception", "reason": "rejected: queue full"});
            v["errors"] = true.into();
        }
        (status, v.to_string())
    });
    let ids = |n: usize| -> Vec<String> {
        let got = &es.all()[n];
        String::from_utf8_lossy(&got.body)
            .lines()
            .step_by(2)
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["create"]["_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    app.advance(std::time::Duration::from_secs(3600));
    app.deliver_until("the bulk of three", WAIT, || {
        (es.count() > refused).then_some(())
    })
    .await;
    let first = ids(refused);
    assert_eq!(first.len(), 3, "the three alerts went in one bulk");
    assert!(es.all()[refused]
        .header("authorization")
        .starts_with("Basic "));
    canarykeys_testkit::wait_for("two delivered, one to retry", WAIT, || async {
        (elastic_metric(&app, "canarykeys_stream_backlog").await == 1).then_some(())
    })
    .await;
    app.advance(std::time::Duration::from_secs(3600));
    app.deliver_until("the retry", WAIT, || {
        (es.count() == refused + 2).then_some(())
    })
    .await;
    assert_eq!(
        ids(refused + 1),
        [first[1].clone()],
        "only the failed item is sent again"
    );
    canarykeys_testkit::wait_for("the retry is recorded", WAIT, || async {
        (elastic_metric(&app, "canarykeys_stream_backlog").await == 0).then_some(())
    })
    .await;
    app.advance(std::time::Duration::from_secs(3600));
    app.deliver_once().await;
    assert_eq!(es.count(), refused + 2, "nothing more to send");
}

/// The elastic stream's figure `name` on `/metrics`.
async fn elastic_metric(app: &canarykeys_testkit::app::TestApp, name: &str) -> u64 {
    let metrics = app.metrics().await;
    let line = format!("{name}{{stream=\"elastic\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in {metrics}"))
}

#[tokio::test]
async fn a_partly_failed_bulk_retries_only_its_failed_item_sqlite() {
    a_partly_failed_bulk_retries_only_its_failed_item(Db::Sqlite).await;
}

#[tokio::test]
async fn a_partly_failed_bulk_retries_only_its_failed_item_postgres() {
    a_partly_failed_bulk_retries_only_its_failed_item(Db::Postgres).await;
}
