//! Replacing manage secrets: `POST /api/v1/tokens/{id}/manage-secret` with the secret (the new
//! one is shown) or a `tokens:write` key (it is not), and `canarykeys token
//! reset-manage-secrets --all`, after which no secret handed out before works.

use canarykeys_server::services::Scope;
use canarykeys_testkit::access::{services, PASSWORD};
use canarykeys_testkit::cli::{fails, ok, run};
use canarykeys_testkit::{spawn_app, TestApp};
use serde_json::{json, Value};

async fn create(app: &TestApp) -> (String, String) {
    create_with(app, None).await
}

/// A token made anonymously, or with an API key (which then owns it for its operator).
async fn create_with(app: &TestApp, key: Option<&str>) -> (String, String) {
    let mut req = app.http.post(app.url("/api/v1/tokens"));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let created: Value = req
        .json(&json!({"memo": "web01 /srv/.env", "email": "soc@corp.internal"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        created["id"].as_str().unwrap().to_owned(),
        created["manage_secret"].as_str().unwrap().to_owned(),
    )
}

async fn status_of(app: &TestApp, id: &str, secret: &str) -> u16 {
    app.get_authed(&format!("/api/v1/tokens/{id}"), secret)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn rekey(app: &TestApp, id: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut req = app
        .http
        .post(app.url(&format!("/api/v1/tokens/{id}/manage-secret")));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_secret_replaces_itself_and_a_planting_key_never_sees_the_new_one() {
    let app = spawn_app().await;
    let (id, old) = create(&app).await;
    let (status, body) = rekey(&app, &id, Some(&old)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], id.as_str());
    let new = body["manage_secret"].as_str().unwrap().to_owned();
    assert_eq!(status_of(&app, &id, &old).await, 404);
    assert_eq!(status_of(&app, &id, &new).await, 200);
    assert_eq!(rekey(&app, &id, Some(&old)).await.0, 404);
    assert_eq!(rekey(&app, &id, None).await.0, 401);

    let svc = services(&app).await;
    let op = svc.access.create_operator("fleet", PASSWORD).await.unwrap();
    let (_, writer) = svc
        .access
        .create_api_key(&op, "laptops", &[Scope::TokensWrite])
        .await
        .unwrap();
    let (_, reader) = svc
        .access
        .create_api_key(&op, "dash", &[Scope::TokensRead])
        .await
        .unwrap();
    // A key reaches only its own operator's tokens: the anonymous token is not the fleet's.
    assert_eq!(rekey(&app, &id, Some(&writer)).await.0, 404);
    assert_eq!(status_of(&app, &id, &new).await, 200, "nothing changed");
    let (id, new) = create_with(&app, Some(&writer)).await;
    let (status, body) = rekey(&app, &id, Some(&writer)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["manage_secret"].is_null(), "{body}");
    assert_eq!(
        status_of(&app, &id, &new).await,
        404,
        "the holder's secret is retired too"
    );
    assert_eq!(rekey(&app, &id, Some(&reader)).await.0, 403);
    let audit: Vec<String> = svc
        .access
        .list_audit(10, 0)
        .await
        .into_iter()
        .map(|e| format!("{} {}", e.actor, e.action))
        .collect();
    assert!(
        audit.contains(&"manage-secret token.manage_secret".to_owned()),
        "{audit:?}"
    );
    assert!(
        audit.contains(&"fleet token.manage_secret".to_owned()),
        "{audit:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn reset_manage_secrets_retires_every_old_secret() {
    let app = spawn_app().await;
    let a = create(&app).await;
    let b = create(&app).await;
    let dir = app.data_dir.clone();
    let env = [("CANARYKEYS_DATA_DIR", dir.to_str().unwrap())];
    let err = fails(run(&dir, &["token", "reset-manage-secrets"], &env));
    assert!(err.contains("--all"), "{err}");
    assert_eq!(status_of(&app, &a.0, &a.1).await, 200);
    let out = ok(run(&dir, &["token", "reset-manage-secrets", "--all"], &env));
    assert_eq!(out.trim(), "replaced the manage secrets of 2 tokens");
    for (id, secret) in [&a, &b] {
        assert_eq!(status_of(&app, id, secret).await, 404);
        services(&app).await.tokens.get(id).await.unwrap();
    }
    app.stop().await;
}
