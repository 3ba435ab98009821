//! A real SMTP server for tests: Python's aiosmtpd on a free port, writing a Maildir; and a
//! small reader for the mails it stored.
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

/// Generous: a 2-core box compiling in parallel can take seconds to start Python.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const HINT: &str = "these tests need Python's aiosmtpd: run `bash scripts/test.sh` (it \
                    installs it when missing), or `python3 -m pip install aiosmtpd`";

/// aiosmtpd's Mailbox handler, refusing two recipients the way real servers do, so the
/// tests see genuine 5xx and 4xx replies.
const HANDLER: &str = r#"
from aiosmtpd.handlers import Mailbox

class Sink(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("unknown@"):
            return "550 5.1.1 No such user"
        if address.startswith("busy@"):
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"
"#;

pub struct SmtpSink {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts on `port` (a port a test kept closed until now, to stand for an SMTP server that
    /// was down and came back).
    pub fn start_on(port: u16) -> Self {
        let probe = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 ({e}); {HINT}"));
        assert!(probe.status.success(), "aiosmtpd is not installed; {HINT}");
        let dir = tempfile::tempdir().unwrap();
        for sub in ["maildir/cur", "maildir/new", "maildir/tmp"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("canarykeys_sink.py"), HANDLER).unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // A file, unlike a pipe nobody reads, cannot fill up and stall the server.
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &addr.to_string()])
            .args(["-c", "canarykeys_sink.Sink", "maildir"])
            .current_dir(dir.path())
            .env("PYTHONPATH", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start aiosmtpd ({e}); {HINT}"));
        let mut sink = Self { child, addr, dir };
        sink.wait_ready();
        sink
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Ready once it sends its 220 greeting, not merely once the port accepts.
    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "aiosmtpd exited at start ({status}): {}; {HINT}",
                    self.log()
                );
            }
            if greets(self.addr) {
                return;
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "aiosmtpd did not greet on {} within {READY_TIMEOUT:?}: {}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// How many mails have arrived so far (no wait: for an async test's own wait loop, which
    /// keeps the server's tasks running where `wait_for_mails` would block the thread).
    pub fn count(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("maildir/new"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// The first `n` mails to arrive, waiting a bounded time for them.
    pub fn wait_for_mails(&self, n: usize) -> Vec<Mail> {
        let started = Instant::now();
        loop {
            let files: Vec<_> = std::fs::read_dir(self.dir.path().join("maildir/new"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            if files.len() >= n {
                return files
                    .iter()
                    .map(|f| Mail::parse(&std::fs::read_to_string(f).unwrap()))
                    .collect();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{} of {n} mails arrived; aiosmtpd log: {}",
                files.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

fn greets(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 3];
    s.read_exact(&mut buf).is_ok() && &buf == b"220"
}

/// Just enough MIME for these tests: unfolded headers, multipart bodies, and the
/// quoted-printable and base64 transfer encodings lettre picks from.
pub struct Mail {
    headers: Vec<(String, String)>,
    body: String,
}

impl Mail {
    pub fn parse(raw: &str) -> Self {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            match (line.starts_with([' ', '\t']), headers.last_mut()) {
                (true, Some((_, value))) => value.push_str(line.trim_start()),
                _ => {
                    let (name, value) = line.split_once(':').unwrap();
                    headers.push((name.to_owned(), value.trim().to_owned()));
                }
            }
        }
        Self {
            headers,
            body: body.to_owned(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The decoded body of the first part whose type starts with `mime`.
    pub fn part(&self, mime: &str) -> Option<String> {
        let kind = self.header("Content-Type").unwrap_or("text/plain");
        if kind.starts_with(mime) {
            return Some(self.decoded());
        }
        let boundary = kind.split("boundary=").nth(1)?.split(';').next()?;
        let delimiter = format!("--{}", boundary.trim_matches('"'));
        self.body
            .split(&delimiter)
            .skip(1)
            .take_while(|p| !p.starts_with("--"))
            .find_map(|p| Mail::parse(p.trim_start_matches('\n')).part(mime))
    }

    fn decoded(&self) -> String {
        match self.header("Content-Transfer-Encoding") {
            Some(e) if e.eq_ignore_ascii_case("base64") => {
                let text: String = self.body.split_whitespace().collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .unwrap();
                String::from_utf8(bytes).unwrap()
            }
            Some(e) if e.eq_ignore_ascii_case("quoted-printable") => qp_decode(&self.body),
            _ => self.body.clone(),
        }
    }
}

fn qp_decode(body: &str) -> String {
    let body = body.replace("=\n", "");
    let bytes = body.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'=', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}
