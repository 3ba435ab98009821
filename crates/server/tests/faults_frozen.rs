//! Fault suite: a PostgreSQL that goes silent. A TCP proxy between the server and the machine's
//! PostgreSQL stops forwarding without a reset (a partition, a failover that sends nothing): the
//! sockets stay open and nothing arrives. Every request, in flight or new, must still end by its
//! deadline (`[database] request_timeout`), with a 200 or a 503, and ingest recovers by itself
//! after the thaw. Also: a clean stop waits at most `[server] shutdown_grace` for open requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canarykeys_server::config::{Config, Secret};
use canarykeys_testkit::{spawn_app_with, wait_for, TestApp, TestDatabase, WAIT};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const INGEST: &str = "faults-frozen-ingest-secret";
/// Each request's own deadline in this test: past it the request counts as hung.
const REQUEST_DEADLINE: Duration = Duration::from_secs(12);

/// Forwards TCP both ways to `upstream`; frozen, it neither reads nor writes, and keeps every
/// socket open (no FIN, no RST), as a silent network would.
struct FreezingProxy {
    port: u16,
    frozen: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl FreezingProxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (frozen, gate) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, gate.clone()));
                tokio::spawn(pump(server_read, client_write, gate.clone()));
            }
        });
        Self { port, frozen, task }
    }

    fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    fn thaw(&self) {
        self.frozen.send_replace(false);
    }
}

impl Drop for FreezingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` while the gate is open. Frozen, bytes already read are held back and
/// nothing more is read, so the kernel's buffers fill and the peers simply wait.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut gate: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if gate.wait_for(|frozen| !*frozen).await.is_err() {
            return;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = gate.wait_for(|frozen| *frozen) => continue,
        };
        if gate.wait_for(|frozen| !*frozen).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn record(token: &Value, event_id: &str) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": token["aws"]["access_key_id"],
            "userName": token["aws"]["username"], "accountId": token["aws"]["account_id"]},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity", "awsRegion": "us-east-1",
        "sourceIPAddress": "192.0.2.44", "eventID": event_id
    })
}

/// One ingest within `REQUEST_DEADLINE`: its status, or why it did not end with one.
async fn ingest(
    http: &reqwest::Client,
    app: &TestApp,
    token: &Value,
    event_id: &str,
) -> Result<reqwest::Response, String> {
    http.post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(INGEST)
        .json(&record(token, event_id))
        .send()
        .await
        .map_err(|e| format!("{event_id}: no answer ({e})"))
}

/// Each answer must be a 200, or a 503 that says when to retry.
fn judge(resp: Result<reqwest::Response, String>) -> Result<u16, String> {
    let resp = resp?;
    match resp.status().as_u16() {
        200 => Ok(200),
        503 if resp.headers().contains_key("retry-after") => Ok(503),
        503 => Err("a 503 without Retry-After".into()),
        other => Err(format!("status {other}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_postgres_answers_every_request_by_its_deadline_and_ingest_recovers_after_the_thaw(
) {
    let db = TestDatabase::create("ck_frozen").await;
    let url = url::Url::parse(db.url()).unwrap();
    let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = FreezingProxy::start(upstream).await;
    let mut via_proxy = url.clone();
    via_proxy.set_host(Some("127.0.0.1")).unwrap();
    via_proxy.set_port(Some(proxy.port)).unwrap();
    let app = spawn_app_with(|c: &mut Config| {
        c.database_url = Some(via_proxy.to_string());
        c.encryption_key = Some(Secret::new("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="));
        c.ingest.secret = Some(Secret::new(INGEST));
        c.database.request_timeout = Duration::from_secs(2);
        c.sensor.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let app = Arc::new(app);
    let http = reqwest::Client::builder()
        .timeout(REQUEST_DEADLINE)
        .build()
        .unwrap();
    let token = app.create_token().await;
    assert_eq!(
        judge(ingest(&http, &app, &token, "frozen-warmup").await),
        Ok(200)
    );

    // Four senders, each sending one ingest after another until told to stop.
    let sent = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let statuses = Arc::new(Mutex::new(Vec::<u16>::new()));
    let (stop, stopped) = watch::channel(false);
    let senders: Vec<_> = (0..4)
        .map(|sender| {
            let (http, app, token) = (http.clone(), app.clone(), token.clone());
            let (sent, failures, statuses) = (sent.clone(), failures.clone(), statuses.clone());
            let stopped = stopped.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while !*stopped.borrow() {
                    n += 1;
                    let id = format!("frozen-{sender}-{n}");
                    match judge(ingest(&http, &app, &token, &id).await) {
                        Ok(status) => statuses.lock().unwrap().push(status),
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                    sent.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    wait_for("the senders are under way", WAIT, || {
        let sent = sent.load(Ordering::SeqCst);
        async move { (sent >= 8).then_some(()) }
    })
    .await;

    proxy.freeze();
    let frozen_at = statuses.lock().unwrap().len();
    // Every sender's request in flight at the freeze, and the ones after it, end: at least two
    // more answers per sender arrive while the database is silent.
    wait_for(
        "requests end while PostgreSQL is frozen",
        REQUEST_DEADLINE * 4,
        || {
            let unavailable = statuses.lock().unwrap()[frozen_at..]
                .iter()
                .filter(|s| **s == 503)
                .count();
            async move { (unavailable >= 8).then_some(()) }
        },
    )
    .await;
    // A new request, sent while frozen, is answered too.
    assert_eq!(
        judge(ingest(&http, &app, &token, "frozen-new").await),
        Ok(503),
        "a new ingest while PostgreSQL is silent is told to retry"
    );
    // The sensor answers (AWS's server error: the hit could not be stored) instead of hanging.
    let sensor = app.sensor_address.clone().unwrap();
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/20261128/us-east-1/sts/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature={}",
        token["aws"]["access_key_id"].as_str().unwrap(),
        "0".repeat(64)
    );
    let resp = http
        .post(format!("{sensor}/"))
        .header("authorization", authorization)
        .header("x-amz-date", "20261128T100000Z")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Action=GetCallerIdentity&Version=2011-06-15")
        .send()
        .await
        .expect("the sensor answers while PostgreSQL is silent");
    assert!(
        resp.status().is_server_error(),
        "the sensor reports a server error: {}",
        resp.status()
    );

    proxy.thaw();
    let mut n = 0;
    wait_for("ingest works again after the thaw", WAIT, || {
        n += 1;
        let (http, app, token) = (&http, &app, &token);
        async move {
            let status = judge(ingest(http, app, token, &format!("thawed-{n}")).await);
            (status == Ok(200)).then_some(())
        }
    })
    .await;
    stop.send_replace(true);
    for sender in senders {
        sender.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "every request ends with 200 or 503: {failures:?}"
    );
    let statuses = statuses.lock().unwrap().clone();
    println!(
        "faults: frozen postgres: {} answers, {} of them 503",
        statuses.len(),
        statuses.iter().filter(|s| **s == 503).count()
    );
    let app = Arc::into_inner(app).expect("the senders are done");
    app.stop().await;
    drop(proxy);
    db.drop_database().await;
}

#[tokio::test]
async fn a_clean_stop_waits_at_most_shutdown_grace_for_an_open_request() {
    let app = spawn_app_with(|c: &mut Config| {
        c.server.shutdown_grace = Duration::from_secs(1);
        // Far beyond the test's deadline: only the grace can end the held request.
        c.listeners.request_timeout = Duration::from_secs(600);
    })
    .await;
    let mut held = TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    // A body that never arrives. `Expect: 100-continue` makes the server say when the handler
    // starts reading it, so the request is known to be open before the stop.
    held.write_all(
        b"POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n{\"memo\":",
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("100 Continue") {
            let n = held.read(&mut buf).await.unwrap();
            assert!(n > 0, "the server closed the held request: {seen:?}");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the server starts reading the held body");
    tokio::time::timeout(WAIT, app.stop())
        .await
        .expect("the stop ends by shutdown_grace, not when the held request would");
    drop(held);
}
