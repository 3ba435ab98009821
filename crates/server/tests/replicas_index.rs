//! Two replicas on one PostgreSQL database keep one exact key index: a delete on one is known to
//! the other at once (NOTIFY on `canarykeys_tokens`), also after the other's listener lost its
//! connection (it listens anew and re-reads everything), and a token made in a decoy account
//! that one replica's config does not name is matched there all the same. Needs the local
//! PostgreSQL (`CANARYKEYS_TEST_POSTGRES_URL`, default the machine's trust-auth server).

use canarykeys_server::clock::Clock;
use canarykeys_server::config::{Config, Secret};
use canarykeys_testkit::receiver::Receiver;
use canarykeys_testkit::{id_and_secret, spawn_app_with, wait_for, TestApp, TestDatabase, WAIT};
use serde_json::{json, Value};

const INGEST: &str = "replicas-index-ingest-secret";
const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn shared(c: &mut Config, url: &str) {
    c.database_url = Some(url.to_owned());
    c.encryption_key = Some(Secret::new(KEY));
    c.ingest.secret = Some(Secret::new(INGEST));
    c.alerts.allow_private_webhooks = true;
    c.alerts.cooldown = std::time::Duration::ZERO;
}

fn record(created: &Value, event_id: &str, at_ms: i64) -> Value {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": created["aws"]["access_key_id"],
            "userName": created["aws"]["username"], "accountId": created["aws"]["account_id"]},
        "eventTime": at, "eventSource": "sts.amazonaws.com", "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1", "sourceIPAddress": "203.0.113.9", "eventID": event_id
    })
}

async fn ingest(app: &TestApp, record: &Value) -> Value {
    let resp = app
        .http
        .post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(INGEST)
        .json(record)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn delete(app: &TestApp, created: &Value) {
    let (id, secret) = id_and_secret(created);
    let resp = app
        .http
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

/// Ingests `record` on `app` until its report satisfies `done` (the first time stores the hit,
/// later times are repeats of the same event id): the replica's index, not the database, decides
/// what the report says.
async fn until(app: &TestApp, what: &str, record: &Value, done: impl Fn(&Value) -> bool) {
    wait_for(what, WAIT, || async {
        let report = ingest(app, record).await;
        done(&report).then_some(())
    })
    .await;
}

/// Kills every LISTEN connection to the test database, as a network cut or a PostgreSQL restart
/// would: sqlx reconnects on its own and drops what was sent meanwhile.
async fn kill_listeners(url: &str) -> u64 {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    killed.len() as u64
}

#[tokio::test]
async fn a_delete_on_one_replica_is_known_to_the_other_at_once_even_after_its_listener_is_killed() {
    let db = TestDatabase::create("ck_replica_index").await;
    let url = db.url().to_owned();
    let rx = Receiver::start().await;
    let a = spawn_app_with(|c| shared(c, &url)).await;
    let b = spawn_app_with(|c| shared(c, &url)).await;
    let hook = json!({"memo": "ci runner 7", "webhook_url": rx.url()});
    let first: Value = a.post_token(&hook).await.json().await.unwrap();
    let second: Value = a.post_token(&hook).await.json().await.unwrap();

    // B knows both keys as live ones. Their uses are a minute old: a use whose time is its
    // arrival, planned after its token's delete, would count as after it (retired), and the
    // planner may come to these only after the deletes below.
    let now = b.clock.now_millis() - 60_000;
    for (created, id) in [(&first, "live-1"), (&second, "live-2")] {
        let report = ingest(&b, &record(created, id, now)).await;
        assert_eq!(
            (&report["matched"], &report["retired"]),
            (&json!(1), &json!(0))
        );
    }

    delete(&a, &first).await;
    let after = record(&first, "after-1", a.clock.now_millis() + 30 * 60_000);
    until(&b, "B knows the first key is retired", &after, |r| {
        r["retired"] == 1 && r["matched"] == 1
    })
    .await;

    // A lost connection drops notifications silently: B listens anew and re-reads its index.
    wait_for("the listeners are connected", WAIT, || async {
        (kill_listeners(&url).await > 0).then_some(())
    })
    .await;
    delete(&a, &second).await;
    let after = record(&second, "after-2", a.clock.now_millis() + 30 * 60_000);
    until(&b, "B knows the second key is retired", &after, |r| {
        r["retired"] == 1 && r["matched"] == 1
    })
    .await;

    // Each use after its delete reaches the webhook as a retired key's.
    let retired = wait_for("both retired uses alerted", WAIT, || async {
        b.deliver_once().await;
        let retired: Vec<Value> = rx
            .bodies()
            .into_iter()
            .filter(|v| v["retired"] == true)
            .collect();
        (retired.len() >= 2).then_some(retired)
    })
    .await;
    for alert in &retired {
        let headline = alert["headline"].as_str().unwrap();
        assert!(headline.starts_with("Retired key used:"), "{headline}");
    }
    // Counted by alert id: delivery is at least once, and two replicas share the outbox.
    let ordinary: std::collections::BTreeSet<String> = rx
        .bodies()
        .iter()
        .filter(|v| v["type"] == "hit" && v["retired"] == false)
        .map(|v| v["alert_id"].to_string())
        .collect();
    assert_eq!(
        ordinary.len(),
        2,
        "the two uses before the deletes are ordinary hits: {:#?}",
        // Whole bodies: a failure here has been seen once in CI and not since, so what each
        // alert said (note, times, token) is what is left to find its cause from.
        rx.bodies()
            .iter()
            .filter(|v| v["type"] == "hit")
            .collect::<Vec<_>>()
    );
    // The deletes (with each token's manage secret) were loud.
    wait_for("both deletes' tamper alerts", WAIT, || async {
        a.deliver_once().await;
        let tampers = rx.bodies().iter().filter(|v| v["type"] == "tamper").count();
        (tampers == 2).then_some(())
    })
    .await;

    a.stop().await;
    b.stop().await;
    db.drop_database().await;
}

#[tokio::test]
async fn a_replica_whose_config_lacks_a_decoy_account_matches_its_tokens_made_by_another() {
    let db = TestDatabase::create("ck_replica_accounts").await;
    let url = db.url().to_owned();
    let a = spawn_app_with(|c| {
        shared(c, &url);
        c.minter.account_id = Some("111122223333".into());
    })
    .await;
    let b = spawn_app_with(|c| {
        shared(c, &url);
        c.minter.account_id = Some("444455556666".into());
    })
    .await;

    // Made after B started, in an account B's config does not name.
    let created = a.create_token().await;
    assert_eq!(created["aws"]["account_id"], "111122223333");
    let use_ = record(&created, "new-account", b.clock.now_millis());
    until(&b, "B matches the new account's key", &use_, |r| {
        r["matched"] == 1
    })
    .await;

    a.stop().await;
    b.stop().await;
    db.drop_database().await;
}
