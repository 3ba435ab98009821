//! Two replicas sharing one PostgreSQL database and one sealing key behave as one server: a token
//! made through one is managed through the other. Needs the local PostgreSQL
//! (`CANARYKEYS_TEST_POSTGRES_URL`, default the machine's trust-auth server).

use canarykeys_testkit::{id_and_secret, spawn_app_with, TestDatabase};
use serde_json::Value;

#[tokio::test]
async fn two_replicas_share_one_postgres_database() {
    let db = TestDatabase::create("ck_replicas").await;
    let url = db.url().to_owned();
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let configure = |c: &mut canarykeys_server::Config| {
        c.database_url = Some(url.clone());
        c.encryption_key = Some(canarykeys_server::config::Secret::new(key));
    };
    let a = spawn_app_with(configure).await;
    let b = spawn_app_with(configure).await;

    let created = a.create_token().await;
    let (id, secret) = id_and_secret(&created);
    let resp = b
        .get_authed(&format!("/api/v1/tokens/{id}"), &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: Value = resp.json().await.unwrap();
    assert_eq!(seen["aws"], created["aws"]);
    // Both replicas mint in the one account chosen at first start.
    assert_eq!(
        b.create_token().await["aws"]["account_id"],
        created["aws"]["account_id"]
    );

    let resp = b
        .http
        .delete(b.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = a
        .get_authed(&format!("/api/v1/tokens/{id}"), &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    a.stop().await;
    b.stop().await;
    db.drop_database().await;
}
