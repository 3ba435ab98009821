//! The email channel against a real SMTP server: Python's aiosmtpd, started per test on a free
//! loopback port and writing each mail to a maildir. Checks what arrives (both parts, escaping,
//! subject, Message-ID), how refusals and unreachable servers map to outcomes, and
//! `canarykeys send-test-email`.
//!
//! aiosmtpd is a test dependency the project installs: `bash scripts/test.sh` runs
//! `pip install aiosmtpd` when it is missing. Without it these tests FAIL; they never skip.

use std::path::Path;
use std::process::Output;

use canarykeys_server::config::{Config, ConfigError, SmtpConfig, SmtpTls};
use canarykeys_server::notify::email::EmailChannel;
use canarykeys_server::notify::{AlertKind, AlertView, Channel, Outcome};
use canarykeys_testkit::smtp_sink::SmtpSink;

const XSS_AGENT: &str = r#"<script>alert("x")</script> & <b>"#;
const MEMO: &str = "db-backup <prod> & laptop";

fn smtp(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: Some("127.0.0.1".into()),
        port,
        tls: SmtpTls::None,
        from: Some("canarykeys <alerts@canarykeys.example>".into()),
        timeout_secs: 5,
        ..SmtpConfig::default()
    }
}

fn hit() -> AlertView {
    AlertView {
        kind: AlertKind::Hit,
        alert_id: "alrt_0001".into(),
        token_id: "tok_0001".into(),
        memo: MEMO.into(),
        headline: "GetCallerIdentity on sts.amazonaws.com in us-east-1 from 203.0.113.7".into(),
        event_name: "GetCallerIdentity".into(),
        event_source: "sts.amazonaws.com".into(),
        region: "us-east-1".into(),
        source_ip: "203.0.113.7".into(),
        user_agent: XSS_AGENT.into(),
        error_code: Some("AccessDenied".into()),
        error_message: Some("User is not authorized to perform: sts:GetCallerIdentity".into()),
        event_time: "2024-05-01T12:34:56Z".into(),
        received_at: "2024-05-01T12:35:40Z".into(),
        account_id: Some("123456789012".into()),
        access_key_id: Some("AKIAIOSFODNN7EXAMPLE".into()),
        path: "eventbridge".into(),
        note: Some("Geschäftsstelle Köln".into()),
        source_labels: vec!["Tor exit node".into()],
        country: Some("DE".into()),
        asn: Some("AS64500 Example Hosting".into()),
        manage_url: "https://canarykeys.example/manage/tok_0001".into(),
        history_url: "https://canarykeys.example/manage/tok_0001#history".into(),
        retired: false,
    }
}

#[tokio::test]
async fn a_hit_arrives_with_a_text_and_an_escaped_html_part() {
    let sink = SmtpSink::start();
    let channel = EmailChannel::new(&smtp(sink.port())).unwrap();
    // The same key twice (a retry), then another key.
    for key in ["alrt_0001:email", "alrt_0001:email", "alrt_0002:email"] {
        let outcome = channel.send(&hit(), "soc@example.com", key).await;
        assert_eq!(outcome, Outcome::Delivered);
    }
    let mails = sink.wait_for_mails(3);
    let mut ids: Vec<&str> = mails
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2, "same key, same Message-ID: {ids:?}");
    assert!(ids.iter().all(|id| id.ends_with("@canarykeys.example>")));

    let mail = &mails[0];
    assert_eq!(mail.header("X-RcptTo"), Some("soc@example.com"));
    assert_eq!(
        mail.header("Subject"),
        Some(format!("[canarykeys] Decoy key used: {MEMO}").as_str())
    );
    assert_eq!(mail.header("X-Canarykeys-Alert"), Some("alrt_0001"));
    assert!(mail
        .header("Content-Type")
        .unwrap()
        .starts_with("multipart/alternative"));

    let text = mail.part("text/plain").expect("a text/plain part");
    let html = mail.part("text/html").expect("a text/html part");

    // The text part is not markup: the user agent is shown exactly as the attacker sent it.
    assert_has(
        &text,
        &[
            MEMO,
            XSS_AGENT,
            "from 203.0.113.7",
            "2024-05-01 12:34:56 UTC",
        ],
    );
    assert_has(
        &text,
        &[
            "2024-05-01 12:35:40 UTC",
            "Tor exit node",
            "AS64500 Example",
        ],
    );
    assert_has(
        &text,
        &["AccessDenied", "AKIAIOSFODNN7EXAMPLE", "123456789012"],
    );
    assert_has(&text, &["eventbridge", "Köln", "/manage/tok_0001#history"]);

    // The HTML part: every attacker-controlled character escaped, nothing live.
    assert_has(
        &html,
        &[
            "&lt;script&gt;",
            "&amp; &lt;b&gt;",
            "db-backup &lt;prod&gt; &amp;",
        ],
    );
    assert_has(&html, &["Köln", "AS64500 Example"]);
    // minijinja writes `/` as `&#x2f;`, which HTML reads back as `/`.
    let links = html.replace("&#x2f;", "/");
    assert_has(
        &links,
        &[r#"href="https://canarykeys.example/manage/tok_0001#history""#],
    );
    assert!(
        !html.contains("<script>alert") && !html.contains("<b>"),
        "{html}"
    );
}

#[track_caller]
fn assert_has(body: &str, needles: &[&str]) {
    for needle in needles {
        assert!(body.contains(needle), "lacks {needle:?}:\n{body}");
    }
}

#[tokio::test]
async fn summary_and_test_alerts_render() {
    let sink = SmtpSink::start();
    let channel = EmailChannel::new(&smtp(sink.port())).unwrap();
    let summary = AlertView {
        kind: AlertKind::Summary {
            count: 41,
            folded: 0,
            addresses: vec!["203.0.113.7".into(), "198.51.100.23".into()],
            events: vec!["ListBuckets".into(), "GetCallerIdentity".into()],
            first_event_time: "2024-05-01T12:40:00Z".into(),
            last_event_time: "2024-05-01T13:35:00Z".into(),
        },
        ..hit()
    };
    let test = AlertView {
        kind: AlertKind::Test,
        ..hit()
    };
    assert_eq!(
        channel.send(&summary, "a@example.com", "s:email").await,
        Outcome::Delivered
    );
    assert_eq!(
        channel.send(&test, "b@example.com", "t:email").await,
        Outcome::Delivered
    );
    let mails = sink.wait_for_mails(2);
    let to = |addr: &str| {
        mails
            .iter()
            .find(|m| m.header("X-RcptTo") == Some(addr))
            .unwrap()
    };

    let summary = to("a@example.com");
    assert_eq!(
        summary.header("Subject"),
        Some(format!("[canarykeys] 41 more uses: {MEMO}").as_str())
    );
    let text = summary.part("text/plain").unwrap();
    assert_has(&text, &["41 more times", "203.0.113.7, 198.51.100.23"]);
    assert_has(&text, &["ListBuckets, GetCallerIdentity"]);
    assert_has(
        &text,
        &["2024-05-01 12:40:00 UTC to 2024-05-01 13:35:00 UTC"],
    );
    let html = summary.part("text/html").unwrap();
    assert!(html.contains("41 more times") && html.contains("198.51.100.23"));
    assert!(!html.contains("<script>alert"));

    let test = to("b@example.com");
    assert_eq!(
        test.header("Subject"),
        Some(format!("[canarykeys] Test alert: {MEMO}").as_str())
    );
    assert!(test.part("text/plain").unwrap().contains("TEST alert"));
    assert!(test.part("text/html").unwrap().contains("test alert"));
}

#[tokio::test]
async fn refusals_and_unreachable_servers_map_to_outcomes() {
    let sink = SmtpSink::start();
    let channel = EmailChannel::new(&smtp(sink.port())).unwrap();
    let send = |to: &'static str| {
        let channel = &channel;
        async move { channel.send(&hit(), to, "k").await }
    };
    match send("unknown@example.com").await {
        Outcome::Permanent(why) => assert!(why.contains("550"), "{why}"),
        other => panic!("550 must be permanent, got {other:?}"),
    }
    match send("busy@example.com").await {
        Outcome::Retry(why) => assert!(why.contains("451"), "{why}"),
        other => panic!("451 must be retried, got {other:?}"),
    }
    match send("not an address").await {
        Outcome::Permanent(why) => assert!(why.contains("not an address"), "{why}"),
        other => panic!("a bad address must be permanent, got {other:?}"),
    }
    // The server still works for a good address after those refusals.
    assert_eq!(send("ok@example.com").await, Outcome::Delivered);

    // Nothing listening: connection refused.
    let closed = canarykeys_testkit::smtp_sink::free_port();
    let outcome = EmailChannel::new(&smtp(closed))
        .unwrap()
        .send(&hit(), "soc@example.com", "k")
        .await;
    assert!(matches!(outcome, Outcome::Retry(_)), "{outcome:?}");

    // Something accepts the connection but never greets: the timeout ends the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = SmtpConfig {
        timeout_secs: 1,
        ..smtp(silent.local_addr().unwrap().port())
    };
    let started = std::time::Instant::now();
    let outcome = EmailChannel::new(&config)
        .unwrap()
        .send(&hit(), "soc@example.com", "k")
        .await;
    assert!(matches!(outcome, Outcome::Retry(_)), "{outcome:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn smtp_settings_are_checked() {
    let key = |c: &Config| match c.check() {
        Err(ConfigError::Value { key, .. }) => Some(key),
        other => other.map(|()| None).unwrap(),
    };
    let mut config = Config::default();
    assert_eq!(key(&config), None, "email is off by default");
    config.smtp.host = Some("smtp.example.com".into());
    assert_eq!(key(&config), Some("smtp.from"), "from is required");
    config.smtp.from = Some("not an address".into());
    assert_eq!(key(&config), Some("smtp.from"));
    config.smtp.from = Some("canarykeys <alerts@example.com>".into());
    assert_eq!(key(&config), None);
    config.smtp.username = Some("alerts".into());
    assert_eq!(key(&config), Some("smtp.username"), "needs a password");
}

/// The binary in `dir` with only `env` set (the harness clears inherited `CANARYKEYS_*`).
fn canarykeys(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    canarykeys_testkit::cli::run(dir, args, env)
}

fn sink_env(sink: &SmtpSink) -> Vec<(&'static str, String)> {
    vec![
        ("CANARYKEYS_SMTP__HOST", "127.0.0.1".into()),
        ("CANARYKEYS_SMTP__PORT", sink.port().to_string()),
        ("CANARYKEYS_SMTP__TLS", "none".into()),
        (
            "CANARYKEYS_SMTP__FROM",
            "canarykeys <alerts@canarykeys.example>".into(),
        ),
    ]
}

#[test]
fn send_test_email_delivers_through_the_configured_server() {
    let sink = SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let out = canarykeys(
        dir.path(),
        &["send-test-email", "--to", "x@example.com"],
        &sink_env(&sink),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("sent to x@example.com"), "{stdout}");
    let mail = sink.wait_for_mails(1).remove(0);
    assert_eq!(mail.header("X-RcptTo"), Some("x@example.com"));
    assert!(mail
        .header("Subject")
        .unwrap()
        .starts_with("[canarykeys] Test alert: "));
    assert!(mail.part("text/plain").unwrap().contains("TEST alert"));

    // A refusal is the command's failure, in the server's words.
    let out = canarykeys(
        dir.path(),
        &["send-test-email", "--to", "unknown@example.com"],
        &sink_env(&sink),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("550") && stderr.contains("No such user"),
        "{stderr}"
    );
}

#[test]
fn send_test_email_without_a_host_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = canarykeys(
        dir.path(),
        &["send-test-email", "--to", "x@example.com"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("[smtp] host") && stderr.contains("CANARYKEYS_SMTP__HOST"),
        "{stderr}"
    );
}

// aiosmtpd as a child process, its maildir, and a minimal reader for what lands there.
