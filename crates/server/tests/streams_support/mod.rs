//! Shared by the stream tests: an app on SQLite or PostgreSQL with streams configured, a
//! recording HTTP receiver that answers as a test tells it to, and hits fed through ingest.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use canarykeys_server::clock::ManualClock;
use canarykeys_server::config::{Config, Secret};
use canarykeys_testkit::{TestApp, TestDatabase};
use serde_json::{json, Value};

pub const INGEST: &str = "streams-ingest-secret-0123456789";
pub const WAIT: Duration = Duration::from_secs(30);
/// 2026-11-28T10:00:00Z
pub const T0: i64 = 1_795_860_000_000;

#[derive(Clone, Copy, Debug)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Got {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

type Answer = dyn Fn(&Got) -> (StatusCode, String) + Send + Sync;

/// A recording receiver; `answer` says what each request gets (recorded either way).
#[derive(Clone)]
pub struct Rx {
    pub got: Arc<Mutex<Vec<Got>>>,
    answer: Arc<Mutex<Arc<Answer>>>,
    pub base: String,
}

async fn receive(
    State(rx): State<Rx>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let got = Got {
        path: uri.path().to_owned(),
        headers,
        body,
    };
    let answer = rx.answer.lock().unwrap().clone();
    let out = answer(&got);
    rx.got.lock().unwrap().push(got);
    out
}

impl Rx {
    pub async fn start(
        answer: impl Fn(&Got) -> (StatusCode, String) + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rx = Self {
            got: Arc::default(),
            answer: Arc::new(Mutex::new(Arc::new(answer))),
            base: format!("http://{}", listener.local_addr().unwrap()),
        };
        let app = axum::Router::new().fallback(receive).with_state(rx.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        rx
    }

    /// Answers 200 `{}` to everything.
    pub async fn ok() -> Self {
        Self::start(|_| (StatusCode::OK, "{}".into())).await
    }

    pub fn answer_with(
        &self,
        answer: impl Fn(&Got) -> (StatusCode, String) + Send + Sync + 'static,
    ) {
        *self.answer.lock().unwrap() = Arc::new(answer);
    }

    pub fn all(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

/// Elastic's answer to a bulk body: every item created.
pub fn bulk_ok(got: &Got) -> (StatusCode, String) {
    let items: Vec<Value> = String::from_utf8_lossy(&got.body)
        .lines()
        .step_by(2)
        .map(|l| {
            let a: Value = serde_json::from_str(l).unwrap();
            json!({"create": {"_index": a["create"]["_index"], "_id": a["create"]["_id"], "status": 201}})
        })
        .collect();
    (
        StatusCode::OK,
        json!({"took": 1, "errors": false, "items": items}).to_string(),
    )
}

/// An app on `db` at `T0`, cooldown 0, with `tweak` applied (the database is kept with it).
pub async fn start(
    db: Db,
    name: &str,
    tweak: impl FnOnce(&mut Config),
) -> (TestApp, Config, Option<TestDatabase>) {
    let pg = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(TestDatabase::create(name).await),
    };
    let dir = tempfile::tempdir().unwrap().keep();
    let mut c = canarykeys_testkit::test_config(&dir);
    c.database_url = pg.as_ref().map(|d| d.url().to_owned());
    c.ingest.secret = Some(Secret::new(INGEST));
    c.alerts.allow_private_webhooks = true;
    c.alerts.cooldown = Duration::from_secs(0);
    tweak(&mut c);
    let app = canarykeys_testkit::start_config_with_clock(c.clone(), ManualClock::at(T0)).await;
    (app, c, pg)
}

/// An anonymous token (with `webhook_url` when given).
pub async fn token(app: &TestApp, webhook: Option<&str>) -> Value {
    let mut body = json!({"memo": "streams <b>memo</b>"});
    if let Some(url) = webhook {
        body["webhook_url"] = json!(url);
    }
    let resp = app.post_token(&body).await;
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

/// One use of `created`'s key, with `user_agent`.
pub async fn hit(app: &TestApp, created: &Value, event_id: &str, user_agent: &str) {
    let record = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": created["aws"]["access_key_id"],
            "userName": created["aws"]["username"], "accountId": created["aws"]["account_id"]},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity", "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7", "userAgent": user_agent, "eventID": event_id
    });
    let resp = app
        .http
        .post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(INGEST)
        .json(&record)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// The user agent of the tests: markup, SD delimiters, a forged syslog line and controls.
pub const HOSTILE_UA: &str =
    "aws-cli/2 \"] [evil@1 x=\"y\"] \\ <script>x</script>\n<13>1 2026-01-01T00:00:00Z forged - - - -\u{7f}\u{85}é";
