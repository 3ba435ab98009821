//! Hostile clients against both listeners (web/API and sensor): slowloris, hoarded idle
//! connections, oversized headers, compression and base64 bombs, deeply nested JSON, invalid
//! UTF-8 and a promised body that never comes. After each attack the server is up, a valid
//! request is answered, and the test process's resident memory (the server runs in it) stays
//! under `RSS_BOUND_MIB`.
//!
//! The listeners run with short deadlines here (2 s for headers, 4 s per request) so a dropped
//! client shows within the test's time; the defaults are 10 s and 60 s.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use canarykeys_server::config::Secret;
use canarykeys_testkit::{spawn_app_with, wait_for, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "hostile-ingest-secret-0123456789";
/// The whole test process (server, clients, the bombs the tests build) stays under this.
const RSS_BOUND_MIB: u64 = 512;
/// How long a valid request may take to be answered under attack: a deadline, not a timing claim.
const ANSWERED: Duration = Duration::from_secs(10);
/// How long the server may take to drop a stalled client (its deadlines are 2 s and 4 s).
const DROPPED: Duration = Duration::from_secs(30);

async fn app() -> TestApp {
    spawn_app_with(|c| {
        c.ingest.secret = Some(Secret::new(SECRET));
        c.sensor.listen = Some("127.0.0.1:0".parse().unwrap());
        c.listeners.header_timeout = Duration::from_secs(2);
        c.listeners.request_timeout = Duration::from_secs(4);
    })
    .await
}

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024
}

/// The server is up on both listeners, answers a valid ingest, and memory is bounded.
async fn still_serving(app: &TestApp) {
    let ingest = app.url("/ingest/v1/cloudtrail");
    wait_for("a valid ingest answered", ANSWERED, || async {
        let resp = app
            .http
            .post(&ingest)
            .bearer_auth(SECRET)
            .body(r#"{"Records":[]}"#)
            .send()
            .await
            .ok()?;
        (resp.status() == 200).then_some(())
    })
    .await;
    let sensor = app.sensor_address.clone().unwrap();
    wait_for("the sensor answers", ANSWERED, || async {
        let resp = app.http.get(format!("{sensor}/")).send().await.ok()?;
        (resp.status().as_u16() < 500).then_some(())
    })
    .await;
    let rss = rss_mib();
    assert!(rss < RSS_BOUND_MIB, "resident memory {rss} MiB");
}

/// Sends `head`, then one more byte every 200 ms, until the server closes the connection.
/// Returns false if the server still holds it after `DROPPED`.
async fn trickle(to: SocketAddr, head: Vec<u8>) -> bool {
    let Ok(mut stream) = TcpStream::connect(to).await else {
        return true;
    };
    if stream.write_all(&head).await.is_err() {
        return true;
    }
    let mut buf = [0u8; 1024];
    let started = std::time::Instant::now();
    while started.elapsed() < DROPPED {
        // The attacker's pace, not a wait for the server.
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return true,
                // An answer (408/401/400) is fine; keep reading until the close.
                Ok(_) => continue,
            },
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if stream.write_all(b"a").await.is_err() {
                    return true;
                }
            }
        }
    }
    false
}

/// Writes a raw request and returns the first bytes of the answer ("" when the server closed).
async fn raw(to: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(to).await.unwrap();
    // The server may close before it has read everything it refuses; that is an answer too.
    let _ = stream.write_all(request).await;
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(DROPPED, stream.read(&mut buf))
        .await
        .expect("the server answers or closes")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn slowloris(target: SocketAddr, app: &TestApp) {
    let attackers: Vec<_> = (0..20)
        .map(|_| {
            tokio::spawn(trickle(
                target,
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec(),
            ))
        })
        .collect();
    still_serving(app).await;
    for attacker in attackers {
        assert!(attacker.await.unwrap(), "a slowloris connection was kept");
    }
    still_serving(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_the_web_listener_is_dropped() {
    let app = app().await;
    slowloris(addr(&app.address), &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_the_sensor_is_dropped() {
    let app = app().await;
    slowloris(addr(app.sensor_address.as_deref().unwrap()), &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_trickling_ingest_bodies_cannot_hold_its_queue() {
    let app = app().await;
    let to = addr(&app.address);
    let head = b"POST /ingest/v1/cloudtrail HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n";
    // Refused on their headers alone, before any body byte.
    let first = raw(to, head).await;
    assert!(first.starts_with("HTTP/1.1 401"), "{first}");
    // A well-shaped but forged signature passes the first check, takes a slot, and is cut off
    // at the request deadline; strangers without credentials never get that far.
    let forged = format!(
        "POST /ingest/v1/cloudtrail HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\
         X-Canarykeys-Signature: t={},v1={}\r\n\r\n",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        "ab".repeat(32)
    );
    let mut attackers: Vec<_> = (0..8)
        .map(|_| tokio::spawn(trickle(to, head.to_vec())))
        .collect();
    attackers.extend((0..8).map(|_| tokio::spawn(trickle(to, forged.clone().into_bytes()))));
    still_serving(&app).await;
    for attacker in attackers {
        assert!(attacker.await.unwrap(), "a trickling ingest was kept");
    }
    still_serving(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_connections_neither_block_nor_stay() {
    let app = app().await;
    let to = addr(&app.address);
    let mut idle = Vec::new();
    for _ in 0..2000 {
        idle.push(TcpStream::connect(to).await.unwrap());
    }
    still_serving(&app).await;
    // The first ones were accepted at once; each is closed at the header deadline.
    for stream in idle.iter_mut().take(100) {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(DROPPED, stream.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "an idle connection stayed open"
        );
    }
    drop(idle);
    still_serving(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused() {
    let app = app().await;
    for to in [
        addr(&app.address),
        addr(app.sensor_address.as_deref().unwrap()),
    ] {
        let mut request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        request.extend(std::iter::repeat_n(b'a', 4 * 1024 * 1024));
        request.extend(b"\r\n\r\n");
        let answer = raw(to, &request).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{answer}"
        );
        still_serving(&app).await;
    }
}

/// 256 MiB of zeros, gzipped (about 256 KiB): eight times the decompression cap.
fn gzip_bomb() -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..256 {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap()
}

async fn ingest(app: &TestApp, body: Vec<u8>) -> u16 {
    app.http
        .post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(SECRET)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_and_base64_bombs_are_refused() {
    use base64::Engine as _;
    let app = app().await;
    let bomb = gzip_bomb();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bomb);
    for body in [bomb, encoded.into_bytes()] {
        let status = ingest(&app, body).await;
        assert!((400..500).contains(&status), "status {status}");
        still_serving(&app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nested_a_million_levels_is_refused() {
    let app = app().await;
    for open in ["[", "{\"a\":"] {
        let status = ingest(&app, open.repeat(1_000_000).into_bytes()).await;
        assert!((400..500).contains(&status), "status {status}");
        let resp = app
            .http
            .post(app.url("/api/v1/tokens"))
            .header("content-type", "application/json")
            .body("[".repeat(1_000_000))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_client_error(), "{}", resp.status());
        still_serving(&app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_refused_everywhere() {
    let app = app().await;
    let garbage = vec![0xff, 0xfe, b'{', 0xc3, 0x28, b'}', 0x80];
    let status = ingest(&app, garbage.clone()).await;
    assert!((400..500).contains(&status), "status {status}");
    let sensor = addr(app.sensor_address.as_deref().unwrap());
    let mut request = b"POST /\xff\xfe HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 Credential=\xffAKIA\xfe/20240101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00\r\nContent-Length: 7\r\n\r\n".to_vec();
    request.extend(&garbage);
    let answer = raw(sensor, &request).await;
    assert!(!answer.starts_with("HTTP/1.1 5"), "{answer}");
    let answer = raw(addr(&app.address), &request).await;
    assert!(!answer.starts_with("HTTP/1.1 5"), "{answer}");
    still_serving(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_content_length_that_never_arrives_is_not_waited_for() {
    let app = app().await;
    let gigabyte = "Content-Length: 1073741824\r\n";
    let requests = [
        (
            addr(&app.address),
            format!("POST /ingest/v1/cloudtrail HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n{gigabyte}\r\n"),
        ),
        (
            addr(&app.address),
            format!("POST /ingest/v1/cloudtrail HTTP/1.1\r\nHost: x\r\n{gigabyte}\r\n"),
        ),
        (
            addr(&app.address),
            format!("POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{gigabyte}\r\n"),
        ),
        (
            addr(app.sensor_address.as_deref().unwrap()),
            format!("POST / HTTP/1.1\r\nHost: x\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/sts/aws4_request, SignedHeaders=host, Signature=00\r\n{gigabyte}\r\n"),
        ),
    ];
    for (to, request) in requests {
        let answer = raw(to, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 4"), "{request}\n=> {answer}");
        still_serving(&app).await;
    }
}
