//! The detection pollers against moto server: the S3 path reads new trail files (position kept
//! in the database across restarts, late files found), and the safety net turns an unexplained
//! move of IAM's last-used date into a hit. Needs `moto_server` (installed by scripts/test.sh).

mod common;

use std::io::Write;
use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use canarykeys_aws::testing::Moto;
use canarykeys_aws::{
    sdk_config, AwsError, IamKeyUsage, KeyUsage, S3TrailBucket, TrailBucket, TrailObject,
};
use canarykeys_core::cloudtrail::Limits;
use canarykeys_server::jobs::{s3_poller::S3Poller, safety_net};
use canarykeys_server::metrics::Metrics;
use canarykeys_server::services::IngestService;
use canarykeys_store::{SqlStore, Store};
use common::{id_and_secret, spawn_app_with, TestApp};
use serde_json::{json, Value};

const BUCKET: &str = "org-trail-logs";
const ACCOUNT: &str = "123456789012";

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn record(created: &Value, event_id: &str, minute: u32) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": created["aws"]["access_key_id"],
            "userName": created["aws"]["username"], "accountId": created["aws"]["account_id"]},
        "eventTime": format!("2026-11-28T10:{minute:02}:00Z"),
        "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets", "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.9", "userAgent": "aws-cli/1.46", "eventID": event_id,
        "eventType": "AwsApiCall", "recipientAccountId": created["aws"]["account_id"]
    })
}

fn trail_key(region: &str, stamp: &str, suffix: &str) -> String {
    format!("AWSLogs/{ACCOUNT}/CloudTrail/{region}/2026/11/28/{ACCOUNT}_CloudTrail_{region}_{stamp}_{suffix}.json.gz")
}

async fn s3_client(moto: &Moto) -> aws_sdk_s3::Client {
    let cfg = sdk_config(&moto.settings()).await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&cfg)
            .force_path_style(true)
            .build(),
    )
}

async fn put(s3: &aws_sdk_s3::Client, key: &str, records: &[Value]) {
    let body = gzip(&serde_json::to_vec(&json!({ "Records": records })).unwrap());
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap();
}

/// The app's own database, opened beside it, and the pieces a poller needs.
async fn pipeline(app: &TestApp) -> (Arc<dyn Store>, IngestService) {
    let url = format!("sqlite:{}", app.data_dir.join("canarykeys.db").display());
    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&url).await.unwrap());
    let ingest = IngestService::new(
        store.clone(),
        Limits::default(),
        Arc::new(Metrics::default()),
    );
    (store, ingest)
}

async fn alert_total(app: &TestApp, created: &Value) -> u64 {
    let (id, secret) = id_and_secret(created);
    let v: Value = app
        .get_authed(&format!("/api/v1/tokens/{id}/alerts"), &secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["total"].as_u64().unwrap()
}

#[tokio::test]
async fn s3_poller_reads_new_files_once_and_remembers_its_place() {
    let moto = Moto::start();
    let s3 = s3_client(&moto).await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let app = common::spawn_app().await;
    let created = app.create_token().await;
    let (store, ingest) = pipeline(&app).await;
    let bucket_api = Arc::new(S3TrailBucket::new(&sdk_config(&moto.settings()).await));
    let poller = |store: &Arc<dyn Store>| {
        S3Poller::new(
            bucket_api.clone(),
            store.clone(),
            ingest.clone(),
            BUCKET.into(),
            "AWSLogs/".into(),
            1 << 20,
        )
    };

    put(
        &s3,
        &trail_key("us-east-1", "20261128T1000Z", "b"),
        &[record(&created, "e1", 0)],
    )
    .await;
    put(
        &s3,
        &trail_key("eu-west-1", "20261128T1000Z", "b"),
        &[record(&created, "e2", 1)],
    )
    .await;
    put(
        &s3,
        &format!("AWSLogs/{ACCOUNT}/CloudTrail-Digest/us-east-1/2026/11/28/digest.json.gz"),
        &[],
    )
    .await;
    let mut p = poller(&store);
    let r = p.round().await.unwrap();
    assert_eq!(
        (r.prefixes, r.objects, r.new_hits, r.failed_objects),
        (2, 2, 2, 0)
    );
    assert_eq!(alert_total(&app, &created).await, 2);

    // Nothing new: nothing read.
    assert_eq!(p.round().await.unwrap().objects, 0);

    // A file of the same window that lands late, under a name sorting before the cursor, and
    // a new later one: both are read, once.
    put(
        &s3,
        &trail_key("us-east-1", "20261128T1000Z", "a"),
        &[record(&created, "e3", 2)],
    )
    .await;
    put(
        &s3,
        &trail_key("us-east-1", "20261128T1005Z", "c"),
        &[record(&created, "e4", 3), record(&created, "e1", 0)],
    )
    .await;
    let r = p.round().await.unwrap();
    assert_eq!((r.objects, r.new_hits), (2, 2));
    assert_eq!(
        alert_total(&app, &created).await,
        4,
        "e1 again is a duplicate"
    );

    // A restarted poller resumes from the stored position.
    let mut restarted = poller(&store);
    assert_eq!(restarted.round().await.unwrap().objects, 0);
    put(
        &s3,
        &trail_key("eu-west-1", "20261128T1010Z", "d"),
        &[record(&created, "e5", 4)],
    )
    .await;
    assert_eq!(restarted.round().await.unwrap().new_hits, 1);

    // A file that is not CloudTrail is passed over and reported, not fatal.
    s3.put_object()
        .bucket(BUCKET)
        .key(trail_key("eu-west-1", "20261128T1015Z", "e"))
        .body(ByteStream::from(b"garbage".to_vec()))
        .send()
        .await
        .unwrap();
    let r = restarted.round().await.unwrap();
    assert_eq!((r.objects, r.failed_objects), (1, 1));
    assert_eq!(alert_total(&app, &created).await, 5);
}

#[tokio::test]
async fn serve_runs_the_s3_poller_when_configured() {
    let moto = Moto::start();
    let s3 = s3_client(&moto).await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let app = spawn_app_with(|c| {
        c.aws.endpoint_url = Some(moto.url());
        c.aws.access_key_id = Some("testing".into());
        c.aws.secret_access_key = Some(canarykeys_server::config::Secret::new("testing"));
        c.detection.s3.bucket = Some(BUCKET.into());
        c.detection.s3.interval_secs = 1;
    })
    .await;
    let created = app.create_token().await;
    put(
        &s3,
        &trail_key("us-east-1", "20261128T1000Z", "x"),
        &[record(&created, "bg-1", 0)],
    )
    .await;
    // A bounded wait for the background job; the test asserts the outcome, not the time.
    let mut total = 0;
    for _ in 0..60 {
        total = alert_total(&app, &created).await;
        if total > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(total, 1, "the S3 poller never recorded the hit");
    let (id, secret) = id_and_secret(&created);
    let v: Value = app
        .get_authed(&format!("/api/v1/tokens/{id}/alerts"), &secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["alerts"][0]["path"], "s3");
}

#[tokio::test]
async fn safety_net_reports_uses_cloudtrail_did_not_log() {
    let moto = Moto::start();
    let cfg = sdk_config(&moto.settings()).await;
    let iam = aws_sdk_iam::Client::new(&cfg);
    iam.create_user()
        .user_name("svc-reporting-prod")
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name("svc-reporting-prod")
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    let (key_id, key_secret) = (
        key.access_key_id().to_owned(),
        key.secret_access_key().to_owned(),
    );

    let app = spawn_app_with(|c| c.minter.account_id = Some(ACCOUNT.into())).await;
    let local = app.create_token().await; // a local key: IAM does not know it
    let (store, ingest) = pipeline(&app).await;
    // A token for the key moto made, as the IAM minter will store it.
    let mut token = store.list_tokens().await.unwrap().remove(0);
    token.id = canarykeys_core::TokenId::generate();
    token.access_key_id = canarykeys_core::AccessKeyId::parse(&key_id).unwrap();
    token.username = canarykeys_core::IamUserName::parse("svc-reporting-prod").unwrap();
    store.insert_token(&token).await.unwrap();

    let net = safety_net::SafetyNet {
        usage: Arc::new(IamKeyUsage::new(&cfg)),
        accounts: Default::default(),
        store: store.clone(),
        ingest: ingest.clone(),
    };
    let r = net.round().await.unwrap();
    assert_eq!(
        (r.checked, r.not_at_aws, r.moved, r.new_hits),
        (2, 1, 0, 0),
        "never used yet"
    );

    // The attacker uses the key; moto moves its last-used date as IAM does.
    let attacker = sdk_config(&moto.settings_as(&key_id, &key_secret, "eu-central-1")).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&attacker)
            .force_path_style(true)
            .build(),
    );
    let _ = s3.list_buckets().send().await;
    let r = net.round().await.unwrap();
    assert_eq!((r.moved, r.new_hits), (1, 1));
    let hits = store.list_hits(&token.id, 10, 0).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].path, "safety-net");
    assert_eq!(hits[0].event_source, "s3.amazonaws.com");
    assert_eq!(hits[0].region, "eu-central-1");
    assert_eq!(hits[0].note.as_deref(), Some(safety_net::NOTE));

    // Unchanged date: nothing new.
    assert_eq!(net.round().await.unwrap().new_hits, 0);

    // A use CloudTrail did log explains the next move: no second, synthetic hit.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let stamp = time::OffsetDateTime::from_unix_timestamp(now.as_secs() as i64).unwrap();
    let logged = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": key_id, "userName": "svc-reporting-prod", "accountId": ACCOUNT},
        "eventTime": stamp.format(&time::format_description::well_known::Rfc3339).unwrap(),
        "eventSource": "s3.amazonaws.com", "eventName": "ListBuckets", "awsRegion": "eu-central-1",
        "eventID": "logged-1", "recipientAccountId": ACCOUNT
    });
    let report = ingest
        .ingest(logged.to_string().as_bytes(), None, false)
        .await
        .unwrap();
    assert_eq!(report.new_hits, 1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // moto's dates have 1 s steps
    let _ = s3.list_buckets().send().await;
    let r = net.round().await.unwrap();
    assert_eq!((r.moved, r.new_hits), (1, 0));
    assert_eq!(store.count_hits(&token.id).await.unwrap(), 2);
    assert_eq!(alert_total(&app, &local).await, 0);
}

/// The real bucket, except that reading `flaky` fails its first `failures` times (a transient
/// S3 error).
struct FlakyBucket {
    inner: S3TrailBucket,
    flaky: String,
    failures: std::sync::atomic::AtomicU32,
}

#[async_trait::async_trait]
impl TrailBucket for FlakyBucket {
    async fn list_after(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        max: i32,
    ) -> Result<Vec<TrailObject>, AwsError> {
        self.inner
            .list_after(bucket, prefix, start_after, max)
            .await
    }

    async fn list_prefixes(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, AwsError> {
        self.inner.list_prefixes(bucket, prefix).await
    }

    async fn get(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Vec<u8>, AwsError> {
        use std::sync::atomic::Ordering;
        if key == self.flaky
            && self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(AwsError::refused("GetObject", "injected transient failure"));
        }
        self.inner.get(bucket, key, max_bytes).await
    }
}

#[tokio::test]
async fn s3_poller_retries_a_failed_file_and_keeps_its_place_before_it() {
    let moto = Moto::start();
    let s3 = s3_client(&moto).await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let app = common::spawn_app().await;
    let created = app.create_token().await;
    let (store, ingest) = pipeline(&app).await;
    let flaky = trail_key("us-east-1", "20261128T1000Z", "a");
    let bucket_api = Arc::new(FlakyBucket {
        inner: S3TrailBucket::new(&sdk_config(&moto.settings()).await),
        flaky: flaky.clone(),
        failures: 2.into(),
    });
    put(&s3, &flaky, &[record(&created, "f1", 0)]).await;
    put(
        &s3,
        &trail_key("us-east-1", "20261128T1005Z", "b"),
        &[record(&created, "f2", 1)],
    )
    .await;
    let new_poller = || {
        S3Poller::new(
            bucket_api.clone(),
            store.clone(),
            ingest.clone(),
            BUCKET.into(),
            "AWSLogs/".into(),
            1 << 20,
        )
    };
    let mut p = new_poller();
    let r = p.round().await.unwrap();
    assert_eq!(
        (r.objects, r.new_hits, r.failed_objects, r.waiting_objects),
        (2, 1, 1, 1)
    );
    let cursor_key = format!("s3_poller:{BUCKET}:AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/");
    assert_eq!(
        store.get_setting(&cursor_key).await.unwrap(),
        None,
        "the position does not move past a file that failed"
    );
    // A restart (a new poller) before the retry still finds the failed file.
    let mut p = new_poller();
    let r = p.round().await.unwrap();
    assert_eq!(
        (r.failed_objects, r.waiting_objects),
        (1, 1),
        "second failure"
    );
    // It is read again once its backoff runs out.
    let mut read = 0;
    for _ in 0..4 {
        read += p.round().await.unwrap().new_hits;
    }
    assert_eq!(read, 1, "the failed file is read on a later round");
    assert_eq!(
        alert_total(&app, &created).await,
        2,
        "nothing lost, nothing doubled"
    );
    assert_eq!(
        store.get_setting(&cursor_key).await.unwrap().as_deref(),
        Some(trail_key("us-east-1", "20261128T1005Z", "b").as_str()),
        "the position moves once everything before it is read"
    );
    assert_eq!(p.round().await.unwrap().waiting_objects, 0);
}

/// IAM as seen through credentials the account refuses (a role that cannot be assumed).
struct DeniedUsage;

#[async_trait::async_trait]
impl KeyUsage for DeniedUsage {
    async fn last_used(
        &self,
        _key: &canarykeys_core::AccessKeyId,
    ) -> Result<Option<canarykeys_aws::LastUsed>, AwsError> {
        Err(AwsError::refused(
            "IAM GetAccessKeyLastUsed",
            "role refused",
        ))
    }
}

#[tokio::test]
async fn safety_net_asks_each_account_with_its_own_credentials_and_checks_every_key() {
    let moto = Moto::start();
    let cfg = sdk_config(&moto.settings()).await;
    let iam = aws_sdk_iam::Client::new(&cfg);
    iam.create_user().user_name("svc-etl").send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name("svc-etl")
        .send()
        .await
        .unwrap();
    let key_id = key.access_key().unwrap().access_key_id().to_owned();
    let secret = key.access_key().unwrap().secret_access_key().to_owned();

    let app = spawn_app_with(|c| c.minter.account_id = Some("210987654321".into())).await;
    // Listed first (newest first): a key in an account whose credentials are refused.
    let _other = app.create_token().await;
    let (store, ingest) = pipeline(&app).await;
    let mut token = store.list_tokens().await.unwrap().remove(0);
    token.id = canarykeys_core::TokenId::generate();
    token.account_id = canarykeys_core::AccountId::parse(ACCOUNT).unwrap();
    token.access_key_id = canarykeys_core::AccessKeyId::parse(&key_id).unwrap();
    token.username = canarykeys_core::IamUserName::parse("svc-etl").unwrap();
    token.created_at -= 1;
    store.insert_token(&token).await.unwrap();
    let used = sdk_config(&moto.settings_as(&key_id, &secret, "us-west-2")).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&used)
            .force_path_style(true)
            .build(),
    );
    let _ = s3.list_buckets().send().await;

    // ACCOUNT is asked with its own (moto) credentials; every other account falls back to the
    // [aws] credentials, which are refused.
    let mut accounts: std::collections::HashMap<_, Arc<dyn KeyUsage>> = Default::default();
    accounts.insert(
        token.account_id,
        Arc::new(IamKeyUsage::new(&cfg)) as Arc<dyn KeyUsage>,
    );
    let net = safety_net::SafetyNet {
        usage: Arc::new(DeniedUsage),
        accounts,
        store: store.clone(),
        ingest: ingest.clone(),
    };
    let r = net.round().await.unwrap();
    assert_eq!(
        (r.checked, r.errors, r.moved, r.new_hits),
        (2, 1, 1, 1),
        "{r:?}"
    );
    let health = ingest.detection_health().await.unwrap();
    assert_eq!(health.status, "degraded");
    let accounts = health.safety_net.unwrap().accounts;
    let refused = accounts
        .iter()
        .find(|a| a.account_id == "210987654321")
        .unwrap();
    assert_eq!((refused.keys, refused.errors), (1, 1));
    assert!(refused
        .last_error
        .as_deref()
        .unwrap()
        .contains("role refused"));
    let fine = accounts.iter().find(|a| a.account_id == ACCOUNT).unwrap();
    assert_eq!(
        (fine.keys, fine.errors, fine.last_error.as_deref()),
        (1, 0, None)
    );

    // Plain /healthz stays "ok" for load balancers; the detail names accounts, so it needs an
    // operator.
    let plain = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(plain.text().await.unwrap(), "ok");
    let detail = app
        .http
        .get(app.url("/healthz/detail"))
        .send()
        .await
        .unwrap();
    assert_eq!(detail.status(), 401);
}
