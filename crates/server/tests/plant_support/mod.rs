//! What the plant test files share: a server with a fleet's planting key, a lived-in HOME, and
//! the real `canarykeys plant` binary run with nothing from the test's environment.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use canarykeys_server::services::Scope;
use canarykeys_testkit::access::{services, PASSWORD};
use canarykeys_testkit::{spawn_app_with, TestApp};
use serde_json::Value;
use tokio::process::Command;

pub const CREDENTIALS: &str =
    "# work laptop\n[default]\naws_access_key_id = AKIAZZZZZZZZZZZZZZZZ\n\
                               aws_secret_access_key = abc\n";
pub const CONFIG: &str = "[default]\nregion = eu-central-1\n";

pub struct Fleet {
    pub app: TestApp,
    /// tokens:write, the planting key.
    pub writer: String,
    /// tokens:read only.
    pub reader: String,
}

pub async fn fleet() -> Fleet {
    let app = spawn_app_with(|c| {
        c.access.create = "operators".into();
    })
    .await;
    let svc = services(&app).await;
    let op = svc.access.create_operator("fleet", PASSWORD).await.unwrap();
    let (_, writer) = svc
        .access
        .create_api_key(&op, "laptops", &[Scope::TokensWrite])
        .await
        .unwrap();
    let (_, reader) = svc
        .access
        .create_api_key(&op, "dash", &[Scope::TokensRead])
        .await
        .unwrap();
    Fleet {
        app,
        writer,
        reader,
    }
}

/// A HOME whose AWS files already hold a profile.
pub fn lived_in_home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(home.path().join(".aws/credentials"), CREDENTIALS).unwrap();
    std::fs::write(home.path().join(".aws/config"), CONFIG).unwrap();
    home
}

/// `canarykeys plant ARGS` with HOME set and no AWS, XDG or canarykeys setting inherited; the
/// API key only when given. The state is the HOME's own (see [`plant_default`]).
pub fn plant(f: &Fleet, home: &Path, key: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = plant_default(f, home, key, args);
    // Run as root (as these tests often are), the default is root's own place, shared by every
    // test; each HOME keeps its own state at the place a user's run would use.
    if !uses_default_state(home) {
        cmd.env("CANARYKEYS_PLANT_STATE", state_path(home));
    }
    cmd
}

/// As [`plant`], with the state in its default place ([`default_state`]).
pub fn plant_default(f: &Fleet, home: &Path, key: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canarykeys"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("CANARYKEYS_") || k == "XDG_STATE_HOME" {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home)
        .current_dir(home)
        .arg("plant")
        .args(args)
        .env("CANARYKEYS_URL", &f.app.address)
        .env("CANARYKEYS_PLANT_EMAIL", "soc@corp.internal");
    if let Some(key) = key {
        cmd.env("CANARYKEYS_API_KEY", key);
    }
    cmd
}

pub async fn run(mut cmd: Command) -> Output {
    cmd.output().await.unwrap()
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Whether runs for `home` keep the default state (root's place): only for homes that are not
/// root's (the root tests' users).
fn uses_default_state(home: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(home).is_ok_and(|m| m.uid() != 0)
}

/// Where a run with no --state keeps it: root's place when the tests run as root.
pub fn default_state(home: &Path) -> PathBuf {
    if std::fs::metadata("/proc/self").is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    }) {
        PathBuf::from("/var/lib/sessions/state.json")
    } else {
        state_path(home)
    }
}

/// The state file's default place for a user: it names nothing.
pub fn state_path(home: &Path) -> PathBuf {
    home.join(".local/state/sessions/state.json")
}

pub fn the_plant(state: &Path) -> Value {
    let state: Value = serde_json::from_slice(&std::fs::read(state).unwrap()).unwrap();
    assert_eq!(state["plants"].as_array().unwrap().len(), 1, "{state:#}");
    state["plants"][0].clone()
}

/// The plant of token `id` in the state at `path` (which may hold others' plants).
pub fn plant_of(path: &Path, id: &str) -> Option<Value> {
    let state: Value = serde_json::from_slice(&std::fs::read(path).ok()?).unwrap();
    state["plants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["token_id"] == id)
        .cloned()
}

pub async fn token_count(app: &TestApp) -> usize {
    services(app).await.tokens.list().await.unwrap().len()
}

/// Every file under `dir` (links not followed), depth first.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        out.push(path.clone());
        if meta.is_dir() {
            out.extend(walk(&path));
        }
    }
    out
}

/// The statuses a bearer gets trying to read, silence, delete and re-key the token. None may
/// be a success.
pub async fn try_bearer(app: &TestApp, id: &str, bearer: &str) -> Vec<(String, u16)> {
    let token = app.url(&format!("/api/v1/tokens/{id}"));
    let rekey = app.url(&format!("/api/v1/tokens/{id}/manage-secret"));
    let off = serde_json::json!({"email_enabled": false, "webhook_enabled": false});
    let requests = [
        ("GET", app.http.get(&token)),
        ("PATCH", app.http.patch(&token).json(&off)),
        ("DELETE", app.http.delete(&token)),
        ("POST manage-secret", app.http.post(&rekey)),
    ];
    let mut out = Vec::new();
    for (what, req) in requests {
        let status = req.bearer_auth(bearer).send().await.unwrap().status();
        out.push((what.to_owned(), status.as_u16()));
    }
    out
}
