//! A PostgreSQL database per test: a uniquely named database on the server that
//! `CANARYKEYS_TEST_POSTGRES_URL` points at (default: the local trust-auth server), dropped when
//! the test is done. A missing PostgreSQL fails the test instead of skipping it: both backends
//! are supported, so both are tested. `scripts/test.sh` starts a throwaway server when none runs.

use std::sync::Once;

/// The one variable every test reads for PostgreSQL: an admin URL ending in a database name.
pub const URL_VAR: &str = "CANARYKEYS_TEST_POSTGRES_URL";
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database; call [`TestDatabase::drop_database`] at the end of the test. If the test
/// panics first, dropping the value removes the database anyway.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
    dropped: bool,
}

impl TestDatabase {
    /// Creates `<prefix>_<random>` on the test server.
    pub async fn create(prefix: &str) -> Self {
        let admin_url = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.into());
        let admin = connect(&admin_url).await;
        let name = format!("{prefix}_{}", rand::random::<u64>());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        admin.close().await;
        let (base, _) = admin_url
            .rsplit_once('/')
            .unwrap_or_else(|| panic!("{URL_VAR} must end in a database name: {admin_url}"));
        let url = format!("{base}/{name}");
        Self {
            admin_url,
            name,
            url,
            dropped: false,
        }
    }

    /// The URL of the new database, for `SqlStore::connect` or `[database] url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database, closing whatever connections are still open to it.
    pub async fn drop_database(mut self) {
        self.dropped = true;
        drop_named(&self.admin_url, &self.name).await;
    }
}

impl Drop for TestDatabase {
    /// A test that panicked never reached `drop_database`: drop it from a thread of our own,
    /// since the test's runtime may be gone or busy.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(drop_named(&admin_url, &name));
            }
        })
        .join();
    }
}

async fn drop_named(admin_url: &str, name: &str) {
    let admin = connect(admin_url).await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await;
    admin.close().await;
}

async fn connect(url: &str) -> sqlx::AnyPool {
    static DRIVERS: Once = Once::new();
    DRIVERS.call_once(sqlx::any::install_default_drivers);
    sqlx::AnyPool::connect(url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is needed for this test at {url} ({e}); run `bash scripts/test.sh` \
             (it starts one) or set {URL_VAR}"
        )
    })
}
