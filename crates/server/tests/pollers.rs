//! The detection pollers against moto server: the S3 path reads new trail files (position kept
//! in the database across restarts, late files found), and the safety net turns an unexplained
//! move of IAM's last-used date into a hit. Needs `moto_server` (installed by scripts/test.sh).

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use canarykeys_aws::testing::Moto;
use canarykeys_aws::{sdk_config, IamKeyUsage, S3TrailBucket};
use canarykeys_server::jobs::{s3_poller::S3Poller, safety_net};
use canarykeys_store::Store;
use canarykeys_testkit::pollers::*;
use canarykeys_testkit::{id_and_secret, spawn_app_with, wait_for, WAIT};
use serde_json::{json, Value};

#[tokio::test]
async fn s3_poller_reads_new_files_once_and_remembers_its_place() {
    let moto = Moto::start();
    let s3 = s3_client(&moto).await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let app = canarykeys_testkit::spawn_app().await;
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
        operator_alerts: Default::default(),
        accounts: Default::default(),
        clock: canarykeys_server::clock::SystemClock::shared(),
        usage: Arc::new(IamKeyUsage::new(&cfg)),
        store: store.clone(),
        ingest: ingest.clone(),
        exposures: exposures(&store, &app),
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
    // moto stamps key use in whole seconds by the wall clock (its clock, not ours, so a test
    // clock cannot move it): wait until the wall clock is in a later second than that use.
    let second = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let used_in = second();
    wait_for("the wall clock to reach the next second", WAIT, || async {
        (second() > used_in).then_some(())
    })
    .await;
    let _ = s3.list_buckets().send().await;
    let r = net.round().await.unwrap();
    assert_eq!((r.moved, r.new_hits), (1, 0));
    assert_eq!(store.count_hits(&token.id).await.unwrap(), 2);
    assert_eq!(alert_total(&app, &local).await, 0);
}

/// A busy account's trail file: larger once gunzipped than the HTTP decompression budget, which
/// must not make the S3 path refuse it. Every matching record becomes exactly one hit.
#[tokio::test]
async fn s3_poller_streams_a_trail_file_larger_than_the_http_budget() {
    use std::io::Write;
    const RECORDS: usize = 80_000;
    const MATCH_EVERY: usize = 400;
    let moto = Moto::start();
    let s3 = s3_client(&moto).await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let app = canarykeys_testkit::spawn_app().await;
    let created = app.create_token().await;
    let (store, ingest) = pipeline(&app).await;

    // Written into the gzip encoder record by record, so the test never holds the plain file.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut plain_bytes = 0;
    let mut write = |bytes: &[u8]| {
        plain_bytes += bytes.len();
        gz.write_all(bytes).unwrap();
    };
    write(b"{\"Records\":[");
    for i in 0..RECORDS {
        let mut r = record(&created, &format!("big-{i}"), (i % 60) as u32);
        if i % MATCH_EVERY != 0 {
            r["userIdentity"]["accessKeyId"] = json!("AKIAIOSFODNN7EXAMPLE");
            r["userIdentity"]["userName"] = json!("someone-else");
        }
        r["requestParameters"] = json!({"bucketName": format!("logs-{i}"), "pad": "x".repeat(200)});
        if i > 0 {
            write(b",");
        }
        write(r.to_string().as_bytes());
    }
    // The first matching record again (a redelivery inside the same file): still one hit.
    write(b",");
    write(record(&created, "big-0", 0).to_string().as_bytes());
    write(b"]}");
    let file = gz.finish().unwrap();
    let budget = canarykeys_core::cloudtrail::Limits::default().max_decompressed_bytes;
    assert!(plain_bytes > budget, "{plain_bytes} bytes gunzipped");
    assert!(
        canarykeys_core::cloudtrail::parse(&file, &Default::default())
            .unwrap_err()
            .is_too_large()
    );
    s3.put_object()
        .bucket(BUCKET)
        .key(trail_key("us-east-1", "20261128T1000Z", "big"))
        .body(ByteStream::from(file.clone()))
        .send()
        .await
        .unwrap();

    let bucket_api = Arc::new(S3TrailBucket::new(&sdk_config(&moto.settings()).await));
    let mut poller = S3Poller::new(
        bucket_api,
        store.clone(),
        ingest.clone(),
        BUCKET.into(),
        "AWSLogs/".into(),
        16 << 20,
    );
    let r = poller.round().await.unwrap();
    let matching = RECORDS / MATCH_EVERY;
    assert_eq!(
        (r.objects, r.failed_objects, r.new_hits),
        (1, 0, matching),
        "{r:?}"
    );
    assert_eq!(alert_total(&app, &created).await, matching as u64);
    // Read again (as after a crash before the position was saved): no new hit.
    let file: Arc<[u8]> = file.into();
    let again = ingest
        .ingest_stream(
            move || Ok(std::io::Cursor::new(file.clone())),
            canarykeys_server::services::DeliveryPath::S3,
            false,
        )
        .await
        .unwrap();
    assert_eq!((again.new_hits, again.duplicates), (0, matching + 1));
    assert_eq!(again.records, RECORDS + 1);
    assert_eq!(alert_total(&app, &created).await, matching as u64);
}
