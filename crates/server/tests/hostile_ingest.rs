//! Forged signatures against the ingest endpoint. A signed request's body must arrive before its
//! signature can be checked, so a forger can start a request and trickle its body. Such requests
//! wait in a bounded pool of their own (per address and in all) and never hold a parse slot:
//! the relay's real deliveries are answered while 64 tricklers, reconnecting whenever they are
//! cut off, keep the pool busy.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canarykeys_core::signing;
use canarykeys_server::config::Secret;
use canarykeys_testkit::pollers::record;
use canarykeys_testkit::{spawn_app_with, wait_for, TestApp};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const SECRET: &str = "hostile-ingest-secret-0123456789abc";
/// A deadline for each valid ingest under attack, not a timing claim: without the pool, the
/// tricklers hold every parse slot for the listener's 60 s request deadline.
const ANSWERED: Duration = Duration::from_secs(10);

async fn app() -> TestApp {
    spawn_app_with(|c| c.ingest.secret = Some(Secret::new(SECRET))).await
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn server(app: &TestApp) -> SocketAddr {
    app.address.trim_start_matches("http://").parse().unwrap()
}

/// A request head with a well-formed, wrong signature, promising `len` bytes of body.
fn forged_head(len: usize) -> String {
    format!(
        "POST /ingest/v1/cloudtrail HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {len}\r\n{}: t={},v1={}\r\n\r\n",
        signing::HEADER,
        unix_now(),
        "0".repeat(64)
    )
}

/// Connects from `source` (a loopback address of its own, as a distinct attacker would).
async fn connect_from(source: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(to).await
}

/// Starts a request, sends one byte of its 100,000-byte body and holds it until the server cuts
/// it off (its body deadline); then starts again. Runs until aborted.
async fn trickle(source: [u8; 4], to: SocketAddr, started: Arc<AtomicUsize>) {
    loop {
        let Ok(mut conn) = connect_from(source, to).await else {
            tokio::task::yield_now().await;
            continue;
        };
        if conn
            .write_all(forged_head(100_000).as_bytes())
            .await
            .is_err()
            || conn.write_all(b" ").await.is_err()
        {
            continue;
        }
        started.fetch_add(1, Ordering::Relaxed);
        // Wait for the server's answer or close: that is when a real trickler reconnects.
        let mut buf = [0u8; 1024];
        while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
    }
}

#[tokio::test]
async fn valid_ingests_are_answered_while_64_forgers_trickle_and_reconnect() {
    let app = app().await;
    let created = app.create_token().await;
    let to = server(&app);
    let started = Arc::new(AtomicUsize::new(0));
    let attackers: Vec<_> = (0..64u8)
        .map(|i| tokio::spawn(trickle([127, 0, 1, i + 1], to, started.clone())))
        .collect();
    wait_for(
        "64 forged requests under way",
        Duration::from_secs(30),
        || async { (started.load(Ordering::Relaxed) >= 64).then_some(()) },
    )
    .await;

    let client = reqwest::Client::builder()
        .timeout(ANSWERED)
        .build()
        .unwrap();
    for i in 0..12 {
        let body =
            serde_json::to_vec(&json!({ "Records": [record(&created, &format!("ok-{i}"), i)] }))
                .unwrap();
        let sig = signing::sign(SECRET.as_bytes(), unix_now(), &body);
        let resp = client
            .post(app.url("/ingest/v1/cloudtrail"))
            .header(signing::HEADER, sig)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("valid ingest {i} not answered under attack: {e}"));
        assert_eq!(resp.status(), 200, "valid ingest {i}");
    }
    for a in attackers {
        a.abort();
    }
    app.stop().await;
}

#[tokio::test]
async fn one_address_holds_at_most_four_unverified_requests_and_the_fifth_gets_429() {
    let app = app().await;
    let to = server(&app);
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = connect_from([127, 0, 2, 1], to).await.unwrap();
        conn.write_all(forged_head(1000).as_bytes()).await.unwrap();
        held.push(conn);
    }
    // The fifth is refused at once, while the four still wait for their bodies. Its answer is
    // read from the socket (the places are taken only once the server reads a head, so retry
    // until it has read all four).
    let answer = wait_for("a 429 for the fifth", Duration::from_secs(30), || async {
        let mut conn = connect_from([127, 0, 2, 1], to).await.ok()?;
        conn.write_all(forged_head(1000).as_bytes()).await.ok()?;
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        text.starts_with("HTTP/1.1 429").then_some(text)
    })
    .await;
    assert!(
        answer.to_ascii_lowercase().contains("retry-after"),
        "{answer}"
    );
    assert!(answer.contains("\"busy\""), "{answer}");
    // Another address is still admitted: the bound is per address.
    let body = b"{\"Records\":[]}".to_vec();
    let sig = signing::sign(SECRET.as_bytes(), unix_now(), &body);
    let resp = app
        .http
        .post(app.url("/ingest/v1/cloudtrail"))
        .header(signing::HEADER, sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    drop(held);
    app.stop().await;
}

#[tokio::test]
async fn a_signed_request_without_content_length_gets_411() {
    let app = app().await;
    let mut conn = TcpStream::connect(server(&app)).await.unwrap();
    let head = format!(
        "POST /ingest/v1/cloudtrail HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\
         {}: t={},v1={}\r\n\r\n0\r\n\r\n",
        signing::HEADER,
        unix_now(),
        "0".repeat(64)
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 411"), "{text}");
    assert!(text.contains("length_required"), "{text}");
    app.stop().await;
}
