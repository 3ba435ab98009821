//! The black-box app: starts the real application on port 0 with a temp data directory,
//! as `canarykeys serve` would, and talks to it over HTTP.

use std::path::{Path, PathBuf};

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
    /// Keeps the temp directory alive as long as the app (absent when the caller owns it).
    _dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
    pub http: reqwest::Client,
    /// The app's background jobs, to run a round now (`jobs.deliver_once()`).
    pub jobs: canarykeys_server::jobs::Jobs,
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

/// Starts an app whose domain time is `clock` (a `ManualClock` the test advances).
pub async fn spawn_app_clocked(
    clock: canarykeys_server::clock::SharedClock,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    tweak(&mut config);
    let app = Application::build_with_clock(config, clock)
        .await
        .expect("the app starts");
    let mut app = serve(app, dir.path().to_path_buf());
    app._dir = Some(dir);
    app
}

async fn start(config: Config) -> TestApp {
    let data_dir = config.data_dir.clone();
    let app = Application::build(config).await.expect("the app starts");
    serve(app, data_dir)
}

fn serve(app: Application, data_dir: PathBuf) -> TestApp {
    let address = format!("http://{}", app.address());
    let jobs = app.jobs();
    let sensor_address = app.sensor_address().map(|a| format!("http://{a}"));
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        jobs,
        address,
        sensor_address,
        data_dir,
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
