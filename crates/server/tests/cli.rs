//! The `canarykeys` binary as a script would use it: token commands on a data directory, clear
//! errors with a non-zero exit, and the settings layers (defaults < file < env < flags).

use std::path::Path;
use std::process::Output;

use canarykeys_testkit::cli::{fails, ok};

use serde_json::Value;

/// The binary in `dir` with only `env` set (the harness clears inherited `CANARYKEYS_*`).
fn canarykeys(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    canarykeys_testkit::cli::run(dir, args, env)
}

#[test]
fn create_list_show_delete() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let created: Value = serde_json::from_str(&ok(canarykeys(
        d,
        &[
            "token",
            "create",
            "--memo",
            "bulk planted on host-1",
            "--email",
            "soc@example.com",
        ],
        &[],
    )))
    .unwrap();
    let id = created["id"].as_str().unwrap();
    let key = created["aws"]["access_key_id"].as_str().unwrap();
    assert!(created["manage_secret"].as_str().unwrap().len() == 43);
    assert!(created["manage_url"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:8080/manage/"));
    assert!(
        d.join("data/canarykeys.db").exists(),
        "default data dir is ./data"
    );

    let creds = ok(canarykeys(
        d,
        &[
            "token",
            "create",
            "--memo",
            "second",
            "--webhook-url",
            "https://h.example.com/x",
            "--format",
            "credentials",
        ],
        &[],
    ));
    assert!(creds.starts_with("[default]\naws_access_key_id = AKIA"));

    let list = ok(canarykeys(d, &["token", "list"], &[]));
    assert_eq!(list.lines().count(), 2);
    assert!(list.contains(id) && list.contains(key) && list.contains("bulk planted on host-1"));
    // Printed page by page, and still one pretty array.
    let text = ok(canarykeys(d, &["token", "list", "--format", "json"], &[]));
    assert!(
        text.starts_with("[\n  {\n    \"") && text.ends_with("}\n]\n"),
        "{text}"
    );
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);

    let shown: Value =
        serde_json::from_str(&ok(canarykeys(d, &["token", "show", id], &[]))).unwrap();
    assert_eq!(shown["aws"], created["aws"]);
    for (format, start) in [
        ("credentials", "[default]\naws_access_key_id"),
        ("config", "[default]\nregion"),
        ("csv", "Access key ID,Secret"),
        ("env", "export AWS_ACCESS_KEY_ID="),
    ] {
        assert!(
            ok(canarykeys(
                d,
                &["token", "show", id, "--format", format],
                &[]
            ))
            .starts_with(start),
            "{format}"
        );
    }

    assert!(ok(canarykeys(d, &["token", "delete", id], &[])).contains(id));
    assert!(fails(canarykeys(d, &["token", "show", id], &[])).contains("no such token"));
    assert_eq!(
        ok(canarykeys(d, &["token", "list"], &[])).lines().count(),
        1
    );
}

#[test]
fn bad_input_is_a_clear_error_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let err = fails(canarykeys(
        d,
        &["token", "create", "--memo", "", "--email", "nope"],
        &[],
    ));
    assert!(err.contains("--memo") && err.contains("--email"), "{err}");
    let err = fails(canarykeys(d, &["token", "create", "--memo", "m"], &[]));
    assert!(err.contains("email address or a webhook"), "{err}");
    let err = fails(canarykeys(
        d,
        &[
            "token",
            "create",
            "--memo",
            "m",
            "--email",
            "a@example.com",
            "--format",
            "xml",
        ],
        &[],
    ));
    assert!(err.contains("xml"), "{err}");
    assert!(fails(canarykeys(d, &["token", "delete", "not-an-id"], &[])).contains("no such token"));
    let err = fails(canarykeys(
        d,
        &["--config", "missing.toml", "token", "list"],
        &[],
    ));
    assert!(
        err.contains("missing.toml") && err.contains("does not exist"),
        "{err}"
    );
    std::fs::write(d.join("bad.toml"), "listen = 5\n").unwrap();
    assert!(fails(canarykeys(
        d,
        &["--config", "bad.toml", "token", "list"],
        &[]
    ))
    .contains("listen"));
    let err = fails(canarykeys(
        d,
        &["token", "list"],
        &[("CANARYKEYS_MINTER__ACCOUNT_ID", "12345")],
    ));
    assert!(err.contains("account id is 12 digits"), "{err}");
    let err = fails(canarykeys(
        d,
        &["token", "list"],
        &[("CANARYKEYS_MINTER__ACCOUNT_ID", "\"12345\"")],
    ));
    assert!(err.contains("minter.account_id"), "{err}");
    let err = fails(canarykeys(
        d,
        &["token", "list"],
        &[("CANARYKEYS_MINTER__REGION", "mars")],
    ));
    assert!(err.contains("minter.region"), "{err}");
    let err = fails(canarykeys(
        d,
        &["token", "list"],
        &[("CANARYKEYS_MINTER__KIND", "magic")],
    ));
    assert!(err.contains("minter.kind"), "{err}");
    let err = fails(canarykeys(
        d,
        &["token", "list"],
        &[("CANARYKEYS_DATABASE_URL", "mysql://x")],
    ));
    assert!(err.contains("unsupported database URL"), "{err}");
    // `[operator_alerts]` from the environment: checked at start like the rest.
    let err = fails(canarykeys(
        d,
        &["token", "list"],
        &[(
            "CANARYKEYS_OPERATOR_ALERTS__EMAIL",
            "ops@example.com, not an address",
        )],
    ));
    assert!(err.contains("operator_alerts.email"), "{err}");
    let err = fails(canarykeys(
        d,
        &["token", "list"],
        &[("CANARYKEYS_OPERATOR_ALERTS__ALIVE_EVERY", "0s")],
    ));
    assert!(err.contains("operator_alerts.alive_every"), "{err}");
    ok(canarykeys(
        d,
        &["token", "list"],
        &[
            (
                "CANARYKEYS_OPERATOR_ALERTS__EMAIL",
                "a@example.com,b@example.com",
            ),
            (
                "CANARYKEYS_OPERATOR_ALERTS__WEBHOOK_URL",
                "http://10.0.0.5:9000/hook",
            ),
            ("CANARYKEYS_OPERATOR_ALERTS__ALIVE_EVERY", "1h"),
        ],
    ));
}

#[test]
fn settings_layer_defaults_file_env_flags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let region = |out: String| -> String {
        let v: Value = serde_json::from_str(&out).unwrap();
        v["aws"]["region"].as_str().unwrap().to_owned()
    };
    let create = ["token", "create", "--memo", "m", "--email", "a@example.com"];
    // Default.
    assert_eq!(region(ok(canarykeys(d, &create, &[]))), "us-east-1");
    // File beats default.
    std::fs::write(d.join("ck.toml"), "data_dir = \"from-file\"\n[minter]\nregion = \"eu-west-1\"\naccount_id = \"111122223333\"\n").unwrap();
    let with_file = [
        "--config",
        "ck.toml",
        "token",
        "create",
        "--memo",
        "m",
        "--email",
        "a@example.com",
    ];
    let out = ok(canarykeys(d, &with_file, &[]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["aws"]["region"], "eu-west-1");
    assert_eq!(v["aws"]["account_id"], "111122223333");
    assert!(v["aws"]["access_key_id"]
        .as_str()
        .unwrap()
        .starts_with("AKIA"));
    assert!(d.join("from-file/canarykeys.db").exists());
    // Env beats file; an account id from the environment may be a bare number or quoted.
    assert_eq!(
        region(ok(canarykeys(
            d,
            &with_file,
            &[("CANARYKEYS_MINTER__REGION", "ap-south-1")]
        ))),
        "ap-south-1"
    );
    for (raw, want) in [
        ("444455556666", "444455556666"),
        ("\"012345678901\"", "012345678901"),
    ] {
        let v: Value = serde_json::from_str(&ok(canarykeys(
            d,
            &with_file,
            &[("CANARYKEYS_MINTER__ACCOUNT_ID", raw)],
        )))
        .unwrap();
        assert_eq!(v["aws"]["account_id"], want);
    }
    // A flag beats env: --data-dir wins over CANARYKEYS_DATA_DIR.
    ok(canarykeys(
        d,
        &["--data-dir", "from-flag", "token", "list"],
        &[("CANARYKEYS_DATA_DIR", "from-env")],
    ));
    assert!(d.join("from-flag/canarykeys.db").exists());
    assert!(!d.join("from-env").exists());
    // public_url from env shapes the manage link.
    let out = ok(canarykeys(
        d,
        &create,
        &[("CANARYKEYS_PUBLIC_URL", "https://keys.example.com/")],
    ));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["manage_url"]
        .as_str()
        .unwrap()
        .starts_with("https://keys.example.com/manage/"));
}

#[test]
fn serve_reports_a_taken_port_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = fails(canarykeys(
        dir.path(),
        &["serve", "--listen", &addr, "--data-dir", "d"],
        &[],
    ));
    assert!(err.contains("cannot listen on"), "{err}");
}

/// Runs `serve` with `env`, creates a token and reads it back (by manage link and API), stops
/// the server and returns its log (stdout and stderr, as a file) and the create response.
async fn serve_a_session(env: &[(&str, &str)]) -> (String, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_canarykeys"))
        .current_dir(dir.path())
        .args(["serve", "--listen", &listen])
        .env("CANARYKEYS_ACCESS__CREATE", "open")
        .env("RUST_LOG", "debug")
        .env_remove("NO_COLOR")
        .envs(env.iter().copied())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let base = format!("http://{listen}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "serve did not come up");
    let created: Value = http
        .post(format!("{base}/api/v1/tokens"))
        .json(&serde_json::json!({"memo": "m", "email": "a@example.com"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let manage_url = created["manage_url"].as_str().unwrap();
    assert_eq!(http.get(manage_url).send().await.unwrap().status(), 200);
    let id = created["id"].as_str().unwrap();
    let secret = created["manage_secret"].as_str().unwrap();
    let resp = http
        .get(format!("{base}/api/v1/tokens/{id}"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(dir.path().join("data/canarykeys.db").exists());
    let logs = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    (logs, created, listen)
}

fn assert_no_secrets(logs: &str, created: &Value) {
    let secret = created["manage_secret"].as_str().unwrap();
    assert!(!logs.contains(secret), "manage secret in the logs");
    assert!(
        !logs.contains(created["aws"]["secret_access_key"].as_str().unwrap()),
        "secret key in the logs"
    );
}

/// `serve` logs where to open the UI, and even at debug level its logs hold neither a manage
/// secret nor a secret access key (manage links carry the secret in the query string). A log
/// that is not a terminal carries no ANSI colour codes.
#[tokio::test]
async fn serve_logs_where_to_open_and_never_a_secret() {
    let (logs, created, listen) = serve_a_session(&[]).await;
    assert!(logs.contains(&format!("open http://{listen}/")), "{logs}");
    assert!(logs.contains("/manage/"), "requests are logged: {logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "ANSI codes in a log file: {logs:?}"
    );
    assert_no_secrets(&logs, &created);
}

/// `log_format = "json"`: every line is one JSON object with a level and a message, for log
/// shippers, and it holds no secret either.
#[tokio::test]
async fn serve_json_logs_are_one_object_per_line() {
    let (logs, created, listen) = serve_a_session(&[("CANARYKEYS_LOG_FORMAT", "json")]).await;
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.iter().all(|l| l["level"].is_string()), "{logs}");
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("open http://{listen}/")))),
        "{logs}"
    );
    assert_no_secrets(&logs, &created);
}

fn corpus_files() -> Vec<String> {
    let dir = std::env::var("CANARYKEYS_CORPUS_DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/cloudtrail").into()
    });
    let mut files = Vec::new();
    for sub in ["events", "eventbridge", "subscription"] {
        let path = Path::new(&dir).join(sub);
        let entries = std::fs::read_dir(&path).unwrap_or_else(|e| {
            panic!(
                "CloudTrail corpus not found at {} ({e}); set CANARYKEYS_CORPUS_DIR",
                path.display()
            )
        });
        for e in entries {
            files.push(e.unwrap().path().display().to_string());
        }
    }
    files.sort();
    files
}

#[test]
fn ingest_dry_run_reads_the_whole_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let files = corpus_files();
    let mut args = vec!["ingest", "--dry-run", "--json"];
    args.extend(files.iter().map(String::as_str));
    let out: Value = serde_json::from_str(&ok(canarykeys(dir.path(), &args, &[]))).unwrap();
    let t = &out["totals"];
    // The parser's corpus test explains these numbers (crates/core/tests/corpus.rs).
    assert_eq!(t["files"], 155);
    assert_eq!(t["failed_files"], 0);
    assert_eq!(t["parsed"], 3376);
    assert_eq!(t["skipped"], 14);
    assert_eq!(t["records"], 3390);
    assert_eq!(t["matched"], 0, "no token holds a corpus key");
    assert_eq!(t["unknown_keys"], 3376);
    assert_eq!(t["dry_run"], true);
    assert!(out["files"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["report"]["format"].is_string()));
}

#[test]
fn ingest_records_hits_once_and_reports_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let created: Value = serde_json::from_str(&ok(canarykeys(
        d,
        &["token", "create", "--memo", "m", "--email", "a@example.com"],
        &[],
    )))
    .unwrap();
    let record = serde_json::json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": created["aws"]["access_key_id"], "userName": created["aws"]["username"], "accountId": created["aws"]["account_id"]},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "iam.amazonaws.com", "eventName": "ListUsers",
        "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9", "userAgent": "Boto3/1.34", "eventID": "cli-evt-1"
    });
    std::fs::write(d.join("one.ndjson"), format!("{record}\n\n{record}\n")).unwrap();
    std::fs::write(d.join("junk.json"), "{\"not\": \"cloudtrail\"}").unwrap();

    let dry: Value = serde_json::from_str(&ok(canarykeys(
        d,
        &["ingest", "--dry-run", "--json", "one.ndjson"],
        &[],
    )))
    .unwrap();
    assert_eq!(
        (
            dry["totals"]["matched"].as_u64(),
            dry["totals"]["new_hits"].as_u64()
        ),
        (Some(2), Some(0))
    );
    let out: Value =
        serde_json::from_str(&ok(canarykeys(d, &["ingest", "--json", "one.ndjson"], &[]))).unwrap();
    assert_eq!(
        (
            out["totals"]["new_hits"].as_u64(),
            out["totals"]["duplicates"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let text = ok(canarykeys(d, &["ingest", "one.ndjson"], &[]));
    assert!(text.contains("0 new hits, 2 duplicates"), "{text}");

    let err = fails(canarykeys(
        d,
        &["ingest", "junk.json", "one.ndjson", "missing.json"],
        &[],
    ));
    assert!(
        err.contains("junk.json") && err.contains("missing.json") && err.contains("2 of 3 files"),
        "{err}"
    );
    let shown: Value = serde_json::from_str(&ok(canarykeys(
        d,
        &["token", "show", created["id"].as_str().unwrap()],
        &[],
    )))
    .unwrap();
    assert_eq!(shown["alert_count"], 1);
}

/// A Health fixture with the key swapped for the token's: the dry run reports the match and
/// stores nothing, the real run records one exposure, a second run only adds to it. The other
/// fixture names a key no token holds: counted, never recorded.
#[test]
fn ingest_records_health_events_as_exposures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let created: Value = serde_json::from_str(&ok(canarykeys(
        d,
        &["token", "create", "--memo", "m", "--email", "a@example.com"],
        &[],
    )))
    .unwrap();
    let key = created["aws"]["access_key_id"].as_str().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fixtures/health");
    let exposed = std::fs::read_to_string(fixtures.join("credentials-exposed.json")).unwrap();
    assert!(exposed.contains("AKIAEXAMPLEEXPOSEDQQ"));
    std::fs::write(
        d.join("exposed.json"),
        exposed.replace("AKIAEXAMPLEEXPOSEDQQ", key),
    )
    .unwrap();
    std::fs::copy(fixtures.join("older-sample.json"), d.join("unknown.json")).unwrap();
    let files = ["exposed.json", "unknown.json"];

    let dry: Value = serde_json::from_str(&ok(canarykeys(
        d,
        &["ingest", "--dry-run", "--json", files[0], files[1]],
        &[],
    )))
    .unwrap();
    let t = &dry["totals"];
    assert_eq!(
        (&t["health_events"], &t["matched"], &t["unknown_keys"]),
        (&Value::from(2), &Value::from(1), &Value::from(1)),
        "{dry}"
    );
    assert_eq!(
        (&t["new_exposures"], &t["dry_run"]),
        (&Value::from(0), &Value::from(true))
    );
    assert_eq!(dry["files"][0]["report"]["health"]["matched"], 1);

    let out: Value = serde_json::from_str(&ok(canarykeys(
        d,
        &["ingest", "--json", files[0], files[1]],
        &[],
    )))
    .unwrap();
    assert_eq!(out["totals"]["new_exposures"], 1, "{out}");
    assert_eq!(out["totals"]["new_hits"], 0);

    let text = ok(canarykeys(d, &["ingest", files[0]], &[]));
    assert!(
        text.contains("1 AWS Health events")
            && text.contains("0 new exposures, 1 updated exposures"),
        "{text}"
    );
    assert!(text.contains("AWS Health: 1 events"), "{text}");
}

#[test]
fn doctor_warns_about_known_canary_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let out = canarykeys(
        dir.path(),
        &["doctor"],
        &[("CANARYKEYS_MINTER__ACCOUNT_ID", "\"052310077262\"")],
    );
    assert!(!out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("known canary accounts"), "{text}");
    assert!(text.contains("ingest.secret"), "{text}");
}
