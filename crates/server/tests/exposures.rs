//! Exposure alerts end to end: an AWS Health event at the ingest endpoint and AWS's quarantine
//! policy seen by the safety net (against moto) both reach email (aiosmtpd) and webhooks, once
//! per token and source, past an open cooldown; hostile text stays inert in every channel; a
//! Health event about a key no token owns is counted and never alerted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use canarykeys_aws::testing::Moto;
use canarykeys_aws::{sdk_config, IamKeyUsage};
use canarykeys_core::cloudtrail::Limits;
use canarykeys_server::config::{Config, Secret};
use canarykeys_server::jobs::safety_net;
use canarykeys_server::metrics::Metrics;
use canarykeys_server::services::IngestService;
use canarykeys_store::{SqlStore, Store};
use canarykeys_testkit::smtp_sink::SmtpSink;
use canarykeys_testkit::{id_and_secret, TestApp};
use serde_json::{json, Value};

const INGEST: &str = "exposure-test-ingest-secret";
const HOSTILE_DESCRIPTION: &str = "Key found at javascript://%0Aalert(document.cookie) <img src=x onerror=alert(1)> <!channel> *bold* [x](http://evil.example) & more";

#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<Mutex<Vec<Bytes>>>,
}

async fn receive(State(r): State<Receiver>, body: Bytes) -> StatusCode {
    r.calls.lock().unwrap().push(body);
    StatusCode::OK
}

impl Receiver {
    async fn start() -> (Self, String) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, url)
    }

    /// Waits (bounded) until `n` calls arrived; asserts on what arrived, not on time.
    async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..400 {
            if self.calls.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect()
    }
}

fn tune(sink: &SmtpSink) -> impl FnOnce(&mut Config) + '_ {
    move |c| {
        c.ingest.secret = Some(Secret::new(INGEST));
        c.alerts.allow_private_webhooks = true;
        // A long cooldown: an exposure must not be held back by a hit's open window.
        c.alerts.cooldown = Duration::from_secs(3600);
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = sink.port();
        c.smtp.tls = canarykeys_server::config::SmtpTls::None;
        c.smtp.from = Some("canarykeys <alerts@canarykeys.example>".into());
    }
}

async fn token(app: &TestApp, webhook: &str) -> Value {
    let resp = app
        .post_token(
            &json!({"memo": "repo .env <b>", "email": "soc@example.com", "webhook_url": webhook}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    resp.json().await.unwrap()
}

fn health_event(keys: &[&str], arn: &str, description: &str) -> Value {
    json!({
        "version": "0", "id": format!("eb-{arn}"), "detail-type": "AWS Health Event",
        "source": "aws.health", "account": "123456789012", "time": "2026-11-28T09:12:44Z",
        "region": "us-east-1", "resources": [],
        "detail": {
            "eventArn": arn, "service": "RISK", "eventTypeCode": "AWS_RISK_CREDENTIALS_EXPOSED",
            "eventTypeCategory": "issue", "eventScopeCode": "ACCOUNT_SPECIFIC",
            "startTime": "Sat, 28 Nov 2026 09:05:00 GMT", "eventRegion": "global",
            "eventDescription": [{"language": "en_US", "latestDescription": description}],
            "affectedEntities": keys.iter().map(|k| json!({"entityValue": k})).collect::<Vec<_>>(),
        }
    })
}

async fn ingest(app: &TestApp, path: &str, body: &Value) -> Value {
    let resp = app
        .http
        .post(app.url(path))
        .bearer_auth(INGEST)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn key(created: &Value) -> String {
    created["aws"]["access_key_id"].as_str().unwrap().to_owned()
}

/// The token's outbox rows for exposure messages.
async fn exposure_rows(app: &TestApp, created: &Value) -> usize {
    let (id, secret) = id_and_secret(created);
    let v: Value = app
        .get_authed(&format!("/api/v1/tokens/{id}/deliveries"), &secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "exposure")
        .count()
}

fn mails(sink: &SmtpSink, n: usize) -> Vec<canarykeys_testkit::smtp_sink::Mail> {
    tokio::task::block_in_place(|| sink.wait_for_mails(n))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_health_event_alerts_once_by_email_and_webhook_past_the_cooldown() {
    let sink = SmtpSink::start();
    let (receiver, url) = Receiver::start().await;
    let app = canarykeys_testkit::spawn_app_with(tune(&sink)).await;
    let created = token(&app, &url).await;
    // A use first: it opens the cooldown window.
    let record = json!({
        "eventVersion": "1.09", "eventID": "use-1", "eventTime": "2026-11-28T08:00:00Z",
        "userIdentity": {"type": "IAMUser", "accessKeyId": key(&created)},
        "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.7"
    });
    ingest(&app, "/ingest/v1/cloudtrail", &record).await;
    receiver.wait_for(1).await;

    let description = "Your key was found at https://github.com/example-org/notes/blob/main/.env .";
    let event = health_event(
        &[&key(&created)],
        "arn:aws:health:global::event/RISK/A/1",
        description,
    );
    let report = ingest(&app, "/ingest/v1/events", &event).await;
    assert_eq!(report["health"]["new_exposures"], 1, "{report}");
    // The backup region's copy of the same event, through the old path: no second alert.
    let report = ingest(&app, "/ingest/v1/cloudtrail", &event).await;
    assert_eq!(report["health"]["new_exposures"], 0, "{report}");

    let calls = receiver.wait_for(2).await;
    let exposure: Value = serde_json::from_str(&calls[1]).unwrap();
    assert_eq!(exposure["schema"], "canarykeys.alert/v1");
    assert_eq!(exposure["type"], "exposure");
    assert_eq!(exposure["exposure"]["source"], "health");
    assert_eq!(
        exposure["exposure"]["location"],
        "https://github.com/example-org/notes/blob/main/.env"
    );
    assert_eq!(exposure["exposure"]["description"], description);
    assert_eq!(exposure["summary"], Value::Null);

    let mails = mails(&sink, 2);
    let subject = mails
        .iter()
        .filter_map(|m| m.header("Subject"))
        .find(|s| s.contains("exposed"))
        .expect("an exposure mail");
    assert!(
        subject.starts_with("[canarykeys] Decoy key exposed in public:"),
        "{subject}"
    );
    assert!(!subject.contains("used"), "{subject}");

    // The banner on the manage page links the https location.
    let (id, secret) = id_and_secret(&created);
    let page = app
        .http
        .get(app.url(&format!("/manage/{id}?s={secret}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("class=\"banner exposure\""), "{page}");
    // minijinja writes `/` as `&#x2f;` inside the attribute; browsers read it back.
    let link = "<a href=\"https:&#x2f;&#x2f;github.com&#x2f;example-org&#x2f;notes&#x2f;blob&#x2f;main&#x2f;.env\"";
    assert!(page.contains(link), "{page}");

    // The repeated event wrote no outbox rows: one exposure message per channel.
    assert_eq!(exposure_rows(&app, &created).await, 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_text_is_inert_in_every_channel_and_unknown_keys_never_alert() {
    let sink = SmtpSink::start();
    let (receiver, url) = Receiver::start().await;
    let app = canarykeys_testkit::spawn_app_with(tune(&sink)).await;
    let flavours = ["generic", "slack", "discord", "teams", "google_chat"];
    let mut keys = Vec::new();
    let mut tokens = Vec::new();
    for f in flavours {
        let t = token(&app, &format!("{url}#flavour={f}")).await;
        keys.push(key(&t));
        tokens.push(t);
    }
    keys.push("AKIAUNKNOWNUNKNOWNQQ".into());
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let event = health_event(
        &refs,
        "arn:aws:health:global::event/RISK/A/2",
        HOSTILE_DESCRIPTION,
    );
    let report = ingest(&app, "/ingest/v1/events", &event).await;
    assert_eq!(report["health"]["new_exposures"], 5, "{report}");
    assert_eq!(report["unknown_keys"], 1, "{report}");

    let calls = receiver.wait_for(5).await;
    assert_eq!(calls.len(), 5);
    for body in &calls {
        let v: Value = serde_json::from_str(body).unwrap();
        if v["schema"] == "canarykeys.alert/v1" {
            // The generic schema passes text as AWS had it; the receiver escapes.
            assert_eq!(v["exposure"]["description"], HOSTILE_DESCRIPTION);
            assert_eq!(
                v["exposure"]["location"],
                "javascript://%0Aalert(document.cookie"
            );
            continue;
        }
        // Chat flavours: no live tag, mention or link markup survives. Discord and Teams read
        // Markdown, where a backslash (JSON `\\`) makes the next character literal.
        let markdown = body.contains("\"embeds\"") || body.contains("AdaptiveCard");
        let live = if markdown {
            assert!(!body.contains("[x](http"), "{body}");
            body.replace(r"\\<", "")
        } else {
            body.clone()
        };
        assert!(!live.contains("<img"), "{body}");
        assert!(!live.contains("<!channel>"), "{body}");
    }

    let mails = mails(&sink, 5);
    for mail in &mails {
        let html = mail.part("text/html").unwrap();
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(!html.contains("href=\"javascript"), "{html}");
    }

    // The console feed and the manage banner show the location as text, not a link.
    let (id, secret) = id_and_secret(&tokens[0]);
    let page = app
        .http
        .get(app.url(&format!("/manage/{id}?s={secret}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("class=\"banner exposure\""), "{page}");
    assert!(!page.contains("href=\"javascript"), "{page}");
    assert!(!page.contains("<img src=x"), "{page}");

    let metrics = app.metrics().await;
    assert!(
        metrics.contains("canarykeys_exposure_unknown_key_total{source=\"health\"} 1"),
        "{metrics}"
    );
    for t in &tokens {
        assert_eq!(exposure_rows(&app, t).await, 2, "email and webhook, once");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_safety_net_reports_aws_quarantine_once() {
    // moto knows AWS's managed quarantine policies once they are loaded, so the real
    // arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2 is attached, as AWS would.
    let moto = Moto::start_with_managed_policies();
    let cfg = sdk_config(&moto.settings()).await;
    let iam = aws_sdk_iam::Client::new(&cfg);
    let user = "svc-reporting-prod";
    iam.create_user().user_name(user).send().await.unwrap();
    let key = iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .unwrap();
    let key_id = key.access_key().unwrap().access_key_id().to_owned();

    let sink = SmtpSink::start();
    let (receiver, url) = Receiver::start().await;
    let app = canarykeys_testkit::spawn_app_with(tune(&sink)).await;
    token(&app, &url).await;
    let db = format!("sqlite:{}", app.data_dir.join("canarykeys.db").display());
    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&db).await.unwrap());
    // The app's token, re-pointed at the key and user moto made (as the IAM minter stores it).
    let mut decoy = store.list_tokens().await.unwrap().remove(0);
    decoy.id = canarykeys_core::TokenId::generate();
    decoy.access_key_id = canarykeys_core::AccessKeyId::parse(&key_id).unwrap();
    decoy.username = canarykeys_core::IamUserName::parse(user).unwrap();
    store.insert_token(&decoy).await.unwrap();

    // The safety net needs the running app's exposure service (its public URL and channels);
    // the test builds one the same way over the same database.
    let metrics = Arc::new(Metrics::default());
    let alerts = canarykeys_server::services::alerts::AlertService::new(
        store.clone(),
        canarykeys_server::enrich::Enricher::empty(),
        app.address.clone().into(),
        3_600_000,
        true,
    );
    // On the app's clock, so what it writes is due by the app's outbox.
    let clock = app.clock.shared();
    let exposures =
        canarykeys_server::services::ExposureService::new(store.clone(), alerts, metrics.clone())
            .with_clock(clock.clone());
    let net = safety_net::SafetyNet {
        operator_alerts: Default::default(),
        accounts: Default::default(),
        clock: clock.clone(),
        usage: Arc::new(IamKeyUsage::new(&cfg)),
        store: store.clone(),
        ingest: IngestService::new(store.clone(), Limits::default(), metrics).with_clock(clock),
        exposures,
    };
    assert_eq!(
        net.round().await.unwrap().quarantined,
        0,
        "not quarantined yet"
    );

    iam.attach_user_policy()
        .user_name(user)
        .policy_arn("arn:aws:iam::aws:policy/AWSCompromisedKeyQuarantineV2")
        .send()
        .await
        .unwrap();
    assert_eq!(net.round().await.unwrap().quarantined, 1);
    assert_eq!(net.round().await.unwrap().quarantined, 0, "once per token");

    app.deliver_once().await;
    let calls = receiver.wait_for(1).await;
    let v: Value = serde_json::from_str(&calls[0]).unwrap();
    assert_eq!(v["type"], "exposure");
    assert_eq!(v["exposure"]["source"], "quarantine");
    assert_eq!(v["exposure"]["event_type"], "AWSCompromisedKeyQuarantineV2");
    assert_eq!(v["event"]["access_key_id"], key_id.as_str());
    let mails = mails(&sink, 1);
    let subject = mails[0].header("Subject").unwrap();
    assert!(subject.contains("exposed"), "{subject}");
    let text = mails[0].part("text/plain").unwrap();
    assert!(
        text.contains("AWS quarantined this key: it was found in public."),
        "{text}"
    );
    let rows = store.list_deliveries(&decoy.id, 10).await.unwrap();
    assert_eq!(rows.iter().filter(|d| d.kind == "exposure").count(), 2);
    app.stop().await;
}
