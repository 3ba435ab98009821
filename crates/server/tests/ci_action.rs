//! The GitHub Action's script (`deploy/ci/plant-action.sh`, run by `action.yml`) with GitHub's
//! environment variables set and the binary built here: it plants a per-run session decoy in
//! the runner's `~/.aws/credentials` with the run in its memo, `until-confirm` holds the uses
//! made during the job (recorded, not alerted), and the confirm step sends them as one digest,
//! after which a use alerts at once (on the test clock).

use std::path::Path;
use std::time::Duration;

use canarykeys_server::config::Secret;
use canarykeys_server::services::Scope;
use canarykeys_testkit::access::*;
use canarykeys_testkit::receiver::Receiver;
use canarykeys_testkit::{spawn_app_with, wait_for, TestApp};
use serde_json::{json, Value};
use tokio::process::Command;

const INGEST: &str = "ci-action-ingest-secret-0123456789";

fn script() -> String {
    format!(
        "{}/../../deploy/ci/plant-action.sh",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The action's step as a runner runs it: inputs as INPUT_*, the run as GITHUB_*.
async fn step(app: &TestApp, key: &str, runner: &Path, inputs: &[(&str, &str)]) -> String {
    let mut cmd = Command::new("bash");
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("CANARYKEYS_") || k.starts_with("GITHUB_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg(script())
        .env("HOME", runner.join("home"))
        .env("RUNNER_TEMP", runner.join("temp"))
        .env("RUNNER_TOOL_CACHE", runner.join("cache"))
        .env("GITHUB_REPOSITORY", "acme/api")
        .env("GITHUB_WORKFLOW", "release")
        .env("GITHUB_JOB", "build")
        .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567")
        .env("GITHUB_RUN_ID", "987654321")
        .env("GITHUB_OUTPUT", runner.join("output"))
        .env("GITHUB_ENV", runner.join("env"))
        .env("INPUT_SERVER", &app.address)
        .env("INPUT_API_KEY", key)
        .env("INPUT_BINARY", env!("CARGO_BIN_EXE_canarykeys"))
        .env("INPUT_VERSION", "0.1.0");
    for (k, v) in inputs {
        cmd.env(k, v);
    }
    let out = cmd.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the step failed: {stderr}");
    assert!(!stderr.contains(key), "the API key was printed");
    stderr
}

async fn use_key(app: &TestApp, key: &str, event_id: &str) {
    let rec = json!({
        "eventVersion": "1.09", "userIdentity": {"type": "IAMUser", "accessKeyId": key},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "s3.amazonaws.com",
        "eventName": "ListBuckets", "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2", "eventID": event_id, "eventType": "AwsApiCall"
    });
    let resp = app
        .http
        .post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(INGEST)
        .header("content-type", "application/json")
        .body(json!({ "Records": [rec] }).to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
}

async fn delivered(app: &TestApp, rx: &Receiver, n: usize) {
    wait_for("deliveries", Duration::from_secs(20), || async {
        app.deliver_once().await;
        (rx.count() >= n).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_action_plants_a_held_run_decoy_and_confirms_it() {
    let rx = Receiver::start().await;
    let app = spawn_app_with(|c| {
        c.access.create = "operators".into();
        c.ingest.secret = Some(Secret::new(INGEST));
        c.alerts.allow_private_webhooks = true;
        c.alerts.cooldown = Duration::from_secs(0);
    })
    .await;
    let svc = services(&app).await;
    let op = svc.access.create_operator("ci", PASSWORD).await.unwrap();
    let (_, key) = svc
        .access
        .create_api_key(&op, "runners", &[Scope::TokensWrite])
        .await
        .unwrap();
    let runner = tempfile::tempdir().unwrap();
    let r = runner.path();
    std::fs::create_dir_all(r.join("home")).unwrap();
    let hook = rx.url();
    step(
        &app,
        &key,
        r,
        &[
            ("INPUT_EXPECTED_USE", "until-confirm"),
            ("INPUT_WEBHOOK_URL", &hook),
            ("INPUT_EXPIRES_IN", "2h"),
        ],
    )
    .await;

    // The decoy: a session profile in the runner's credentials file, the run in its memo.
    let creds = std::fs::read_to_string(r.join("home/.aws/credentials")).unwrap();
    assert!(creds.contains("aws_session_token = "), "{creds}");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(r.join("temp/sessions/state.json")).unwrap())
            .unwrap();
    let plant = &state["plants"][0];
    let asia = plant["aws"]["access_key_id"].as_str().unwrap().to_owned();
    assert!(asia.starts_with("ASIA") && creds.contains(&asia));
    let token = svc
        .tokens
        .get(plant["token_id"].as_str().unwrap())
        .await
        .unwrap();
    let memo = token.memo.as_str();
    for part in [
        "acme/api",
        "release",
        "build",
        "0123456789abcdef",
        "987654321",
    ] {
        assert!(memo.contains(part), "{memo}");
    }
    let output = std::fs::read_to_string(r.join("output")).unwrap();
    assert_eq!(output.trim(), format!("token-id={}", token.id));

    // A tool reading every profile during the job: recorded, not alerted.
    use_key(&app, &asia, "job-1").await;
    assert_eq!(svc.tokens.hit_count(&token).await.unwrap(), 1);
    for _ in 0..3 {
        app.deliver_once().await;
    }
    assert_eq!(rx.count(), 0);

    // The confirm step: the held use goes out as one digest; a later use alerts at once.
    step(&app, &key, r, &[("INPUT_CONFIRM", "true")]).await;
    app.advance(Duration::from_secs(60));
    delivered(&app, &rx, 1).await;
    assert_eq!(rx.of_type("summary").len(), 1, "{:#?}", rx.bodies());
    use_key(&app, &asia, "after-1").await;
    delivered(&app, &rx, 2).await;
    assert_eq!(rx.of_type("hit").len(), 1, "{:#?}", rx.bodies());
    app.stop().await;
}

#[tokio::test]
async fn the_env_target_writes_prefixed_variables() {
    let app = spawn_app_with(|c| c.access.create = "operators".into()).await;
    let svc = services(&app).await;
    let op = svc.access.create_operator("ci", PASSWORD).await.unwrap();
    let (_, key) = svc
        .access
        .create_api_key(&op, "runners", &[Scope::TokensWrite])
        .await
        .unwrap();
    let runner = tempfile::tempdir().unwrap();
    let r = runner.path();
    std::fs::create_dir_all(r.join("home")).unwrap();
    step(
        &app,
        &key,
        r,
        &[("INPUT_TARGET", "env"), ("INPUT_EMAIL", "soc@corp.example")],
    )
    .await;
    let env = std::fs::read_to_string(r.join("env")).unwrap();
    assert!(env.contains("_AWS_SESSION_TOKEN="), "{env}");
    assert!(!env.starts_with("AWS_"), "{env}");
    assert!(!r.join("home/.aws/credentials").exists());
    app.stop().await;
}

/// A release as the action expects one: `v<version>/canarykeys-<version>-<target>.tar.gz` and
/// `v<version>/SHA256SUMS`, served over HTTP.
async fn release(dir: &Path) -> String {
    let target = match std::env::consts::ARCH {
        "aarch64" => "aarch64-unknown-linux-musl",
        _ => "x86_64-unknown-linux-musl",
    };
    let archive = format!("canarykeys-0.1.0-{target}.tar.gz");
    let stage = dir.join("stage/canarykeys-0.1.0");
    std::fs::create_dir_all(&stage).unwrap();
    // A stand-in that runs the binary built here: the debug build is too big to copy about.
    std::fs::write(
        stage.join("canarykeys"),
        format!(
            "#!/bin/sh\nexec '{}' \"$@\"\n",
            env!("CARGO_BIN_EXE_canarykeys")
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        stage.join("canarykeys"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = std::process::Command::new("tar")
        .arg("-czf")
        .arg(dir.join(&archive))
        .arg("-C")
        .arg(dir.join("stage"))
        .arg("canarykeys-0.1.0")
        .output()
        .unwrap();
    assert!(out.status.success());
    let bytes = std::fs::read(dir.join(&archive)).unwrap();
    let sum: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let sums = format!("{sum}  {archive}\n");
    let app = axum::Router::new()
        .route(
            &format!("/v0.1.0/{archive}"),
            axum::routing::get(move || async move { bytes.clone() }),
        )
        .route(
            "/v0.1.0/SHA256SUMS",
            axum::routing::get(move || async move { sums.clone() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn the_action_installs_the_release_checks_its_sha256_and_caches_it() {
    let app = spawn_app_with(|c| c.access.create = "operators".into()).await;
    let svc = services(&app).await;
    let op = svc.access.create_operator("ci", PASSWORD).await.unwrap();
    let (_, key) = svc
        .access
        .create_api_key(&op, "runners", &[Scope::TokensWrite])
        .await
        .unwrap();
    let runner = tempfile::tempdir().unwrap();
    let r = runner.path();
    std::fs::create_dir_all(r.join("home")).unwrap();
    let url = release(r).await;
    // A pinned SHA-256 that does not match: refused, nothing installed.
    let mut cmd = Command::new("bash");
    cmd.arg(script())
        .env("HOME", r.join("home"))
        .env("RUNNER_TEMP", r.join("temp"))
        .env("RUNNER_TOOL_CACHE", r.join("cache"))
        .env("INPUT_SERVER", &app.address)
        .env("INPUT_API_KEY", &key)
        .env("INPUT_VERSION", "0.1.0")
        .env("INPUT_RELEASE_URL", &url)
        .env("INPUT_CONFIRM", "true")
        .env("INPUT_SHA256", "00".repeat(32))
        .env_remove("INPUT_BINARY");
    let out = cmd.output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHA-256"));
    assert!(walk(&r.join("cache")).is_empty());
    // Checked against the release's SHA256SUMS: installed into the tool cache, and run.
    step(
        &app,
        &key,
        r,
        &[
            ("INPUT_BINARY", ""),
            ("INPUT_RELEASE_URL", &url),
            ("INPUT_CONFIRM", "true"),
        ],
    )
    .await;
    let cached: Vec<_> = walk(&r.join("cache"));
    assert!(
        cached.iter().any(|p| p.ends_with("canarykeys")),
        "{cached:?}"
    );
    // The next run uses the cache: the release server is not asked again (a bad URL is fine).
    step(
        &app,
        &key,
        r,
        &[
            ("INPUT_BINARY", ""),
            ("INPUT_RELEASE_URL", "http://127.0.0.1:9/nothing"),
            ("INPUT_CONFIRM", "true"),
        ],
    )
    .await;
    // A job that swapped the cached binary (a self-hosted runner's cache is writable): with
    // the archive's SHA-256 pinned, the next run puts the real one back before running it.
    let bin = cached.iter().find(|p| p.ends_with("canarykeys")).unwrap();
    let real = std::fs::read(bin).unwrap();
    let archive = cached
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .expect("the checked archive is kept in the cache");
    let sum: String = {
        use sha2::Digest;
        sha2::Sha256::digest(std::fs::read(archive).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    std::fs::write(bin, "#!/bin/sh\nexit 0\n").unwrap();
    let said = step(
        &app,
        &key,
        r,
        &[
            ("INPUT_BINARY", ""),
            ("INPUT_RELEASE_URL", "http://127.0.0.1:9/nothing"),
            ("INPUT_SHA256", &sum),
            ("INPUT_CONFIRM", "true"),
        ],
    )
    .await;
    assert!(said.contains("putting it back"), "{said}");
    assert_eq!(std::fs::read(bin).unwrap(), real);
    app.stop().await;
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
