//! `canarykeys backup` under ingest, then `restore` into a new directory: the restored server
//! has every hit acknowledged before the backup began, every token's credentials download, and
//! the same key check. A backup without the key restores a database that refuses to start and
//! names the missing key file. The real binary runs, as an operator would run it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use canarykeys_testkit::cli::{self, said};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use canarykeys_server::config::Secret;
use canarykeys_testkit::{id_and_secret, spawn_app_in, spawn_app_with, test_config, TestApp};
use serde_json::{json, Value};

const SECRET: &str = "backup-test-ingest-secret-0123";
const PASS: &str = "a passphrase for the test backup";

fn canarykeys(data_dir: &Path, args: &[&str], pass: &str) -> Output {
    let mut all = vec!["--data-dir", data_dir.to_str().unwrap()];
    all.extend_from_slice(args);
    cli::run(
        data_dir.parent().unwrap(),
        &all,
        &[("CANARYKEYS_BACKUP_PASSPHRASE", pass)],
    )
}

fn record(created: &Value, event_id: &str) -> Value {
    let aws = &created["aws"];
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accountId": aws["account_id"],
            "accessKeyId": aws["access_key_id"], "userName": aws["username"]},
        "eventTime": "2026-12-05T10:00:00Z", "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity", "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7", "eventID": event_id
    })
}

async fn event_ids(app: &TestApp, created: &Value) -> BTreeSet<String> {
    let (id, secret) = id_and_secret(created);
    let mut out = BTreeSet::new();
    for offset in (0..).step_by(500) {
        let page: Value = app
            .get_authed(
                &format!("/api/v1/tokens/{id}/hits?limit=500&offset={offset}"),
                &secret,
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let hits = page["hits"].as_array().unwrap();
        out.extend(
            hits.iter()
                .map(|h| h["event_id"].as_str().unwrap().to_owned()),
        );
        if hits.len() < 500 {
            return out;
        }
    }
    unreachable!()
}

#[tokio::test]
async fn a_backup_under_ingest_restores_every_acknowledged_hit_and_credential() {
    let app = spawn_app_with(|c| {
        c.ingest.secret = Some(Secret::new(SECRET));
        c.alerts.stored_hits_per_window = 1_000_000;
    })
    .await;
    let tokens = [app.create_token().await, app.create_token().await];

    // Ingest the whole time; each acknowledged event id is noted with whether the backup had
    // started when the acknowledgement came back.
    let started = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let acked_before = Arc::new(Mutex::new(BTreeSet::new()));
    let ingester = {
        let (started, stop, acked) = (started.clone(), stop.clone(), acked_before.clone());
        let (http, url, created) = (
            app.http.clone(),
            app.url("/ingest/v1/cloudtrail"),
            tokens[0].clone(),
        );
        tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let id = format!("under-load-{sent}");
                let before = !started.load(Ordering::SeqCst);
                let resp = http
                    .post(&url)
                    .bearer_auth(SECRET)
                    .json(&record(&created, &id))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                if before {
                    acked.lock().unwrap().insert(id);
                }
                sent += 1;
                tokio::task::yield_now().await;
            }
            sent
        })
    };
    // Some hits stored before the backup begins.
    canarykeys_testkit::wait_for("hits before the backup", canarykeys_testkit::WAIT, || {
        let n = acked_before.lock().unwrap().len();
        async move { (n >= 20).then_some(()) }
    })
    .await;

    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("canarykeys.backup");
    started.store(true, Ordering::SeqCst);
    let (dir, f) = (app.data_dir.clone(), file.clone());
    let out = tokio::task::spawn_blocking(move || {
        canarykeys(&dir, &["backup", "--to", f.to_str().unwrap()], PASS)
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", said(&out));
    stop.store(true, Ordering::SeqCst);
    let sent = ingester.await.unwrap();
    let acked_before = acked_before.lock().unwrap().clone();
    assert!(
        sent as usize > acked_before.len(),
        "ingest went on during the backup"
    );
    let raw = std::fs::read(&file).unwrap();
    assert!(raw.starts_with(b"age-encryption.org/v1"), "an age envelope");
    let key_before = std::fs::read_to_string(app.data_dir.join("secret.key")).unwrap();
    assert!(
        !raw.windows(key_before.len())
            .any(|w| w == key_before.as_bytes()),
        "the key is not in the clear"
    );
    let creds_before = [
        app.credentials(&tokens[0]).await,
        app.credentials(&tokens[1]).await,
    ];
    app.stop().await;

    // Restore into a new directory; a second restore into it is refused.
    let restored = work.path().join("restored");
    let (r, f) = (restored.clone(), file.clone());
    let out = tokio::task::spawn_blocking(move || {
        let first = canarykeys(&r, &["restore", "--from", f.to_str().unwrap()], PASS);
        let again = canarykeys(&r, &["restore", "--from", f.to_str().unwrap()], PASS);
        (first, again)
    })
    .await
    .unwrap();
    assert!(out.0.status.success(), "{}", said(&out.0));
    assert!(!out.1.status.success());
    assert!(said(&out.1).contains("not empty"), "{}", said(&out.1));
    assert_eq!(
        std::fs::read_to_string(restored.join("secret.key")).unwrap(),
        key_before,
        "the same key"
    );

    let back = spawn_app_in(&restored).await;
    let stored = event_ids(&back, &tokens[0]).await;
    let missing: Vec<_> = acked_before.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "acknowledged before the backup, not restored: {missing:?}"
    );
    for (created, before) in tokens.iter().zip(&creds_before) {
        assert_eq!(&back.credentials(created).await, before);
    }
    // The server recorded when the backup ran (doctor reads it).
    back.stop().await;

    // A wrong passphrase opens nothing and writes nothing.
    let (w, f) = (work.path().join("wrong"), file.clone());
    let out = tokio::task::spawn_blocking(move || {
        canarykeys(
            &w,
            &["restore", "--from", f.to_str().unwrap()],
            "not the right passphrase",
        )
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(said(&out).contains("wrong passphrase"), "{}", said(&out));
    assert!(!work.path().join("wrong").exists());
}

#[tokio::test]
async fn a_backup_without_the_key_restores_a_database_that_names_the_missing_key() {
    let app = spawn_app_with(|_| {}).await;
    app.create_token().await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("nokey.backup");
    let restored = work.path().join("restored");
    let (dir, f, r) = (app.data_dir.clone(), file.clone(), restored.clone());
    let (made, back) = tokio::task::spawn_blocking(move || {
        let made = canarykeys(
            &dir,
            &["backup", "--without-key", "--to", f.to_str().unwrap()],
            PASS,
        );
        let back = canarykeys(&r, &["restore", "--from", f.to_str().unwrap()], PASS);
        (made, back)
    })
    .await
    .unwrap();
    assert!(made.status.success(), "{}", said(&made));
    assert!(said(&made).contains("NOT included"), "{}", said(&made));
    assert!(
        said(&made).contains("NOTICE"),
        "a loud notice: {}",
        said(&made)
    );
    assert!(back.status.success(), "{}", said(&back));
    assert!(!restored.join("secret.key").exists());
    app.stop().await;

    let err = canarykeys_server::Application::build(test_config(&restored))
        .await
        .err()
        .expect("no key: the server refuses to start");
    let text = format!("{err:#}");
    assert!(
        text.contains("secret.key") && text.contains("does not exist"),
        "{text}"
    );

    // A short passphrase is refused before anything is written.
    let (dir, f) = (app_dir_for_short(&work), work.path().join("short.backup"));
    let out = tokio::task::spawn_blocking(move || {
        canarykeys(&dir, &["backup", "--to", f.to_str().unwrap()], "short")
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(said(&out).contains("at least 12"), "{}", said(&out));
    assert!(!work.path().join("short.backup").exists());
}

fn app_dir_for_short(work: &tempfile::TempDir) -> std::path::PathBuf {
    let dir = work.path().join("short");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn on_postgresql_backup_points_to_pg_dump_and_backs_up_the_key_alone() {
    let db = canarykeys_testkit::TestDatabase::create("ck_backup").await;
    let url = db.url().to_owned();
    let app = spawn_app_with(|c| c.database_url = Some(url.clone())).await;
    app.create_token().await;
    let work = tempfile::tempdir().unwrap();
    let (dir, u, full, key) = (
        app.data_dir.clone(),
        url.clone(),
        work.path().join("full.backup"),
        work.path().join("key.backup"),
    );
    let (refused, key_only, restored) = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str], dir: &Path| {
            Command::new(env!("CARGO_BIN_EXE_canarykeys"))
                .arg("--data-dir")
                .arg(dir)
                .args(args)
                .env_remove("CANARYKEYS_CONFIG")
                .env("CANARYKEYS_DATABASE_URL", &u)
                .env("CANARYKEYS_BACKUP_PASSPHRASE", PASS)
                .output()
                .unwrap()
        };
        let refused = run(&["backup", "--to", full.to_str().unwrap()], &dir);
        let key_only = run(
            &["backup", "--key-only", "--to", key.to_str().unwrap()],
            &dir,
        );
        let into = full.parent().unwrap().join("key-restored");
        let restored = run(&["restore", "--from", key.to_str().unwrap()], &into);
        (refused, key_only, restored)
    })
    .await
    .unwrap();
    assert!(!refused.status.success());
    assert!(said(&refused).contains("pg_dump"), "{}", said(&refused));
    assert!(!work.path().join("full.backup").exists());
    assert!(key_only.status.success(), "{}", said(&key_only));
    assert!(restored.status.success(), "{}", said(&restored));
    assert_eq!(
        std::fs::read_to_string(work.path().join("key-restored/secret.key")).unwrap(),
        std::fs::read_to_string(app.data_dir.join("secret.key")).unwrap()
    );
    assert!(!work.path().join("key-restored/canarykeys.db").exists());
    app.stop().await;
    db.drop_database().await;
}
