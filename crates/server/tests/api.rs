//! Black-box tests of the JSON API against the real app on port 0 with a temp SQLite file.

use canarykeys_core::AccessKeyId;
use canarykeys_testkit::{id_and_secret, spawn_app, spawn_app_in};
use serde_json::{json, Value};

#[tokio::test]
async fn create_returns_real_format_keys_and_a_manage_secret() {
    let app = spawn_app().await;
    let resp = app
        .post_token(&json!({"kind": "aws_keys", "memo": "web01 .env", "email": "soc@example.com", "webhook_url": "https://hooks.example.com/a"}))
        .await;
    assert_eq!(resp.status(), 201);
    let (id, _) = {
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            location,
            format!("/api/v1/tokens/{}", body["id"].as_str().unwrap())
        );
        let aws = &body["aws"];
        let key = AccessKeyId::parse(aws["access_key_id"].as_str().unwrap()).unwrap();
        assert_eq!(
            key.account_id().to_string(),
            aws["account_id"].as_str().unwrap()
        );
        assert_eq!(aws["secret_access_key"].as_str().unwrap().len(), 40);
        assert_eq!(aws["region"], "us-east-1");
        assert_eq!(aws["output"], "json");
        assert!(!aws["username"].as_str().unwrap().is_empty());
        assert_eq!(body["memo"], "web01 .env");
        assert_eq!(body["kind"], "aws_keys");
        assert_eq!(body["minter"], "local");
        assert_eq!(body["keys_valid_at_aws"], false);
        assert!(body["notice"]
            .as_str()
            .unwrap()
            .contains("AWS does not know them"));
        assert_eq!(body["channels"]["email"]["address"], "soc@example.com");
        assert_eq!(body["channels"]["webhook"]["enabled"], true);
        let manage_url = body["manage_url"].as_str().unwrap();
        assert!(manage_url.starts_with(&format!("{}/manage/", app.address)));
        assert!(manage_url.contains(body["manage_secret"].as_str().unwrap()));
        id_and_secret(&body)
    };
    assert_eq!(id.len(), 26);
}

#[tokio::test]
async fn every_token_gets_its_own_key_in_the_same_account() {
    let app = spawn_app().await;
    let a = app.create_token().await;
    let b = app.create_token().await;
    assert_ne!(a["id"], b["id"]);
    assert_ne!(a["aws"]["access_key_id"], b["aws"]["access_key_id"]);
    assert_ne!(a["manage_secret"], b["manage_secret"]);
    assert_eq!(a["aws"]["account_id"], b["aws"]["account_id"]);
}

#[tokio::test]
async fn read_with_the_manage_secret() {
    let app = spawn_app().await;
    let created = app.create_token().await;
    let (id, secret) = id_and_secret(&created);
    let resp = app
        .get_authed(&format!("/api/v1/tokens/{id}"), &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["aws"], created["aws"]);
    assert_eq!(body["memo"], created["memo"]);
    assert_eq!(body["alert_count"], 0);
    assert!(
        body.get("manage_secret").is_none(),
        "the secret is shown once"
    );
}

#[tokio::test]
async fn wrong_or_missing_secret_and_unknown_ids_reveal_nothing() {
    let app = spawn_app().await;
    let (id, secret) = id_and_secret(&app.create_token().await);
    let (other_id, other_secret) = id_and_secret(&app.create_token().await);
    let cases = [
        (id.clone(), other_secret.clone()), // another token's secret
        (other_id.clone(), secret.clone()), // this secret on another token
        ("aaaaaaaaaaaaaaaaaaaaaaaaaa".into(), secret.clone()), // unknown id
        ("not-an-id".into(), secret.clone()), // malformed id
        (id.clone(), "x".into()),           // malformed secret
    ];
    let mut bodies = Vec::new();
    for (tid, s) in &cases {
        for path in [
            format!("/api/v1/tokens/{tid}"),
            format!("/api/v1/tokens/{tid}/alerts"),
            format!("/api/v1/tokens/{tid}/credentials"),
        ] {
            let resp = app.get_authed(&path, s).send().await.unwrap();
            assert_eq!(resp.status(), 404, "{path}");
            bodies.push(resp.text().await.unwrap());
        }
        let resp = app
            .http
            .delete(app.url(&format!("/api/v1/tokens/{tid}")))
            .bearer_auth(s)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "all 404s look the same"
    );
    let v: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(v["error"]["code"], "not_found");

    let resp = app
        .http
        .get(app.url(&format!("/api/v1/tokens/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthenticated");
}

#[tokio::test]
async fn credentials_in_every_format() {
    let app = spawn_app().await;
    let created = app.create_token().await;
    let (id, secret) = id_and_secret(&created);
    let key = created["aws"]["access_key_id"].as_str().unwrap();
    let sk = created["aws"]["secret_access_key"].as_str().unwrap();
    let get = |format: &str| {
        app.get_authed(
            &format!("/api/v1/tokens/{id}/credentials?format={format}"),
            &secret,
        )
        .send()
    };

    let resp = get("credentials").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"credentials\""
    );
    assert_eq!(
        resp.text().await.unwrap(),
        format!("[default]\naws_access_key_id = {key}\naws_secret_access_key = {sk}\n")
    );

    let resp = get("config").await.unwrap();
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"config\""
    );
    assert_eq!(
        resp.text().await.unwrap(),
        "[default]\nregion = us-east-1\noutput = json\n"
    );

    let resp = get("csv").await.unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert_eq!(
        resp.text().await.unwrap(),
        format!("Access key ID,Secret access key\n{key},{sk}\n")
    );

    let env = get("env").await.unwrap().text().await.unwrap();
    assert!(env.contains(&format!("export AWS_ACCESS_KEY_ID={key}\n")));
    assert!(env.contains(&format!("export AWS_SECRET_ACCESS_KEY={sk}\n")));

    // No format means the credentials file; an unknown one is a 400 naming the choices.
    let default = app
        .get_authed(&format!("/api/v1/tokens/{id}/credentials"), &secret)
        .send()
        .await
        .unwrap();
    assert!(default
        .text()
        .await
        .unwrap()
        .starts_with("[default]\naws_access_key_id"));
    let bad = get("xml").await.unwrap();
    assert_eq!(bad.status(), 400);
    let v: Value = bad.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("credentials, config, csv, env"));
}

#[tokio::test]
async fn patch_switches_channels() {
    let app = spawn_app().await;
    let created = app
        .post_token(&json!({"memo": "m", "email": "a@example.com", "webhook_url": "https://h.example.com/x"}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let (id, secret) = id_and_secret(&created);
    let patch = |body: Value| {
        app.http
            .patch(app.url(&format!("/api/v1/tokens/{id}")))
            .bearer_auth(&secret)
            .json(&body)
            .send()
    };

    let v: Value = patch(json!({"email_enabled": false}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["channels"]["email"]["enabled"], false);
    assert_eq!(v["channels"]["webhook"]["enabled"], true);
    let v: Value = patch(json!({"email_enabled": true, "webhook_enabled": false}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["channels"]["email"]["enabled"], true);
    assert_eq!(v["channels"]["webhook"]["enabled"], false);

    let resp = patch(json!({"sms_enabled": true})).await.unwrap();
    assert_eq!(resp.status(), 400, "unknown fields are refused");
    let resp = patch(json!({"email_enabled": "yes"})).await.unwrap();
    assert_eq!(resp.status(), 400);

    // A channel the token does not have cannot be switched on.
    let only_mail = app.create_token().await;
    let (id2, secret2) = id_and_secret(&only_mail);
    let resp = app
        .http
        .patch(app.url(&format!("/api/v1/tokens/{id2}")))
        .bearer_auth(&secret2)
        .json(&json!({"webhook_enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["fields"][0]["field"], "webhook_enabled");
}

#[tokio::test]
async fn delete_removes_the_token() {
    let app = spawn_app().await;
    let (id, secret) = id_and_secret(&app.create_token().await);
    let (keep_id, keep_secret) = id_and_secret(&app.create_token().await);
    let resp = app
        .http
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = app
        .get_authed(&format!("/api/v1/tokens/{id}"), &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = app
        .http
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = app
        .get_authed(&format!("/api/v1/tokens/{keep_id}"), &keep_secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "other tokens are untouched");
}

#[tokio::test]
async fn alerts_start_empty_and_page() {
    let app = spawn_app().await;
    let (id, secret) = id_and_secret(&app.create_token().await);
    let v: Value = app
        .get_authed(&format!("/api/v1/tokens/{id}/alerts"), &secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v,
        json!({"total": 0, "limit": 50, "offset": 0, "hits": [], "alerts": []})
    );
    // `/hits` is the list's name; `/alerts` answers the same body.
    let hits: Value = app
        .get_authed(&format!("/api/v1/tokens/{id}/hits"), &secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hits, v);
    for bad in ["limit=0", "limit=501", "limit=x", "offset=-1"] {
        let resp = app
            .get_authed(&format!("/api/v1/tokens/{id}/alerts?{bad}"), &secret)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn a_restart_keeps_tokens_and_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path()).await;
    let created = app.create_token().await;
    let (id, secret) = id_and_secret(&created);
    app.stop().await;

    let app = spawn_app_in(dir.path()).await;
    let resp = app
        .get_authed(&format!("/api/v1/tokens/{id}"), &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["aws"], created["aws"],
        "the sealed secret opens with the kept key"
    );
    // The local minter keeps minting in the same account across restarts.
    assert_eq!(
        app.create_token().await["aws"]["account_id"],
        created["aws"]["account_id"]
    );
}

#[tokio::test]
async fn secrets_are_not_stored_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path()).await;
    let created = app.create_token().await;
    let secret_key = created["aws"]["secret_access_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let manage = created["manage_secret"].as_str().unwrap().to_owned();
    let data_dir = app.data_dir.clone();
    app.stop().await;
    // SQLite may still be checkpointing its WAL into the main file as the pool closes: read the
    // directory until the files hold the token, skipping a file that vanished mid-read.
    let key_id = created["aws"]["access_key_id"].as_str().unwrap().to_owned();
    let mut all = Vec::new();
    for _ in 0..50 {
        all.clear();
        for entry in std::fs::read_dir(&data_dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap() != "secret.key" {
                if let Ok(bytes) = std::fs::read(&path) {
                    all.extend(bytes);
                }
            }
        }
        if String::from_utf8_lossy(&all).contains(&key_id) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let hay = String::from_utf8_lossy(&all);
    assert!(
        hay.contains(created["aws"]["access_key_id"].as_str().unwrap()),
        "the db was read"
    );
    assert!(
        !hay.contains(&secret_key),
        "secret access key stored in the clear"
    );
    assert!(!hay.contains(&manage), "manage secret stored in the clear");
}

#[tokio::test]
async fn pages_carry_security_headers_and_openapi_lists_the_routes() {
    let app = spawn_app().await;
    let resp = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    for (h, v) in [
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
    ] {
        assert_eq!(resp.headers()[h], v);
    }
    assert!(resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/tokens",
        "/tokens/{id}",
        "/tokens/{id}/alerts",
        "/tokens/{id}/credentials",
    ] {
        assert!(paths.contains_key(p), "{p}");
    }
    for m in ["get", "patch", "delete"] {
        assert!(paths["/tokens/{id}"].get(m).is_some(), "{m}");
    }
}
