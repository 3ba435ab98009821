//! A real full disk: the app's data directory on a 64 MiB tmpfs, filled by a file. Under the
//! `[storage] min_free` watermark hits are still stored (without their raw record) and the
//! condition shows in `/healthz/detail` and `/metrics`; when the disk is truly full, ingest is
//! answered 507 with `Retry-After` (never a 500 or a crash), and it records again once space is
//! freed. Needs root (mount); without it the test says SKIPPED and passes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use canarykeys_server::config::Secret;
use canarykeys_server::services::Scope;
use canarykeys_testkit::access::{services, PASSWORD};
use canarykeys_testkit::{id_and_secret, start_config, test_config, TestApp};
use serde_json::{json, Value};

const SECRET: &str = "test-ingest-secret-0123456789";
const MIB: u64 = 1 << 20;
const MIN_FREE: u64 = 16 * MIB;

/// Unmounts the tmpfs when the test ends, however it ends (lazily: a file still open in it
/// must not leave the mount behind).
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path) -> Option<Self> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "SKIPPED disk_full: cannot mount a tmpfs at {} (needs root): {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Self(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_bytes(dir: &Path) -> u64 {
    let s = nix::sys::statvfs::statvfs(dir).unwrap();
    #[allow(clippy::unnecessary_cast)]
    let free = s.blocks_available() as u64 * s.fragment_size() as u64;
    free
}

/// Writes zeros into `path` until `left` bytes are free (or the disk is full when `left` is 0).
fn fill(path: &Path, dir: &Path, left: u64) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        let free = free_bytes(dir);
        if free <= left {
            break;
        }
        let n = usize::try_from((free - left).min(chunk.len() as u64)).unwrap();
        if f.write_all(&chunk[..n]).is_err() {
            break; // ENOSPC: as full as it gets
        }
    }
    let _ = f.sync_all();
}

/// `n` CloudTrail records of `created`'s key, event ids `{prefix}-0..n`.
fn records(created: &Value, prefix: &str, n: usize) -> Vec<u8> {
    let aws = &created["aws"];
    let records: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "eventVersion": "1.09",
                "userIdentity": {
                    "type": "IAMUser", "accountId": aws["account_id"],
                    "accessKeyId": aws["access_key_id"], "userName": aws["username"]
                },
                "eventTime": "2026-11-28T10:00:00Z",
                "eventSource": "sts.amazonaws.com",
                "eventName": "GetCallerIdentity",
                "awsRegion": "us-east-1",
                "sourceIPAddress": "203.0.113.7",
                "userAgent": format!("aws-cli/2.15.0 filler {}", "x".repeat(200)),
                "requestParameters": {"padding": "p".repeat(400)},
                "eventID": format!("{prefix}-{i}"),
                "eventType": "AwsApiCall",
                "recipientAccountId": aws["account_id"]
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "Records": records })).unwrap()
}

async fn ingest(app: &TestApp, body: Vec<u8>) -> reqwest::Response {
    app.http
        .post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(SECRET)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn detail(app: &TestApp, key: &str) -> Value {
    let resp = app
        .http
        .get(app.url("/healthz/detail"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn a_full_disk_keeps_detection_answering() {
    let root = tempfile::tempdir().unwrap();
    let Some(_mount) = Mount::tmpfs(root.path()) else {
        return;
    };
    let data = root.path().join("data");
    let mut config = test_config(&data);
    config.ingest.secret = Some(Secret::new(SECRET));
    config.storage.min_free = MIN_FREE;
    let app = start_config(config).await;
    let svc = services(&app).await;
    let op = svc.access.create_operator("ops", PASSWORD).await.unwrap();
    let (_, key) = svc
        .access
        .create_api_key(&op, "monitor", &[Scope::AlertsRead])
        .await
        .unwrap();
    svc.close().await;
    let created = app.create_token().await;
    let (id, secret) = id_and_secret(&created);

    // Room to spare: the whole record is kept, and the disk is reported fine.
    assert_eq!(
        ingest(&app, records(&created, "roomy", 1)).await.status(),
        200
    );
    let health = app
        .jobs
        .disk_once()
        .await
        .expect("the watch is on for SQLite");
    assert!(!health.low, "{health:?}");
    let d = detail(&app, &key).await;
    assert_eq!(d["disk"]["low"], false, "{d}");
    assert!(app.metrics().await.contains("canarykeys_disk_low 0"));

    // Below the watermark, with a few MiB still free.
    fill(&root.path().join("filler-1"), root.path(), 6 * MIB);
    let health = app.jobs.disk_once().await.unwrap();
    assert!(health.low && health.free_bytes < MIN_FREE, "{health:?}");
    let d = detail(&app, &key).await;
    assert_eq!(d["status"], "degraded", "{d}");
    assert_eq!(d["disk"]["low"], true, "{d}");
    assert_eq!(d["disk"]["min_free_bytes"], MIN_FREE, "{d}");
    let m = app.metrics().await;
    assert!(m.contains("canarykeys_disk_low 1"), "{m}");
    assert!(
        m.contains(&format!("canarykeys_disk_min_free_bytes {MIN_FREE}")),
        "{m}"
    );

    // Hits are still stored, and answered 200, without their raw record.
    for batch in 0..5 {
        let resp = ingest(&app, records(&created, &format!("low-{batch}"), 20)).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        let report: Value = resp.json().await.unwrap();
        assert_eq!(report["new_hits"], 20, "{report}");
    }
    let hits: Value = app
        .get_authed(&format!("/api/v1/tokens/{id}/hits?limit=500"), &secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hits["total"], 101, "{hits}");
    let by_event = |event: &str| {
        hits["hits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["event_id"] == event)
            .cloned()
            .unwrap()
    };
    let roomy = by_event("roomy-0");
    assert_eq!(roomy["cloudtrail"]["eventID"], "roomy-0");
    let lean = by_event("low-0-0");
    assert!(lean["cloudtrail"].is_null(), "{lean}");
    assert!(
        lean["note"]
            .as_str()
            .unwrap()
            .contains("raw record not kept"),
        "{lean}"
    );
    assert_eq!(lean["event_name"], "GetCallerIdentity");
    assert_eq!(lean["source_ip"], "203.0.113.7");

    // Truly full: every request is answered, 200 while a write still fits, then 507 with
    // Retry-After; never a 500, never a hang or a crash.
    fill(&root.path().join("filler-2"), root.path(), 0);
    let mut refused = 0;
    for batch in 0..200 {
        let resp = ingest(&app, records(&created, &format!("full-{batch}"), 200)).await;
        match resp.status().as_u16() {
            200 => {}
            507 => {
                assert!(resp.headers().contains_key("retry-after"));
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["error"]["code"], "storage_full", "{body}");
                refused += 1;
                if refused == 3 {
                    break;
                }
            }
            other => panic!("a full disk answered {other}: {:?}", resp.text().await),
        }
    }
    assert_eq!(refused, 3, "the disk never filled up");
    let d = detail(&app, &key).await;
    assert_eq!(d["disk"]["low"], true, "{d}");
    let plain = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(plain.text().await.unwrap(), "ok");

    // Space freed: the watermark lifts and whole records are stored again.
    std::fs::remove_file(root.path().join("filler-1")).unwrap();
    std::fs::remove_file(root.path().join("filler-2")).unwrap();
    let health = app.jobs.disk_once().await.unwrap();
    assert!(!health.low, "{health:?}");
    let resp = ingest(&app, records(&created, "after", 1)).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    assert!(app.metrics().await.contains("canarykeys_disk_low 0"));
    app.stop().await;
}
