//! Black-box tests of how the API refuses bad input: every validation error with its field,
//! malformed bodies, oversized bodies, and the per-address rate limit on creation.

use canarykeys_testkit::{spawn_app, spawn_app_with};
use serde_json::{json, Value};

async fn field_errors(resp: reqwest::Response) -> Vec<String> {
    assert_eq!(resp.status(), 422);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_input");
    v["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert!(!f["message"].as_str().unwrap().is_empty());
            f["field"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn every_validation_error_names_its_field() {
    let app = spawn_app().await;
    let long_memo = "m".repeat(1001);
    let long_hook = format!("https://example.com/{}", "a".repeat(1010));
    let cases = [
        (json!({"email": "a@example.com"}), vec!["memo"]),
        (
            json!({"memo": "  ", "email": "a@example.com"}),
            vec!["memo"],
        ),
        (
            json!({"memo": long_memo, "email": "a@example.com"}),
            vec!["memo"],
        ),
        (json!({"memo": "m"}), vec!["email"]),
        (
            json!({"memo": "m", "email": "", "webhook_url": ""}),
            vec!["email"],
        ),
        (json!({"memo": "m", "email": "not-an-email"}), vec!["email"]),
        (
            json!({"memo": "m", "webhook_url": "ftp://example.com/x"}),
            vec!["webhook_url"],
        ),
        (
            json!({"memo": "m", "webhook_url": "javascript:alert(1)"}),
            vec!["webhook_url"],
        ),
        (
            json!({"memo": "m", "webhook_url": long_hook}),
            vec!["webhook_url"],
        ),
        (
            json!({"kind": "gcp_keys", "memo": "m", "email": "a@example.com"}),
            vec!["kind"],
        ),
        (
            json!({"kind": "nope", "memo": "", "email": "x", "webhook_url": "y"}),
            vec!["kind", "memo", "email", "webhook_url"],
        ),
    ];
    for (body, fields) in cases {
        assert_eq!(
            field_errors(app.post_token(&body).await).await,
            fields,
            "{body}"
        );
    }
    // 1000 characters is fine.
    let resp = app
        .post_token(&json!({"memo": "m".repeat(1000), "email": "a@example.com"}))
        .await;
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn malformed_requests_get_json_errors() {
    let app = spawn_app().await;
    let url = app.url("/api/v1/tokens");
    let send = |body: &'static str, ct: &'static str| {
        app.http
            .post(&url)
            .header("content-type", ct)
            .body(body)
            .send()
    };

    let resp = send("{not json", "application/json").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "bad_request"
    );
    let resp = send(r#"{"memo": 5}"#, "application/json").await.unwrap();
    assert_eq!(resp.status(), 400);
    let resp = send(r#"{"memo":"m","email":"a@example.com"}"#, "text/plain")
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "unsupported_media_type"
    );

    let huge = format!(
        r#"{{"memo":"{}","email":"a@example.com"}}"#,
        "m".repeat(100_000)
    );
    let resp = app
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "payload_too_large"
    );

    let resp = app
        .http
        .get(app.url("/api/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );

    // The server is still up and still creates tokens.
    app.create_token().await;
}

#[tokio::test]
async fn creation_is_rate_limited_per_address() {
    let app = spawn_app_with(|c| {
        c.rate_limit.create_per_minute = 1;
        c.rate_limit.create_burst = 2;
    })
    .await;
    app.create_token().await;
    app.create_token().await;
    let resp = app
        .post_token(&json!({"memo": "m", "email": "a@example.com"}))
        .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "rate_limited"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_limit_follows_the_last_forwarded_hop() {
    let app = spawn_app_with(|c| {
        c.rate_limit.create_per_minute = 1;
        c.rate_limit.create_burst = 1;
        c.rate_limit.trust_forwarded_for = true;
    })
    .await;
    let body = json!({"memo": "m", "email": "a@example.com"});
    let post = |xff: &'static str| {
        app.http
            .post(app.url("/api/v1/tokens"))
            .header("x-forwarded-for", xff)
            .json(&body)
            .send()
    };
    assert_eq!(post("198.51.100.1").await.unwrap().status(), 201);
    assert_eq!(post("198.51.100.2").await.unwrap().status(), 201);
    // The client cannot dodge the limit by prepending addresses: only the proxy's hop counts.
    assert_eq!(post("10.9.9.9, 198.51.100.1").await.unwrap().status(), 429);
}

#[tokio::test]
async fn webhooks_to_private_addresses_are_refused_at_creation() {
    let app = spawn_app().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest",
        "http://10.0.0.5/x",
        "http://[::1]/x",
        "http://localhost/x",
    ] {
        let resp = app
            .post_token(&json!({"memo": "m", "webhook_url": url}))
            .await;
        assert_eq!(resp.status(), 422, "{url}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["fields"][0]["field"], "webhook_url", "{url}");
    }
    // A tester's receiver on loopback is fine once allowed.
    let open = spawn_app_with(|c| c.alerts.allow_private_webhooks = true).await;
    let resp = open
        .post_token(&json!({"memo": "m", "webhook_url": "http://127.0.0.1:9/hook"}))
        .await;
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn an_account_the_minter_does_not_have_is_a_client_error() {
    let app = spawn_app().await;
    let resp = app
        .post_token(&json!({"memo": "m", "email": "a@example.com", "account_id": "999999999999"}))
        .await;
    assert_eq!(resp.status(), 422);
    let v: Value = resp.json().await.unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("999999999999") && message.contains("not one of the decoy accounts"),
        "{v}"
    );
}
