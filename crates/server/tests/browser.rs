//! End-to-end test in headless Chromium: create an AWS-keys canary through the
//! real HTML form, download its `credentials` file through the browser, and check
//! that the real AWS CLI reads back the keys the page showed.
//!
//! Needs `chromium`, `chromedriver` and the `aws` CLI; `bash scripts/test.sh`
//! installs them. Without them this test fails: it never skips.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

/// Debian's Chromium launcher (package `chromium`).
const CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL_HINT: &str =
    "run `bash scripts/test.sh`, which installs chromium, chromium-driver and the aws CLI";
/// Upper bound of every wait below (chromedriver start-up, page, download).
/// Generous because CI has 2 cores that cargo may still be using.
const WAIT: Duration = Duration::from_secs(20);

const EMAIL: &str = "soc@example.com";
const MEMO: &str = "laptop ~/.aws/credentials";

#[tokio::test]
async fn aws_keys_created_in_browser_download_as_credentials_file_the_aws_cli_reads() {
    let app = canarykeys_testkit::spawn_app().await;
    let tmp = tempfile::Builder::new()
        .prefix("canarykeys-browser-")
        .tempdir()
        .expect("create tempdir");
    let downloads = tmp.path().join("downloads");
    std::fs::create_dir(&downloads).expect("create download dir");

    let driver = ChromeDriver::start().await;
    let client = connect(&driver, tmp.path(), &downloads).await;

    // The browser steps run in their own task so that, even when one of their
    // assertions panics, the session is closed and Chromium exits cleanly.
    let steps = tokio::spawn(create_and_download(
        client.clone(),
        app.address.clone(),
        tmp.path().to_owned(),
        downloads,
    ));
    let outcome = steps.await;
    let _ = client.close().await;
    let shown = match outcome {
        Ok(shown) => shown,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("browser steps did not finish: {e}"),
    };

    // The real AWS CLI must find the keys the page showed in the downloaded file.
    let content = std::fs::read_to_string(&shown.credentials).expect("read downloaded file");
    // A path that does not exist, so no config file can supply a value.
    let no_config = tmp.path().join("no-aws-config");
    for (name, expected) in [
        ("aws_access_key_id", &shown.access_key_id),
        ("aws_secret_access_key", &shown.secret_access_key),
    ] {
        let got = aws_configure_get(name, &shown.credentials, &no_config).await;
        assert_eq!(
            &got, expected,
            "`aws configure get {name}` disagrees with the page; downloaded file:\n{content}"
        );
    }
}

/// What the result page showed, and where the browser saved the download.
struct Shown {
    access_key_id: String,
    secret_access_key: String,
    credentials: PathBuf,
}

async fn create_and_download(
    client: Client,
    address: String,
    tmp: PathBuf,
    downloads: PathBuf,
) -> Shown {
    client
        .goto(&format!("{address}/"))
        .await
        .expect("open the home page");
    let form = client
        .find(Locator::Id("create-form"))
        .await
        .expect("home page has #create-form");
    form.find(Locator::Css("select[name=kind]"))
        .await
        .expect("form has select[name=kind]")
        .select_by_value("aws_keys")
        .await
        .expect("select kind aws_keys");
    form.find(Locator::Css("input[name=email]"))
        .await
        .expect("form has input[name=email]")
        .send_keys(EMAIL)
        .await
        .expect("type email");
    form.find(Locator::Css("textarea[name=memo]"))
        .await
        .expect("form has textarea[name=memo]")
        .send_keys(MEMO)
        .await
        .expect("type memo");
    // Clicking the real button submits the hidden CSRF field along with the rest.
    form.find(Locator::Id("create"))
        .await
        .expect("form has button#create")
        .click()
        .await
        .expect("click create");

    let access_key_id = client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("access-key-id"))
        .await
        .expect("result page shows #access-key-id")
        .text()
        .await
        .expect("read access key id");
    let secret_access_key = text_of(&client, "secret-access-key").await;
    let memo = text_of(&client, "memo").await;

    assert!(
        access_key_id.len() == 20
            && access_key_id.starts_with("AKIA")
            && access_key_id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        "access key id {access_key_id:?} is not AKIA + 16 upper-case letters/digits"
    );
    assert_eq!(
        secret_access_key.len(),
        40,
        "secret access key {secret_access_key:?} is not 40 characters"
    );
    assert_eq!(memo, MEMO, "result page shows the memo as typed");

    let png = client
        .screenshot()
        .await
        .expect("screenshot the result page");
    std::fs::write(tmp.join("result.png"), &png).expect("save screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 8,
        "screenshot is not a non-empty PNG ({} bytes)",
        png.len()
    );

    let link = client
        .find(Locator::Id("download-credentials"))
        .await
        .expect("result page has a#download-credentials");
    let href = link
        .attr("href")
        .await
        .expect("read href")
        .unwrap_or_default();
    assert!(
        href.contains("format=credentials"),
        "download link {href:?} does not ask for format=credentials"
    );
    link.click().await.expect("click the download link");
    let credentials = canarykeys_testkit::wait_for_file(&downloads.join("credentials"), WAIT).await;

    Shown {
        access_key_id,
        secret_access_key,
        credentials,
    }
}

async fn text_of(client: &Client, id: &str) -> String {
    client
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("result page has no #{id}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("read #{id}: {e}"))
}

/// Runs `aws configure get NAME` against only the given credentials file.
async fn aws_configure_get(name: &str, credentials: &Path, config: &Path) -> String {
    let mut cmd = tokio::process::Command::new("aws");
    cmd.args(["configure", "get", name])
        .env("AWS_SHARED_CREDENTIALS_FILE", credentials)
        .env("AWS_CONFIG_FILE", config);
    // Nothing from the caller's environment may pick another profile or answer instead.
    for var in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run `aws` ({e}); {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "`aws configure get {name}` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("aws prints UTF-8")
        .trim()
        .to_owned()
}

/// A chromedriver process on a free local port, killed when dropped, so that a
/// failing test leaves no driver behind.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    async fn start() -> Self {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} not found; {INSTALL_HINT}"
        );
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `chromedriver` ({e}); {INSTALL_HINT}"));
        let mut driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        driver.wait_ready().await;
        driver
    }

    /// Polls `GET /status` until chromedriver reports ready.
    async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll chromedriver") {
                panic!("chromedriver exited early ({status}); {INSTALL_HINT}");
            }
            let ready = match http.get(format!("{}/status", self.url)).send().await {
                Ok(resp) => resp
                    .json::<serde_json::Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                return;
            }
            assert!(
                start.elapsed() < WAIT,
                "chromedriver did not become ready on {} within {WAIT:?}",
                self.url
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (the OS picks it; the listener is dropped).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("find a free port")
        .port()
}

/// Opens a headless Chromium session whose downloads land in `downloads`
/// without a prompt.
async fn connect(driver: &ChromeDriver, tmp: &Path, downloads: &Path) -> Client {
    let profile = tmp.join("chromium-profile");
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                // Root in a container has no usable sandbox.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                // No network beyond loopback: keep Chromium from reaching out.
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
            // headless=new honours these, so a click on the link saves the file.
            "prefs": {
                "download.default_directory": downloads,
                "download.prompt_for_download": false,
            },
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!("json! object literal")
    };
    // chromedriver listens on plain HTTP on loopback, so the client needs no TLS
    // (which would also drag in a second rustls crypto provider).
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("cannot start headless Chromium via chromedriver: {e}"))
}
