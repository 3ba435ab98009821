//! The webhook channel against a real HTTP receiver on 127.0.0.1: each flavour's body and
//! headers, the generic payload's signature and idempotency key, what each status becomes,
//! redirects, the private-address refusal, and the checked-in example payloads
//! (`tests/fixtures/webhooks/`; `UPDATE_FIXTURES=1` rewrites them after a deliberate change).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use canarykeys_server::config::Secret;
use canarykeys_server::notify::webhook::{payload, WebhookChannel, WebhookFlavour};
use canarykeys_server::notify::{AlertKind, AlertView, Channel, Outcome};
use serde_json::Value;
use url::Url;

const SECRET: &str = "whsec-test-0123456789";
const HOSTILE_UA: &str = "<script>alert(1)</script> *bold* @everyone <!channel> `x` _i_ ~s~ \
    | > # - [link](http://evil.example/) &amp;\n*Source IP:* 10.0.0.1";

/// The one alert every fixture shows: ordinary fields, hostile CloudTrail text.
fn fixture_alert() -> AlertView {
    AlertView {
        kind: AlertKind::Hit,
        alert_id: "al_7Kp2mQ9xR4".into(),
        token_id: "tok_3fJ8sLw1Zq".into(),
        memo: "build server <ci-01> & ~/.aws/credentials".into(),
        headline: "GetCallerIdentity on sts.amazonaws.com in us-east-1 from 203.0.113.7".into(),
        event_name: "GetCallerIdentity".into(),
        event_source: "sts.amazonaws.com".into(),
        region: "us-east-1".into(),
        source_ip: "203.0.113.7".into(),
        user_agent: HOSTILE_UA.into(),
        error_code: Some("AccessDenied".into()),
        error_message: Some("<b>not authorized</b> @here".into()),
        event_time: "2025-11-24T10:15:30Z".into(),
        received_at: "2025-11-24T10:15:42Z".into(),
        account_id: Some("123456789012".into()),
        access_key_id: Some("AKIAQ3EGRZ7NEXAMPLE1".into()),
        path: "eventbridge".into(),
        note: None,
        source_labels: vec!["Tor exit node".into()],
        country: Some("DE".into()),
        asn: Some("AS64500 Example Hosting".into()),
        manage_url: "https://canary.example.com/manage/tok_3fJ8sLw1Zq".into(),
        history_url: "https://canary.example.com/manage/tok_3fJ8sLw1Zq#alerts".into(),
        retired: false,
    }
}

/// The example exposure: hostile text in the description and a `javascript:` location.
fn fixture_exposure() -> AlertView {
    let mut alert = fixture_alert();
    alert.kind = AlertKind::Exposure {
        source: "health".into(),
        event_type: "AWS_RISK_CREDENTIALS_EXPOSED".into(),
        description: "Found at javascript://%0Aalert(1) <img src=x> <!channel> *b* [x](http://e)"
            .into(),
        location: Some("javascript://%0Aalert(1".into()),
        first_seen: "2025-11-24T10:15:42Z".into(),
        last_seen: "2025-11-24T10:15:42Z".into(),
        count: 1,
    };
    alert.alert_id = "ex_9Vb3nH2kT6".into();
    alert.headline = "AWS found the key in public at javascript://%0Aalert(1".into();
    alert.event_name = "AWS_RISK_CREDENTIALS_EXPOSED".into();
    alert.event_source = "health.amazonaws.com".into();
    alert.region = String::new();
    alert.source_ip = String::new();
    alert.user_agent = String::new();
    alert.error_code = None;
    alert.error_message = None;
    alert.path = "aws-health".into();
    alert.source_labels = Vec::new();
    alert.country = None;
    alert.asn = None;
    alert
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// Records every request. `/status/<code>` answers that code, `/redirect` a 302 to another path
/// of the same server; anything else answers 200.
async fn receive(State(log): State<Log>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    log.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body,
    });
    if let Some(code) = path.strip_prefix("/status/") {
        let status = StatusCode::from_u16(code.parse().unwrap()).unwrap();
        return (status, "receiver says no").into_response();
    }
    if path == "/redirect" {
        return (StatusCode::FOUND, [("location", "/elsewhere")]).into_response();
    }
    (StatusCode::OK, "ok").into_response()
}

/// Starts a receiver on 127.0.0.1:0; returns its base URL (`http://127.0.0.1:PORT`) and log.
async fn receiver() -> (String, Log) {
    let log = Log::default();
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), log)
}

fn channel(allow_private: bool) -> WebhookChannel {
    WebhookChannel::new(Some(Secret::new(SECRET)), allow_private).unwrap()
}

fn header<'a>(r: &'a Received, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn every_flavour_arrives_with_its_payload_and_headers() {
    let (base, log) = receiver().await;
    let channel = channel(true);
    let alert = fixture_alert();
    for flavour in WebhookFlavour::ALL {
        // Through the `Channel` trait, as the worker calls it, with the flavour forced by the
        // URL's fragment (a 127.0.0.1 URL would otherwise be generic).
        let target = format!("{base}/hook/{flavour}?k=v#flavour={flavour}");
        let key = format!("al_7Kp2mQ9xR4:webhook:{flavour}");
        assert_eq!(
            channel.send(&alert, &target, &key).await,
            Outcome::Delivered
        );
        let got = log.lock().unwrap().pop().unwrap();
        assert_eq!(got.path, format!("/hook/{flavour}"));
        assert_eq!(header(&got, "content-type"), Some("application/json"));
        assert_eq!(header(&got, "user-agent"), Some("canarykeys"));
        assert_eq!(header(&got, "idempotency-key"), Some(key.as_str()));
        let body: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(body, payload(flavour, &alert), "{flavour}");
        // Only the generic schema is signed; chat services would ignore it anyway.
        let signed = header(&got, "x-canarykeys-signature").is_some();
        assert_eq!(signed, flavour == WebhookFlavour::Generic, "{flavour}");
    }
}

#[tokio::test]
async fn generic_payloads_are_signed_and_retries_share_the_idempotency_key() {
    let (base, log) = receiver().await;
    let channel = channel(true);
    let url = Url::parse(&format!("{base}/generic")).unwrap();
    let alert = fixture_alert();
    for _ in 0..2 {
        let outcome = channel
            .send_as(
                WebhookFlavour::Generic,
                &alert,
                &url,
                "al_7Kp2mQ9xR4:webhook",
            )
            .await;
        assert_eq!(outcome, Outcome::Delivered);
    }
    let got = log.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for r in &got {
        let signature = header(r, "x-canarykeys-signature").unwrap();
        canarykeys_core::signing::verify(SECRET.as_bytes(), signature, &r.body, now).unwrap();
        assert!(canarykeys_core::signing::verify(b"wrong", signature, &r.body, now).is_err());
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["schema"], "canarykeys.alert/v1");
    }
    assert_eq!(
        header(&got[0], "idempotency-key"),
        Some("al_7Kp2mQ9xR4:webhook")
    );
    assert_eq!(
        header(&got[0], "idempotency-key"),
        header(&got[1], "idempotency-key")
    );

    // Without a secret, no signature header at all.
    let unsigned = WebhookChannel::new(None, true).unwrap();
    let outcome = unsigned
        .send_as(WebhookFlavour::Generic, &alert, &url, "k2")
        .await;
    assert_eq!(outcome, Outcome::Delivered);
    assert!(header(&log.lock().unwrap()[2], "x-canarykeys-signature").is_none());
}

#[tokio::test]
async fn statuses_become_outcomes() {
    let (base, _log) = receiver().await;
    let channel = channel(true);
    let alert = fixture_alert();
    let send = |path: &str| {
        let url = format!("{base}{path}");
        let channel = &channel;
        let alert = &alert;
        async move { channel.send(alert, &url, "key").await }
    };
    assert_eq!(send("/ok").await, Outcome::Delivered);
    assert_eq!(send("/status/204").await, Outcome::Delivered);
    for path in ["/status/500", "/status/503", "/status/429", "/status/408"] {
        match send(path).await {
            Outcome::Retry(m) => assert!(m.contains("receiver says no"), "{m}"),
            other => panic!("{path}: {other:?}"),
        }
    }
    assert_eq!(
        send("/status/404").await,
        Outcome::Permanent("HTTP 404 Not Found: receiver says no".into())
    );
    assert!(matches!(send("/status/400").await, Outcome::Permanent(_)));
    assert!(matches!(send("/status/401").await, Outcome::Permanent(_)));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (base, log) = receiver().await;
    let outcome = channel(true)
        .send(&fixture_alert(), &format!("{base}/redirect"), "key")
        .await;
    assert_eq!(
        outcome,
        Outcome::Permanent("redirect to /elsewhere not followed (HTTP 302 Found)".into())
    );
    let paths: Vec<String> = log.lock().unwrap().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/redirect"]);
}

#[tokio::test]
async fn private_addresses_are_refused_at_send_time() {
    let (base, log) = receiver().await;
    let channel = channel(false);
    let port = Url::parse(&base).unwrap().port().unwrap();
    for target in [
        format!("{base}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://0.0.0.0/".to_owned(),
    ] {
        assert_eq!(
            channel.send(&fixture_alert(), &target, "key").await,
            Outcome::Permanent("refused: resolves to a private address".into()),
            "{target}"
        );
    }
    assert!(
        log.lock().unwrap().is_empty(),
        "nothing may reach the receiver"
    );
    // A name that resolves to loopback is fine when private addresses are allowed, and it
    // goes through the client's checking resolver.
    let outcome = WebhookChannel::new(None, true)
        .unwrap()
        .send(
            &fixture_alert(),
            &format!("http://localhost:{port}/named"),
            "key",
        )
        .await;
    assert_eq!(outcome, Outcome::Delivered);
}

#[tokio::test]
async fn bad_targets_are_permanent() {
    let channel = channel(true);
    for target in [
        "not a url",
        "ftp://example.com/x",
        "https://example.com/#flavour=fax",
    ] {
        assert!(
            matches!(
                channel.send(&fixture_alert(), target, "k").await,
                Outcome::Permanent(_)
            ),
            "{target}"
        );
    }
}

/// The example tamper alert: an API key deleted the token; the caller's user agent is hostile.
fn fixture_tamper() -> AlertView {
    let mut alert = fixture_alert();
    alert.kind = AlertKind::Tamper {
        action: "delete".into(),
        change: "the token was deleted and its key revoked".into(),
        by: "api_key".into(),
        api_key_id: Some("key_4nR8vB2xQ7mL1pZs".into()),
        api_key_name: Some("fleet <laptops>".into()),
        operator: Some("alice".into()),
    };
    alert.alert_id = "tamper_Q2w8Ee5rT1".into();
    alert.headline =
        "The token was deleted and its key revoked with API key key_4nR8vB2xQ7mL1pZs of alice \
         from 198.51.100.23"
            .into();
    alert.event_name = "token.delete".into();
    alert.event_source = "canarykeys".into();
    alert.region = String::new();
    alert.source_ip = "198.51.100.23".into();
    alert.error_code = None;
    alert.error_message = None;
    alert.event_time = "2025-11-24T10:20:00Z".into();
    alert.received_at = "2025-11-24T10:20:00Z".into();
    alert.path = "api".into();
    alert.source_labels = Vec::new();
    alert.country = None;
    alert.asn = None;
    alert
}

fn fixture_path(flavour: WebhookFlavour, suffix: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/webhooks")
        .join(format!("{flavour}{suffix}.json"))
}

#[test]
fn payloads_match_the_checked_in_examples() {
    let examples = WebhookFlavour::ALL.into_iter().flat_map(|f| {
        [
            (f, fixture_alert(), ""),
            (f, fixture_exposure(), ".exposure"),
            (f, fixture_tamper(), ".tamper"),
        ]
    });
    for (flavour, alert, suffix) in examples {
        let built = payload(flavour, &alert);
        let path = fixture_path(flavour, suffix);
        if std::env::var_os("UPDATE_FIXTURES").is_some() {
            let pretty = serde_json::to_string_pretty(&built).unwrap() + "\n";
            std::fs::write(&path, pretty).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let fixture: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            built,
            fixture,
            "{} differs from the payload",
            path.display()
        );
    }
}

/// The escaped forms of the hostile text, as they appear in each checked-in example.
#[test]
fn hostile_text_is_escaped_in_every_flavour() {
    let body = |f| payload(f, &fixture_alert()).to_string();

    let slack = body(WebhookFlavour::Slack);
    assert!(slack.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(slack.contains("&lt;!channel&gt;"));
    assert!(
        slack.contains("ˋxˋ"),
        "backticks cannot close the code span"
    );
    assert!(slack.contains("build server &lt;ci-01&gt; &amp; ~/.aws/credentials"));
    assert!(slack.contains("&amp;amp;"));

    let discord = payload(WebhookFlavour::Discord, &fixture_alert());
    assert_eq!(discord["allowed_mentions"]["parse"], serde_json::json!([]));
    let discord = discord.to_string();
    // JSON doubles each backslash.
    assert!(discord.contains(r"\\<script\\>alert\\(1\\)\\</script\\>"));
    assert!(discord.contains(r"\\*bold\\* \\@everyone"));
    assert!(discord.contains(r"\\`x\\` \\_i\\_ \\~s\\~ \\| \\> \\# \\- \\[link\\]"));

    let teams = body(WebhookFlavour::Teams);
    assert!(teams.contains(r"\\<script\\>alert\\(1\\)\\</script\\>"));
    assert!(teams.contains(r"\\*bold\\* @everyone \\<\\!channel\\>"));
    assert!(teams.contains(r"\\[link\\]\\(http://evil.example/\\)"));
    // `&amp;` stays literal rather than being read as an entity.
    assert!(teams.contains(r"\\&amp;"));

    let chat = body(WebhookFlavour::GoogleChat);
    assert!(chat.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(chat.contains("&lt;b&gt;not authorized&lt;/b&gt;"));
    assert!(chat.contains("&amp;amp;"));

    for f in [
        WebhookFlavour::Slack,
        WebhookFlavour::Discord,
        WebhookFlavour::Teams,
        WebhookFlavour::GoogleChat,
    ] {
        let text = body(f);
        assert!(!text.contains("<script>"), "{f}");
        // The newline in the user agent cannot start a forged line.
        assert!(!text.contains(r"\n*Source IP:* 10.0.0.1"), "{f}");
    }
    // The generic schema passes the text through untouched, for the receiver to escape.
    let generic = payload(WebhookFlavour::Generic, &fixture_alert());
    assert_eq!(generic["event"]["user_agent"], HOSTILE_UA);
}

/// A tamper alert's caller text (user agent, key name) is escaped in every chat flavour, each
/// says "Tamper" in its title, and the generic schema carries the `tamper` object with every
/// v1 key still present.
#[test]
fn tamper_alerts_escape_the_callers_text_in_every_flavour() {
    let alert = fixture_tamper();
    for f in [
        WebhookFlavour::Slack,
        WebhookFlavour::Discord,
        WebhookFlavour::Teams,
        WebhookFlavour::GoogleChat,
    ] {
        let text = payload(f, &alert).to_string();
        assert!(text.contains("Tamper: a decoy token was deleted"), "{f}");
        assert!(!text.contains("<script>"), "{f}");
        assert!(!text.contains("<laptops>"), "{f}: the key name is escaped");
        assert!(!text.contains(r"\n*Source IP:* 10.0.0.1"), "{f}");
        assert!(text.contains("198.51.100.23"), "{f}");
        assert!(text.contains("token.delete"), "{f}");
    }
    let slack = payload(WebhookFlavour::Slack, &alert).to_string();
    assert!(slack.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(slack.contains("&lt;!channel&gt;"));

    let generic = payload(WebhookFlavour::Generic, &alert);
    assert_eq!(generic["type"], "tamper");
    assert_eq!(generic["tamper"]["action"], "delete");
    assert_eq!(generic["tamper"]["by"], "api_key");
    assert_eq!(generic["tamper"]["operator"], "alice");
    assert_eq!(generic["event"]["user_agent"], HOSTILE_UA);
    assert_eq!(generic["event"]["event_name"], "token.delete");
    assert_eq!(generic["event"]["source_ip"], "198.51.100.23");
    let hit = payload(WebhookFlavour::Generic, &fixture_alert());
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&generic), keys(&hit), "every v1 key, in every type");
    assert_eq!(keys(&generic["event"]), keys(&hit["event"]));
    assert_eq!(hit["tamper"], Value::Null);
}
