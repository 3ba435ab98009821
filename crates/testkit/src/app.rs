//! The black-box app: starts the real application on port 0 with a temp data directory,
//! as `canarykeys serve` would, and talks to it over HTTP. Its domain time is a `ManualClock` the
//! test holds: time passes only when the test advances it, and `jobs` runs a round now.

use std::path::{Path, PathBuf};
use std::time::Duration;

use canarykeys_server::clock::ManualClock;
use canarykeys_server::jobs::Jobs;
use canarykeys_server::{Application, Config};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestApp {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub address: String,
    /// The AWS-compatible sensor, `http://127.0.0.1:PORT`, when `[sensor] listen` is set.
    pub sensor_address: Option<String>,
    pub data_dir: PathBuf,
    /// The app's clock, stopped at the start time: advance it to let time pass.
    pub clock: ManualClock,
    /// The app's background jobs, to run one round now (`deliver_once`, `expire_once`, ...).
    pub jobs: Jobs,
    /// Keeps the temp directory alive as long as the app (absent when the caller owns it).
    _dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
    pub http: reqwest::Client,
}

pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    // Tests create many tokens from one address; the limit has its own test.
    config.rate_limit.create_per_minute = 10_000;
    config.rate_limit.create_burst = 10_000;
    config.access.create = "open".into();
    // A test's hits must not lose their raw record because the machine's disk is nearly full;
    // the watermark has its own test (`disk_full`), on a disk of its own.
    config.storage.min_free = 0;
    // The heartbeat mints an identity and calls STS at start with a real minter; tests of
    // other things must not find an extra IAM user or call out. tests/heartbeat.rs turns it on.
    config.heartbeat.enabled = Some(false);
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    tweak(&mut config);
    let mut app = start(config).await;
    app._dir = Some(dir);
    app
}

/// Starts an app on an existing data directory (to check what survives a restart).
pub async fn spawn_app_in(data_dir: &Path) -> TestApp {
    start(test_config(data_dir)).await
}

/// Starts an app from a full configuration (the caller keeps its data directory).
pub async fn start_config(config: Config) -> TestApp {
    start(config).await
}

/// As `start_config`, on a clock the caller already holds (a restart that keeps the time).
pub async fn start_config_with_clock(config: Config, clock: ManualClock) -> TestApp {
    start_with_clock(config, clock).await
}

async fn start(config: Config) -> TestApp {
    start_with_clock(config, ManualClock::starting_now()).await
}

async fn start_with_clock(config: Config, clock: ManualClock) -> TestApp {
    let data_dir = config.data_dir.clone();
    let app = Application::build_with_clock(config, clock.shared())
        .await
        .expect("the app starts");
    let address = format!("http://{}", app.address());
    let jobs = app.jobs();
    let sensor_address = app.sensor_address().map(|a| format!("http://{a}"));
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        address,
        sensor_address,
        data_dir,
        clock,
        jobs,
        _dir: None,
        shutdown: Some(tx),
        handle: Some(handle),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// The `/metrics` page as text (a failed request fails the test).
    pub async fn metrics(&self) -> String {
        let resp = self.http.get(self.url("/metrics")).send().await.unwrap();
        resp.text().await.unwrap()
    }

    /// Lets `by` pass on the app's clock.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Runs the alert outbox once now (plans, closes cooldown windows, sends what is due).
    pub async fn deliver_once(&self) -> usize {
        self.jobs.deliver_once().await.expect("an outbox round")
    }

    /// Runs the outbox round after round until `check` holds (or `deadline` passes, failing
    /// the test with `what`).
    pub async fn deliver_until<T>(
        &self,
        what: &str,
        deadline: std::time::Duration,
        check: impl Fn() -> Option<T>,
    ) -> T {
        crate::wait_for(what, deadline, || async {
            self.deliver_once().await;
            check()
        })
        .await
    }

    /// Stops the server and waits until it has let go of its port and database.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }

    pub async fn post_token(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/api/v1/tokens"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a token that must succeed; returns the 201 body.
    pub async fn create_token(&self) -> Value {
        let resp = self
            .post_token(&json!({"kind": "aws_keys", "memo": "laptop ~/.aws/credentials", "email": "soc@example.com"}))
            .await;
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    }

    /// The credentials file of a token (its create response), which must download.
    pub async fn credentials(&self, created: &Value) -> String {
        let (id, secret) = id_and_secret(created);
        let resp = self
            .get_authed(&format!("/api/v1/tokens/{id}/credentials"), &secret)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "credentials of {id}");
        resp.text().await.unwrap()
    }

    pub fn get_authed(&self, path: &str, secret: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(secret)
    }
}

/// The id and manage secret of a created token.
pub fn id_and_secret(created: &Value) -> (String, String) {
    (
        created["id"].as_str().unwrap().to_owned(),
        created["manage_secret"].as_str().unwrap().to_owned(),
    )
}
