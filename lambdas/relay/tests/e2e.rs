//! End to end on loopback: the real canarykeys server, started in-process, and the relay's own
//! Lambda handler. A token is created; a CloudTrail record of a call made with its key, wrapped
//! as a CloudWatch Logs subscription event, goes through the handler to the server and becomes
//! exactly one hit. The same event again, and the same record through the EventBridge form, still
//! make one hit. A wrong signature is refused with 401 and stores nothing.

mod common;

use std::error::Error;

use canarykeys_relay::{PostError, RelayError};
use common::{awslogs_json, lambda_event, logs_event, SECRET};
use serde_json::{json, Value};

type TestResult = Result<(), Box<dyn Error>>;

const EVENT_TIME: &str = "2026-11-28T09:27:19Z";
const SOURCE_IP: &str = "198.51.100.23";
const USER_AGENT: &str =
    "aws-cli/2.15.0 Python/3.11.6 Linux/6.5.0-1014-aws exe/x86_64.ubuntu.22 prompt/off command/sts.get-caller-identity";

/// A CloudTrail record of `sts:GetCallerIdentity` called with the token's key, as AWS writes it.
fn get_caller_identity(created: &Value, event_id: &str) -> Value {
    let aws = &created["aws"];
    let (key, user, account) = (
        aws["access_key_id"].as_str().unwrap(),
        aws["username"].as_str().unwrap(),
        aws["account_id"].as_str().unwrap(),
    );
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAJQABLZS4A3QDU576Q",
            "arn": format!("arn:aws:iam::{account}:user/{user}"),
            "accountId": account,
            "accessKeyId": key,
            "userName": user
        },
        "eventTime": EVENT_TIME,
        "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1",
        "sourceIPAddress": SOURCE_IP,
        "userAgent": USER_AGENT,
        "requestParameters": null,
        "responseElements": null,
        "requestID": "3b5f1c4e-8d1a-4c3e-9f0b-2a7d6e5c4b3a",
        "eventID": event_id,
        "readOnly": true,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": account,
        "eventCategory": "Management",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": "sts.us-east-1.amazonaws.com"
        }
    })
}

/// The decoded DATA_MESSAGE a CloudTrail log group's subscription filter delivers, carrying
/// `record` as its one log event (CloudTrail writes the record as a JSON string).
fn data_message(record: &Value) -> String {
    let account = record["recipientAccountId"].as_str().unwrap();
    json!({
        "messageType": "DATA_MESSAGE",
        "owner": account,
        "logGroup": format!("aws-cloudtrail-logs-{account}-3f1c2b7a"),
        "logStream": format!("{account}_CloudTrail_us-east-1"),
        "subscriptionFilters": ["canarykeys-relay"],
        "logEvents": [{
            "id": "37984356221458394835628479364727502839572930485736281600",
            "timestamp": 1_795_858_039_000u64,
            "message": record.to_string()
        }]
    })
    .to_string()
}

/// The same record as EventBridge delivers it to an API destination.
fn eventbridge_envelope(record: &Value) -> Value {
    json!({
        "version": "0",
        "id": "6f0c7e1d-2b3a-4c5d-8e9f-0a1b2c3d4e5f",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.sts",
        "account": record["recipientAccountId"],
        "time": EVENT_TIME,
        "region": "us-east-1",
        "resources": [],
        "detail": record
    })
}

async fn alerts(
    http: &reqwest::Client,
    base: &str,
    created: &Value,
) -> Result<Value, Box<dyn Error>> {
    let id = created["id"].as_str().unwrap();
    let secret = created["manage_secret"].as_str().unwrap();
    let resp = http
        .get(format!("{base}/api/v1/tokens/{id}/alerts"))
        .bearer_auth(secret)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    Ok(resp.json().await?)
}

/// The server's count of refused ingest requests for `reason`, from `/metrics`.
async fn rejected(http: &reqwest::Client, base: &str, reason: &str) -> Result<u64, Box<dyn Error>> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let prefix = format!("canarykeys_ingest_rejected_total{{reason=\"{reason}\"}} ");
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(Ok(0), str::parse)?)
}

#[tokio::test]
async fn a_key_used_once_is_one_hit_whatever_the_path_and_a_wrong_signature_stores_nothing(
) -> TestResult {
    // The real server, as `canarykeys serve` would start it, on a free loopback port.
    let tmp = tempfile::tempdir()?;
    let mut config = canarykeys_server::Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: tmp.path().into(),
        ..Default::default()
    };
    config.ingest.secret = Some(canarykeys_server::config::Secret::new(SECRET));
    config.rate_limit.create_per_minute = 1000;
    config.access.create = "open".into();
    let app = canarykeys_server::Application::build(config).await?;
    let base = format!("http://{}", app.address());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();

    // A token.
    let resp = http
        .post(format!("{base}/api/v1/tokens"))
        .json(&json!({"kind": "aws_keys", "memo": "build server ~/.aws/credentials", "email": "soc@example.com"}))
        .send()
        .await?;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await?;
    for field in ["access_key_id", "username", "account_id"] {
        assert!(created["aws"][field].is_string(), "{field} in {created}");
    }
    assert_eq!(alerts(&http, &base, &created).await?["total"], 0);

    // The key is used: CloudTrail → CloudWatch Logs → subscription → the relay's handler.
    let record = get_caller_identity(&created, "c2f8e3a4-5b6d-4e7f-8091-a2b3c4d5e6f7");
    let wire = awslogs_json(&data_message(&record));
    let relay = common::relay(&base, SECRET, 4);
    let summary =
        canarykeys_relay::handler(&relay, lambda_event(logs_event(wire.clone())?)).await?;
    assert_eq!(summary.message_type, "DATA_MESSAGE");
    assert_eq!(
        (
            summary.records_seen,
            summary.posted,
            summary.skipped,
            summary.batches
        ),
        (1, 1, 0, 1)
    );
    assert_eq!(
        (
            summary.server.records,
            summary.server.matched,
            summary.server.new_hits,
            summary.server.duplicates
        ),
        (1, 1, 1, 0)
    );

    let a = alerts(&http, &base, &created).await?;
    assert_eq!(a["total"], 1, "{a}");
    let hit = &a["alerts"][0];
    assert_eq!(hit["event_id"], record["eventID"]);
    assert_eq!(hit["event_name"], "GetCallerIdentity");
    assert_eq!(hit["event_source"], "sts.amazonaws.com");
    assert_eq!(hit["region"], "us-east-1");
    assert_eq!(hit["event_time"], EVENT_TIME);
    assert_eq!(hit["source_ip"], SOURCE_IP);
    assert_eq!(hit["user_agent"], USER_AGENT);
    assert_eq!(hit["access_key_id"], created["aws"]["access_key_id"]);
    assert_eq!(hit["path"], "cloudwatch-logs");
    assert_eq!(hit["cloudtrail"], record, "the record is kept as sent");

    // Lambda delivers the same event again: a duplicate, not a second hit.
    let summary =
        canarykeys_relay::handler(&relay, lambda_event(logs_event(wire.clone())?)).await?;
    assert_eq!(
        (
            summary.posted,
            summary.server.new_hits,
            summary.server.duplicates
        ),
        (1, 0, 1)
    );
    assert_eq!(alerts(&http, &base, &created).await?["total"], 1);

    // The same record through EventBridge (an API destination sends the secret as a bearer).
    let resp = http
        .post(format!("{base}/ingest/v1/cloudtrail"))
        .bearer_auth(SECRET)
        .json(&eventbridge_envelope(&record))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await?;
    assert_eq!(v["format"], "event_bridge", "{v}");
    assert_eq!(
        (
            v["matched"].as_u64(),
            v["new_hits"].as_u64(),
            v["duplicates"].as_u64()
        ),
        (Some(1), Some(0), Some(1)),
        "{v}"
    );
    let a = alerts(&http, &base, &created).await?;
    assert_eq!(a["total"], 1, "{a}");
    assert_eq!(
        a["alerts"][0]["path"], "cloudwatch-logs",
        "the first arrival is kept"
    );

    // A relay with the wrong secret: a new use of the key is refused with 401, at once (one
    // request, though four attempts are allowed), and nothing is stored.
    let refused_before = rejected(&http, &base, "unauthenticated").await?;
    let fresh = get_caller_identity(&created, "0d9e8f7a-6b5c-4d3e-a2f1-0e9d8c7b6a59");
    let fresh_wire = awslogs_json(&data_message(&fresh));
    let wrong = common::relay(&base, "not-the-ingest-secret", 4);
    let err = canarykeys_relay::handler(&wrong, lambda_event(logs_event(fresh_wire.clone())?))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::Post {
                source: PostError::Rejected { status: 401, .. },
                posted: 0,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        rejected(&http, &base, "unauthenticated").await? - refused_before,
        1
    );

    // The same by hand: a signature made with another secret, and one that is not a signature.
    let body = serde_json::to_vec(&json!([fresh]))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    for signature in [
        canarykeys_core::signing::sign(b"not-the-ingest-secret", now, &body),
        "t=0,v1=00".to_owned(),
    ] {
        let resp = http
            .post(format!("{base}/ingest/v1/cloudtrail"))
            .header(canarykeys_core::signing::HEADER, &signature)
            .header(
                canarykeys_relay::post::PATH_HEADER,
                canarykeys_relay::post::PATH_VALUE,
            )
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        assert_eq!(resp.status(), 401, "{signature}");
        let v: Value = resp.json().await?;
        assert_eq!(v["error"]["code"], "unauthenticated", "{v}");
    }
    let a = alerts(&http, &base, &created).await?;
    assert_eq!(a["total"], 1, "a refused request stores nothing: {a}");
    assert_eq!(a["alerts"][0]["event_id"], record["eventID"]);

    // Control: the refused record is a real new use; with the right secret it is the second hit.
    let summary = canarykeys_relay::handler(&relay, lambda_event(logs_event(fresh_wire)?)).await?;
    assert_eq!(summary.server.new_hits, 1);
    assert_eq!(alerts(&http, &base, &created).await?["total"], 2);

    tx.send(()).map_err(|()| "the server stopped early")?;
    server.await??;
    Ok(())
}
