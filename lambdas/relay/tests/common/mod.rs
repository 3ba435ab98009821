//! Test helpers: the CloudTrail corpus, awslogs encoding, and a loopback ingest server that checks
//! signatures with the same `verify` the real server uses and records what it received.
#![allow(dead_code)] // each test file uses a different subset

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::cloudwatch_logs::LogsEvent;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use canarykeys_relay::{Config, IngestSecret, Relay, RetryPolicy};
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};

pub const SECRET: &str = "test-ingest-secret-0123456789";

/// The corpus: `$CANARYKEYS_CORPUS_DIR`, else the vendored `testdata/cloudtrail`.
pub fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("CANARYKEYS_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../testdata/cloudtrail"
            ))
        });
    assert!(
        dir.join("subscription").is_dir(),
        "CloudTrail corpus not found at {} (expected a subscription/ folder in it); \
         set CANARYKEYS_CORPUS_DIR to the cloudtrail-corpus directory",
        dir.display()
    );
    dir
}

pub fn subscription_fixture(name: &str) -> String {
    let path = corpus_dir().join("subscription").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

/// Gzip + base64 a decoded subscription payload into the `{"awslogs":{"data":…}}` wire form.
pub fn awslogs_json(decoded: &str) -> Value {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(decoded.as_bytes()).unwrap();
    let data = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    json!({ "awslogs": { "data": data } })
}

/// Parses the wire form the way the Lambda runtime does: from bytes. (`from_value` would not do:
/// aws_lambda_events reads the `awslogs` keys as borrowed strings, which a `Value` cannot lend.)
pub fn logs_event(wire: Value) -> Result<LogsEvent, serde_json::Error> {
    serde_json::from_slice(wire.to_string().as_bytes())
}

pub fn lambda_event(payload: LogsEvent) -> LambdaEvent<LogsEvent> {
    LambdaEvent::new(payload, Context::default())
}

/// A decoded DATA_MESSAGE carrying `records` as log event messages.
pub fn data_message(records: &[Value]) -> String {
    let events: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, r)| json!({ "id": format!("3568926364839183747297373978172801970139024079824794{i:04}"), "timestamp": 1600361930988u64 + i as u64, "message": r.to_string() }))
        .collect();
    json!({
        "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "aws-cloudtrail-logs-123456789012",
        "logStream": "123456789012_CloudTrail_us-east-1", "subscriptionFilters": ["canarykeys"], "logEvents": events,
    })
    .to_string()
}

/// A CloudTrail-shaped record with a distinct eventID.
pub fn cloudtrail_record(i: usize) -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": { "type": "IAMUser", "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "userName": "svc-backup-prod" },
        "eventTime": "2026-11-28T09:27:19Z", "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.5", "userAgent": "aws-cli/2.15.0",
        "eventID": format!("00000000-0000-4000-8000-{i:012}"),
    })
}

/// A relay for `server_url` with tiny retry delays.
pub fn relay(server_url: &str, secret: &str, max_attempts: u32) -> Relay {
    let mut config = Config::new(server_url, IngestSecret::new(secret).unwrap()).unwrap();
    config.retry = RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    config.request_timeout = Duration::from_secs(5);
    Relay::new(config).unwrap()
}

/// What the test server answers, one entry per request; after the script, `Counts`.
#[derive(Clone, Debug)]
pub enum Reply {
    Counts,
    Status(u16, String),
    Hang(Duration),
}

#[derive(Clone, Debug)]
pub struct Received {
    pub body: Vec<u8>,
    pub headers: HeaderMap,
    pub signature_ok: bool,
}

impl Received {
    pub fn records(&self) -> Vec<Value> {
        serde_json::from_slice(&self.body).expect("the relay posts a JSON array")
    }
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct TestServer {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl TestServer {
    pub async fn start(script: Vec<Reply>) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            script: script.into(),
            received: Vec::new(),
        }));
        let app = axum::Router::new()
            .route("/ingest/v1/cloudtrail", axum::routing::post(ingest))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, inner }
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }
}

async fn ingest(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signature = headers
        .get(canarykeys_core::signing::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let signature_ok =
        canarykeys_core::signing::verify(SECRET.as_bytes(), signature, &body, now).is_ok();
    let reply = {
        let mut inner = inner.lock().unwrap();
        inner.received.push(Received {
            body: body.to_vec(),
            headers: headers.clone(),
            signature_ok,
        });
        inner.script.pop_front().unwrap_or(Reply::Counts)
    };
    // Like the real server: a bad signature is a 401 with a JSON error, whatever the script says.
    if !signature_ok {
        return error(401, "the signature does not match");
    }
    match reply {
        Reply::Counts => {
            let n = serde_json::from_slice::<Vec<Value>>(&body).map_or(0, |v| v.len());
            axum::Json(
                json!({ "records": n, "matched": 0, "new_hits": 0, "duplicates": 0, "skipped": n }),
            )
            .into_response()
        }
        Reply::Status(status, message) => error(status, &message),
        Reply::Hang(for_) => {
            tokio::time::sleep(for_).await;
            axum::Json(json!({})).into_response()
        }
    }
}

fn error(status: u16, message: &str) -> Response {
    let body = json!({ "error": { "code": "test", "message": message } });
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}
