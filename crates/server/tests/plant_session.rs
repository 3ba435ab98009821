//! `canarykeys plant --session` and `--refresh`: a session decoy planted into a lived-in
//! `~/.aws/credentials` with its session token, the AWS CLI using it at the sensor, refreshes
//! that change only the profile's own lines and are idempotent, run with nothing but the state
//! (no API key), and leave every file as it was when they fail.

use std::path::{Path, PathBuf};
use std::process::Output;

use canarykeys_server::services::Scope;
use canarykeys_testkit::access::*;
use canarykeys_testkit::{spawn_app_with, TestApp};
use serde_json::Value;
use tokio::process::Command;

const CREDENTIALS: &str = "# work laptop\n[default]\naws_access_key_id = AKIAZZZZZZZZZZZZZZZZ\n\
                           aws_secret_access_key = abc\n\n; old account\n[work]\n\
                           aws_access_key_id=AKIAYYYYYYYYYYYYYYYY\naws_secret_access_key=def";
const CONFIG: &str = "[default]\nregion = eu-central-1\n";

async fn fleet() -> (TestApp, String) {
    let app = spawn_app_with(|c| {
        c.access.create = "operators".into();
        c.sensor.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let svc = services(&app).await;
    let op = svc.access.create_operator("fleet", PASSWORD).await.unwrap();
    let (_, writer) = svc
        .access
        .create_api_key(&op, "laptops", &[Scope::TokensWrite])
        .await
        .unwrap();
    (app, writer)
}

fn state_path(home: &Path) -> PathBuf {
    home.join(".local/state/sessions/state.json")
}

/// `canarykeys plant <args>` seeing only `home`; the server and API key only when given.
async fn plant(app: Option<&TestApp>, home: &Path, key: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canarykeys"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("CANARYKEYS_") || k == "XDG_STATE_HOME" {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home)
        .env("CANARYKEYS_PLANT_STATE", state_path(home))
        .env("CANARYKEYS_PLANT_EMAIL", "soc@corp.internal")
        .current_dir(home)
        .arg("plant")
        .args(args);
    if let Some(app) = app {
        cmd.env("CANARYKEYS_URL", &app.address);
    }
    if let Some(key) = key {
        cmd.env("CANARYKEYS_API_KEY", key);
    }
    cmd.output().await.unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn the_plant(home: &Path) -> Value {
    let text = std::fs::read_to_string(state_path(home)).unwrap();
    let state: Value = serde_json::from_str(&text).unwrap();
    state["plants"][0].clone()
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// The profile's block as planted: the lines after the old content.
fn block(home: &Path) -> String {
    let creds = read(home.join(".aws/credentials"));
    assert!(creds.starts_with(CREDENTIALS), "{creds}");
    creds[CREDENTIALS.len()..].to_owned()
}

#[tokio::test]
async fn session_plant_refresh_force_and_rollback() {
    let (app, writer) = fleet().await;
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::create_dir(h.join(".aws")).unwrap();
    std::fs::write(h.join(".aws/credentials"), CREDENTIALS).unwrap();
    std::fs::write(h.join(".aws/config"), CONFIG).unwrap();

    ok(&plant(Some(&app), h, Some(&writer), &["--session"]).await);
    let first = the_plant(h);
    let profile = first["profile"].as_str().unwrap().to_owned();
    let key = first["aws"]["access_key_id"].as_str().unwrap().to_owned();
    let token = first["aws"]["session_token"].as_str().unwrap().to_owned();
    assert!(key.starts_with("ASIA"), "{first:#}");
    assert!(first["refresh_secret"].is_string() && first["aws"]["expiration"].is_string());
    assert_eq!(
        block(h),
        format!(
            "\n\n[{profile}]\naws_access_key_id = {key}\naws_secret_access_key = {}\naws_session_token = {token}\n",
            first["aws"]["secret_access_key"].as_str().unwrap()
        )
    );
    let config = read(h.join(".aws/config"));

    // The real CLI uses the session from the profile; the sensor answers as AWS.
    let sensor = app.sensor_address.clone().unwrap();
    let called = Command::new("aws")
        .args(["sts", "get-caller-identity", "--profile", &profile])
        .args(["--endpoint-url", &sensor])
        .env("HOME", h)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_SHARED_CREDENTIALS_FILE", h.join(".aws/credentials"))
        .env("AWS_CONFIG_FILE", h.join(".aws/config"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .await
        .expect("the AWS CLI is installed");
    ok(&called);

    let listed = ok(&plant(Some(&app), h, Some(&writer), &["--list"]).await);
    assert!(listed.contains("session expires "), "{listed}");

    // Not due: nothing changes (no API key on the machine, only the state).
    let before = block(h);
    let said = ok(&plant(None, h, None, &["--refresh"]).await);
    assert!(said.contains("none due"), "{said}");
    assert_eq!(block(h), before);
    ok(&plant(None, h, None, &["--refresh", "--before", "0%"]).await);
    assert_eq!(block(h), before);

    // Due (every session is within 100 % of its expiry) or forced: fresh values, same place.
    for args in [
        &["--refresh", "--before", "100%"][..],
        &["--refresh", "--force"],
    ] {
        let prev = the_plant(h);
        let said = ok(&plant(None, h, None, args).await);
        assert!(said.contains("refreshed"), "{said}");
        let now = the_plant(h);
        let new_key = now["aws"]["access_key_id"].as_str().unwrap();
        assert_ne!(new_key, prev["aws"]["access_key_id"].as_str().unwrap());
        assert_eq!(now["token_id"], first["token_id"]);
        assert_eq!(
            block(h),
            format!(
                "\n\n[{profile}]\naws_access_key_id = {new_key}\naws_secret_access_key = {}\naws_session_token = {}\n",
                now["aws"]["secret_access_key"].as_str().unwrap(),
                now["aws"]["session_token"].as_str().unwrap()
            )
        );
        assert_eq!(read(h.join(".aws/config")), config);
        // Idempotent: the next run finds nothing due.
        let again = block(h);
        ok(&plant(None, h, None, &["--refresh"]).await);
        assert_eq!(block(h), again);
    }

    // A block edited by hand is left alone, and so is everything else.
    let creds = read(h.join(".aws/credentials"));
    let edited = creds.replace("aws_session_token = ", "aws_session_token =  ");
    std::fs::write(h.join(".aws/credentials"), &edited).unwrap();
    let state = read(state_path(h));
    let out = plant(None, h, None, &["--refresh", "--force"]).await;
    assert!(!out.status.success());
    assert_eq!(read(h.join(".aws/credentials")), edited);
    assert_eq!(read(state_path(h)), state);
    std::fs::write(h.join(".aws/credentials"), &creds).unwrap();

    // The server gone: nothing changes either.
    app.stop().await;
    let out = plant(None, h, None, &["--refresh", "--force"]).await;
    assert!(!out.status.success());
    assert_eq!(read(h.join(".aws/credentials")), creds);
    assert_eq!(read(state_path(h)), state);
}
