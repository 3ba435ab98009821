//! The sensor answers nothing it did not check. A request whose signature was not checked (a
//! body over the cap, a body that never finishes, Signature Version 2; a secret the sealing key
//! cannot open is in `sealing_key.rs`) gets AWS's answer to a bad signature, which names no
//! identity, and is still a hit, marked unverified. A presigned URL asking for more than a week is refused as S3 refuses
//! it. Requests are signed here with `aws-sigv4` (the SDKs' signer) or the Rust SDK itself.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use canarykeys_testkit::{id_and_secret, spawn_app_with, TestApp, WAIT};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const STS_FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// A token as an intruder holds it, and what must never be told to an unchecked caller.
struct Planted {
    id: String,
    manage_secret: String,
    key_id: String,
    secret_key: String,
    /// The ARN, account id and user name: none may appear in an answer to an unchecked call.
    identity: [String; 3],
    sensor: String,
}

impl Planted {
    async fn new(app: &TestApp) -> Self {
        let created = app.create_token().await;
        let (id, manage_secret) = id_and_secret(&created);
        let aws = |field: &str| created["aws"][field].as_str().unwrap().to_owned();
        Self {
            id,
            manage_secret,
            key_id: aws("access_key_id"),
            secret_key: aws("secret_access_key"),
            identity: [aws("arn"), aws("account_id"), aws("username")],
            sensor: app.sensor_address.clone().unwrap(),
        }
    }

    /// The token's hits, newest first (the clock is advanced between calls by the tests).
    async fn alerts(&self, app: &TestApp) -> Vec<Value> {
        let path = format!("/api/v1/tokens/{}/alerts?limit=100", self.id);
        let resp = app.get_authed(&path, &self.manage_secret).send().await;
        let body: Value = resp.unwrap().json().await.unwrap();
        body["alerts"].as_array().unwrap().clone()
    }

    fn host(&self) -> &str {
        self.sensor.trim_start_matches("http://")
    }

    /// SigV4 instructions for `method url` with `headers` and `body`, as the SDKs sign.
    fn sign(
        &self,
        service: &str,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: SignableBody<'_>,
        settings: SigningSettings,
    ) -> aws_sigv4::http_request::SigningInstructions {
        let identity = Credentials::new(&self.key_id, &self.secret_key, None, None, "t").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let request =
            SignableRequest::new(method, Cow::Borrowed(url), headers.iter().copied(), body)
                .unwrap();
        sign(request, &params).unwrap().into_parts().0
    }

    /// An STS query call signed over `body` in its headers: the request, ready to send.
    fn signed_sts_post(&self, http: &reqwest::Client, body: &[u8]) -> reqwest::RequestBuilder {
        let url = format!("{}/", self.sensor);
        let headers = [("host", self.host()), ("content-type", STS_FORM)];
        let signed = self.sign(
            "sts",
            "POST",
            &url,
            &headers,
            SignableBody::Bytes(body),
            SigningSettings::default(),
        );
        let mut req = http
            .post(url)
            .header("content-type", STS_FORM)
            .body(body.to_vec());
        for (name, value) in signed.headers() {
            req = req.header(name, value);
        }
        req
    }

    /// The answer must name none of the token's identity, in its body or its headers.
    fn assert_anonymous(&self, headers: &reqwest::header::HeaderMap, body: &str) {
        for secret in &self.identity {
            assert!(!body.contains(secret.as_str()), "{secret} in {body}");
            for (name, value) in headers {
                let value = value.to_str().unwrap_or_default();
                assert!(!value.contains(secret.as_str()), "{secret} in {name}");
            }
        }
    }
}

/// The note of an unchecked hit starts with `prefix`, and its record says it is unverified.
fn assert_unverified(hit: &Value, event_name: &str, prefix: &str) {
    assert_eq!(hit["event_name"], event_name, "{hit:#}");
    assert_eq!(hit["path"], "sensor");
    let note = hit["note"].as_str().unwrap();
    assert!(note.starts_with(prefix), "{note}");
    assert_eq!(hit["cloudtrail"]["verified"], false, "{hit:#}");
    assert_eq!(hit["cloudtrail"]["signature_checked"], false, "{hit:#}");
}

async fn sensor_app() -> TestApp {
    spawn_app_with(|c| c.sensor.listen = Some("127.0.0.1:0".parse().unwrap())).await
}

#[tokio::test]
async fn a_body_over_one_mib_is_answered_as_a_bad_signature_and_is_an_unverified_hit() {
    let app = sensor_app().await;
    let planted = Planted::new(&app).await;
    let form = "Action=GetCallerIdentity&Version=2011-06-15";

    // The same signing, with a body under the cap: checked, and answered with the identity.
    let resp = planted.signed_sts_post(&app.http, form.as_bytes()).send();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains(&planted.identity[0]));

    app.advance(Duration::from_secs(1));
    let big = format!("{form}&Pad={}", "x".repeat(1024 * 1024 + 1));
    let resp = planted.signed_sts_post(&app.http, big.as_bytes()).send();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 403);
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{body}"
    );
    planted.assert_anonymous(&headers, &body);
    let alerts = planted.alerts(&app).await;
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert_unverified(
        &alerts[0],
        "POST /",
        "signature not checked (the body was over",
    );
    app.stop().await;
}

#[tokio::test]
async fn a_slow_body_is_answered_as_a_bad_signature_and_is_an_unverified_hit() {
    let app = spawn_app_with(|c| {
        c.sensor.listen = Some("127.0.0.1:0".parse().unwrap());
        // The body deadline: short, so the test does not wait a minute for it, yet long enough
        // for the token's create and the history read that share it (1 s answered a create 408
        // on a CI machine running test binaries side by side).
        c.listeners.request_timeout = Duration::from_secs(5);
    })
    .await;
    let planted = Planted::new(&app).await;
    let body = b"Action=GetCallerIdentity&Version=2011-06-15";
    let url = format!("{}/", planted.sensor);
    let headers = [("host", planted.host()), ("content-type", STS_FORM)];
    let signed = planted.sign(
        "sts",
        "POST",
        &url,
        &headers,
        SignableBody::Bytes(body),
        SigningSettings::default(),
    );
    // The whole body is signed and announced; only half of it is ever sent.
    let mut head = format!(
        "POST / HTTP/1.1\r\nhost: {}\r\ncontent-type: {STS_FORM}\r\ncontent-length: {}\r\n",
        planted.host(),
        body.len()
    );
    for (name, value) in signed.headers() {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(planted.host())
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&answer).contains("</ErrorResponse>") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before an answer");
            answer.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("an answer after the body deadline");
    let answer = String::from_utf8(answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{answer}"
    );
    planted.assert_anonymous(&Default::default(), &answer);
    let alerts = planted.alerts(&app).await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_unverified(
        &alerts[0],
        "POST /",
        "signature not checked (the body did not arrive",
    );
    app.stop().await;
}

#[tokio::test]
async fn signature_version_2_is_answered_as_a_bad_signature_and_is_an_unverified_hit() {
    let app = sensor_app().await;
    let planted = Planted::new(&app).await;
    let key = &planted.key_id;
    let calls = [
        // The query APIs' version 2, in a URL.
        (
            format!(
                "/?Action=GetCallerIdentity&Version=2011-06-15&AWSAccessKeyId={key}\
                 &SignatureVersion=2&SignatureMethod=HmacSHA256\
                 &Timestamp=2026-01-28T10%3A15%3A00Z&Signature=c2lnbmF0dXJl"
            ),
            None,
            "GetCallerIdentity",
            "</ErrorResponse>",
        ),
        // S3's, in the Authorization header.
        (
            "/prod-backups/db/2026-11-27.sql.gz".to_owned(),
            Some(format!("AWS {key}:c2lnbmF0dXJl")),
            "GetObject",
            "</Error>",
        ),
        // S3's, as a presigned URL (`aws s3 presign` in CLI v1).
        (
            format!(
                "/prod-backups/db/2026-11-27.sql.gz?AWSAccessKeyId={key}&Expires=1900000000\
                 &Signature=c2lnbmF0dXJl"
            ),
            None,
            "GetObject",
            "</Error>",
        ),
    ];
    for (i, (path, auth, event_name, end)) in calls.iter().enumerate() {
        app.advance(Duration::from_secs(1));
        let mut req = app.http.get(format!("{}{path}", planted.sensor));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 403, "{path}");
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap();
        assert!(
            body.contains("<Code>SignatureDoesNotMatch</Code>") && body.contains(end),
            "{path}: {body}"
        );
        planted.assert_anonymous(&headers, &body);
        let alerts = planted.alerts(&app).await;
        assert_eq!(alerts.len(), i + 1, "{alerts:#?}");
        assert_unverified(
            &alerts[0],
            event_name,
            "signature not checked (Signature Version 2)",
        );
    }
    // The query APIs' version 2 in a POST body, as older SDKs send it.
    app.advance(Duration::from_secs(1));
    let form = format!(
        "Action=GetCallerIdentity&Version=2011-06-15&AWSAccessKeyId={key}&SignatureVersion=2\
         &SignatureMethod=HmacSHA256&Timestamp=2026-01-28T10%3A15%3A00Z&Signature=c2lnbmF0dXJl"
    );
    let resp = app
        .http
        .post(format!("{}/", planted.sensor))
        .header("content-type", STS_FORM)
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{body}"
    );
    planted.assert_anonymous(&headers, &body);
    let alerts = planted.alerts(&app).await;
    assert_eq!(alerts.len(), calls.len() + 1, "{alerts:#?}");
    assert_unverified(
        &alerts[0],
        "GetCallerIdentity",
        "signature not checked (Signature Version 2)",
    );
    app.stop().await;
}

#[tokio::test]
async fn x_amz_expires_over_a_week_is_refused_as_aws_refuses_it() {
    let app = sensor_app().await;
    let planted = Planted::new(&app).await;
    let presign = |expires: u64| {
        let url = format!("{}/prod-backups/db.sql.gz", planted.sensor);
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(expires));
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let signed = planted.sign(
            "s3",
            "GET",
            &url,
            &[("host", planted.host())],
            SignableBody::UnsignedPayload,
            settings,
        );
        let query: Vec<String> = signed
            .params()
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect();
        format!("{url}?{}", query.join("&"))
    };

    // A week exactly is good: checked, and denied as AWS denies a user without permissions.
    let resp = app.http.get(presign(604_800)).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("<Code>AccessDenied</Code>"));

    app.advance(Duration::from_secs(1));
    let resp = app.http.get(presign(604_801)).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap();
    assert!(
        body.contains("<Code>AuthorizationQueryParametersError</Code>"),
        "{body}"
    );
    assert!(
        body.contains("X-Amz-Expires must be less than a week (in seconds); that is"),
        "{body}"
    );
    assert!(body.contains("604800"), "{body}");
    planted.assert_anonymous(&headers, &body);
    let alerts = planted.alerts(&app).await;
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    assert_eq!(alerts[0]["event_name"], "GetObject");
    let note = alerts[0]["note"].as_str().unwrap();
    assert!(
        note.starts_with("presigned URL refused (X-Amz-Expires over a week"),
        "{note}"
    );
    assert_eq!(alerts[0]["error_code"], "AuthorizationQueryParametersError");
    app.stop().await;
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
