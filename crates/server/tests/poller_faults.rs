//! The pollers under faults, against moto server: an S3 read that fails is retried and the
//! position waits for it; the safety net goes on past a refused account, asks each account with
//! its own credentials and reports each account's errors.

use std::sync::Arc;

use canarykeys_aws::testing::Moto;
use canarykeys_aws::{
    sdk_config, AwsError, IamKeyUsage, KeyUsage, S3TrailBucket, TrailBucket, TrailObject,
};
use canarykeys_server::jobs::{s3_poller::S3Poller, safety_net};

use canarykeys_testkit::pollers::*;
use canarykeys_testkit::spawn_app_with;

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
    let app = canarykeys_testkit::spawn_app().await;
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

    async fn attached_policies(
        &self,
        _user: &canarykeys_core::IamUserName,
    ) -> Result<Vec<canarykeys_aws::AttachedPolicy>, AwsError> {
        Err(AwsError::refused(
            "IAM ListAttachedUserPolicies",
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
        operator_alerts: Default::default(),
        clock: canarykeys_server::clock::SystemClock::shared(),
        usage: Arc::new(DeniedUsage),
        accounts,
        exposures: exposures(&store, &app),
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
