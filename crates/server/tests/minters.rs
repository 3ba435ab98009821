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

/// A token service over moto's IAM and a fresh SQLite store, as `serve` wires it.
async fn iam_service(
    moto: &Moto,
    dir: &std::path::Path,
) -> (
    canarykeys_server::services::TokenService,
    std::sync::Arc<canarykeys_store::SqlStore>,
    std::sync::Arc<canarykeys_aws::IamMinter>,
) {
    use canarykeys_aws::{DecoyAccount, IamMinter};
    use canarykeys_core::{names::NameGenerator, AccountId, OutputFormat, Region};
    use std::sync::Arc;
    let mut account = DecoyAccount::new(AccountId::parse("123456789012").unwrap(), "us-east-1");
    account.endpoint_url = Some(moto.url());
    account.access_key_id = Some("testing".into());
    account.secret_access_key = Some("testing".into());
    let minter = Arc::new(
        IamMinter::new(vec![account], NameGenerator::default_set())
            .await
            .unwrap(),
    );
    let url = format!("sqlite:{}", dir.join("t.db").display());
    let store = Arc::new(canarykeys_store::SqlStore::connect(&url).await.unwrap());
    let sealer = canarykeys_server::crypto::Sealer::load_or_create(&dir.join("k")).unwrap();
    let service = canarykeys_server::services::TokenService::new(
        store.clone(),
        minter.clone(),
        sealer,
        Region::parse("us-east-1").unwrap(),
        OutputFormat::Json,
    );
    (service, store, minter)
}

async fn user_names(iam: &aws_sdk_iam::Client) -> Vec<String> {
    let mut names: Vec<String> = iam
        .list_users()
        .send()
        .await
        .unwrap()
        .users()
        .iter()
        .map(|u| u.user_name().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_key_minted_before_a_crash_is_revoked_and_nothing_else_is_touched() {
    use canarykeys_aws::{MintRequest, Minter};
    use canarykeys_core::{NewToken, NewTokenInput};
    use canarykeys_store::{MintedRef, TokenStore};
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let (service, store, minter) = iam_service(&moto, dir.path()).await;
    let iam = iam_client(&moto).await;

    // A normal create leaves no intent behind.
    let input = NewTokenInput {
        memo: Some("ci".into()),
        email: Some("soc@example.com".into()),
        ..NewTokenInput::default()
    };
    let created = service
        .create(
            NewToken::parse(&input).unwrap(),
            &canarykeys_server::services::Actor::Cli,
        )
        .await
        .unwrap();
    assert!(store.stale_mints(i64::MAX).await.unwrap().is_empty());

    // A crash after the minter answered and before the token was stored: the intent names it.
    let orphan = minter.mint(&MintRequest::default()).await.unwrap();
    store.begin_mint("crashed", "iam", 1).await.unwrap();
    let minted = MintedRef {
        account_id: orphan.account_id,
        username: orphan.username.clone(),
        access_key_id: orphan.access_key_id.clone(),
    };
    store.note_minted("crashed", &minted).await.unwrap();
    // A crash after the insert: the token owns its key, which must stay.
    store.begin_mint("stored", "iam", 2).await.unwrap();
    let owned = MintedRef {
        account_id: created.token.account_id,
        username: created.token.username.clone(),
        access_key_id: created.token.access_key_id.clone(),
    };
    store.note_minted("stored", &owned).await.unwrap();
    // A crash inside the minter's call: nothing to name.
    store.begin_mint("unanswered", "iam", 3).await.unwrap();
    // Someone else's user in the same account.
    iam.create_user()
        .user_name("deploy-bot")
        .send()
        .await
        .unwrap();

    // Too recent to act on (a create may still be in flight): nothing happens.
    let r = service.reconcile_mints(1).await.unwrap();
    assert_eq!(r, Default::default());
    let r = service.reconcile_mints(10).await.unwrap();
    assert_eq!((r.revoked, r.owned, r.unanswered, r.errors), (1, 1, 1, 0));
    let mut want = vec![created.token.username.to_string(), "deploy-bot".to_owned()];
    want.sort();
    assert_eq!(user_names(&iam).await, want, "only the orphan went");
    assert!(store.stale_mints(i64::MAX).await.unwrap().is_empty());
}

/// moto's IAM answers GetAccountSummary with `UsersQuota` 5000 and the users it holds; a
/// headroom of 4998 makes that a quota of two decoys. The third create stops with 507 and a
/// message naming the account and the quota, and no user is made.
#[tokio::test]
async fn creation_stops_with_507_short_of_the_iam_user_quota() {
    let moto = Moto::start();
    let url = moto.url();
    let app = spawn_app_with(move |c| {
        c.minter.kind = canarykeys_server::config::MinterKind::Iam;
        c.minter.accounts = vec![DecoyAccountConfig {
            account_id: Some("123456789012".into()),
            endpoint_url: Some(url),
            access_key_id: Some("testing".into()),
            secret_access_key: Some(Secret::new("testing")),
            user_headroom: 4998,
            ..DecoyAccountConfig::default()
        }];
    })
    .await;
    let body = json!({"memo": "ci", "email": "soc@example.com"});
    for _ in 0..2 {
        assert_eq!(app.post_token(&body).await.status(), 201);
    }
    let resp = app.post_token(&body).await;
    assert_eq!(resp.status(), 507);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "iam_user_quota");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("123456789012") && message.contains("5000"),
        "{message}"
    );
    let users = iam_client(&moto).await.list_users().send().await.unwrap();
    assert_eq!(users.users().len(), 2, "nothing more was created");
}
