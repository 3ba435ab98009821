//! Shared by the console tests: an operator made with the real CLI, and a hit fed to the ingest
//! endpoint.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::app::TestApp;

pub const INGEST_SECRET: &str = "console-ingest-secret-0123456789";

/// Makes an operator with the real CLI, on the app's data directory.
pub fn create_operator(app: &TestApp, name: &str, password: &str) {
    let mut child = Command::new(crate::cli::binary())
        .args(["admin", "create-user", "--name", name, "--password-stdin"])
        .env("CANARYKEYS_DATA_DIR", &app.data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "create-user: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Feeds one CloudTrail record of a call made with `key` to the ingest endpoint.
pub async fn ingest(app: &TestApp, key: &str, event_id: &str, user_agent: &str) {
    let rec = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": key},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity", "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7", "userAgent": user_agent,
        "requestID": "req-1", "eventID": event_id, "eventType": "AwsApiCall"
    });
    let req = app.http.post(app.url("/ingest/v1/cloudtrail"));
    let resp = req
        .bearer_auth(INGEST_SECRET)
        .header("content-type", "application/json")
        .body(json!({"Records": [rec]}).to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "ingest: {}", resp.status());
}
