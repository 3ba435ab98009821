//! The server with real minters: `iam` against moto server (users and keys really created and
//! deleted in IAM), caller-chosen names and their collisions, expiry, and `doctor`.

use canarykeys_aws::sdk_config;
use canarykeys_aws::testing::Moto;
use canarykeys_server::config::{DecoyAccountConfig, Secret};
use canarykeys_testkit::{id_and_secret, spawn_app_with, TestApp};
use serde_json::{json, Value};

async fn iam_app(moto: &Moto) -> TestApp {
    let url = moto.url();
    spawn_app_with(move |c| {
        c.minter.kind = canarykeys_server::config::MinterKind::Iam;
        c.minter.accounts = vec![DecoyAccountConfig {
            account_id: Some("123456789012".into()),
            endpoint_url: Some(url),
            access_key_id: Some("testing".into()),
            secret_access_key: Some(Secret::new("testing")),
            ..DecoyAccountConfig::default()
        }];
    })
    .await
}

async fn iam_client(moto: &Moto) -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&sdk_config(&moto.settings()).await)
}

#[tokio::test]
async fn the_iam_minter_creates_and_deletes_real_users() {
    let moto = Moto::start();
    let app = iam_app(&moto).await;
    let resp = app
        .post_token(&json!({"memo": "ci", "email": "soc@example.com", "expires_in": "7d"}))
        .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["minter"], "iam");
    assert_eq!(created["keys_valid_at_aws"], true);
    assert!(
        created.get("notice").is_none(),
        "no local-keys notice for real keys"
    );
    assert!(created["expires_at"].is_string());
    let user = created["aws"]["username"].as_str().unwrap().to_owned();
    let iam = iam_client(&moto).await;
    let keys = iam
        .list_access_keys()
        .user_name(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(
        keys.access_key_metadata()[0].access_key_id(),
        created["aws"]["access_key_id"].as_str()
    );
    assert!(iam
        .list_attached_user_policies()
        .user_name(&user)
        .send()
        .await
        .unwrap()
        .attached_policies()
        .is_empty());

    // A caller-chosen name; the same again is a conflict that leaves nothing behind.
    let named = app
        .post_token(
            &json!({"memo": "m", "email": "soc@example.com", "username": "svc-reporting-prod"}),
        )
        .await;
    assert_eq!(named.status(), 201);
    let named: Value = named.json().await.unwrap();
    assert_eq!(named["aws"]["username"], "svc-reporting-prod");
    let again = app
        .post_token(
            &json!({"memo": "m", "email": "soc@example.com", "username": "svc-reporting-prod"}),
        )
        .await;
    assert_eq!(again.status(), 409);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"]["code"],
        "conflict"
    );
    let tell = app
        .post_token(&json!({"memo": "m", "email": "soc@example.com", "username": "honeypot-user"}))
        .await;
    assert_eq!(tell.status(), 422);

    // Deleting the token deletes the key and the user.
    let (id, secret) = id_and_secret(&created);
    let resp = app
        .http
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(
        iam.get_user().user_name(&user).send().await.is_err(),
        "the user is gone"
    );
    let users = iam.list_users().send().await.unwrap();
    assert_eq!(users.users().len(), 1, "only the named user is left");
}

#[tokio::test]
async fn an_unknown_account_is_refused_and_nothing_is_stored() {
    let moto = Moto::start();
    let app = iam_app(&moto).await;
    let resp = app
        .post_token(&json!({"memo": "m", "email": "soc@example.com", "account_id": "999999999999"}))
        .await;
    assert!(resp.status().is_server_error() || resp.status().is_client_error());
    assert!(iam_client(&moto)
        .await
        .list_users()
        .send()
        .await
        .unwrap()
        .users()
        .is_empty());
}
