//! `reseal_all` (what `canarykeys rekey` runs): every sealed column is named, every value is
//! re-sealed and the key check moved in one transaction, and a failure changes nothing. On
//! SQLite and PostgreSQL.

#[allow(dead_code)]
mod support;

use canarykeys_store::{SettingsStore, SqlStore, TokenStore, SEALED_COLUMNS};
use sqlx::Row;
use support::token;

/// Every (table, column) of the migrated schema whose column ends in `_sealed`.
async fn sealed_tables(store_url: &str) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(store_url).await.unwrap();
    let sql = if store_url.starts_with("sqlite") {
        "SELECT m.name || '.' || p.name FROM sqlite_master m, pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND p.name LIKE '%\\_sealed' ESCAPE '\\' ORDER BY 1"
    } else {
        "SELECT CAST(table_name || '.' || column_name AS TEXT) AS name \
         FROM information_schema.columns WHERE column_name LIKE '%\\_sealed' ESCAPE '\\' \
         AND table_schema = current_schema() ORDER BY 1"
    };
    let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows.iter().map(|r| r.get::<String, _>(0)).collect()
}

async fn check(store: &SqlStore, url: &str) {
    let mut named: Vec<String> = SEALED_COLUMNS
        .iter()
        .map(|c| format!("{}.{}", c.table, c.column))
        .collect();
    named.sort();
    let mut tables = sealed_tables(url).await;
    // A tombstone keeps no secret (its column is emptied at the delete): nothing to re-seal.
    tables.retain(|t| !t.starts_with("deleted_tokens."));
    assert_eq!(named, tables, "every sealed column is re-sealed by rekey");

    let a = token(1);
    let b = token(2);
    store.insert_token(&a).await.unwrap();
    store.insert_token(&b).await.unwrap();
    store
        .put_setting("sealing_key_check", "v1:old")
        .await
        .unwrap();

    // A failure half-way changes nothing.
    let failing = store
        .reseal_all(
            &|v| {
                if v.aad == b.id.as_str() {
                    Err("does not open".into())
                } else {
                    Ok(format!("new:{}", v.sealed))
                }
            },
            "sealing_key_check",
            "v1:new",
        )
        .await;
    assert!(failing.is_err());
    let still = store.get_token(&a.id).await.unwrap().unwrap();
    assert_eq!(still.secret_sealed, a.secret_sealed);
    assert_eq!(
        store
            .get_setting("sealing_key_check")
            .await
            .unwrap()
            .as_deref(),
        Some("v1:old")
    );

    let n = store
        .reseal_all(
            &|v| Ok(format!("new:{}", v.sealed)),
            "sealing_key_check",
            "v1:new",
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    for t in [&a, &b] {
        let now = store.get_token(&t.id).await.unwrap().unwrap();
        assert_eq!(now.secret_sealed, format!("new:{}", t.secret_sealed));
    }
    assert_eq!(
        store
            .get_setting("sealing_key_check")
            .await
            .unwrap()
            .as_deref(),
        Some("v1:new")
    );
}

#[tokio::test]
async fn rekey_reseals_every_sealed_column_at_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("db").display());
    let store = SqlStore::connect(&url).await.unwrap();
    check(&store, &url).await;
    assert!(store.schema_version().await.unwrap() >= 16);
    assert_eq!(
        store.schema_version().await.unwrap(),
        SqlStore::newest_schema(canarykeys_store::Backend::Sqlite)
    );
}

#[tokio::test]
async fn rekey_reseals_every_sealed_column_at_once_on_postgres() {
    let db = canarykeys_testkit::TestDatabase::create("ck_rekey").await;
    let store = SqlStore::connect(db.url()).await.unwrap();
    check(&store, db.url()).await;
    store.close().await;
    db.drop_database().await;
}
