//! The operator channel's producers, black-box: safety-net round errors alert once and recover
//! (SQLite and PostgreSQL), and (SQLite, with root for a tmpfs) the disk going under
//! `[storage] min_free` alerts once and recovers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canarykeys_aws::{AttachedPolicy, AwsError, KeyUsage, LastUsed};
use canarykeys_server::config::Config;
use canarykeys_server::jobs::safety_net::SafetyNet;
use canarykeys_server::services::IngestService;
use canarykeys_store::{SqlStore, Store};
use canarykeys_testkit::receiver::Receiver;
use canarykeys_testkit::{spawn_app_with, TestApp, TestDatabase};

const WAIT: Duration = Duration::from_secs(30);
/// Markup for every channel and a line break, as an error quoting AWS could hold it.
const HOSTILE: &str = "<script>alert(1)</script> <!channel> @everyone *b*\nForged: line";

#[derive(Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

/// An app on `db` whose operator webhook is `rx`; the configuration is returned.
async fn start(db: Db, rx: &Receiver) -> (TestApp, Config, Option<TestDatabase>) {
    let pg = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(TestDatabase::create("ck_operator_producers").await),
    };
    let mut kept = None;
    let url = pg.as_ref().map(|d| d.url().to_owned());
    let app = spawn_app_with(|c| {
        c.database_url = url;
        c.operator_alerts.webhook_url = Some(rx.url());
        kept = Some(c.clone());
    })
    .await;
    (app, kept.unwrap(), pg)
}

/// IAM as the safety net sees it: refusing every call while `fail` is set.
struct Flaky {
    fail: AtomicBool,
}

#[async_trait::async_trait]
impl KeyUsage for Flaky {
    async fn last_used(
        &self,
        _key: &canarykeys_core::AccessKeyId,
    ) -> Result<Option<LastUsed>, AwsError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(AwsError::refused("IAM GetAccessKeyLastUsed", HOSTILE));
        }
        Ok(None)
    }

    async fn attached_policies(
        &self,
        _user: &canarykeys_core::IamUserName,
    ) -> Result<Vec<AttachedPolicy>, AwsError> {
        Ok(Vec::new())
    }
}

async fn safety_net_errors_alert_and_recover(db: Db) {
    let rx = Receiver::start().await;
    let (app, config, pg) = start(db, &rx).await;
    let created = app.create_token().await;
    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&config.database_url()).await.unwrap());
    let usage = Arc::new(Flaky {
        fail: AtomicBool::new(true),
    });
    let net = SafetyNet {
        usage: usage.clone(),
        accounts: Default::default(),
        store: store.clone(),
        ingest: IngestService::new(store.clone(), Default::default(), Default::default()),
        exposures: canarykeys_testkit::pollers::exposures(&store, &app),
        clock: app.clock.shared(),
        operator_alerts: app.jobs.operator_alerts().clone(),
    };
    for _ in 0..3 {
        assert_eq!(net.round().await.unwrap().errors, 1);
    }
    app.deliver_until("the safety-net alert", WAIT, || {
        (rx.count() >= 1).then_some(())
    })
    .await;
    usage.fail.store(false, Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(net.round().await.unwrap().errors, 0);
    }
    app.deliver_until("the recovery", WAIT, || (rx.count() >= 2).then_some(()))
        .await;
    app.deliver_once().await;
    let bodies = rx.of_type("safety_net");
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    let account = created["aws"]["account_id"].clone();
    assert_eq!(bodies[0]["status"], "problem");
    assert_eq!(bodies[0]["safety_net"]["account_id"], account);
    assert!(bodies[0]["safety_net"]["error"]
        .as_str()
        .unwrap()
        .contains("<script>"));
    assert_eq!(bodies[1]["status"], "recovered");
    assert_eq!(rx.count(), 2);
    app.stop().await;
    if let Some(pg) = pg {
        pg.drop_database().await;
    }
}

#[tokio::test]
async fn sqlite_safety_net_errors_alert_and_recover() {
    safety_net_errors_alert_and_recover(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_safety_net_errors_alert_and_recover() {
    safety_net_errors_alert_and_recover(Db::Postgres).await;
}

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The app's data directory on a 64 MiB tmpfs (needs root; without it the test says SKIPPED
/// and passes, as `disk_full` does).
fn tmpfs(dir: &std::path::Path) -> Option<Mount> {
    let out = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("SKIPPED disk operator alert: cannot mount a tmpfs (needs root)");
        return None;
    }
    Some(Mount(dir.to_path_buf()))
}

#[tokio::test]
async fn sqlite_disk_under_the_watermark_alerts_and_recovers() {
    const MIB: u64 = 1 << 20;
    let root = tempfile::tempdir().unwrap();
    let Some(_mount) = tmpfs(root.path()) else {
        return;
    };
    let rx = Receiver::start().await;
    let mut config = canarykeys_testkit::test_config(&root.path().join("data"));
    config.storage.min_free = 16 * MIB;
    config.operator_alerts.webhook_url = Some(rx.url());
    let app = canarykeys_testkit::start_config(config).await;
    assert!(!app.jobs.disk_once().await.unwrap().low);

    // Fill the disk to 6 MiB free: under the watermark.
    let filler = root.path().join("filler");
    let free = |p: &std::path::Path| {
        let s = nix::sys::statvfs::statvfs(p).unwrap();
        #[allow(clippy::unnecessary_cast)]
        let free = s.blocks_available() as u64 * s.fragment_size() as u64;
        free
    };
    let fill = free(root.path()).saturating_sub(6 * MIB);
    std::fs::write(&filler, vec![0u8; usize::try_from(fill).unwrap()]).unwrap();
    for _ in 0..3 {
        assert!(app.jobs.disk_once().await.unwrap().low);
    }
    app.deliver_until("the disk alert", WAIT, || (rx.count() >= 1).then_some(()))
        .await;
    let low = &rx.bodies()[0];
    assert_eq!(low["type"], "disk");
    assert_eq!(low["status"], "problem");
    assert_eq!(low["disk"]["min_free_bytes"], 16 * MIB);

    std::fs::remove_file(&filler).unwrap();
    for _ in 0..3 {
        assert!(!app.jobs.disk_once().await.unwrap().low);
    }
    app.deliver_until("the recovery", WAIT, || (rx.count() >= 2).then_some(()))
        .await;
    app.deliver_once().await;
    assert_eq!(rx.count(), 2);
    assert_eq!(rx.bodies()[1]["status"], "recovered");
    app.stop().await;
}
