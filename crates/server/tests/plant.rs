//! `canarykeys plant` against a running server with a `tokens:write` API key: planting into a
//! lived-in HOME without disturbing a byte, the real AWS CLI reading the profile and the sensor
//! alerting with the host in the memo, rerun, rotate, list, remove; every failure leaving files
//! and server as they were; the context templates free of tells; and the key's narrow scope.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use canarykeys_plant::{self as plant, Disk, Keys, Templates};
use canarykeys_server::cli::{Cli, Command as CliCommand};
use canarykeys_server::services::Scope;
use canarykeys_testkit::access::*;
use canarykeys_testkit::{spawn_app_with, TestApp};
use clap::Parser;
use serde_json::Value;
use tokio::process::Command;

const CREDENTIALS: &str = "# work laptop\n[default]\naws_access_key_id = AKIAZZZZZZZZZZZZZZZZ\n\
                           aws_secret_access_key = abc\n\n; old account\n[work]\n\
                           aws_access_key_id=AKIAYYYYYYYYYYYYYYYY\naws_secret_access_key=def";
const CONFIG: &str =
    "[default]\nregion = eu-central-1\n# sso\n[profile work]\nregion = eu-west-1\n";

struct Fleet {
    app: TestApp,
    writer: String,
    reader: String,
    revoked: String,
}

async fn fleet() -> Fleet {
    let app = spawn_app_with(|c| {
        c.access.create = "operators".into();
        c.sensor.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let svc = services(&app).await;
    let op = svc.access.create_operator("fleet", PASSWORD).await.unwrap();
    let key = |name: &'static str, scope| {
        let svc = &svc;
        let op = &op;
        async move { svc.access.create_api_key(op, name, &[scope]).await.unwrap() }
    };
    let (_, writer) = key("laptops", Scope::TokensWrite).await;
    let (_, reader) = key("dash", Scope::TokensRead).await;
    let (info, revoked) = key("old", Scope::TokensWrite).await;
    svc.access.revoke_api_key(&op, &info.id).await.unwrap();
    Fleet {
        app,
        writer,
        reader,
        revoked,
    }
}

/// A HOME whose AWS files already hold profiles and comments (no final newline in one).
fn lived_in_home() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(home.path().join(".aws/credentials"), CREDENTIALS).unwrap();
    std::fs::write(home.path().join(".aws/config"), CONFIG).unwrap();
    home
}

/// A command that sees only `home`: no AWS or canarykeys settings from the test's environment.
fn isolated(program: &str, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") || key.starts_with("CANARYKEYS_") || key == "XDG_STATE_HOME" {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd.current_dir(home);
    cmd
}

async fn plant_cmd(f: &Fleet, home: &Path, key: &str, args: &[&str]) -> Output {
    isolated(env!("CARGO_BIN_EXE_canarykeys"), home)
        .arg("plant")
        .args(args)
        .env("CANARYKEYS_URL", &f.app.address)
        .env("CANARYKEYS_API_KEY", key)
        .env("CANARYKEYS_PLANT_EMAIL", "soc@corp.internal")
        // Root's default is its own shared place; each HOME here keeps its own state.
        .env("CANARYKEYS_PLANT_STATE", state_path(home))
        .output()
        .await
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn state_path(home: &Path) -> PathBuf {
    home.join(".local/state/sessions/state.json")
}

fn the_plant(home: &Path) -> Value {
    let state: Value = serde_json::from_str(&read(state_path(home))).unwrap();
    assert_eq!(state["plants"].as_array().unwrap().len(), 1, "{state:#}");
    state["plants"][0].clone()
}

/// 200 if the plant's token exists, 404 if not (asked of the services: nothing on the machine
/// holds a secret that could ask the API).
async fn token_status(app: &TestApp, plant: &Value) -> u16 {
    let id = plant["token_id"].as_str().unwrap();
    match services(app).await.tokens.get(id).await {
        Ok(_) => 200,
        Err(_) => 404,
    }
}

async fn token_count(app: &TestApp) -> usize {
    services(app).await.tokens.list().await.unwrap().len()
}

#[tokio::test]
async fn plant_rerun_rotate_and_remove_in_a_lived_in_home() {
    let f = fleet().await;
    let home = lived_in_home();
    let h = home.path();
    let out = ok(&plant_cmd(&f, h, &f.writer, &[]).await);
    let plant = the_plant(h);
    let profile = plant["profile"].as_str().unwrap().to_owned();
    let key_id = plant["aws"]["access_key_id"].as_str().unwrap().to_owned();
    assert!(out.contains(&profile) && out.contains(&key_id), "{out}");
    let mode = std::fs::metadata(state_path(h))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The old bytes stay as they were, the new section follows, and nothing gives it away.
    let creds = read(h.join(".aws/credentials"));
    let config = read(h.join(".aws/config"));
    assert!(creds.starts_with(&format!(
        "{CREDENTIALS}\n\n[{profile}]\naws_access_key_id = {key_id}\n"
    )));
    assert!(
        config.starts_with(CONFIG)
            && config.ends_with(&format!(
                "[profile {profile}]\nregion = us-east-1\noutput = json\n"
            ))
    );
    for text in [&creds, &config] {
        assert!(
            !text.to_lowercase().contains("canary") && !text.contains("#  "),
            "{text}"
        );
    }

    // The real AWS CLI reads the profile, and a call to the sensor alerts with the host named.
    let aws = |args: &[&str]| {
        let mut cmd = isolated("aws", h);
        cmd.args(args).arg("--profile").arg(&profile);
        cmd
    };
    let listed = aws(&["configure", "list"])
        .output()
        .await
        .expect("the AWS CLI is installed");
    let listed = ok(&listed);
    assert!(
        listed.contains(&key_id[16..]) && listed.contains("shared-credentials-file"),
        "{listed}"
    );
    let sensor = f.app.sensor_address.clone().unwrap();
    let called = aws(&["sts", "get-caller-identity", "--endpoint-url", &sensor])
        .output()
        .await
        .unwrap();
    ok(&called);
    let id = plant["token_id"].as_str().unwrap();
    assert!(plant.get("manage_secret").is_none(), "{plant:#}");
    let svc = services(&f.app).await;
    let token = svc.tokens.get(id).await.unwrap();
    let (hits, _) = svc.tokens.hits(&token, 10, 0).await.unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].event_name, "GetCallerIdentity");
    let host = read(PathBuf::from("/proc/sys/kernel/hostname"));
    let memo = token.memo.as_str();
    assert!(
        memo.starts_with(&format!(
            "{}:{}",
            host.trim(),
            h.join(".aws/credentials").display()
        )),
        "{memo}"
    );

    // Again: nothing changes, here or on the server.
    let state_before = read(state_path(h));
    let again = ok(&plant_cmd(&f, h, &f.writer, &[]).await);
    assert!(again.contains("already planted"), "{again}");
    assert_eq!(read(h.join(".aws/credentials")), creds);
    assert_eq!(read(h.join(".aws/config")), config);
    assert_eq!(read(state_path(h)), state_before);
    assert_eq!(token_count(&f.app).await, 1);

    let list = ok(&plant_cmd(&f, h, &f.writer, &["--list"]).await);
    assert!(
        list.contains(&profile) && list.contains(&key_id) && list.contains(id),
        "{list}"
    );

    // Rotate: a fresh key in the same place, and the old token gone.
    ok(&plant_cmd(&f, h, &f.writer, &["--rotate"]).await);
    let rotated = the_plant(h);
    let new_key = rotated["aws"]["access_key_id"].as_str().unwrap();
    assert_ne!(new_key, key_id);
    let creds2 = read(h.join(".aws/credentials"));
    assert!(creds2.starts_with(&format!(
        "{CREDENTIALS}\n\n[{profile}]\naws_access_key_id = {new_key}\n"
    )));
    assert_eq!(read(h.join(".aws/config")), config);
    assert_eq!(token_status(&f.app, &plant).await, 404);
    assert_eq!(token_status(&f.app, &rotated).await, 200);

    // Remove: the files are byte for byte what they were, and the token is gone.
    ok(&plant_cmd(&f, h, &f.writer, &["--remove"]).await);
    assert_eq!(read(h.join(".aws/credentials")), CREDENTIALS);
    assert_eq!(read(h.join(".aws/config")), CONFIG);
    assert_eq!(token_status(&f.app, &rotated).await, 404);
    assert!(!state_path(h).exists());
    assert_eq!(token_count(&f.app).await, 0);
    f.app.stop().await;
}

#[tokio::test]
async fn a_new_home_gets_private_files_that_go_away_on_remove() {
    let f = fleet().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    ok(&plant_cmd(&f, h, &f.writer, &["--profile", "terraform"]).await);
    for file in ["credentials", "config"] {
        let mode = std::fs::metadata(h.join(".aws").join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    assert!(read(h.join(".aws/credentials")).starts_with("[terraform]\naws_access_key_id = AKIA"));
    ok(&plant_cmd(&f, h, &f.writer, &["--remove"]).await);
    assert!(
        !h.join(".aws").exists(),
        "the directory plant made is gone too"
    );
    f.app.stop().await;
}

/// Runs a failing plant and checks the files and the server are as they were.
async fn refused(f: &Fleet, home: &Path, key: &str, args: &[&str], expect: &str) {
    let creds = std::fs::read(home.join(".aws/credentials")).ok();
    let config = std::fs::read(home.join(".aws/config")).ok();
    let err = fails(&plant_cmd(f, home, key, args).await);
    assert!(
        err.contains(expect),
        "{args:?}: expected {expect:?} in {err}"
    );
    assert_eq!(std::fs::read(home.join(".aws/credentials")).ok(), creds);
    assert_eq!(std::fs::read(home.join(".aws/config")).ok(), config);
    assert!(!state_path(home).exists());
    assert_eq!(
        token_count(&f.app).await,
        0,
        "no token left behind ({args:?})"
    );
}

#[tokio::test]
async fn every_failure_is_clear_and_leaves_everything_as_it_was() {
    let f = fleet().await;
    let home = lived_in_home();
    let h = home.path();
    refused(&f, h, &f.reader, &[], "tokens:write").await;
    refused(&f, h, &f.revoked, &[], "revoked").await;
    refused(
        &f,
        h,
        &f.writer,
        &["--profile", "work"],
        "the profile work is taken",
    )
    .await;
    refused(
        &f,
        h,
        &f.writer,
        &["--server", "http://127.0.0.1:9"],
        "cannot reach the canarykeys server",
    )
    .await;

    let creds = h.join(".aws/credentials");
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o400)).unwrap();
    refused(&f, h, &f.writer, &[], "is not writable").await;
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();

    let broken = format!("{CREDENTIALS}\nnot a setting\n");
    std::fs::write(&creds, &broken).unwrap();
    refused(&f, h, &f.writer, &[], "cannot be parsed: line 10").await;
    std::fs::write(&creds, CREDENTIALS).unwrap();

    // The disk fills up after the credentials file: the token is deleted and both files restored.
    struct FullAfterOne(std::sync::atomic::AtomicBool);
    impl Disk for FullAfterOne {
        fn write_all(&self, file: &mut File, bytes: &[u8]) -> std::io::Result<()> {
            if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return file.write_all(bytes);
            }
            File::options()
                .write(true)
                .open("/dev/full")?
                .write_all(bytes)
        }
    }
    let state = h.join("state.json");
    let config = h.join(".aws/config");
    let args = [
        "canarykeys",
        "plant",
        "--server",
        &f.app.address,
        "--api-key",
        &f.writer,
        "--file",
        creds.to_str().unwrap(),
        "--aws-config",
        config.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--email",
        "soc@corp.internal",
    ];
    let CliCommand::Plant(args) = Cli::try_parse_from(args).unwrap().command else {
        unreachable!()
    };
    let mut out = Vec::new();
    let disk = FullAfterOne(false.into());
    let err = plant::run_with(*args, &disk, &mut out)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("No space left on device") && err.contains("deleted on the server"),
        "{err}"
    );
    assert_eq!(read(creds.clone()), CREDENTIALS);
    assert_eq!(read(h.join(".aws/config")), CONFIG);
    assert!(!state.exists());
    assert_eq!(token_count(&f.app).await, 0);
    f.app.stop().await;
}

#[tokio::test]
async fn a_tokens_write_key_cannot_list_or_read_other_tokens() {
    let f = fleet().await;
    let other: Value = {
        let svc = services(&f.app).await;
        let op = svc.access.create_operator("admin", PASSWORD).await.unwrap();
        let (_, all) = svc
            .access
            .create_api_key(&op, "all", &Scope::ALL)
            .await
            .unwrap();
        let resp = f
            .app
            .http
            .post(f.app.url("/api/v1/tokens"))
            .bearer_auth(&all)
            .json(&memo())
            .send()
            .await
            .unwrap();
        resp.json().await.unwrap()
    };
    let id = other["id"].as_str().unwrap();
    for path in [
        "/api/v1/tokens".to_owned(),
        format!("/api/v1/tokens/{id}"),
        format!("/api/v1/tokens/{id}/alerts"),
        format!("/api/v1/tokens/{id}/credentials?format=credentials"),
    ] {
        let resp = f.app.get_authed(&path, &f.writer).send().await.unwrap();
        assert_eq!(resp.status(), 403, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("tokens:read"),
            "{body}"
        );
    }
    f.app.stop().await;
}

#[tokio::test]
async fn context_files_and_stdout_formats() {
    let f = fleet().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    ok(&plant_cmd(&f, h, &f.writer, &["--context", "env"]).await);
    let env = read(h.join(".env.production"));
    let key_id = the_plant(h)["aws"]["access_key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        env.contains(&format!("AWS_ACCESS_KEY_ID={key_id}\n")),
        "{env}"
    );
    let mode = std::fs::metadata(h.join(".env.production"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    ok(&plant_cmd(&f, h, &f.writer, &["--context", "env", "--remove"]).await);
    assert!(!h.join(".env.production").exists());

    // CI: a key for the run, under names that leave the job's own AWS_ACCESS_KEY_ID alone.
    let out = ok(&plant_cmd(
        &f,
        h,
        &f.writer,
        &[
            "--stdout",
            "github-env",
            "--expires-in",
            "2h",
            "--profile",
            "deploy",
        ],
    )
    .await);
    assert!(out.starts_with("DEPLOY_AWS_ACCESS_KEY_ID=AKIA"), "{out}");
    assert!(out.lines().all(|l| l.starts_with("DEPLOY_AWS_")), "{out}");
    let plant = the_plant(h);
    assert!(plant["expires_at"].is_string());
    for format in ["credentials", "env", "json", "k8s-secret"] {
        let again = ok(&plant_cmd(&f, h, &f.writer, &["--stdout", format]).await);
        assert!(
            again.contains(plant["aws"]["access_key_id"].as_str().unwrap()),
            "{format}: {again}"
        );
    }
    assert_eq!(
        token_count(&f.app).await,
        1,
        "stdout reruns print the same key"
    );
    f.app.stop().await;
}

#[test]
fn every_context_template_passes_the_tells_check() {
    use canarykeys_core::{AccessKeyId, AccountId, OutputFormat, Region, SecretAccessKey};
    use clap::ValueEnum;
    let templates = Templates::parse(plant::BUILT_IN_TEMPLATES).unwrap();
    let keys = Keys {
        access_key_id: AccessKeyId::generate_for(AccountId::random()),
        secret_access_key: SecretAccessKey::generate(),
        region: Region::parse("eu-west-1").unwrap(),
        output: OutputFormat::Json,
        session: None,
    };
    let kinds = plant::ContextKind::value_variants();
    assert_eq!(templates.kinds().count(), kinds.len());
    for kind in kinds {
        for _ in 0..20 {
            let text = plant::render_context(templates.get(*kind).unwrap(), &keys).unwrap();
            assert!(text.contains(keys.access_key_id.as_str()));
            assert!(text.contains(keys.secret_access_key.expose()));
            // The keys are random; everything around them is the template's.
            let text = text
                .replace(keys.secret_access_key.expose(), "")
                .replace(keys.access_key_id.as_str(), "");
            canarykeys_core::names::check_no_tells(&text).unwrap();
            let lower = text.to_lowercase();
            for word in [
                "canarykeys",
                "canary",
                "example",
                "test",
                "dummy",
                "sample",
                "fake",
                "honey",
                "decoy",
            ] {
                assert!(!lower.contains(word), "{kind:?} contains {word}:\n{text}");
            }
        }
    }
}
