//! The sensor judges a request's time as AWS does: a request signed too long ago (or ahead) and
//! a presigned URL past its expiry get AWS's answers, and are still hits, marked. Driven by the
//! Rust SDK signing with a fixed clock, and by a URL it presigned two hours ago.

use canarykeys_testkit::{id_and_secret, spawn_app_with, TestApp};
use serde_json::Value;

const VERIFIED: &str = "signature verified: the caller holds the secret key";

/// A token's key as an intruder holds it, and its hits.
struct Planted {
    sensor: String,
    key_id: String,
    secret_key: String,
    alerts_url: String,
    manage_secret: String,
    http: reqwest::Client,
}

impl Planted {
    async fn new(app: &TestApp) -> Self {
        let created = app.create_token().await;
        let (id, manage_secret) = id_and_secret(&created);
        let aws = |field: &str| created["aws"][field].as_str().unwrap().to_owned();
        Self {
            sensor: app.sensor_address.clone().unwrap(),
            key_id: aws("access_key_id"),
            secret_key: aws("secret_access_key"),
            alerts_url: app.url(&format!("/api/v1/tokens/{id}/alerts?limit=100")),
            manage_secret,
            http: app.http.clone(),
        }
    }

    /// The token's hits, newest first.
    async fn alerts(&self) -> Vec<Value> {
        let req = self
            .http
            .get(&self.alerts_url)
            .bearer_auth(&self.manage_secret);
        let body: Value = req.send().await.unwrap().json().await.unwrap();
        body["alerts"].as_array().unwrap().clone()
    }
}

const SKEWED: &str = "request time too skewed (X-Amz-Date more than 15 minutes from now): a replayed or delayed request";
const EXPIRED: &str = "request expired (a presigned URL past its X-Amz-Expires): a replay or a late use of a copied URL";

#[tokio::test]
async fn a_skewed_or_expired_request_gets_aws_answer_and_is_a_marked_hit() {
    use aws_sdk_s3::presigning::PresigningConfig;
    use aws_sdk_sts::config::retry::RetryConfig;
    use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_async::time::StaticTimeSource;
    use std::time::{Duration, SystemTime};

    let app = spawn_app_with(|c| c.sensor.listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let planted = Planted::new(&app).await;
    let credentials = Credentials::new(&planted.key_id, &planted.secret_key, None, None, "file");
    // The SDK signs with a clock an hour behind: a replayed or long-delayed request.
    let an_hour_ago = || StaticTimeSource::new(SystemTime::now() - Duration::from_secs(3600));
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(credentials.clone())
            .region(Region::new("us-east-1"))
            .endpoint_url(&planted.sensor)
            .time_source(an_hour_ago())
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    let err = sts.get_caller_identity().send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    let err = err.into_service_error();
    let meta = aws_sdk_sts::error::ProvideErrorMetadata::meta(&err);
    assert_eq!(meta.code(), Some("SignatureDoesNotMatch"));
    assert!(
        meta.message().unwrap().starts_with("Signature expired: "),
        "{meta:?}"
    );
    let hit = &planted.alerts().await[0];
    assert_eq!(hit["event_name"], "GetCallerIdentity");
    assert_eq!(hit["note"], format!("{SKEWED}; {VERIFIED}"));

    let s3_config = |time: StaticTimeSource| {
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(credentials.clone())
            .region(Region::new("us-east-1"))
            .endpoint_url(&planted.sensor)
            .force_path_style(true)
            .time_source(time)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build()
    };
    // Each hit a second after the last on the app's clock: the alert list is newest first, and
    // hits recorded at one instant have no order.
    app.advance(Duration::from_secs(1));
    let s3 = aws_sdk_s3::Client::from_conf(s3_config(an_hour_ago()));
    let err = s3.list_buckets().send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    let err = err.into_service_error();
    let meta = aws_sdk_s3::error::ProvideErrorMetadata::meta(&err);
    assert_eq!(meta.code(), Some("RequestTimeTooSkewed"));
    assert_eq!(
        planted.alerts().await[0]["note"],
        format!("{SKEWED}; {VERIFIED}")
    );

    // A presigned URL made two hours ago for one minute, used now.
    let s3 = aws_sdk_s3::Client::from_conf(s3_config(StaticTimeSource::new(SystemTime::now())));
    let presigning = PresigningConfig::builder()
        .start_time(SystemTime::now() - Duration::from_secs(7200))
        .expires_in(Duration::from_secs(60))
        .build()
        .unwrap();
    let url = s3
        .get_object()
        .bucket("prod-backups")
        .key("db/2026-11-27.sql.gz")
        .presigned(presigning)
        .await
        .unwrap();
    app.advance(Duration::from_secs(1));
    let resp = app.http.get(url.uri()).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let body = resp.text().await.unwrap();
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    assert!(
        body.contains("<Message>Request has expired</Message>"),
        "{body}"
    );
    let alerts = planted.alerts().await;
    assert_eq!(alerts.len(), 3, "each stale request is still one hit");
    assert_eq!(alerts[0]["event_name"], "GetObject");
    assert_eq!(alerts[0]["note"], format!("{EXPIRED}; {VERIFIED}"));
    app.stop().await;
}
