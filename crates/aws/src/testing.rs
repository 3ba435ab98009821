//! Test support (feature `testing`): a private moto server per test (started as a child process on a free loopback
//! port, killed on drop), plus the settings that point the SDK at it.
//!
//! moto is a test dependency the project installs: `bash scripts/test.sh` does
//! `pip install 'moto[server]'` when `moto_server` is missing. Without it these tests FAIL with a
//! message saying so; they never skip, so a green run always means the SDK code ran.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::AwsSettings;

/// moto is ready in about 0.7 s on an idle machine; a busy 2-core box compiling in parallel can be
/// much slower, so allow generous time before calling it broken.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Fake admin credentials: moto accepts anything while its auth is off (the default).
pub const ADMIN_KEY: &str = "testing";
pub const ADMIN_SECRET: &str = "testing";
pub const REGION: &str = "us-east-1";

pub struct Moto {
    child: Child,
    addr: SocketAddr,
    // moto logs each request to stderr; a file (unlike a pipe nobody reads) cannot fill up and
    // stall the server, and it is shown when start-up fails.
    log: tempfile::NamedTempFile,
}

impl Moto {
    /// moto with authentication off: any credentials work, nothing is authorized.
    pub fn start() -> Self {
        Self::spawn(&[])
    }

    /// moto with authentication on from the first request: only keys of IAM users that exist in
    /// it are accepted, as at AWS.
    pub fn start_with_auth() -> Self {
        Self::spawn(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")])
    }

    /// moto with AWS's managed policies loaded, so `arn:aws:iam::aws:policy/…` can be attached
    /// (AWSCompromisedKeyQuarantineV2 and V3 among them).
    pub fn start_with_managed_policies() -> Self {
        Self::spawn(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")])
    }

    fn spawn(env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = tempfile::NamedTempFile::new().expect("temp file for moto's log");
        let stderr = log.reopen().expect("reopen moto's log");
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto_server ({e}). These tests need moto's server on PATH: run \
                     `bash scripts/test.sh` (it installs it when missing), or \
                     `python3 -m pip install 'moto[server]'`"
                )
            });
        let mut moto = Self { child, addr, log };
        moto.wait_ready();
        moto
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "moto_server exited during start-up ({status}); its log:\n{}",
                    self.log_text()
                );
            }
            if answers_http(self.addr) {
                return;
            }
            if started.elapsed() > READY_TIMEOUT {
                panic!(
                    "moto_server did not answer on {} within {READY_TIMEOUT:?}; its log:\n{}",
                    self.addr,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Settings for the tests' admin calls: fake static credentials, moto's endpoint.
    pub fn settings(&self) -> AwsSettings {
        self.settings_as(ADMIN_KEY, ADMIN_SECRET, REGION)
    }

    pub fn settings_as(&self, key: &str, secret: &str, region: &str) -> AwsSettings {
        AwsSettings {
            region: region.to_owned(),
            endpoint_url: Some(self.url()),
            access_key_id: Some(key.to_owned()),
            secret_access_key: Some(secret.to_owned()),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // The pyenv shim execs python, so this pid is moto itself and killing it leaves nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago. Another process could take it before moto binds it; moto
/// then exits and `wait_ready` shows why.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// True once something on `addr` answers an HTTP request (not merely accepts the connection).
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}
