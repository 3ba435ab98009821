//! The sealing key is checked, not guessed: the real `canarykeys` binary refuses to `serve` or
//! `token create` with a missing or wrong key, naming the key and the database, and never makes
//! a new key for a database that was sealed before; an empty database still starts and writes
//! its key check; a database from before the check gets one if its key opens its tokens; and a
//! key that is lost for good can be replaced only on purpose. A token whose secret still does
//! not open (sealed with another key before the check existed) is a hit all the same, on
//! SQLite and PostgreSQL alike.

use std::path::Path;
use std::process::{Output, Stdio};

use canarykeys_testkit::cli::{self, fails, ok};
use canarykeys_testkit::smtp_sink::free_port;
use canarykeys_testkit::{id_and_secret, start_config, wait_for, TestDatabase, WAIT};
use serde_json::Value;

/// Another valid key: 32 bytes in base64.
const OTHER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn canarykeys(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    cli::run(dir, args, env)
}

fn create_token(dir: &Path) -> Value {
    let out = canarykeys(
        dir,
        &["token", "create", "--memo", "m", "--email", "a@example.com"],
        &[],
    );
    serde_json::from_str(&ok(out)).unwrap()
}

/// `serve` on a free port, which must exit (a server that started would not); its stderr.
async fn serve_refuses(dir: &Path, env: &[(&str, &str)]) -> String {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = cli::command(dir)
        .args(["serve", "--listen", &listen])
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = wait_for("serve exits", WAIT, || {
        let status = child.try_wait().unwrap();
        async move { status }
    })
    .await;
    let out = child.wait_with_output().unwrap();
    assert!(!exited.success(), "serve started with a bad key");
    String::from_utf8(out.stderr).unwrap()
}

/// The message names the key (file or setting) and the database.
fn names_key_and_database(err: &str, key: &str) {
    assert!(err.contains(key), "{key} not named: {err}");
    assert!(err.contains("canarykeys.db"), "database not named: {err}");
}

async fn key_check(dir: &Path) -> Option<String> {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite:{}", dir.join("data/canarykeys.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let check = sqlx::query_scalar("SELECT value FROM settings WHERE key = 'sealing_key_check'")
        .fetch_optional(&pool)
        .await
        .unwrap();
    pool.close().await;
    check
}

async fn drop_key_check(dir: &Path) {
    let url = format!("sqlite:{}", dir.join("data/canarykeys.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM settings WHERE key = 'sealing_key_check'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn a_missing_key_file_stops_serve_and_token_create() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    create_token(d);
    let key_file = d.join("data/secret.key");
    std::fs::remove_file(&key_file).unwrap();

    let err = fails(canarykeys(d, &["token", "create", "--memo", "x"], &[]));
    names_key_and_database(&err, "data/secret.key");
    assert!(err.contains("does not exist"), "{err}");
    assert!(!key_file.exists(), "no new key for a sealed database");

    let err = serve_refuses(d, &[]).await;
    names_key_and_database(&err, "data/secret.key");
    assert!(!key_file.exists(), "no new key for a sealed database");
}

#[tokio::test]
async fn a_wrong_key_file_stops_serve_and_token_create() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    create_token(d);
    let key_file = d.join("data/secret.key");
    std::fs::write(&key_file, OTHER_KEY).unwrap();

    let err = fails(canarykeys(d, &["token", "create", "--memo", "x"], &[]));
    names_key_and_database(&err, "data/secret.key");
    assert!(err.contains("does not match"), "{err}");
    let err = serve_refuses(d, &[]).await;
    names_key_and_database(&err, "data/secret.key");
    assert!(err.contains("does not match"), "{err}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), OTHER_KEY);

    // The setting is named when the key comes from it.
    std::fs::remove_file(&key_file).unwrap();
    let env = [("CANARYKEYS_ENCRYPTION_KEY", OTHER_KEY)];
    let err = fails(canarykeys(d, &["token", "create", "--memo", "x"], &env));
    names_key_and_database(&err, "encryption_key setting");
    let err = serve_refuses(d, &env).await;
    names_key_and_database(&err, "encryption_key setting");
}

#[tokio::test]
async fn a_fresh_empty_database_starts_and_writes_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = cli::command(d)
        .args(["serve", "--listen", &listen])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("http://{listen}/healthz");
    wait_for("serve answers /healthz", WAIT, || {
        let req = http.get(&url).send();
        async move { req.await.ok().filter(|r| r.status().is_success()) }
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();

    let key = std::fs::read_to_string(d.join("data/secret.key")).unwrap();
    let check = key_check(d)
        .await
        .expect("the first start writes the check");
    assert!(check.starts_with("v1:"), "{check}");
    assert!(!check.contains(key.trim()), "the check is not the key");
    // The check alone (no token yet) keeps a lost key file from being quietly replaced.
    std::fs::remove_file(d.join("data/secret.key")).unwrap();
    let err = fails(canarykeys(d, &["token", "create", "--memo", "x"], &[]));
    names_key_and_database(&err, "data/secret.key");
}

#[tokio::test]
async fn a_database_from_before_the_check_gets_one_if_its_key_opens_its_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let created = create_token(d);
    let id = created["id"].as_str().unwrap();
    let check = key_check(d).await.unwrap();
    drop_key_check(d).await;

    // The wrong key opens none of its tokens: refused, and no check is written for it.
    let env = [("CANARYKEYS_ENCRYPTION_KEY", OTHER_KEY)];
    let err = fails(canarykeys(d, &["token", "list"], &env));
    names_key_and_database(&err, "encryption_key setting");
    assert_eq!(key_check(d).await, None);
    // The right one does, and the check comes back as it was.
    ok(canarykeys(d, &["token", "show", id], &[]));
    assert_eq!(key_check(d).await, Some(check));
}

#[tokio::test]
async fn a_lost_key_is_replaced_only_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old = create_token(d);
    std::fs::remove_file(d.join("data/secret.key")).unwrap();

    let err = fails(canarykeys(d, &["admin", "replace-lost-sealing-key"], &[]));
    assert!(err.contains("--i-have-lost-the-old-key"), "{err}");
    let out = ok(canarykeys(
        d,
        &[
            "admin",
            "replace-lost-sealing-key",
            "--i-have-lost-the-old-key",
        ],
        &[],
    ));
    assert!(out.contains("opens 0 of its 1 tokens"), "{out}");
    // New tokens are sealed with the new key; the old one's secret is lost, and says so.
    create_token(d);
    let err = fails(canarykeys(
        d,
        &["token", "show", old["id"].as_str().unwrap()],
        &[],
    ));
    assert!(err.contains("does not open"), "{err}");
}

#[tokio::test]
async fn another_directory_against_the_same_postgresql_is_refused() {
    let db = TestDatabase::create("sealing_key").await;
    let env = [("CANARYKEYS_DATABASE_URL", db.url())];
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    ok(canarykeys(
        first.path(),
        &["token", "create", "--memo", "m", "--email", "a@example.com"],
        &env,
    ));
    // The second directory has no key file: it must not make one for this database.
    let err = fails(canarykeys(
        second.path(),
        &["token", "create", "--memo", "x"],
        &env,
    ));
    assert!(
        err.contains("data/secret.key") && err.contains("does not exist"),
        "{err}"
    );
    assert!(
        err.contains(db.url().rsplit('/').next().unwrap()),
        "database not named: {err}"
    );
    assert!(!second.path().join("data/secret.key").exists());
    let err = serve_refuses(second.path(), &env).await;
    assert!(err.contains("data/secret.key"), "{err}");
    // Nor does a key of its own pass, once it has one.
    std::fs::create_dir_all(second.path().join("data")).unwrap();
    std::fs::write(second.path().join("data/secret.key"), OTHER_KEY).unwrap();
    let err = fails(canarykeys(second.path(), &["token", "list"], &env));
    assert!(err.contains("does not match"), "{err}");
    db.drop_database().await;
}

/// A token whose sealed secret was written with another key (before the key check, a CLI run
/// with a key of its own did this): an AWS SDK call with its key is a hit marked "signature not
/// checked: key unavailable", answered as a bad signature; its download says why it cannot.
#[tokio::test]
async fn a_secret_the_key_cannot_open_is_still_a_hit_marked_key_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = canarykeys_testkit::test_config(dir.path());
        c.sensor.listen = Some("127.0.0.1:0".parse().unwrap());
        c
    };
    let app = start_config(config()).await;
    let created = app.create_token().await;
    let (id, manage_secret) = id_and_secret(&created);
    let aws = |field: &str| created["aws"][field].as_str().unwrap().to_owned();
    let (key_id, secret_key) = (aws("access_key_id"), aws("secret_access_key"));
    app.stop().await;

    let other = canarykeys_server::crypto::Sealer::from_base64(OTHER_KEY).unwrap();
    let sealed = other.seal(
        &canarykeys_core::TokenId::parse(&id).unwrap(),
        &canarykeys_core::SecretAccessKey::parse(&secret_key).unwrap(),
    );
    sqlx::any::install_default_drivers();
    let url = format!("sqlite:{}", dir.path().join("canarykeys.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE tokens SET secret_sealed = $1 WHERE id = $2")
        .bind(&sealed)
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let app = start_config(config()).await;
    use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(Credentials::new(&key_id, &secret_key, None, None, "file"))
            .region(Region::new("us-east-1"))
            .endpoint_url(app.sensor_address.clone().unwrap())
            .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
            .build(),
    );
    let err = sts.get_caller_identity().send().await.unwrap_err();
    let raw = err.raw_response().unwrap();
    assert_eq!(raw.status().as_u16(), 403);
    let body = String::from_utf8_lossy(raw.body().bytes().unwrap()).into_owned();
    for told in [aws("arn"), aws("account_id"), aws("username")] {
        assert!(!body.contains(&told), "{told} in {body}");
    }
    let err = err.into_service_error();
    let meta = aws_sdk_sts::error::ProvideErrorMetadata::meta(&err);
    assert_eq!(meta.code(), Some("SignatureDoesNotMatch"));

    let path = format!("/api/v1/tokens/{id}/alerts?limit=100");
    let alerts: Value = app
        .get_authed(&path, &manage_secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alerts = alerts["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let hit = &alerts[0];
    assert_eq!(hit["event_name"], "GetCallerIdentity");
    assert_eq!(hit["path"], "sensor");
    let note = hit["note"].as_str().unwrap();
    assert!(
        note.starts_with("signature not checked: key unavailable"),
        "{note}"
    );
    assert_eq!(hit["cloudtrail"]["verified"], false);
    assert_eq!(hit["cloudtrail"]["signature_checked"], false);

    // Its credentials download says why it cannot, instead of a bare 500.
    let path = format!("/api/v1/tokens/{id}/credentials");
    let resp = app.get_authed(&path, &manage_secret).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "key_unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("sealing key"), "{message}");
    app.stop().await;
}
