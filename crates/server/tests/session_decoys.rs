//! Session decoys (`aws_session`) with the `local` minter, on SQLite and PostgreSQL: what a create
//! hands out, what the refresh secret can and cannot do, the real AWS CLI and boto3 signing with
//! the session at the sensor (a hit; after the expiry `ExpiredToken`, still a hit), and ingest
//! matching every session key ever issued while the server's own GetSessionToken is no hit.

use std::time::Duration;

use canarykeys_server::clock::Clock;
use canarykeys_server::config::Secret;
use canarykeys_testkit::{id_and_secret, spawn_app_with, TestApp, TestDatabase};
use serde_json::{json, Value};
use tokio::process::Command;

const INGEST: &str = "session-ingest-secret-0123456789";

async fn app(database_url: Option<String>) -> TestApp {
    spawn_app_with(|c| {
        c.sensor.listen = Some("127.0.0.1:0".parse().unwrap());
        c.ingest.secret = Some(Secret::new(INGEST));
        c.minter.session_duration = Duration::from_secs(3600);
        c.database_url = database_url;
    })
    .await
}

async fn create(app: &TestApp) -> Value {
    let resp = app
        .post_token(
            &json!({"kind": "aws_session", "memo": "ci runner", "email": "soc@example.com"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

async fn refresh(app: &TestApp, id: &str, secret: &str) -> reqwest::Response {
    app.http
        .post(app.url(&format!("/api/v1/tokens/{id}/session")))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap()
}

async fn hits(app: &TestApp, id: &str, manage: &str) -> Vec<Value> {
    let v: Value = app
        .get_authed(&format!("/api/v1/tokens/{id}/alerts?limit=100"), manage)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["alerts"].as_array().unwrap().clone()
}

async fn ingest(app: &TestApp, records: Value) -> Value {
    let resp = app
        .http
        .post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(INGEST)
        .header("content-type", "application/json")
        .body(json!({ "Records": records }).to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "ingest: {}", resp.status());
    resp.json().await.unwrap()
}

/// `aws sts get-caller-identity` at the sensor with the session in the environment.
async fn cli(app: &TestApp, aws: &Value) -> std::process::Output {
    let s = |k: &str| aws[k].as_str().unwrap().to_owned();
    Command::new("aws")
        .args(["sts", "get-caller-identity", "--output", "json"])
        .args(["--endpoint-url", app.sensor_address.as_deref().unwrap()])
        .env_remove("AWS_PROFILE")
        .env("AWS_ACCESS_KEY_ID", s("access_key_id"))
        .env("AWS_SECRET_ACCESS_KEY", s("secret_access_key"))
        .env("AWS_SESSION_TOKEN", s("session_token"))
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .await
        .expect("the AWS CLI is installed (bash scripts/test.sh installs it)")
}

/// boto3's GetCallerIdentity at the sensor: the account, or the error code.
async fn boto3(app: &TestApp, aws: &Value) -> String {
    let script = "import boto3,sys\n\
        c=boto3.client('sts',endpoint_url=sys.argv[1],region_name='us-east-1',\
        aws_access_key_id=sys.argv[2],aws_secret_access_key=sys.argv[3],aws_session_token=sys.argv[4])\n\
        try:\n print(c.get_caller_identity()['Account'])\n\
        except Exception as e:\n print(e.response['Error']['Code'])\n";
    let s = |k: &str| aws[k].as_str().unwrap().to_owned();
    let out = Command::new("python3")
        .args(["-c", script, app.sensor_address.as_deref().unwrap()])
        .args([
            s("access_key_id"),
            s("secret_access_key"),
            s("session_token"),
        ])
        .output()
        .await
        .expect("python3 with boto3");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn record(key: &str, event_id: &str, name: &str) -> Value {
    json!({
        "eventVersion": "1.09", "userIdentity": {"type": "IAMUser", "accessKeyId": key},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "s3.amazonaws.com",
        "eventName": name, "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2", "eventID": event_id, "eventType": "AwsApiCall"
    })
}

async fn scenario(app: TestApp) {
    let now = app.clock.now_millis();
    // Issued two hours ago, for an hour: expired now (the CLI signs with the wall clock, so
    // the session is made in the past rather than the clock moved on).
    app.clock.set(now - 2 * 3_600_000);
    let created = create(&app).await;
    app.clock.set(now);
    let (id, manage) = id_and_secret(&created);
    let old = created["aws"].clone();
    let old_key = old["access_key_id"].as_str().unwrap().to_owned();
    assert!(old_key.starts_with("ASIA"), "{old_key}");
    assert!(old["session_token"]
        .as_str()
        .unwrap()
        .starts_with("IQoJb3JpZ2luX2Vj"));
    assert!(old["expiration"].is_string());
    assert_eq!(created["kind"], "aws_session");
    let refresh_secret = created["refresh_secret"].as_str().unwrap().to_owned();

    // The refresh secret issues sessions and does nothing else; the manage secret issues none.
    let read = app.get_authed(&format!("/api/v1/tokens/{id}"), &refresh_secret);
    assert_eq!(read.send().await.unwrap().status(), 404);
    let del = app
        .http
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&refresh_secret);
    assert_eq!(del.send().await.unwrap().status(), 404);
    assert_eq!(refresh(&app, &id, &manage).await.status(), 404);
    let fresh = refresh(&app, &id, &refresh_secret).await;
    assert_eq!(fresh.status(), 200);
    let fresh: Value = fresh.json().await.unwrap();
    let new = fresh["aws"].clone();
    let new_key = new["access_key_id"].as_str().unwrap().to_owned();
    assert!(new_key.starts_with("ASIA") && new_key != old_key);

    // The holder's downloads carry the newest session.
    let file = app
        .get_authed(
            &format!("/api/v1/tokens/{id}/credentials?format=credentials"),
            &manage,
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(file.contains(&format!("aws_access_key_id = {new_key}")));
    assert!(file.contains(&format!(
        "aws_session_token = {}",
        new["session_token"].as_str().unwrap()
    )));

    // The real CLI with the live session: answered as AWS would, and a verified hit.
    let out = cli(&app, &new).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let who: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(who["Account"], new["account_id"]);
    assert_eq!(boto3(&app, &new).await, new["account_id"].as_str().unwrap());
    // The expired one: ExpiredToken, and still recorded.
    let out = cli(&app, &old).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ExpiredToken"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(boto3(&app, &old).await, "ExpiredToken");
    // A session key with another session's token is no valid session.
    let mut mixed = new.clone();
    mixed["session_token"] = old["session_token"].clone();
    assert_eq!(boto3(&app, &mixed).await, "InvalidClientTokenId");
    let found = hits(&app, &id, &manage).await;
    let with = |key: &str| {
        found
            .iter()
            .filter(|h| h["access_key_id"] == key)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(with(&new_key).len(), 3, "{found:#?}");
    assert!(with(&new_key)
        .iter()
        .any(|h| h["note"].as_str().unwrap().contains("signature verified")));
    let expired = with(&old_key);
    assert_eq!(expired.len(), 2, "{found:#?}");
    assert!(expired.iter().all(|h| h["error_code"] == "ExpiredToken"
        && h["note"].as_str().unwrap().contains("session expired")));

    // CloudTrail naming only a session key (expired or not) is a hit of its token.
    let report = ingest(
        &app,
        json!([
            record(&old_key, "ev-old", "ListBuckets"),
            record(&new_key, "ev-new", "ListBuckets")
        ]),
    )
    .await;
    assert_eq!(report["matched"], 2, "{report}");
    // The caller's account gates the session lookup: the decoy's own account is a hit; the
    // key named by a caller in an account none of ours (an organisation trail's other
    // accounts) is looked up nowhere and is no hit.
    let mut own = record(&new_key, "ev-own-account", "ListBuckets");
    own["userIdentity"]["accountId"] = new["account_id"].clone();
    let mut other = record(&new_key, "ev-other-account", "ListBuckets");
    other["userIdentity"]["accountId"] = "999999999999".into();
    let report = ingest(&app, json!([own, other])).await;
    assert_eq!(report["matched"], 1, "{report}");
    // The server's own GetSessionToken (the decoy user's key, the issued key in the answer) is
    // an issue, never a hit; one issuing a key we never issued is a use.
    let mut issue = record("AKIAIOSFODNN7EXAMPLE", "ev-issue", "GetSessionToken");
    issue["eventSource"] = "sts.amazonaws.com".into();
    issue["userIdentity"]["userName"] = created["aws"]["username"].clone();
    issue["userIdentity"]["accountId"] = created["aws"]["account_id"].clone();
    issue["responseElements"] = json!({"credentials": {"accessKeyId": new_key}});
    let mut foreign = issue.clone();
    foreign["eventID"] = "ev-foreign".into();
    foreign["responseElements"]["credentials"]["accessKeyId"] = "ASIAY34FZKBOKMUTVV7A".into();
    let report = ingest(&app, json!([issue, foreign])).await;
    assert_eq!(report["session_issues"], 1, "{report}");
    assert_eq!(report["matched"], 1, "{report}");
    let all = hits(&app, &id, &manage).await;
    assert!(all.iter().all(|h| h["event_id"] != "ev-issue"));
    assert!(all.iter().any(|h| h["event_id"] == "ev-foreign"));
    app.stop().await;
}

#[tokio::test]
async fn session_decoys_on_sqlite() {
    scenario(app(None).await).await;
}

#[tokio::test]
async fn session_decoys_on_postgres() {
    let db = TestDatabase::create("ck_session_decoys").await;
    scenario(app(Some(db.url().to_owned())).await).await;
    db.drop_database().await;
}
