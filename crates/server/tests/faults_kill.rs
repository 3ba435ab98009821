//! Fault suite: `kill -9` under load. The real `canarykeys serve` binary takes concurrent
//! one-event ingests (each with its own eventID) and sends a webhook per hit to a loopback
//! receiver; the test kills it with SIGKILL mid-load and restarts it on the same data, again and
//! again. Afterwards every event answered 2xx is exactly one hit, and every hit's alert reached
//! the receiver at least once. A second copy is allowed only where a crash cut a send short; the
//! test counts and prints them. `CANARYKEYS_FAULT_KILLS` sets the number of kills (default 5;
//! `scripts/faults.sh` runs 20).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canarykeys_testkit::receiver::Receiver;
use canarykeys_testkit::smtp_sink::free_port;
use canarykeys_testkit::{cli, wait_for, TestDatabase, WAIT};
use rand::Rng;
use serde_json::{json, Value};

const INGEST: &str = "faults-kill-ingest-secret";
const SENDERS: usize = 4;

fn kills() -> usize {
    std::env::var("CANARYKEYS_FAULT_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// One `canarykeys serve` process on a fixed address and data directory.
struct Server {
    listen: SocketAddr,
    data: std::path::PathBuf,
    database_url: Option<String>,
    child: Option<Child>,
}

impl Server {
    fn base(&self) -> String {
        format!("http://{}", self.listen)
    }

    async fn start(&mut self, http: &reqwest::Client) -> Duration {
        let started = Instant::now();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.join("serve.log"))
            .unwrap();
        let mut cmd = cli::command(&self.data);
        cmd.args(["serve", "--listen", &self.listen.to_string(), "--data-dir"])
            .arg(&self.data)
            .env("CANARYKEYS_ACCESS__CREATE", "open")
            .env("CANARYKEYS_INGEST__SECRET", INGEST)
            .env("CANARYKEYS_ALERTS__ALLOW_PRIVATE_WEBHOOKS", "true")
            .env("CANARYKEYS_ALERTS__COOLDOWN", "0s")
            .env("CANARYKEYS_ALERTS__RETRY_BASE_DELAY", "200ms")
            .env("CANARYKEYS_ALERTS__RETRY_MAX_DELAY", "1s")
            // A send cut short by the kill is claimed again this soon after the restart (the
            // least the server accepts: the 10 s webhook timeout plus 5 s).
            .env("CANARYKEYS_ALERTS__CLAIM_LEASE", "15s")
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(url) = &self.database_url {
            cmd.env("CANARYKEYS_DATABASE_URL", url);
        }
        self.child = Some(cmd.spawn().expect("canarykeys serve starts"));
        let url = format!("{}/healthz", self.base());
        wait_for("serve answers /healthz", WAIT, || {
            let req = http.get(&url).send();
            async move { req.await.ok().filter(|r| r.status().is_success()) }
        })
        .await;
        started.elapsed()
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends one-event ingests with fresh eventIDs until the server stops answering; records the
/// IDs answered 2xx.
async fn sender(
    http: reqwest::Client,
    base: String,
    token: Value,
    next: Arc<AtomicUsize>,
    acked: Arc<Mutex<BTreeSet<String>>>,
) {
    loop {
        let id = format!("kill-{:06}", next.fetch_add(1, Ordering::SeqCst));
        let record = json!({
            "eventVersion": "1.09",
            "userIdentity": {"type": "IAMUser", "accessKeyId": token["aws"]["access_key_id"],
                "userName": token["aws"]["username"], "accountId": token["aws"]["account_id"]},
            "eventTime": "2026-11-28T10:00:00Z", "eventSource": "sts.amazonaws.com",
            "eventName": "GetCallerIdentity", "awsRegion": "us-east-1",
            // The user agent carries the eventID into the webhook body, to match alerts to hits.
            "sourceIPAddress": "192.0.2.10", "userAgent": id, "eventID": id
        });
        let resp = http
            .post(format!("{base}/ingest/v1/cloudtrail"))
            .bearer_auth(INGEST)
            .json(&record)
            .send()
            .await;
        match resp {
            Ok(r) if r.status().is_success() => {
                acked.lock().unwrap().insert(id);
            }
            Ok(r) => assert!(
                r.status().is_server_error(),
                "ingest answered {}",
                r.status()
            ),
            Err(_) => return,
        }
    }
}

/// Every hit of the token, read through the API page by page.
async fn hits(http: &reqwest::Client, base: &str, token: &Value) -> Vec<Value> {
    let (id, secret) = canarykeys_testkit::id_and_secret(token);
    let mut all = Vec::new();
    loop {
        let page: Value = http
            .get(format!(
                "{base}/api/v1/tokens/{id}/hits?limit=500&offset={}",
                all.len()
            ))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["hits"].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            return all;
        }
        all.extend(items);
    }
}

async fn kill_under_load(database_url: Option<String>, backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut server = Server {
        listen: SocketAddr::from(([127, 0, 0, 1], free_port())),
        data: dir.path().to_owned(),
        database_url,
        child: None,
    };
    server.start(&http).await;
    let resp = http
        .post(format!("{}/api/v1/tokens", server.base()))
        .json(&json!({"memo": "ci runner", "webhook_url": receiver.url()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let token: Value = resp.json().await.unwrap();

    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut restarts = Vec::new();
    for _ in 0..kills() {
        let senders: Vec<_> = (0..SENDERS)
            .map(|_| {
                tokio::spawn(sender(
                    http.clone(),
                    server.base(),
                    token.clone(),
                    next.clone(),
                    acked.clone(),
                ))
            })
            .collect();
        // Kill once a random number of further events were acknowledged: mid-load, mid-send.
        let target = acked.lock().unwrap().len() + rand::thread_rng().gen_range(10..40);
        wait_for("events acknowledged before the kill", WAIT, || {
            let n = acked.lock().unwrap().len();
            async move { (n >= target).then_some(()) }
        })
        .await;
        server.kill();
        for s in senders {
            s.await.unwrap();
        }
        restarts.push(server.start(&http).await);
    }

    let acked = acked.lock().unwrap().clone();
    let hits = hits(&http, &server.base(), &token).await;
    let mut per_event: BTreeMap<String, usize> = BTreeMap::new();
    for h in &hits {
        *per_event
            .entry(h["event_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let doubled: Vec<_> = per_event.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "events stored twice: {doubled:?}");
    let lost: Vec<_> = acked
        .iter()
        .filter(|id| !per_event.contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged events with no hit: {lost:?}");

    // Every hit's alert arrives at least once; count the second copies.
    let expected: BTreeSet<String> = per_event.keys().cloned().collect();
    let received = wait_for("an alert for every hit", WAIT * 2, || {
        let bodies = receiver.bodies();
        let expected = &expected;
        async move {
            let seen: BTreeSet<String> = bodies
                .iter()
                .filter_map(|b| b["event"]["user_agent"].as_str().map(str::to_owned))
                .collect();
            expected.is_subset(&seen).then_some(bodies)
        }
    })
    .await;
    let duplicates = received.len() - expected.len();
    let slowest = restarts.iter().max().copied().unwrap_or_default();
    println!(
        "faults: kill-9 {backend}: {} kills, {} events acknowledged, {} hits, {} alerts received, \
         {duplicates} duplicates, 0 lost, slowest restart {slowest:?}",
        restarts.len(),
        acked.len(),
        hits.len(),
        received.len()
    );
    // A second copy needs a send cut short by a crash: at most a batch's worth per kill.
    assert!(duplicates <= restarts.len() * 16, "{duplicates} duplicates");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_on_sqlite() {
    kill_under_load(None, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing_on_postgres() {
    let db = TestDatabase::create("ck_faults_kill").await;
    kill_under_load(Some(db.url().to_owned()), "postgres").await;
    db.drop_database().await;
}
