//! What the heartbeat test files share: a database of either backend, an operator API key, the
//! detection API read as `path=state` lines, the heartbeat's CloudTrail event and the paths that
//! carry it, and the configurations (the `iam` minter on moto; the `local` minter and the sensor).

#![allow(dead_code)]

use std::time::Duration;

use canarykeys_aws::testing::Moto;
use canarykeys_core::signing;
use canarykeys_server::config::{DecoyAccountConfig, MinterKind, Secret};
use canarykeys_server::services::Scope;
use canarykeys_server::{Config, Services};
use canarykeys_store::{HeartbeatStore, SqlStore};
use canarykeys_testkit::access::PASSWORD;
use canarykeys_testkit::pollers::BUCKET;
use canarykeys_testkit::{test_config, wait_for, TestApp, TestDatabase, WAIT};
use serde_json::{json, Value};

pub const SECRET: &str = "test-ingest-secret-0123456789";
pub const ACCOUNT: &str = "123456789012";
pub const HOUR: Duration = Duration::from_secs(3600);

/// Where a scenario keeps its data: a temp SQLite file, or a fresh PostgreSQL database.
pub struct Db {
    dir: tempfile::TempDir,
    pg: Option<TestDatabase>,
}

impl Db {
    pub async fn new(postgres: bool, name: &str) -> Self {
        let pg = match postgres {
            true => Some(TestDatabase::create(name).await),
            false => None,
        };
        Self {
            dir: tempfile::tempdir().unwrap(),
            pg,
        }
    }

    /// A configuration on this database; replicas share the sealing key.
    pub fn config(&self, sub: &str) -> Config {
        let mut c = test_config(&self.dir.path().join(sub));
        c.database_url = Some(match &self.pg {
            Some(pg) => pg.url().to_owned(),
            None => format!("sqlite:{}", self.dir.path().join("ck.db").display()),
        });
        c.encryption_key = Some(Secret::new("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="));
        c.ingest.secret = Some(Secret::new(SECRET));
        // As shipped: on with a real minter, or with the local one and an endpoint_url.
        c.heartbeat.enabled = None;
        c
    }

    pub async fn store(&self, config: &Config) -> SqlStore {
        SqlStore::connect(&config.database_url()).await.unwrap()
    }

    pub async fn done(self) {
        if let Some(pg) = self.pg {
            pg.drop_database().await;
        }
    }
}

/// An operator API key with `alerts:read`, made through the services as the CLI would.
pub async fn api_key(config: &Config) -> String {
    let svc = Services::open(config).await.unwrap();
    let op = svc.access.create_operator("ops", PASSWORD).await.unwrap();
    let (_, key) = svc
        .access
        .create_api_key(&op, "monitor", &[Scope::AlertsRead])
        .await
        .unwrap();
    svc.close().await;
    key
}

pub async fn detection(app: &TestApp, key: &str) -> Value {
    let resp = app
        .get_authed("/api/v1/detection", key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Each path's state, as `path=state` (one account, one region).
pub fn states(d: &Value) -> Vec<String> {
    d["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}={}",
                p["path"].as_str().unwrap(),
                p["state"].as_str().unwrap()
            )
        })
        .collect()
}

/// How many heartbeat calls this replica has made, by `/metrics`.
pub async fn calls(app: &TestApp) -> u64 {
    let text = app.metrics().await;
    text.lines()
        .filter(|l| l.starts_with("canarykeys_heartbeat_calls_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The CloudTrail record of a heartbeat call made at `at` (unix ms).
pub fn heartbeat_event(key: &str, event_id: &str, at: i64) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": key, "accountId": ACCOUNT,
            "userName": "whoever"},
        "eventTime": canarykeys_server::render::rfc3339(at),
        "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.9", "userAgent": "canarykeys",
        "eventID": event_id, "eventType": "AwsApiCall", "readOnly": true,
        "recipientAccountId": ACCOUNT
    })
}

pub async fn post_eventbridge(app: &TestApp, record: &Value) -> Value {
    let envelope = json!({"version": "0", "id": "e1", "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.sts", "account": ACCOUNT, "time": record["eventTime"],
        "region": "us-east-1", "resources": [], "detail": record});
    let resp = app
        .http
        .post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(SECRET)
        .json(&envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// The relay Lambda's form: a signed JSON array, marked as the CloudWatch Logs path.
pub async fn post_logs(app: &TestApp, record: &Value) -> Value {
    let body = serde_json::to_vec(&json!([record])).unwrap();
    let at = app.clock.shared().now_secs();
    let resp = app
        .http
        .post(app.url("/ingest/v1/cloudtrail"))
        .header(
            "x-canarykeys-signature",
            signing::sign(SECRET.as_bytes(), at, &body),
        )
        .header("x-canarykeys-path", "cloudwatch-logs")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

pub fn iam_config(db: &Db, moto: &Moto) -> Config {
    let mut c = db.config("a");
    c.minter.kind = MinterKind::Iam;
    c.minter.accounts = vec![DecoyAccountConfig {
        account_id: Some(ACCOUNT.into()),
        endpoint_url: Some(moto.url()),
        access_key_id: Some("testing".into()),
        secret_access_key: Some(Secret::new("testing")),
        ..DecoyAccountConfig::default()
    }];
    c.heartbeat.endpoint_url = Some(moto.url());
    c.heartbeat.expect = vec!["eventbridge".into(), "cloudwatch-logs".into(), "s3".into()];
    // The S3 path: the app's own poller, against moto's S3.
    c.aws.endpoint_url = Some(moto.url());
    c.aws.access_key_id = Some("testing".into());
    c.aws.secret_access_key = Some(Secret::new("testing"));
    c.detection.s3.bucket = Some(BUCKET.into());
    c.detection.s3.interval_secs = 3600;
    c
}

/// The first scenario also has the safety net, which sees the heartbeat key's last-used date.
pub fn with_safety_net(mut c: Config) -> Config {
    c.detection.safety_net.enabled = true;
    c.detection.safety_net.interval_secs = 3600;
    c.heartbeat.expect.push("safety-net".into());
    c
}

/// The app's first heartbeat (the job's first tick, at start) has been made.
pub async fn first_call(app: &TestApp) {
    wait_for("the first heartbeat call", WAIT, || async {
        (calls(app).await >= 1).then_some(())
    })
    .await;
}

/// The quickstart's loop: the `local` minter, the heartbeat pointed at the sensor.
pub fn sensor_config(db: &Db, sub: &str, sensor_port: u16) -> Config {
    let mut c = db.config(sub);
    c.minter.account_id = Some(ACCOUNT.into());
    c.heartbeat.endpoint_url = Some(format!("http://127.0.0.1:{sensor_port}"));
    c.heartbeat.regions = vec!["us-east-1".into(), "eu-west-1".into()];
    c.heartbeat.expect = vec!["sensor".into()];
    c
}

pub async fn receipts(store: &SqlStore) -> usize {
    store.receipts_since(0).await.unwrap().len()
}
