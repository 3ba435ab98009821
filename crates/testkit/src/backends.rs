//! One store test, run on both backends: `on_both_backends!(name, ...)` makes `sqlite::name`
//! (a temp SQLite file) and `postgres::name` (a fresh database from [`crate::TestDatabase`]) for
//! every `async fn name(store: &SqlStore)` in scope. Each test starts from an empty store.

/// See the module docs. The calling crate depends on `canarykeys-store` and `tokio`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = $crate::tempfile::tempdir().unwrap();
                    let url = format!("sqlite:{}", dir.path().join("t.db").display());
                    let store = canarykeys_store::SqlStore::connect(&url).await.unwrap();
                    super::$name(&store).await;
                    store.close().await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = $crate::TestDatabase::create(concat!("ck_", stringify!($name))).await;
                    let store = canarykeys_store::SqlStore::connect(db.url()).await.unwrap();
                    super::$name(&store).await;
                    store.close().await;
                    db.drop_database().await;
                }
            )+
        }
    };
}
