//! Ten thousand idle connections against the real `canarykeys serve` process, first on the web
//! listener and then on the sensor. The server runs in its own process so each side holds its own
//! 10k descriptors, and so its resident memory can be read alone. While the connections are
//! open a valid request is still answered, the server's memory stays under `SERVER_RSS_BOUND_MIB`,
//! and each idle connection is closed at the header deadline (2 s here; 10 s by default).

use std::net::SocketAddr;
use std::process::Child;
use std::time::Duration;

use canarykeys_testkit::smtp_sink::free_port;
use canarykeys_testkit::{cli, wait_for, WAIT};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const IDLE: usize = 10_000;
const SECRET: &str = "hostile-idle-ingest-secret-0123";
/// The server process with 10k idle connections open: 188–217 MiB measured in a debug build
/// (about 15 KiB per connection: hyper's read buffer, the task, the timer).
const SERVER_RSS_BOUND_MIB: u64 = 384;
/// A deadline for a valid request under attack, not a timing claim.
const ANSWERED: Duration = Duration::from_secs(10);
/// How long the server may take to drop the idle ones (header deadline 2 s, plus a loaded machine).
const DROPPED: Duration = Duration::from_secs(60);

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    fn rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib / 1024
    }
}

/// The test process needs a descriptor per idle connection: raise its soft limit to the hard one.
fn enough_descriptors() {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    let needed = IDLE as u64 + 512;
    if soft < needed {
        rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).unwrap();
    }
    assert!(
        hard >= needed,
        "this machine allows {hard} open files per process; the test needs {needed}"
    );
}

async fn answered(http: &reqwest::Client, url: &str) {
    wait_for("a valid request answered", ANSWERED, || async {
        let resp = http.get(url).send().await.ok()?;
        resp.status().is_success().then_some(())
    })
    .await;
}

async fn hoard(to: SocketAddr) -> Vec<TcpStream> {
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(to).await.expect("connect"));
    }
    idle
}

/// Every idle connection is closed by the server (a read sees EOF or a reset).
async fn all_dropped(idle: Vec<TcpStream>) {
    let reads = idle.into_iter().map(|mut stream| async move {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(DROPPED, stream.read(&mut buf)).await;
        matches!(read, Ok(Ok(0) | Err(_)))
    });
    let closed = futures_util::future::join_all(reads).await;
    let kept = closed.iter().filter(|c| !**c).count();
    assert_eq!(kept, 0, "{kept} idle connections stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_on_each_listener() {
    enough_descriptors();
    let dir = tempfile::tempdir().unwrap();
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let sensor: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let child = cli::command(dir.path())
        .args(["serve", "--listen", &web.to_string(), "--data-dir"])
        .arg(dir.path())
        .env("CANARYKEYS_INGEST__SECRET", SECRET)
        .env("CANARYKEYS_SENSOR__LISTEN", sensor.to_string())
        .env("CANARYKEYS_LISTENERS__HEADER_TIMEOUT", "2s")
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("canarykeys serve starts");
    let server = Server(child);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let health = format!("http://{web}/healthz");
    wait_for("serve answers /healthz", WAIT, || async {
        let resp = http.get(&health).send().await.ok()?;
        resp.status().is_success().then_some(())
    })
    .await;
    let idle_rss = server.rss_mib();

    let mut peak = idle_rss;
    for (listener, valid) in [
        (web, health.clone()),
        // The sensor answers any request; an anonymous GET gets an AWS-shaped error page, which
        // proves it read and answered the request.
        (sensor, format!("http://{sensor}/?Action=GetCallerIdentity")),
    ] {
        let idle = hoard(listener).await;
        if listener == sensor {
            wait_for("the sensor answers", ANSWERED, || async {
                http.get(&valid).send().await.ok().map(|_| ())
            })
            .await;
        } else {
            answered(&http, &valid).await;
        }
        peak = peak.max(server.rss_mib());
        all_dropped(idle).await;
        answered(&http, &health).await;
    }
    println!(
        "hostile_idle: server RSS {idle_rss} MiB at rest, {peak} MiB with {IDLE} idle connections"
    );
    assert!(
        peak < SERVER_RSS_BOUND_MIB,
        "server RSS {peak} MiB with {IDLE} idle connections"
    );
}
