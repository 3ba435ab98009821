//! `[streams.syslog]` against a real receiver: Debian's rsyslog, run in the foreground with a
//! config of the test's own (`imudp`; `imtcp`, which reads RFC 6587 octet counting; `imtcp`
//! with the `gtls` driver for RFC 5425). The line rsyslog writes (`%rawmsg%`, the message as
//! received) is parsed back as RFC 5424, with a hostile user agent in the alert: its quotes,
//! brackets, backslashes and line breaks stay inside their value. On SQLite and PostgreSQL.

mod streams_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use canarykeys_server::config::{StreamCommon, SyslogStream, TokenScope};
use canarykeys_testkit::receiver::Receiver;
use canarykeys_testkit::wait_for;
use serde_json::Value;
use streams_support::{hit, start, token, Db, HOSTILE_UA, WAIT};

/// A private rsyslogd; killed when dropped.
struct Rsyslog {
    child: Child,
    dir: tempfile::TempDir,
    /// A plain TCP input, to know when the inputs are up (UDP cannot say).
    probe: u16,
    port: u16,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A CA and a certificate for `localhost` it signed, made with openssl in `dir`.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=streams test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
}

impl Rsyslog {
    /// Starts rsyslogd listening with `scheme` (`udp`, `tcp` or `tls`).
    fn start(scheme: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let (probe, port) = (free_port(), free_port());
        let mut conf = String::new();
        if scheme == "tls" {
            certificates(dir.path());
            conf.push_str(&format!(
                "global(workDirectory=\"{d}\" DefaultNetstreamDriverCAFile=\"{d}/ca.pem\" \
                 DefaultNetstreamDriverCertFile=\"{d}/server.pem\" \
                 DefaultNetstreamDriverKeyFile=\"{d}/server.key\")\n"
            ));
            conf.push_str("module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")\n");
        } else {
            conf.push_str(&format!(
                "global(workDirectory=\"{d}\")\nmodule(load=\"imtcp\")\n"
            ));
        }
        if scheme == "udp" {
            conf.push_str(&format!(
                "module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{port}\")\n"
            ));
        } else {
            conf.push_str(&format!(
                "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n"
            ));
        }
        conf.push_str(&format!(
            "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{probe}\")\n"
        ));
        conf.push_str(&format!(
            "template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             if $inputname == \"imtcp\" or $inputname == \"imudp\" then {{\n\
             action(type=\"omfile\" file=\"{d}/out.log\" template=\"raw\")\n}}\n"
        ));
        std::fs::write(dir.path().join("rsyslog.conf"), conf).unwrap();
        let child = Command::new("rsyslogd")
            .args([
                "-n",
                "-f",
                &format!("{d}/rsyslog.conf"),
                "-i",
                &format!("{d}/pid"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("rsyslogd runs (scripts/test.sh installs rsyslog and rsyslog-gnutls)");
        Self {
            child,
            dir,
            probe,
            port,
        }
    }

    async fn ready(&self) {
        let probe = self.probe;
        wait_for("rsyslogd listens", WAIT, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", probe))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out.log")
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.out())
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// An RFC 5424 message, parsed.
#[derive(Debug)]
struct Parsed {
    pri: u16,
    hostname: String,
    app_name: String,
    msgid: String,
    sd_id: String,
    params: Vec<(String, String)>,
    msg: Value,
}

/// Parses `line` per RFC 5424's grammar (one SD-ELEMENT), unescaping PARAM-VALUEs.
fn parse(line: &str) -> Parsed {
    assert!(
        !line.chars().any(char::is_control),
        "a control character on the line: {line:?}"
    );
    let rest = line.strip_prefix('<').expect("PRI");
    let (pri, rest) = rest.split_once('>').unwrap();
    let rest = rest.strip_prefix("1 ").expect("VERSION 1");
    let mut fields = rest.splitn(6, ' ');
    let _time = fields.next().unwrap();
    let hostname = fields.next().unwrap().to_owned();
    let app_name = fields.next().unwrap().to_owned();
    let _procid = fields.next().unwrap();
    let msgid = fields.next().unwrap().to_owned();
    let sd = fields.next().unwrap();
    let mut chars = sd.chars().peekable();
    assert_eq!(chars.next(), Some('['));
    let sd_id: String = chars.by_ref().take_while(|c| *c != ' ').collect();
    let mut params = Vec::new();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "{name}");
        let mut value = String::new();
        loop {
            match chars.next().expect("an unterminated value") {
                '\\' => {
                    let next = *chars.peek().unwrap();
                    if matches!(next, '"' | '\\' | ']') {
                        value.push(chars.next().unwrap());
                    } else {
                        value.push('\\');
                    }
                }
                '"' => break,
                ']' => panic!("an unescaped ] inside {name}: {line}"),
                c => value.push(c),
            }
        }
        params.push((name, value));
        match chars.next() {
            Some(' ') => continue,
            Some(']') => break,
            other => panic!("after a param: {other:?} in {line}"),
        }
    }
    assert_eq!(chars.next(), Some(' '), "SP before MSG");
    let msg: String = chars.collect();
    Parsed {
        pri: pri.parse().unwrap(),
        hostname,
        app_name,
        msgid,
        sd_id,
        params,
        msg: serde_json::from_str(&msg).expect("MSG is one line of JSON"),
    }
}

async fn syslog_over(db: Db, scheme: &str) {
    let rsyslog = Rsyslog::start(scheme);
    rsyslog.ready().await;
    let hook = Receiver::start().await;
    let host = if scheme == "tls" {
        "localhost"
    } else {
        "127.0.0.1"
    };
    let address = format!("{scheme}://{host}:{}", rsyslog.port);
    let ca = (scheme == "tls").then(|| rsyslog.ca());
    let (app, _config, _pg) = start(db, "ck_streams_syslog", |c| {
        c.streams.syslog = Some(SyslogStream {
            common: StreamCommon {
                tokens: TokenScope::All,
                ..StreamCommon::default()
            },
            address,
            facility: Some("local4".into()),
            app_name: Some("canary-test".into()),
            ca_file: ca,
        });
    })
    .await;
    let created = token(&app, Some(&hook.url())).await;
    hit(&app, &created, &format!("syslog-{scheme}-1"), HOSTILE_UA).await;
    hit(&app, &created, &format!("syslog-{scheme}-2"), "aws-cli/2").await;
    app.deliver_until("rsyslog wrote both alerts", WAIT, || {
        (rsyslog.lines().len() >= 2 && hook.count() == 2).then_some(())
    })
    .await;
    let lines = rsyslog.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let bodies = hook.bodies();
    // Two hits of one instant (the test clock stands still) may go in either order: each line
    // is matched to the webhook's copy of its alert by id.
    for line in &lines {
        let p = parse(line);
        // local4 (20) * 8 + alert (1).
        assert_eq!(p.pri, 161, "{line}");
        assert_eq!(p.app_name, "canary-test");
        assert_eq!(p.msgid, "hit");
        assert!(!p.hostname.is_empty());
        assert_eq!(p.sd_id, "canarykeys@32473");
        let param = |n: &str| {
            p.params
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {n} in {line}"))
        };
        let generic = bodies
            .iter()
            .find(|b| b["alert_id"] == param("alert_id").as_str())
            .unwrap_or_else(|| panic!("no webhook body for {line}"));
        assert_eq!(param("token_id"), generic["token"]["id"]);
        assert_eq!(param("key_id"), generic["event"]["access_key_id"]);
        assert_eq!(param("account"), generic["event"]["account_id"]);
        assert_eq!(param("event"), "GetCallerIdentity");
        assert_eq!(param("source_ip"), "203.0.113.7");
        assert_eq!(p.msg, *generic, "MSG is the generic alert, exactly");
    }
    // The hostile user agent arrived whole, as data, on an ASCII line of its own.
    let hostile = bodies
        .iter()
        .find(|b| b["event"]["user_agent"] != "aws-cli/2")
        .unwrap();
    let ua = hostile["event"]["user_agent"].as_str().unwrap();
    assert!(
        ua.contains("\"] [evil@1") && ua.contains("\n<13>1"),
        "{ua:?}"
    );
    assert!(lines.iter().all(|l| l.is_ascii()));
}

#[tokio::test]
async fn syslog_over_tcp_sqlite() {
    syslog_over(Db::Sqlite, "tcp").await;
}

#[tokio::test]
async fn syslog_over_tcp_postgres() {
    syslog_over(Db::Postgres, "tcp").await;
}

#[tokio::test]
async fn syslog_over_udp_sqlite() {
    syslog_over(Db::Sqlite, "udp").await;
}

#[tokio::test]
async fn syslog_over_tls_sqlite() {
    syslog_over(Db::Sqlite, "tls").await;
}

#[tokio::test]
async fn syslog_over_tls_postgres() {
    syslog_over(Db::Postgres, "tls").await;
}
