//! The operator console in headless Chromium: sign in, bulk-create three tokens from a CSV
//! uploaded through the file input, get the ZIP with three folders, see a hit fed to the ingest
//! endpoint appear in the alert feed without a reload, and sign out.
//!
//! Needs `chromium` and `chromedriver` (`bash scripts/test.sh` installs them); it never skips.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use canarykeys_testkit::console::INGEST_SECRET;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
/// Upper bound of every wait (CI has 2 cores that cargo may still be using).
const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "a long operator password";

#[tokio::test]
async fn operator_bulk_creates_and_sees_a_live_alert() {
    let app = canarykeys_testkit::spawn_app_with(|c| {
        c.ingest.secret = Some(canarykeys_server::config::Secret::new(INGEST_SECRET))
    })
    .await;
    canarykeys_testkit::console::create_operator(&app, "bob", PASSWORD);

    let tmp = tempfile::tempdir().unwrap();
    let downloads = tmp.path().join("downloads");
    std::fs::create_dir(&downloads).unwrap();
    let driver = ChromeDriver::start().await;
    let client = connect(&driver, tmp.path(), &downloads).await;
    // The steps run in their own task so the session is closed even when one panics.
    let steps = tokio::spawn(steps(
        client.clone(),
        app.address.clone(),
        tmp.path().to_owned(),
        downloads,
    ));
    let outcome = steps.await;
    let _ = client.close().await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(p) => std::panic::resume_unwind(p),
            Err(e) => panic!("browser steps did not finish: {e}"),
        }
    }
    app.stop().await;
}

async fn steps(client: Client, address: String, tmp: PathBuf, downloads: PathBuf) {
    client
        .goto(&format!("{address}/console/tokens"))
        .await
        .unwrap();
    // Not signed in: the console sends the browser to the sign-in form.
    let form = wait(&client, Locator::Id("login-form")).await;
    form.find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys("bob")
        .await
        .unwrap();
    let password = form.find(Locator::Id("password")).await.unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    form.find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    let csv = tmp.join("memos.csv");
    std::fs::write(
        &csv,
        "memo\nweb01 /srv/app/.env\nci runner secrets\nlaptop ~/.aws\n",
    )
    .unwrap();
    let bulk = wait(&client, Locator::Id("bulk-create-form")).await;
    let file = bulk.find(Locator::Id("file")).await.unwrap();
    file.send_keys(&csv.display().to_string()).await.unwrap();
    bulk.find(Locator::Id("email"))
        .await
        .unwrap()
        .send_keys("soc@example.com")
        .await
        .unwrap();
    bulk.find(Locator::Id("bulk-create-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    let zip_path =
        canarykeys_testkit::wait_for_file(&downloads.join("canarykeys-tokens.zip"), WAIT).await;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let mut folders: Vec<String> = zip
        .file_names()
        .map(|n| n.split('/').next().unwrap().to_owned())
        .collect();
    folders.sort();
    folders.dedup();
    assert_eq!(folders.len(), 3, "the ZIP has one folder per memo");
    let mut creds = String::new();
    let name = format!("{}/credentials", folders[0]);
    zip.by_name(&name)
        .unwrap()
        .read_to_string(&mut creds)
        .unwrap();
    let key = creds
        .lines()
        .find_map(|l| l.strip_prefix("aws_access_key_id = "))
        .expect("a key in credentials")
        .to_owned();

    client
        .goto(&format!("{address}/console/alerts"))
        .await
        .unwrap();
    wait(&client, Locator::Id("live-status")).await;
    ingest(&address, &key).await;
    // Only console.js adds `new` to a row: its presence shows the row came without a reload.
    let row = wait(&client, Locator::Css("#feed-rows tr.hit.new")).await;
    let text = row.text().await.unwrap();
    assert!(
        text.contains("GetCallerIdentity") && text.contains("203.0.113.7"),
        "{text}"
    );

    client
        .find(Locator::Id("sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait(&client, Locator::Id("login-form")).await;
    client.goto(&format!("{address}/console")).await.unwrap();
    wait(&client, Locator::Id("login-form")).await;
}

async fn wait(client: &Client, locator: Locator<'_>) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(WAIT)
        .for_element(locator)
        .await
        .unwrap_or_else(|e| panic!("{locator:?} did not appear: {e}"))
}

async fn ingest(address: &str, key: &str) {
    let rec = json!({
        "eventVersion": "1.09", "userIdentity": {"type": "IAMUser", "accessKeyId": key},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity", "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7", "userAgent": "aws-cli/2.15.0",
        "eventID": "console-browser-1", "eventType": "AwsApiCall"
    });
    let resp = reqwest::Client::new()
        .post(format!("{address}/ingest/v1/cloudtrail"))
        .bearer_auth(INGEST_SECRET)
        .header("content-type", "application/json")
        .body(json!({"Records": [rec]}).to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "ingest: {}", resp.status());
}

/// A chromedriver on a free local port, killed when dropped.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    async fn start() -> Self {
        assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} not found");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let start = Instant::now();
        loop {
            assert!(
                driver.child.try_wait().unwrap().is_none(),
                "chromedriver exited"
            );
            if let Ok(resp) = http.get(format!("{}/status", driver.url)).send().await {
                if resp
                    .json::<serde_json::Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true)
                {
                    return driver;
                }
            }
            assert!(start.elapsed() < WAIT, "chromedriver not ready");
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

async fn connect(driver: &ChromeDriver, tmp: &Path, downloads: &Path) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                     format!("--user-data-dir={}", tmp.join("profile").display())],
            "prefs": {"download.default_directory": downloads, "download.prompt_for_download": false},
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("start headless Chromium")
}
