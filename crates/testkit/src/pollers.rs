//! Helpers shared by the poller tests (`pollers.rs`, `poller_faults.rs`): trail files in moto's
//! S3, and the app's own store and ingest pipeline opened beside it.

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use canarykeys_aws::sdk_config;
use canarykeys_aws::testing::Moto;
use canarykeys_core::cloudtrail::Limits;
use canarykeys_server::enrich::Enricher;
use canarykeys_server::metrics::Metrics;
use canarykeys_server::services::alerts::AlertService;
use canarykeys_server::services::{ExposureService, IngestService};
use canarykeys_store::{SqlStore, Store};
use serde_json::{json, Value};

use crate::{gzip, id_and_secret, TestApp};

pub const BUCKET: &str = "org-trail-logs";
pub const ACCOUNT: &str = "123456789012";

pub fn record(created: &Value, event_id: &str, minute: u32) -> Value {
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

pub fn trail_key(region: &str, stamp: &str, suffix: &str) -> String {
    format!("AWSLogs/{ACCOUNT}/CloudTrail/{region}/2026/11/28/{ACCOUNT}_CloudTrail_{region}_{stamp}_{suffix}.json.gz")
}

pub async fn s3_client(moto: &Moto) -> aws_sdk_s3::Client {
    let cfg = sdk_config(&moto.settings()).await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&cfg)
            .force_path_style(true)
            .build(),
    )
}

pub async fn put(s3: &aws_sdk_s3::Client, key: &str, records: &[Value]) {
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
pub async fn pipeline(app: &TestApp) -> (Arc<dyn Store>, IngestService) {
    let url = format!("sqlite:{}", app.data_dir.join("canarykeys.db").display());
    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&url).await.unwrap());
    let ingest = IngestService::new(
        store.clone(),
        Limits::default(),
        Arc::new(Metrics::default()),
    );
    (store, ingest)
}

pub async fn alert_total(app: &TestApp, created: &Value) -> u64 {
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

/// The exposure service a safety net built beside `app` records quarantines with.
pub fn exposures(store: &Arc<dyn Store>, app: &TestApp) -> ExposureService {
    ExposureService::new(
        store.clone(),
        AlertService::new(
            store.clone(),
            Enricher::empty(),
            app.address.clone().into(),
            0,
            false,
        ),
        Arc::new(Metrics::default()),
    )
}
