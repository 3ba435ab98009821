//! Tamper alerts and API-key ownership, black-box: switching a channel off, changing the ignore
//! list and deleting, with the manage secret or an API key, each reach a webhook receiver and an
//! SMTP sink on the channels the token had BEFORE the change, naming the action, the actor, the
//! caller's address and user agent (escaped); an API key deletes only its own operator's tokens
//! (a second operator's key gets 404, a successor key of the same operator succeeds and is
//! loud); and an API key's create budget answers 429 with `Retry-After`, per minute and live.

use std::time::Duration;

use canarykeys_server::config::Config;
use canarykeys_server::services::access::KeyBudget;
use canarykeys_server::services::Scope;
use canarykeys_testkit::access::{services, PASSWORD};
use canarykeys_testkit::receiver::Receiver;
use canarykeys_testkit::smtp_sink::{Mail, SmtpSink};
use canarykeys_testkit::{id_and_secret, spawn_app_with, wait_for, TestApp};
use reqwest::header::HeaderValue;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);
/// Markup for every channel, a bidi override and a tab: what an intruder's client could send.
const HOSTILE_UA: &str =
    "<script>alert(1)</script> *b* <!channel> @everyone [x](http://evil.example)\t\u{202E}kcatta";

fn tune(sink: &SmtpSink, operators: bool) -> impl FnOnce(&mut Config) + '_ {
    move |c| {
        c.alerts.allow_private_webhooks = true;
        // A long cooldown: a tamper alert is never held back by one.
        c.alerts.cooldown = Duration::from_secs(3600);
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = sink.port();
        c.smtp.tls = canarykeys_server::config::SmtpTls::None;
        c.smtp.from = Some("canarykeys <alerts@canarykeys.example>".into());
        if operators {
            c.access.create = "operators".into();
        }
    }
}

fn hostile() -> HeaderValue {
    HeaderValue::from_bytes(HOSTILE_UA.as_bytes()).unwrap()
}

/// Runs the outbox until `check` holds.
async fn delivered<T>(app: &TestApp, what: &str, check: impl Fn() -> Option<T>) -> T {
    wait_for(what, WAIT, || async {
        app.deliver_once().await;
        check()
    })
    .await
}

fn tamper_bodies(rx: &Receiver) -> Vec<Value> {
    rx.bodies()
        .into_iter()
        .filter(|b| b["type"] == "tamper")
        .collect()
}

/// The mail whose subject contains `needle`, once it arrived.
fn mail_with(sink: &SmtpSink, n: usize, needle: &str) -> Mail {
    sink.wait_for_mails(n)
        .into_iter()
        .find(|m| m.header("Subject").is_some_and(|s| s.contains(needle)))
        .unwrap_or_else(|| panic!("no mail about {needle:?}"))
}

/// The text and HTML parts carry the caller, escaped: no live markup, no bidi override.
fn assert_mail_names_the_caller(mail: &Mail, action: &str, actor: &str) {
    let text = mail.part("text/plain").unwrap();
    let html = mail.part("text/html").unwrap();
    for part in [&text, &html] {
        assert!(part.contains(action), "{part}");
        assert!(part.contains(actor), "{part}");
        assert!(part.contains("127.0.0.1"), "{part}");
        assert!(!part.contains('\u{202E}'), "the bidi override is stripped");
    }
    assert!(text.contains("<script>alert(1)</script> *b*"), "{text}");
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;"), "{html}");
}

#[tokio::test]
async fn manage_secret_changes_alert_the_channels_the_token_had_before() {
    let sink = SmtpSink::start();
    let rx = Receiver::start().await;
    let app = spawn_app_with(tune(&sink, false)).await;
    let resp = app
        .post_token(
            &json!({"memo": "laptop ~/.aws", "email": "soc@example.com", "webhook_url": rx.url()}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let (id, secret) = id_and_secret(&created);
    let patch = |body: Value| {
        app.http
            .patch(app.url(&format!("/api/v1/tokens/{id}")))
            .bearer_auth(&secret)
            .header("user-agent", hostile())
            .json(&body)
            .send()
    };

    // 1. The webhook is switched off: the alert still goes to the webhook (and to email).
    let resp = patch(json!({"webhook_enabled": false})).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = delivered(&app, "the channel-off alert at the webhook", || {
        tamper_bodies(&rx).into_iter().next()
    })
    .await;
    assert_eq!(body["schema"], "canarykeys.alert/v1");
    assert_eq!(body["tamper"]["action"], "channel_off");
    assert_eq!(body["tamper"]["by"], "manage_secret");
    assert_eq!(body["tamper"]["api_key_id"], Value::Null);
    assert_eq!(body["tamper"]["change"], "webhook alerts switched off");
    assert_eq!(body["event"]["event_name"], "token.channels");
    assert_eq!(body["event"]["source_ip"], "127.0.0.1");
    assert_eq!(
        body["event"]["user_agent"], HOSTILE_UA,
        "unescaped in the schema"
    );
    assert_eq!(body["event"]["path"], "api");
    assert_eq!(body["token"]["id"], id.as_str());
    assert!(body["event"]["event_time"].as_str().unwrap().ends_with('Z'));
    let mail = mail_with(&sink, 1, "Tamper: alerts switched off");
    assert_mail_names_the_caller(&mail, "token.channels", "manage secret");

    // 2. The ignore list changes: only email is left on, so only email hears of it.
    let resp = patch(json!({"ignore_sources": ["198.51.100.7"]}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    delivered(&app, "the ignore-list mail", || {
        (sink.wait_for_mails(1).len() >= 2).then_some(())
    })
    .await;
    let mail = mail_with(&sink, 2, "Tamper: ignore list changed");
    assert_mail_names_the_caller(&mail, "token.ignore_sources", "manage secret");
    assert!(mail.part("text/plain").unwrap().contains("198.51.100.7"));
    // The same list again changes nothing and alerts nobody.
    assert_eq!(
        patch(json!({"ignore_sources": ["198.51.100.7"]}))
            .await
            .unwrap()
            .status(),
        200
    );

    // 3. The delete: its alert outlives the token.
    let resp = app
        .http
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&secret)
        .header("user-agent", hostile())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    delivered(&app, "the delete mail", || {
        (sink.wait_for_mails(1).len() >= 3).then_some(())
    })
    .await;
    let mail = mail_with(&sink, 3, "Tamper: decoy token deleted");
    assert_mail_names_the_caller(&mail, "token.delete", "manage secret");
    assert_eq!(sink.wait_for_mails(3).len(), 3, "one mail per change");
    assert_eq!(
        tamper_bodies(&rx).len(),
        1,
        "the webhook was off after step 1"
    );
}

/// The secret-link manage page is the same door as the API: its changes are loud too.
#[tokio::test]
async fn the_manage_page_raises_tamper_alerts_too() {
    let sink = SmtpSink::start();
    let rx = Receiver::start().await;
    let app = spawn_app_with(tune(&sink, false)).await;
    let created: Value = app
        .post_token(&json!({"memo": "repo .env", "webhook_url": rx.url()}))
        .await
        .json()
        .await
        .unwrap();
    let (id, secret) = id_and_secret(&created);
    let csrf = "c".repeat(43);
    let resp = app
        .http
        .post(app.url(&format!("/manage/{id}/ignore")))
        .header("cookie", format!("ck_csrf={csrf}"))
        .header("user-agent", hostile())
        .form(&[
            ("s", secret.as_str()),
            ("csrf", csrf.as_str()),
            ("sources", "203.0.113.0/24"),
        ])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
    let body = delivered(&app, "the manage page's ignore-list alert", || {
        tamper_bodies(&rx).into_iter().next()
    })
    .await;
    assert_eq!(body["tamper"]["action"], "ignore_list");
    assert_eq!(body["event"]["path"], "manage-page");
    assert_eq!(body["event"]["user_agent"], HOSTILE_UA);
    assert_eq!(
        body["tamper"]["change"],
        "ignore list set to: 203.0.113.0/24"
    );
}

#[tokio::test]
async fn an_api_key_deletes_only_its_own_operators_tokens_and_loudly() {
    let sink = SmtpSink::start();
    let rx = Receiver::start().await;
    let app = spawn_app_with(tune(&sink, true)).await;
    let svc = services(&app).await;
    let alice = svc.access.create_operator("alice", PASSWORD).await.unwrap();
    let bob = svc.access.create_operator("bob", PASSWORD).await.unwrap();
    let write = [Scope::TokensWrite];
    let (first, fleet_key) = svc
        .access
        .create_api_key(&alice, "fleet", &write)
        .await
        .unwrap();
    let (_, bob_key) = svc
        .access
        .create_api_key(&bob, "bob's", &write)
        .await
        .unwrap();
    let (successor, successor_key) = svc
        .access
        .create_api_key(&alice, "fleet 2", &write)
        .await
        .unwrap();
    let resp = app
        .http
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(&fleet_key)
        .json(&json!({"memo": "ci runner", "webhook_url": rx.url()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let (id, _) = id_and_secret(&created);
    let delete = |key: String| {
        app.http
            .delete(app.url(&format!("/api/v1/tokens/{id}")))
            .bearer_auth(key)
            .header("user-agent", hostile())
            .send()
    };

    // Another operator's planting key: as if there were no such token.
    let resp = delete(bob_key).await.unwrap();
    assert_eq!(resp.status(), 404);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "not_found");
    // The leaked key is revoked; its successor still manages the fleet's tokens.
    svc.access.revoke_api_key(&alice, &first.id).await.unwrap();
    assert_eq!(delete(fleet_key).await.unwrap().status(), 401);
    assert_eq!(delete(successor_key).await.unwrap().status(), 204);

    let body = delivered(&app, "the API-key delete alert", || {
        tamper_bodies(&rx).into_iter().next()
    })
    .await;
    assert_eq!(body["tamper"]["action"], "delete");
    assert_eq!(body["tamper"]["by"], "api_key");
    assert_eq!(body["tamper"]["api_key_id"], successor.id.as_str());
    assert_eq!(body["tamper"]["api_key_name"], "fleet 2");
    assert_eq!(body["tamper"]["operator"], "alice");
    assert_eq!(body["event"]["event_name"], "token.delete");
    assert_eq!(body["event"]["source_ip"], "127.0.0.1");
    assert_eq!(body["event"]["user_agent"], HOSTILE_UA);
    assert!(body["headline"]
        .as_str()
        .unwrap()
        .contains(&format!("API key {} of alice", successor.id)));
    assert_eq!(
        tamper_bodies(&rx).len(),
        1,
        "the 404 and the 401 changed nothing"
    );
    svc.close().await;
}

#[tokio::test]
async fn an_api_keys_create_budget_answers_429_with_retry_after() {
    let sink = SmtpSink::start();
    let app = spawn_app_with(tune(&sink, true)).await;
    let svc = services(&app).await;
    let op = svc.access.create_operator("fleet", PASSWORD).await.unwrap();
    let budget = KeyBudget {
        per_minute: 2,
        live_tokens: 3,
    };
    let (_, key) = svc
        .access
        .create_api_key_with_budget(&op, "fleet", &[Scope::TokensWrite], budget)
        .await
        .unwrap();
    let create = || {
        app.http
            .post(app.url("/api/v1/tokens"))
            .bearer_auth(&key)
            .json(&json!({"memo": "ci", "email": "soc@example.com"}))
            .send()
    };
    let mut made = Vec::new();
    for _ in 0..2 {
        let resp = create().await.unwrap();
        assert_eq!(resp.status(), 201);
        made.push(resp.json::<Value>().await.unwrap());
    }
    // The third in the minute: 429, with how long to wait, and nothing minted.
    let resp = create().await.unwrap();
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "rate_limited");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("2 tokens a minute"));

    // A minute later on the test clock: one more fits, then the live cap (3) holds.
    app.advance(Duration::from_secs(61));
    assert_eq!(create().await.unwrap().status(), 201);
    let resp = create().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let err: Value = resp.json().await.unwrap();
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("3 live tokens"));
    // Deleting one of its tokens frees a place.
    let (id, _) = id_and_secret(&made[0]);
    let resp = app
        .http
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(create().await.unwrap().status(), 201);
    svc.close().await;
}

/// A signed-in operator is the operator: the console's delete is audited, not alerted.
#[tokio::test]
async fn a_console_operators_delete_is_audited_without_a_tamper_alert() {
    let sink = SmtpSink::start();
    let rx = Receiver::start().await;
    let app = spawn_app_with(tune(&sink, true)).await;
    let svc = services(&app).await;
    svc.access.create_operator("alice", PASSWORD).await.unwrap();
    let session = canarykeys_testkit::access::login(&app, "alice").await;
    let csrf = canarykeys_testkit::access::csrf();
    let cookies = format!("ck_session={session}; ck_csrf={csrf}");
    let resp = app
        .http
        .post(app.url("/api/v1/tokens"))
        .header("cookie", &cookies)
        .json(&json!({"memo": "db host", "webhook_url": rx.url()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let (id, _) = id_and_secret(&resp.json::<Value>().await.unwrap());
    let resp = app
        .http
        .post(app.url("/console/tokens/bulk-delete"))
        .header("cookie", &cookies)
        .form(&[("csrf", csrf.as_str()), ("id", id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    // One outbox round sends everything due: a tamper row would have gone out in it.
    app.deliver_once().await;
    assert!(tamper_bodies(&rx).is_empty());
    let audit = svc.access.list_audit(20, 0).await;
    assert!(audit
        .iter()
        .any(|e| e.action == "token.delete" && e.target == id && e.actor == "alice"));
    svc.close().await;
}

/// The same on PostgreSQL: ownership is read from the shared database, and the tamper alert's
/// outbox rows commit with the change (`CANARYKEYS_TEST_POSTGRES_URL`).
#[tokio::test]
async fn ownership_and_tamper_alerts_on_postgres() {
    let db = canarykeys_testkit::TestDatabase::create("ck_tamper").await;
    let url = db.url().to_owned();
    let sink = SmtpSink::start();
    let rx = Receiver::start().await;
    let app = spawn_app_with(|c| {
        tune(&sink, true)(c);
        c.database_url = Some(url.clone());
    })
    .await;
    let mut config = canarykeys_testkit::app::test_config(&app.data_dir);
    config.database_url = Some(url.clone());
    let svc = canarykeys_server::Services::open(&config).await.unwrap();
    let alice = svc.access.create_operator("alice", PASSWORD).await.unwrap();
    let bob = svc.access.create_operator("bob", PASSWORD).await.unwrap();
    let write = [Scope::TokensWrite];
    let (_, alice_key) = svc
        .access
        .create_api_key(&alice, "fleet", &write)
        .await
        .unwrap();
    let (_, bob_key) = svc
        .access
        .create_api_key(&bob, "other", &write)
        .await
        .unwrap();
    let resp = app
        .http
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(&alice_key)
        .json(&json!({"memo": "build agent", "email": "soc@example.com", "webhook_url": rx.url()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let (id, secret) = id_and_secret(&resp.json::<Value>().await.unwrap());

    // The manage secret switches email off: both channels hear of it.
    let resp = app
        .http
        .patch(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&secret)
        .header("user-agent", hostile())
        .json(&json!({"email_enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = delivered(&app, "the channel-off alert", || {
        tamper_bodies(&rx).into_iter().next()
    })
    .await;
    assert_eq!(body["tamper"]["change"], "email alerts switched off");
    let mail = mail_with(&sink, 1, "Tamper: alerts switched off");
    assert_mail_names_the_caller(&mail, "token.channels", "manage secret");

    let delete = |key: String| {
        app.http
            .delete(app.url(&format!("/api/v1/tokens/{id}")))
            .bearer_auth(key)
            .header("user-agent", hostile())
            .send()
    };
    assert_eq!(delete(bob_key).await.unwrap().status(), 404);
    assert_eq!(delete(alice_key).await.unwrap().status(), 204);
    let body = delivered(&app, "the API-key delete alert", || {
        tamper_bodies(&rx).into_iter().nth(1)
    })
    .await;
    assert_eq!(body["tamper"]["action"], "delete");
    assert_eq!(body["tamper"]["operator"], "alice");
    assert_eq!(body["tamper"]["api_key_name"], "fleet");
    assert_eq!(body["event"]["user_agent"], HOSTILE_UA);
    svc.close().await;
    app.stop().await;
    db.drop_database().await;
}

/// One request that switches the webhook off and changes the ignore list: both alerts go to the
/// channels the token had before the request, the webhook included.
#[tokio::test]
async fn one_patch_with_two_changes_tells_both_on_the_channels_before_it() {
    let sink = SmtpSink::start();
    let rx = Receiver::start().await;
    let app = spawn_app_with(tune(&sink, false)).await;
    let created: Value = app
        .post_token(&json!({"memo": "nas", "webhook_url": rx.url()}))
        .await
        .json()
        .await
        .unwrap();
    let (id, secret) = id_and_secret(&created);
    let resp = app
        .http
        .patch(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&secret)
        .json(&json!({"webhook_enabled": false, "ignore_sources": ["192.0.2.1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bodies = delivered(&app, "both tamper alerts at the webhook", || {
        let b = tamper_bodies(&rx);
        (b.len() >= 2).then_some(b)
    })
    .await;
    let actions: Vec<&str> = bodies
        .iter()
        .map(|b| b["tamper"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["channel_off", "ignore_list"]);
}
