//! The AWS-compatible sensor, driven by real AWS clients: the AWS CLI and boto3 with a token's
//! downloaded credentials file, and the Rust SDK. Every call must get the answer AWS gives an
//! identity without permissions and become exactly one hit; the README's quickstart runs too.

use std::path::PathBuf;
use std::process::Output;

use canarykeys_server::clock::ManualClock;
use canarykeys_testkit::{id_and_secret, spawn_app_with, TestApp};
use serde_json::Value;
use tokio::process::Command;

async fn app() -> TestApp {
    spawn_app_with(|c| c.sensor.listen = Some("127.0.0.1:0".parse().unwrap())).await
}

/// A token whose downloaded `credentials` and `config` files sit in a directory, as planted.
struct Planted {
    alerts_url: String,
    manage_secret: String,
    sensor: String,
    http: reqwest::Client,
    key_id: String,
    secret_key: String,
    arn: String,
    dir: tempfile::TempDir,
    /// The app's clock: each call and each reading of the hits moves it on a second, so the
    /// latest call's hit is the newest (the list is newest first; a stopped clock would tie).
    clock: ManualClock,
}

impl Planted {
    async fn new(app: &TestApp) -> Self {
        let created = app.create_token().await;
        let (id, manage_secret) = id_and_secret(&created);
        let dir = tempfile::tempdir().unwrap();
        for format in ["credentials", "config"] {
            let path = format!("/api/v1/tokens/{id}/credentials?format={format}");
            let resp = app.get_authed(&path, &manage_secret).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            std::fs::write(dir.path().join(format), resp.bytes().await.unwrap()).unwrap();
        }
        let aws = |field: &str| created["aws"][field].as_str().unwrap().to_owned();
        Self {
            alerts_url: app.url(&format!("/api/v1/tokens/{id}/alerts?limit=100")),
            manage_secret,
            sensor: app.sensor_address.clone().unwrap(),
            http: app.http.clone(),
            key_id: aws("access_key_id"),
            secret_key: aws("secret_access_key"),
            arn: aws("arn"),
            dir,
            clock: app.clock.clone(),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Rewrites part of the credentials file, as an intruder with a wrong copy would have it.
    fn replace_in_credentials(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.file("credentials")).unwrap();
        assert!(text.contains(from));
        std::fs::write(self.file("credentials"), text.replace(from, to)).unwrap();
    }

    /// A command that reads only the planted files: none of the machine's own AWS settings.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        for var in [
            "ACCESS_KEY_ID",
            "SECRET_ACCESS_KEY",
            "SESSION_TOKEN",
            "PROFILE",
            "REGION",
        ] {
            cmd.env_remove(format!("AWS_{var}"));
        }
        for var in [
            "AWS_DEFAULT_PROFILE",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("AWS_SHARED_CREDENTIALS_FILE", self.file("credentials"))
            .env("AWS_CONFIG_FILE", self.file("config"))
            .env("AWS_EC2_METADATA_DISABLED", "true");
        cmd
    }

    /// Runs `aws <args> --endpoint-url <sensor>`.
    async fn aws(&self, args: &str) -> Output {
        self.clock.advance(std::time::Duration::from_secs(1));
        self.command("aws")
            .args(args.split_whitespace())
            .args(["--endpoint-url", &self.sensor])
            .output()
            .await
            .expect("the AWS CLI is installed (bash scripts/test.sh installs it)")
    }

    /// The token's hits, newest first.
    async fn alerts(&self) -> Vec<Value> {
        let req = self
            .http
            .get(&self.alerts_url)
            .bearer_auth(&self.manage_secret);
        let body: Value = req.send().await.unwrap().json().await.unwrap();
        self.clock.advance(std::time::Duration::from_secs(1));
        body["alerts"].as_array().unwrap().clone()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const VERIFIED: &str = "signature verified: the caller holds the secret key";
const UNVERIFIED: &str = "signature did not verify: the key id leaked; the secret may not have";

/// Checks that exactly one hit is new since `before`, and that it is `service`'s `name`.
fn one_new_hit(alerts: &[Value], before: usize, service: &str, name: &str, note: &str) -> Value {
    assert_eq!(alerts.len(), before + 1, "one hit for {name}: {alerts:#?}");
    let hit = &alerts[0];
    assert_eq!(hit["event_source"], format!("{service}.amazonaws.com"));
    assert_eq!(hit["event_name"], name, "{hit:#}");
    assert_eq!(hit["path"], "sensor");
    assert_eq!(hit["note"], note);
    assert_eq!(hit["source_ip"], "127.0.0.1");
    assert_eq!(hit["region"], "us-east-1");
    assert_eq!(hit["request_id"], hit["event_id"]);
    hit.clone()
}

/// command | operation | error code | the IAM action the message names
const DENIED_CALLS: [&str; 5] = [
    "s3 ls | ListBuckets | AccessDenied | s3:ListAllMyBuckets",
    "iam list-users | ListUsers | AccessDenied | iam:ListUsers",
    "ec2 describe-instances | DescribeInstances | UnauthorizedOperation | ec2:DescribeInstances",
    "lambda list-functions | ListFunctions | AccessDeniedException | lambda:ListFunctions",
    "secretsmanager list-secrets | ListSecrets | AccessDeniedException | secretsmanager:ListSecrets",
];

#[tokio::test]
async fn the_aws_cli_gets_aws_answers_and_each_call_is_one_verified_hit() {
    let app = app().await;
    let planted = Planted::new(&app).await;

    let out = planted.aws("sts get-caller-identity").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let identity: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(identity["Arn"], planted.arn.as_str());
    let account = identity["Account"].as_str().unwrap();
    assert!(planted
        .arn
        .starts_with(&format!("arn:aws:iam::{account}:user/")));
    let user_id = identity["UserId"].as_str().unwrap();
    assert!(user_id.starts_with("AIDA") && user_id.len() == 21);
    let alerts = planted.alerts().await;
    let hit = one_new_hit(&alerts, 0, "sts", "GetCallerIdentity", VERIFIED);
    assert_eq!(hit["access_key_id"], planted.key_id.as_str());
    assert_eq!(hit["error_code"], Value::Null);
    assert!(hit["user_agent"].as_str().unwrap().starts_with("aws-cli/"));

    for (i, call) in DENIED_CALLS.into_iter().enumerate() {
        let [command, operation, code, action] = call.split(" | ").collect::<Vec<_>>()[..] else {
            panic!("{call}");
        };
        let out = planted.aws(command).await;
        let stderr = text(&out.stderr);
        // The CLI's own words for a refused call; v1 exits 255, v2 254.
        let error = format!("An error occurred ({code}) when calling the {operation} operation: ");
        let who = format!(
            "User: {} is not authorized to perform: {action}",
            planted.arn
        );
        assert!(
            stderr.contains(&error) && stderr.contains(&who),
            "aws {command}:\n{stderr}"
        );
        assert!(matches!(out.status.code(), Some(254 | 255)));
        let service = action.split(':').next().unwrap();
        let hit = one_new_hit(&planted.alerts().await, i + 1, service, operation, VERIFIED);
        assert_eq!(hit["error_code"], code);
        assert_eq!(hit["cloudtrail"]["verified"], true);
    }

    // The hit describes the request without repeating its credentials.
    let all = serde_json::to_string(&planted.alerts().await).unwrap();
    assert!(all.contains("\"authorization\""), "header names are kept");
    assert!(
        !all.contains(&planted.secret_key) && !all.contains("Signature="),
        "{all}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_secret_is_an_unverified_hit_and_an_unknown_key_no_hit() {
    let app = app().await;
    let planted = Planted::new(&app).await;
    let wrong = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    planted.replace_in_credentials(&planted.secret_key, wrong);

    let out = planted.aws("sts get-caller-identity").await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    let expected = "An error occurred (SignatureDoesNotMatch) when calling the GetCallerIdentity";
    assert!(stderr.contains(expected), "{stderr}");
    let alerts = planted.alerts().await;
    let hit = one_new_hit(&alerts, 0, "sts", "GetCallerIdentity", UNVERIFIED);
    assert_eq!(hit["cloudtrail"]["verified"], false);

    // A key no token owns (a made-up one, or a deleted decoy's): AWS's answer, a metric, no hit.
    planted.replace_in_credentials(&planted.key_id, "AKIAIOSFODNN7EXAMPLE");
    let out = planted.aws("sts get-caller-identity").await;
    assert!(text(&out.stderr).contains("An error occurred (InvalidClientTokenId)"));
    let out = planted.aws("s3 ls").await;
    assert!(text(&out.stderr).contains("An error occurred (InvalidAccessKeyId)"));
    assert_eq!(planted.alerts().await.len(), 1);
    let metrics = app.metrics().await;
    assert!(metrics.contains("canarykeys_ingest_unknown_key_total{path=\"sensor\"} 2"));
    app.stop().await;
}

#[tokio::test]
async fn boto3_reads_the_planted_file_and_is_a_hit() {
    let app = app().await;
    let planted = Planted::new(&app).await;
    let script = "import boto3, sys; \
        print(boto3.client('sts', endpoint_url=sys.argv[1]).get_caller_identity()['Arn'])";
    let mut python = planted.command("python3");
    let out = python.args(["-c", script, &planted.sensor]).output();
    let out = out.await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), planted.arn);
    let alerts = planted.alerts().await;
    let hit = one_new_hit(&alerts, 0, "sts", "GetCallerIdentity", VERIFIED);
    assert!(hit["user_agent"].as_str().unwrap().starts_with("Boto3/"));
    app.stop().await;
}

#[tokio::test]
async fn the_rust_sdk_is_a_third_client() {
    use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
    let app = app().await;
    let planted = Planted::new(&app).await;
    let credentials = Credentials::new(&planted.key_id, &planted.secret_key, None, None, "file");
    let region = Region::new("us-east-1");

    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(credentials.clone())
            .region(region.clone())
            .endpoint_url(&planted.sensor)
            .build(),
    );
    let identity = sts.get_caller_identity().send().await.unwrap();
    assert_eq!(identity.arn(), Some(planted.arn.as_str()));
    planted.clock.advance(std::time::Duration::from_secs(1));

    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(credentials)
            .region(region)
            .endpoint_url(&planted.sensor)
            .force_path_style(true)
            .build(),
    );
    let err = s3.list_buckets().send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    let err = err.into_service_error();
    let meta = aws_sdk_s3::error::ProvideErrorMetadata::meta(&err);
    assert_eq!(meta.code(), Some("AccessDenied"));
    assert!(meta.message().unwrap().contains(&planted.arn));

    let alerts = planted.alerts().await;
    one_new_hit(&alerts, 1, "s3", "ListBuckets", VERIFIED);
    assert_eq!(alerts[1]["event_name"], "GetCallerIdentity");
    assert_eq!(alerts[1]["note"], VERIFIED);
    app.stop().await;
}

#[tokio::test]
async fn presigned_s3_urls_are_hits() {
    let app = app().await;
    let planted = Planted::new(&app).await;
    let presign = || async {
        let out = planted
            .aws("s3 presign s3://prod-backups/db/2026-11-27.sql.gz")
            .await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    };

    // SigV4, as the CLI v2 presigns by default (and v1 once told to).
    let config = std::fs::read_to_string(planted.file("config")).unwrap();
    let v4 = format!("{config}s3 =\n    signature_version = s3v4\n");
    std::fs::write(planted.file("config"), v4).unwrap();
    let url = presign().await;
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let resp = app.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let request_id = resp.headers()["x-amz-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = resp.text().await.unwrap();
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    assert!(
        body.contains("s3:GetObject on resource: arn:aws:s3:::prod-backups/db/"),
        "{body}"
    );
    let hit = one_new_hit(&planted.alerts().await, 0, "s3", "GetObject", VERIFIED);
    assert_eq!(hit["request_id"], request_id.as_str());
    let raw = &hit["cloudtrail"];
    assert_eq!(raw["signature"], "presigned-url");
    assert_eq!(raw["request_parameters"]["bucketName"], "prod-backups");
    assert_eq!(raw["request_parameters"]["key"], "db/2026-11-27.sql.gz");

    // Signature Version 2, the CLI v1's default for presign: the key id alone makes a hit.
    std::fs::write(planted.file("config"), config).unwrap();
    let url = presign().await;
    if url.contains("AWSAccessKeyId=") {
        assert_eq!(app.http.get(&url).send().await.unwrap().status(), 403);
        let alerts = planted.alerts().await;
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0]["event_name"], "GetObject");
        let note = alerts[0]["note"].as_str().unwrap();
        assert!(
            note.starts_with("signature not checked (Signature Version 2)"),
            "{note}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_body_over_the_cap_is_left_unread_and_still_a_hit() {
    let app = spawn_app_with(|c| {
        c.sensor.listen = Some("127.0.0.1:0".parse().unwrap());
        c.sensor.max_body_bytes = 1024;
    })
    .await;
    let planted = Planted::new(&app).await;
    let filter = format!("Key=name,Values={}", "x".repeat(4096));
    let out = planted
        .aws(&format!("secretsmanager list-secrets --filters {filter}"))
        .await;
    assert!(!out.status.success());
    let alerts = planted.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["event_source"], "secretsmanager.amazonaws.com");
    let note = alerts[0]["note"].as_str().unwrap();
    assert!(
        note.starts_with("signature not checked (the body"),
        "{note}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_readme_quickstart_runs() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/quickstart.sh");
    let data = tempfile::tempdir().unwrap();
    // Two ports nothing listens on right now, for the server the script starts.
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, b) = (free(), free());
    let mut cmd = Command::new("bash");
    cmd.arg(script)
        .env("PORT", a.local_addr().unwrap().port().to_string())
        .env("SENSOR_PORT", b.local_addr().unwrap().port().to_string())
        .env("DATA_DIR", data.path())
        .env("CANARYKEYS", env!("CARGO_BIN_EXE_canarykeys"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .kill_on_drop(true);
    drop((a, b));
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), cmd.output()).await;
    let out = out.expect("the quickstart finishes").unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("\"Arn\": \"arn:aws:iam::"), "{stdout}");
    let alert = "GetCallerIdentity | sts.amazonaws.com | 127.0.0.1 | sensor | signature verified: \
                 the caller holds the secret key";
    assert!(stdout.lines().any(|l| l == alert), "{stdout}");
    // Step 6: the heartbeat came back through the sensor.
    let row = stdout.trim_end().lines().last().unwrap_or_default();
    assert!(
        row.contains(" us-east-1 ") && row.contains(" sensor ") && row.contains(" ok "),
        "{stdout}"
    );
}

/// The README shows the quickstart script's commands verbatim, so the tested script and what
/// people copy are the same text.
#[test]
fn the_readme_shows_the_tested_quickstart() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let script = std::fs::read_to_string(format!("{root}/docs/quickstart.sh")).unwrap();
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let body = &script[script.find("PORT=\"${PORT:-8080}\"").unwrap()..];
    assert!(
        readme.contains(body.trim_end()),
        "README.md's quickstart differs from docs/quickstart.sh"
    );
}
