//! Black-box tests of `POST /ingest/v1/cloudtrail`: authorisation (signature and bearer), every
//! wrapper reaching one pipeline, dedupe across paths, and bad input that leaves the server up
//! and earlier hits untouched.

use std::io::Write;

use canarykeys_core::signing;
use canarykeys_testkit::{gzip, id_and_secret, spawn_app_with, TestApp};
use serde_json::{json, Value};

const SECRET: &str = "test-ingest-secret-0123456789";

async fn app() -> TestApp {
    spawn_app_with(|c| c.ingest.secret = Some(canarykeys_server::config::Secret::new(SECRET))).await
}

/// A CloudTrail record of a call made with `key`, as AWS writes it.
fn record(key: &str, user: &str, account: &str, event_id: &str) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": format!("arn:aws:iam::{account}:user/{user}"),
            "accountId": account, "accessKeyId": key, "userName": user
        },
        "eventTime": "2026-11-28T10:00:00Z",
        "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.0 <script>alert(1)</script>",
        "requestParameters": null,
        "responseElements": null,
        "requestID": "req-1",
        "eventID": event_id,
        "readOnly": true,
        "eventType": "AwsApiCall",
        "recipientAccountId": account,
        "tlsDetails": {"clientProvidedHostHeader": "sts.us-east-1.amazonaws.com"}
    })
}

fn token_record(created: &Value, event_id: &str) -> Value {
    record(
        created["aws"]["access_key_id"].as_str().unwrap(),
        created["aws"]["username"].as_str().unwrap(),
        created["aws"]["account_id"].as_str().unwrap(),
        event_id,
    )
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn post_signed(app: &TestApp, body: Vec<u8>, at: i64) -> reqwest::Response {
    let sig = signing::sign(SECRET.as_bytes(), at, &body);
    app.http
        .post(app.url("/ingest/v1/cloudtrail"))
        .header("x-canarykeys-signature", sig)
        .header("x-canarykeys-path", "cloudwatch-logs")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn post_bearer(app: &TestApp, body: Vec<u8>, secret: &str) -> reqwest::Response {
    app.http
        .post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(secret)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn alerts(app: &TestApp, created: &Value) -> Value {
    let (id, secret) = id_and_secret(created);
    app.get_authed(&format!("/api/v1/tokens/{id}/alerts"), &secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn without_a_secret_ingest_is_off_and_says_why() {
    let app = canarykeys_testkit::spawn_app().await;
    let resp = app
        .http
        .post(app.url("/ingest/v1/cloudtrail"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "ingest_disabled");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("CANARYKEYS_INGEST__SECRET"));
}

#[tokio::test]
async fn one_event_is_one_hit_whatever_the_path() {
    let app = app().await;
    let created = app.create_token().await;
    let rec = token_record(&created, "evt-0001");

    // The relay's form: a signed JSON array.
    let resp = post_signed(&app, serde_json::to_vec(&json!([rec])).unwrap(), unix_now()).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            v["records"].as_u64(),
            v["matched"].as_u64(),
            v["new_hits"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );

    // Again, then through EventBridge (bearer), then as a gzipped log file: still one hit.
    let v: Value = post_signed(&app, serde_json::to_vec(&json!([rec])).unwrap(), unix_now())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["duplicates"], 1);
    let envelope = json!({"version": "0", "id": "e1", "detail-type": "AWS API Call via CloudTrail", "source": "aws.sts",
        "account": "123456789012", "time": "2026-11-28T10:00:01Z", "region": "us-east-1", "resources": [], "detail": rec});
    let resp = post_bearer(&app, serde_json::to_vec(&envelope).unwrap(), SECRET).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        (v["format"].as_str(), v["duplicates"].as_u64()),
        (Some("event_bridge"), Some(1))
    );
    let log_file = gzip(&serde_json::to_vec(&json!({"Records": [rec]})).unwrap());
    let v: Value = post_bearer(&app, log_file, SECRET)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["format"].as_str(), v["duplicates"].as_u64()),
        (Some("log_file"), Some(1))
    );

    let a = alerts(&app, &created).await;
    assert_eq!(a["total"], 1);
    let hit = &a["alerts"][0];
    assert_eq!(hit["event_name"], "GetCallerIdentity");
    assert_eq!(hit["event_source"], "sts.amazonaws.com");
    assert_eq!(hit["source_ip"], "203.0.113.7");
    assert_eq!(hit["region"], "us-east-1");
    assert_eq!(
        hit["path"], "cloudwatch-logs",
        "the earliest arrival is kept"
    );
    assert_eq!(hit["event_id"], "evt-0001");
    assert_eq!(hit["tls_host"], "sts.us-east-1.amazonaws.com");
    assert_eq!(hit["event_time"], "2026-11-28T10:00:00Z");

    // The manage page lists it, escaped.
    let manage = created["manage_url"].as_str().unwrap();
    let page = app
        .http
        .get(manage)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("GetCallerIdentity") && !page.contains("<script>alert(1)"));
}

#[tokio::test]
async fn bad_authorisation_is_refused_and_stores_nothing() {
    let app = app().await;
    let created = app.create_token().await;
    let body = serde_json::to_vec(&json!([token_record(&created, "evt-bad")])).unwrap();
    let wrong = signing::sign(b"another-secret-entirely", unix_now(), &body);
    let cases = [
        app.http
            .post(app.url("/ingest/v1/cloudtrail"))
            .header("x-canarykeys-signature", wrong)
            .body(body.clone()),
        app.http
            .post(app.url("/ingest/v1/cloudtrail"))
            .header("x-canarykeys-signature", "t=1,v1=00")
            .body(body.clone()),
        app.http
            .post(app.url("/ingest/v1/cloudtrail"))
            .bearer_auth("not-the-secret")
            .body(body.clone()),
        app.http
            .post(app.url("/ingest/v1/cloudtrail"))
            .body(body.clone()),
    ];
    for req in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.json::<Value>().await.unwrap()["error"]["code"],
            "unauthenticated"
        );
    }
    // A valid signature from 6 minutes ago is a replay.
    let resp = post_signed(&app, body.clone(), unix_now() - 360).await;
    assert_eq!(resp.status(), 401);
    // A signature over other bytes.
    let sig = signing::sign(SECRET.as_bytes(), unix_now(), b"[]");
    let resp = app
        .http
        .post(app.url("/ingest/v1/cloudtrail"))
        .header("x-canarykeys-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(alerts(&app, &created).await["total"], 0);
}

#[tokio::test]
async fn unknown_keys_are_counted_never_alerted_and_users_match_temporary_keys() {
    let app = app().await;
    let created = app.create_token().await;
    let stranger = record(
        "AKIAIOSFODNN7EXAMPLE",
        "someone",
        "111122223333",
        "evt-stranger",
    );
    // Temporary credentials made from the decoy key: an ASIA key id, the decoy's user name.
    let mut temporary = token_record(&created, "evt-asia");
    temporary["userIdentity"]["accessKeyId"] = json!("ASIAY34FZKBOKMUTVV7A");
    let v: Value = post_bearer(
        &app,
        serde_json::to_vec(&json!([stranger, temporary])).unwrap(),
        SECRET,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (
            v["unknown_keys"].as_u64(),
            v["matched"].as_u64(),
            v["new_hits"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    // The stranger was never built (the key index's gate refused it), yet it is counted as
    // every record is.
    assert_eq!(
        (v["records"].as_u64(), v["parsed"].as_u64()),
        (Some(2), Some(2))
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("canarykeys_ingest_unknown_key_total{path=\"api\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("canarykeys_ingest_records_total{path=\"api\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("canarykeys_ingest_new_hits_total{path=\"api\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_keeps_earlier_hits() {
    let app = app().await;
    let created = app.create_token().await;
    let good = token_record(&created, "evt-good");
    assert_eq!(
        post_bearer(&app, serde_json::to_vec(&json!([good])).unwrap(), SECRET)
            .await
            .status(),
        200
    );

    for (body, status, code) in [
        (b"{not json".to_vec(), 400, "not_cloudtrail"),
        (br#"{"hello": "world"}"#.to_vec(), 400, "not_cloudtrail"),
        (
            br#"{"awslogs": {"data": "!!!not base64!!!"}}"#.to_vec(),
            400,
            "not_cloudtrail",
        ),
        (
            gzip(b"{\"Records\": [")[..20].to_vec(),
            400,
            "not_cloudtrail",
        ),
        (Vec::new(), 400, "not_cloudtrail"),
    ] {
        let resp = post_bearer(&app, body, SECRET).await;
        assert_eq!(resp.status(), status);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
    }

    // A gzip bomb stops at the decompression limit with 413.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..40 {
        enc.write_all(&zeros).unwrap();
    }
    let resp = post_bearer(&app, enc.finish().unwrap(), SECRET).await;
    assert_eq!(resp.status(), 413);

    // In a batch, good records are kept and bad ones reported.
    // (A record is broken beyond use only when it names no identity.)
    let mut broken = token_record(&created, "evt-x");
    broken.as_object_mut().unwrap().remove("userIdentity");
    let batch = json!([
        token_record(&created, "evt-batch-1"),
        broken,
        token_record(&created, "evt-batch-2")
    ]);
    let v: Value = post_bearer(&app, serde_json::to_vec(&batch).unwrap(), SECRET)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            v["parsed"].as_u64(),
            v["skipped"].as_u64(),
            v["new_hits"].as_u64()
        ),
        (Some(2), Some(1), Some(2))
    );
    assert_eq!(v["skip_reasons"][0]["index"], 1);
    assert!(!v["skip_reasons"][0]["reason"].as_str().unwrap().is_empty());

    assert_eq!(
        alerts(&app, &created).await["total"],
        3,
        "the first hit is still there"
    );
}

#[tokio::test]
async fn bodies_over_the_ingest_limit_are_413() {
    let app = spawn_app_with(|c| {
        c.ingest.secret = Some(canarykeys_server::config::Secret::new(SECRET));
        c.ingest.max_body_bytes = 4096;
    })
    .await;
    let resp = post_bearer(&app, vec![b' '; 10_000], SECRET).await;
    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "payload_too_large"
    );
}

#[tokio::test]
async fn a_record_without_event_time_or_id_is_still_a_hit_once_and_says_why() {
    let app = app().await;
    let created = app.create_token().await;
    // A SIEM export: eventTime renamed to @timestamp, eventID dropped.
    let mut rec = token_record(&created, "unused");
    let obj = rec.as_object_mut().unwrap();
    obj.remove("eventID");
    obj.remove("eventTime");
    obj.insert("@timestamp".into(), json!("2026-11-28T10:00:00.000Z"));
    let line = serde_json::to_vec(&rec).unwrap();
    let v: Value = post_bearer(&app, line.clone(), SECRET)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["new_hits"].as_u64(), v["skipped"].as_u64()),
        (Some(1), Some(0)),
        "{v}"
    );
    // The same record again is a duplicate: the content hash stands in for the eventID.
    let v: Value = post_bearer(&app, line, SECRET).await.json().await.unwrap();
    assert_eq!(v["duplicates"], 1, "{v}");
    let hits = alerts(&app, &created).await;
    assert_eq!(hits["total"], 1);
    let hit = &hits["alerts"][0];
    assert_eq!(hit["event_time"], "2026-11-28T10:00:00Z");
    let note = hit["note"].as_str().unwrap();
    assert!(note.contains("@timestamp used"), "{note}");
    assert!(note.contains("hash of the record"), "{note}");
}
