//! `canarykeys rekey` while the server runs, ingests and makes tokens: no acknowledged hit is
//! lost, every credential (made before, during and after) still downloads from the running
//! server and after a restart, and `rekey --drop-previous` leaves one key that opens them all.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use canarykeys_testkit::cli::{self, said};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use canarykeys_server::config::Secret;
use canarykeys_testkit::{id_and_secret, spawn_app_in, start_config, test_config, TestApp};
use serde_json::{json, Value};

const SECRET: &str = "rekey-test-ingest-secret-0123456";

fn canarykeys(data_dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--data-dir", data_dir.to_str().unwrap()];
    all.extend_from_slice(args);
    cli::run::<&str, &str>(data_dir, &all, &[])
}

fn keys_on_file(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("secret.key"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

async fn hit_count(app: &TestApp, created: &Value) -> u64 {
    let (id, secret) = id_and_secret(created);
    let v: Value = app
        .get_authed(&format!("/api/v1/tokens/{id}/hits?limit=1"), &secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["total"].as_u64().unwrap()
}

#[tokio::test]
async fn rekey_under_load_loses_nothing_and_every_credential_still_downloads() {
    // The data directory outlives the first server: the test restarts on it.
    let work = tempfile::tempdir().unwrap();
    let mut config = test_config(work.path());
    config.ingest.secret = Some(Secret::new(SECRET));
    config.alerts.stored_hits_per_window = 1_000_000;
    let app = start_config(config).await;
    // A session decoy too: its session's secret and token are sealed values of their own.
    let session = app
        .post_token(
            &json!({"kind": "aws_session", "memo": "ci runner", "email": "soc@example.com"}),
        )
        .await;
    assert_eq!(session.status(), 201);
    let session: Value = session.json().await.unwrap();
    let mut tokens = vec![app.create_token().await, app.create_token().await, session];
    let mut expected = Vec::new();
    for t in &tokens {
        expected.push(app.credentials(t).await);
    }

    // Load: uses of the first token, and new tokens, the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let ingester = {
        let (stop, http, url, created) = (
            stop.clone(),
            app.http.clone(),
            app.url("/ingest/v1/cloudtrail"),
            tokens[0].clone(),
        );
        tokio::spawn(async move {
            let mut acked = BTreeSet::new();
            while !stop.load(Ordering::SeqCst) || acked.len() < 10 {
                let id = format!("rekey-load-{}", acked.len());
                let aws = &created["aws"];
                let record = json!({
                    "eventVersion": "1.09",
                    "userIdentity": {"type": "IAMUser", "accountId": aws["account_id"],
                        "accessKeyId": aws["access_key_id"], "userName": aws["username"]},
                    "eventTime": "2026-12-05T10:00:00Z", "eventSource": "sts.amazonaws.com",
                    "eventName": "GetCallerIdentity", "awsRegion": "us-east-1",
                    "sourceIPAddress": "203.0.113.7", "eventID": id
                });
                let resp = http
                    .post(&url)
                    .bearer_auth(SECRET)
                    .json(&record)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                acked.insert(id);
                tokio::task::yield_now().await;
            }
            acked
        })
    };
    let creator = {
        let stop = stop.clone();
        let app_url = app.url("/api/v1/tokens");
        let http = app.http.clone();
        tokio::spawn(async move {
            let mut made = Vec::new();
            while !stop.load(Ordering::SeqCst) || made.len() < 3 {
                let resp = http
                    .post(&app_url)
                    .json(&json!({"kind": "aws_keys", "memo": format!("build agent {}", made.len()), "email": "soc@example.com"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 201);
                made.push(resp.json::<Value>().await.unwrap());
            }
            made
        })
    };

    let dir = app.data_dir.clone();
    let out = tokio::task::spawn_blocking(move || canarykeys(&dir, &["rekey"]))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("re-sealed"), "{}", said(&out));
    assert_eq!(
        keys_on_file(&app.data_dir),
        2,
        "new key first, the old one kept"
    );
    stop.store(true, Ordering::SeqCst);
    let acked = ingester.await.unwrap();
    let made = creator.await.unwrap();

    // The running server opens what the rekey re-sealed, and what it sealed itself meanwhile.
    for (t, before) in tokens.iter().zip(&expected) {
        assert_eq!(&app.credentials(t).await, before);
    }
    for t in &made {
        expected.push(app.credentials(t).await);
    }
    tokens.extend(made);
    // A token made after the rekey is sealed with the new key.
    let after = app.create_token().await;
    expected.push(app.credentials(&after).await);
    tokens.push(after);
    assert_eq!(
        hit_count(&app, &tokens[0]).await,
        acked.len() as u64,
        "no use lost"
    );
    app.stop().await;

    // Drop the old key: everything is under the new one, and a restart opens it all.
    let dir = work.path().to_path_buf();
    let out = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || canarykeys(&dir, &["rekey", "--drop-previous"])
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", said(&out));
    assert_eq!(keys_on_file(&dir), 1);
    let back = spawn_app_in(&dir).await;
    for (t, before) in tokens.iter().zip(&expected) {
        assert_eq!(&back.credentials(t).await, before);
    }
    back.stop().await;
}
