//! A trail file held in memory (what the S3 poller downloads): parsed whole when small, streamed
//! when it gunzips past the whole-parse bound, and read by the stream when it breaks off, so the
//! hits before a truncation are stored as they always were.

use std::sync::Arc;

use canarykeys_server::services::ingest::WHOLE_FILE_BYTES;
use canarykeys_server::services::DeliveryPath;
use canarykeys_testkit::gzip;
use canarykeys_testkit::pollers::{alert_total, pipeline, record};
use serde_json::{json, Value};

/// A record of a key no token has, padded to about 1.5 KB as real ones are.
fn stranger(n: usize) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
            "accountId": "210987654321", "userName": "build"},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances", "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.20", "userAgent": "aws-sdk-go-v2/1.30",
        "eventID": format!("stranger-{n}"), "eventType": "AwsApiCall",
        "requestParameters": {"filterSet": "x".repeat(1200)},
        "recipientAccountId": "210987654321"
    })
}

fn file(records: Vec<Value>) -> Arc<[u8]> {
    gzip(&serde_json::to_vec(&json!({ "Records": records })).unwrap()).into()
}

#[tokio::test]
async fn trail_files_in_memory_are_read_whole_or_streamed_and_lose_nothing() {
    let app = canarykeys_testkit::spawn_app().await;
    let created = app.create_token().await;
    let (_store, ingest) = pipeline(&app).await;

    // Small: parsed whole.
    let small = file(vec![
        stranger(0),
        record(&created, "small-1", 1),
        stranger(1),
    ]);
    let report = ingest.ingest_file(small, DeliveryPath::S3).await.unwrap();
    assert_eq!((report.records, report.matched, report.new_hits), (3, 1, 1));
    assert!(report.unknown_keys >= 1, "{report:?}");

    // Past the whole-parse bound once gunzipped: streamed, every record read.
    let n = WHOLE_FILE_BYTES / 1400 + 100;
    let mut records: Vec<Value> = (0..n).map(stranger).collect();
    records.push(record(&created, "large-last", 2));
    let json = serde_json::to_vec(&json!({ "Records": records })).unwrap();
    assert!(json.len() > WHOLE_FILE_BYTES);
    let report = ingest
        .ingest_file(gzip(&json).into(), DeliveryPath::S3)
        .await
        .unwrap();
    assert_eq!((report.records, report.new_hits), (n + 1, 1));

    // Cut short: the whole parse refuses it, and the stream stores the chunk before the cut
    // and reports the break.
    let mut records = vec![record(&created, "cut-first", 3)];
    records.extend((0..2_500).map(stranger));
    let whole = gzip(&serde_json::to_vec(&json!({ "Records": records })).unwrap());
    let cut: Arc<[u8]> = whole[..whole.len() * 9 / 10].into();
    let error = ingest
        .ingest_file(cut, DeliveryPath::S3)
        .await
        .expect_err("a truncated file is an error");
    assert!(
        format!("{error}").to_lowercase().contains("gzip"),
        "{error}"
    );
    assert_eq!(
        alert_total(&app, &created).await,
        3,
        "the use before the cut is stored"
    );
    app.stop().await;
}
