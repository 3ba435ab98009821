//! Two replicas sharing one PostgreSQL database and one sealing key behave as one server: a token
//! made through one is managed through the other. Needs the local PostgreSQL
//! (`CANARYKEYS_TEST_POSTGRES_URL`, default the machine's trust-auth server).

mod common;

use common::{id_and_secret, spawn_app_with};
use serde_json::Value;

async fn fresh_database() -> (sqlx::AnyPool, String, String) {
    sqlx::any::install_default_drivers();
    let admin_url = std::env::var("CANARYKEYS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is needed for this test at {admin_url} ({e}); set CANARYKEYS_TEST_POSTGRES_URL")
    });
    let db = format!("ck_replicas_{}", rand::random::<u64>());
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&admin)
        .await
        .unwrap();
    let url = format!("{}/{db}", admin_url.rsplit_once('/').unwrap().0);
    (admin, db, url)
}

#[tokio::test]
async fn two_replicas_share_one_postgres_database() {
    let (admin, db, url) = fresh_database().await;
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
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
}
