//! Access control, black-box: scoped and revocable API keys on the operator API, the manage
//! secret beside them, the trusted proxy header, and the `admin` CLI.

use canarykeys_server::services::Scope;
use canarykeys_store::{AccessStore, HitRecord, HitStore};
use canarykeys_testkit::access::*;
use canarykeys_testkit::spawn_app_with;
use serde_json::Value;

#[tokio::test]
async fn api_keys_are_scoped_per_route_and_stop_working_when_revoked() {
    let app = operators_app().await;
    let svc = services(&app).await;
    let op = svc
        .access
        .create_operator("ci-owner", PASSWORD)
        .await
        .unwrap();
    let (_, writer) = svc
        .access
        .create_api_key(&op, "ci", &[Scope::TokensWrite])
        .await
        .unwrap();
    let (_, reader) = svc
        .access
        .create_api_key(&op, "dash", &[Scope::TokensRead])
        .await
        .unwrap();
    let (alerts_info, alerts) = svc
        .access
        .create_api_key(&op, "siem", &[Scope::AlertsRead])
        .await
        .unwrap();
    assert!(writer.starts_with("ck_") && writer.len() == 46);

    assert_eq!(create_token(&app, &reader).await.unwrap().status(), 403);
    let created: Value = {
        let resp = create_token(&app, &writer).await.unwrap();
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    };
    let (id, secret) = canarykeys_testkit::id_and_secret(&created);
    let aws_secret = created["aws"]["secret_access_key"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(
        get(&app, "/api/v1/tokens", Some(&writer), None)
            .await
            .status(),
        403
    );
    assert_eq!(
        get(&app, "/api/v1/tokens", Some(&alerts), None)
            .await
            .status(),
        403
    );
    let list = get(&app, "/api/v1/tokens?limit=10", Some(&reader), None).await;
    assert_eq!(list.status(), 200);
    let text = list.text().await.unwrap();
    assert!(
        !text.contains(&aws_secret) && !text.contains(&secret),
        "no secrets in the list"
    );
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["tokens"][0]["id"], id.as_str());
    assert_eq!(
        get(&app, "/api/v1/tokens?limit=0", Some(&reader), None)
            .await
            .status(),
        400
    );

    // The feed of all hits, with each hit's token.
    store(&app).await.record_hits(&[hit(&id)]).await.unwrap();
    assert_eq!(
        get(&app, "/api/v1/alerts", Some(&reader), None)
            .await
            .status(),
        403
    );
    let feed: Value = get(&app, "/api/v1/alerts", Some(&alerts), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(feed["total"], 1);
    assert_eq!(feed["alerts"][0]["token_id"], id.as_str());
    assert_eq!(feed["alerts"][0]["token_memo"], "ci runner ~/.aws");
    assert_eq!(feed["alerts"][0]["kind"], "hit");
    // Filtered by kind: no exposures yet; an unknown kind is refused.
    let exposures: Value = get(&app, "/api/v1/alerts?kind=exposure", Some(&alerts), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(exposures["total"], 0);
    let bad = get(&app, "/api/v1/alerts?kind=use", Some(&alerts), None).await;
    assert_eq!(bad.status(), 400);

    // The manage secret keeps working beside the keys.
    assert_eq!(
        app.get_authed(&format!("/api/v1/tokens/{id}"), &secret)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let delete = |key: String| {
        app.http
            .delete(app.url(&format!("/api/v1/tokens/{id}")))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(delete(reader.clone()).await.unwrap().status(), 403);
    assert_eq!(delete(writer.clone()).await.unwrap().status(), 204);

    // Revoked: refused on the very next request.
    svc.access
        .revoke_api_key(&op, &alerts_info.id)
        .await
        .unwrap();
    assert_eq!(
        get(&app, "/api/v1/alerts", Some(&alerts), None)
            .await
            .status(),
        401
    );
    let keys = svc.access.list_api_keys().await;
    assert!(keys
        .iter()
        .any(|k| k.id == alerts_info.id && k.revoked_at.is_some()));
    let audit = svc.access.list_audit(100, 0).await;
    for action in [
        "token.create",
        "token.delete",
        "api_key.create",
        "api_key.revoke",
    ] {
        assert!(audit.iter().any(|e| e.action == action), "{action} audited");
    }
    assert!(audit
        .iter()
        .any(|e| e.action == "token.delete" && e.actor == "ci-owner"));
}

/// The app's database, opened beside it (services keep theirs private).
/// `POST /api/v1/tokens` with the memo, as the API key `key`.
async fn create_token(
    app: &canarykeys_testkit::TestApp,
    key: &str,
) -> reqwest::Result<reqwest::Response> {
    app.http
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(key)
        .json(&memo())
        .send()
        .await
}

async fn store(app: &canarykeys_testkit::TestApp) -> canarykeys_store::SqlStore {
    let url = canarykeys_testkit::test_config(&app.data_dir).database_url();
    canarykeys_store::SqlStore::connect(&url).await.unwrap()
}

fn hit(token: &str) -> HitRecord {
    HitRecord {
        id: "h-1".into(),
        token_id: canarykeys_core::TokenId::parse(token).unwrap(),
        event_id: "ev-1".into(),
        event_time: 1_700_000_000_000,
        received_at: 1_700_000_001_000,
        event_name: "GetCallerIdentity".into(),
        event_source: "sts.amazonaws.com".into(),
        region: "us-east-1".into(),
        source_ip: "203.0.113.7".into(),
        user_agent: "aws-cli/2".into(),
        error_code: None,
        error_message: None,
        account_id: None,
        access_key_id: None,
        tls_host: None,
        vpc_endpoint_id: None,
        request_id: None,
        path: "cloudwatch-logs".into(),
        note: None,
        suppressed: None,
        raw: "{}".into(),
    }
}

#[tokio::test]
async fn a_trusted_proxy_header_signs_in_and_an_untrusted_peer_is_ignored() {
    for (nets, expect) in [("127.0.0.1/32", 200), ("10.0.0.0/8", 401)] {
        let app = spawn_app_with(|c| {
            c.access.create = "operators".into();
            c.access.proxy_header = Some("x-forwarded-user".into());
            c.access.trusted_proxies = vec![nets.into()];
        })
        .await;
        let resp = app
            .http
            .get(app.url("/api/v1/tokens"))
            .header("x-forwarded-user", "sso-user@example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), expect, "{nets}");
    }
}

#[tokio::test]
async fn the_admin_cli_creates_an_operator_and_a_key_that_authenticates() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_canarykeys"));
        for (key, _) in std::env::vars() {
            if key.starts_with("CANARYKEYS_") {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(dir.path())
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(args);
        cmd
    };
    let mut child = cli(&["admin", "create-user", "--name", "root", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let out = cli(&[
        "admin",
        "create-api-key",
        "--user",
        "root",
        "--scopes",
        "tokens:write,tokens:read,alerts:read",
        "--name",
        "ci",
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        key.starts_with("ck_") && key.len() == 46,
        "prints only the key: {key}"
    );
    let bad = cli(&[
        "admin",
        "create-api-key",
        "--user",
        "root",
        "--scopes",
        "tokens:admin",
    ])
    .output()
    .unwrap();
    assert!(!bad.status.success());

    let mut config = canarykeys_testkit::test_config(&dir.path().join("data"));
    config.access.create = "operators".into();
    let app = canarykeys_testkit::start_config(config).await;
    assert_eq!(
        get(&app, "/api/v1/tokens", Some(&key), None).await.status(),
        200
    );
    let resp = create_token(&app, &key).await.unwrap();
    assert_eq!(resp.status(), 201);
    let session = login(&app, "root").await;
    assert_eq!(
        get(&app, "/api/v1/alerts", None, Some(&session))
            .await
            .status(),
        200
    );
    let svc = services(&app).await;
    let audit = svc.access.list_audit(100, 0).await;
    assert!(audit
        .iter()
        .any(|e| e.action == "operator.create" && e.actor == "cli" && e.target == "root"));
    assert!(audit
        .iter()
        .any(|e| e.action == "login" && e.actor == "root"));
    let _ = store(&app).await.list_audit(1, 0).await.unwrap();
    app.stop().await;
}

/// The token list pages by cursor: `next` of a full page leads to the one after, every token
/// comes once in the offset list's order, the last page says `null`, and a bad cursor is a 400
/// with the error body.
#[tokio::test]
async fn the_token_list_pages_by_cursor() {
    let app = operators_app().await;
    let svc = services(&app).await;
    let op = svc.access.create_operator("pager", PASSWORD).await.unwrap();
    let (_, key) = svc
        .access
        .create_api_key(&op, "both", &[Scope::TokensRead, Scope::TokensWrite])
        .await
        .unwrap();
    for _ in 0..5 {
        let resp = create_token(&app, &key).await.unwrap();
        assert_eq!(resp.status(), 201);
    }
    let page = |q: String| {
        let key = key.clone();
        let app = &app;
        async move {
            let resp = get(app, &format!("/api/v1/tokens?{q}"), Some(&key), None).await;
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let ids = |v: &Value| -> Vec<String> {
        v["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, all) = page("limit=50".into()).await;
    assert_eq!(all["next"], Value::Null, "a short page is the last");
    let mut seen = Vec::new();
    let mut q = "limit=2".to_owned();
    loop {
        let (status, body) = page(q.clone()).await;
        assert_eq!(status, 200);
        assert_eq!(body["total"], 5);
        seen.extend(ids(&body));
        match body["next"].as_str() {
            Some(next) => q = format!("limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ids(&all));
    // An offset after a cursor skips that many more.
    let (_, first) = page("limit=1".into()).await;
    let next = first["next"].as_str().unwrap();
    let (_, skipped) = page(format!("limit=2&offset=2&after={next}")).await;
    assert_eq!(ids(&skipped), ids(&all)[3..5]);
    for bad in [
        "x",
        "1.abc",
        "99999999999999999999.aaaaaaaaaaaaaaaaaaaaaaaaaa",
    ] {
        let (status, body) = page(format!("after={bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cursor"));
    }
}
