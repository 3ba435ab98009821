//! Correctness at speed: many concurrent one-event ingests share group commits and still give
//! exactly one hit and one alert each; a group whose commit fails answers none of its requests
//! with 2xx; a token made on one replica matches an event sent to another at once; and on
//! PostgreSQL a group held up in the database does not hold the next. These wait for
//! conditions and never time anything.

use std::time::Duration;

use canarykeys_testkit::{spawn_app_with, wait_for, TestApp, WAIT};
use futures_util::future::join_all;
use serde_json::{json, Value};

const SECRET: &str = "test-ingest-secret-0123456789";

fn configure(c: &mut canarykeys_server::Config, database_url: Option<&str>) {
    c.ingest.secret = Some(canarykeys_server::config::Secret::new(SECRET));
    c.alerts.cooldown = Duration::ZERO;
    c.database_url = database_url.map(str::to_owned);
    c.encryption_key = Some(canarykeys_server::config::Secret::new(
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    ));
}

/// One EventBridge event of a call made with the token's key.
fn event(created: &Value, event_id: &str) -> Vec<u8> {
    let aws = &created["aws"];
    serde_json::to_vec(&json!({
        "version": "0", "id": event_id, "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.sts", "account": aws["account_id"], "time": "2026-11-30T10:00:00Z",
        "region": "us-east-1",
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "accessKeyId": aws["access_key_id"],
                "accountId": aws["account_id"], "userName": aws["username"]},
            "eventTime": "2026-11-30T10:00:00Z", "eventSource": "sts.amazonaws.com",
            "eventName": "GetCallerIdentity", "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.7", "userAgent": "aws-cli/2.15.0",
            "eventID": event_id, "eventType": "AwsApiCall", "recipientAccountId": aws["account_id"]
        }
    }))
    .unwrap()
}

async fn post(app: &TestApp, body: Vec<u8>) -> (u16, Value) {
    post_to(app.http.clone(), app.url("/ingest/v1/cloudtrail"), body).await
}

/// `post`, owning what it needs, for a task of its own.
async fn post_to(http: reqwest::Client, url: String, body: Vec<u8>) -> (u16, Value) {
    let resp = http
        .post(url)
        .bearer_auth(SECRET)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn db(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.unwrap()
}

async fn count(pool: &sqlx::AnyPool, sql: &str, token: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(token)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A fresh PostgreSQL database: (admin pool, its name, its URL).
async fn fresh_postgres() -> (sqlx::AnyPool, String, String) {
    let admin_url = std::env::var("CANARYKEYS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is needed for this test at {admin_url} ({e}); set CANARYKEYS_TEST_POSTGRES_URL")
    });
    let name = format!("ck_speed_{}", rand::random::<u64>());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
    (admin, name, url)
}

async fn drop_postgres(admin: sqlx::AnyPool, name: &str) {
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
}

/// 1,000 concurrent one-event ingests: every one answered 200 as a new hit, and exactly 1,000
/// hits, 1,000 alerts and (cooldown 0s) 1,000 deliveries stored.
async fn thousand_concurrent(database_url: Option<&str>) {
    let app = spawn_app_with(|c| configure(c, database_url)).await;
    let created = app.create_token().await;
    let token = created["id"].as_str().unwrap().to_owned();
    let answers =
        join_all((0..1000).map(|i| post(&app, event(&created, &format!("ev-{i}"))))).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["new_hits"], 1, "{body}");
    }
    let url = database_url.map_or_else(
        || format!("sqlite:{}", app.data_dir.join("canarykeys.db").display()),
        str::to_owned,
    );
    let pool = db(&url).await;
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM hits WHERE token_id = $1",
            &token
        )
        .await,
        1000
    );
    // Every use is an alert waiting in the queue or planned into its delivery, in one
    // transaction: one statement reads both at one instant, whatever the worker has done so far.
    let queued_or_planned = "SELECT (SELECT COUNT(*) FROM alerts WHERE token_id = $1) \
         + (SELECT COUNT(*) FROM deliveries WHERE token_id = $1)";
    assert_eq!(count(&pool, queued_or_planned, &token).await, 1000);
    // The worker plans them on its own; wait for it (the condition, not a time).
    let planned = "SELECT COUNT(*) FROM deliveries WHERE token_id = $1";
    wait_for("all 1,000 alerts planned", WAIT, || async {
        (count(&pool, planned, &token).await >= 1000).then_some(())
    })
    .await;
    assert_eq!(count(&pool, planned, &token).await, 1000);
    let waiting = "SELECT COUNT(*) FROM alerts WHERE token_id = $1";
    assert_eq!(
        count(&pool, waiting, &token).await,
        0,
        "planning empties the queue"
    );
    pool.close().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_concurrent_ingests_sqlite() {
    thousand_concurrent(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousand_concurrent_ingests_postgres() {
    let (admin, name, url) = fresh_postgres().await;
    thousand_concurrent(Some(&url)).await;
    drop_postgres(admin, &name).await;
}

/// A trigger makes any group holding a poisoned event fail to commit. Whatever the grouping,
/// a request answered 2xx has its hit stored, one answered otherwise has none, and every
/// poisoned request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_group_commit_answers_no_request_in_it_with_2xx() {
    let app = spawn_app_with(|c| configure(c, None)).await;
    let created = app.create_token().await;
    let url = format!("sqlite:{}", app.data_dir.join("canarykeys.db").display());
    let pool = db(&url).await;
    sqlx::query(
        "CREATE TRIGGER poison BEFORE INSERT ON hits WHEN NEW.event_id LIKE 'poison-%' \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    )
    .execute(&pool)
    .await
    .unwrap();
    let ids: Vec<String> = (0..400)
        .map(|i| {
            if i % 10 == 0 {
                format!("poison-{i}")
            } else {
                format!("good-{i}")
            }
        })
        .collect();
    let answers = join_all(ids.iter().map(|id| post(&app, event(&created, id)))).await;
    let mut failed_good = 0;
    for (id, (status, body)) in ids.iter().zip(&answers) {
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hits WHERE event_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        if (200..300).contains(status) {
            assert_eq!(stored, 1, "{id} was answered {status} but not stored");
        } else {
            assert_eq!(stored, 0, "{id} failed ({status}) but was stored");
            assert_eq!(*status, 500, "{body}");
            failed_good += usize::from(id.starts_with("good-"));
        }
        if id.starts_with("poison-") {
            assert!(!(200..300).contains(status), "{id} was answered {status}");
        }
    }
    // The good requests that shared a poisoned group failed with it; resent alone, they land.
    for (id, (status, _)) in ids.iter().zip(&answers) {
        if id.starts_with("good-") && *status != 200 {
            let (again, body) = post(&app, event(&created, id)).await;
            assert_eq!((again, body["new_hits"].as_u64()), (200, Some(1)), "{id}");
        }
    }
    eprintln!("good requests failed with a poisoned group: {failed_good}");
    pool.close().await;
    app.stop().await;
}

/// A token made on replica A matches an event sent to replica B at once (B finds it on a miss
/// for a key of its decoy account), and a record from before its delete on B, arriving at A
/// after it, is still one hit (stored against the tombstone), never a failure or a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_made_on_one_replica_matches_on_the_other_at_once() {
    let (admin, name, url) = fresh_postgres().await;
    let a = spawn_app_with(|c| configure(c, Some(&url))).await;
    let b = spawn_app_with(|c| configure(c, Some(&url))).await;
    // B's index was loaded before the token existed.
    let created = a.create_token().await;
    let (status, body) = post(&b, event(&created, "first")).await;
    assert_eq!(
        (status, body["new_hits"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    // A matches it from memory; the same event again is a duplicate on either replica.
    let (status, body) = post(&a, event(&created, "second")).await;
    assert_eq!(
        (status, body["new_hits"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    let (_, body) = post(&a, event(&created, "first")).await;
    assert_eq!(body["duplicates"], 1, "{body}");

    // Deleted through B: the record (made before the delete) still lands through A.
    let (id, secret) = canarykeys_testkit::id_and_secret(&created);
    let resp = b
        .http
        .delete(b.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, body) = post(&a, event(&created, "third")).await;
    assert_eq!(
        (
            status,
            body["new_hits"].as_u64(),
            body["duplicates"].as_u64()
        ),
        (200, Some(1), Some(0)),
        "{body}"
    );
    let pool = db(&url).await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hits WHERE event_id = 'third'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    pool.close().await;
    a.stop().await;
    b.stop().await;
    drop_postgres(admin, &name).await;
}

/// Inside an open cooldown window a flood is counted into the window as it commits: it leaves
/// nothing for the planner, so another token's first alert waits behind none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_inside_a_window_is_counted_at_commit_and_queues_nothing() {
    let app = spawn_app_with(|c| {
        configure(c, None);
        c.alerts.cooldown = Duration::from_secs(300);
    })
    .await;
    let flooded = app.create_token().await;
    let other = app.create_token().await;
    let pool = db(&format!(
        "sqlite:{}",
        app.data_dir.join("canarykeys.db").display()
    ))
    .await;
    let flooded_id = flooded["id"].as_str().unwrap();
    let deliveries = "SELECT COUNT(*) FROM deliveries WHERE token_id = $1";
    assert_eq!(post(&app, event(&flooded, "opens-window")).await.0, 200);
    wait_for("the first use's alert planned", WAIT, || async {
        (count(&pool, deliveries, flooded_id).await >= 1).then_some(())
    })
    .await;
    let answers =
        join_all((0..500).map(|i| post(&app, event(&flooded, &format!("flood-{i}"))))).await;
    assert!(answers.iter().all(|(s, _)| *s == 200));
    // No flood hit enters the planner's queue; the window's one row counts them.
    let queued = "SELECT COUNT(*) FROM alerts WHERE token_id = $1";
    assert_eq!(count(&pool, queued, flooded_id).await, 0);
    let stored = "SELECT COUNT(*) FROM hits WHERE token_id = $1";
    assert_eq!(count(&pool, stored, flooded_id).await, 501);
    let window = "SELECT hits FROM alert_windows WHERE token_id = $1";
    assert_eq!(count(&pool, window, flooded_id).await, 500);

    let other_id = other["id"].as_str().unwrap();
    assert_eq!(post(&app, event(&other, "other-first")).await.0, 200);
    wait_for("the other token's first alert planned", WAIT, || async {
        (count(&pool, deliveries, other_id).await >= 1).then_some(())
    })
    .await;
    // The window is still open: the flood is one summary later, not 500 messages now.
    assert_eq!(count(&pool, deliveries, flooded_id).await, 1);
    pool.close().await;
    app.stop().await;
}

/// On PostgreSQL the hit writer commits a few groups side by side: a group held up inside the
/// database (here on the event id of an uncommitted row another session inserted) does not stop
/// the next request's group from committing. Only then is the other session rolled back, and
/// the held request is stored as new all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_group_held_in_the_database_does_not_hold_the_next() {
    let (admin, name, url) = fresh_postgres().await;
    let app = spawn_app_with(|c| configure(c, Some(&url))).await;
    let created = app.create_token().await;
    assert_eq!(post(&app, event(&created, "seed")).await.0, 200);
    let pool = db(&url).await;
    // Another session's uncommitted row with the event id the first request will carry.
    let mut other = pool.begin().await.unwrap();
    for sql in [
        "CREATE TEMP TABLE held AS SELECT * FROM hits WHERE event_id = 'seed'",
        "UPDATE held SET id = 'heldheldheldheldheldheldhe', event_id = 'held'",
        "INSERT INTO hits SELECT * FROM held",
    ] {
        sqlx::query(sql).execute(&mut *other).await.unwrap();
    }
    let held = tokio::spawn(post_to(
        app.http.clone(),
        app.url("/ingest/v1/cloudtrail"),
        event(&created, "held"),
    ));
    wait_for("the first group waits on the held row", WAIT, || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (waiting > 0).then_some(())
    })
    .await;
    // With one group at a time this request would wait until the held group gave up.
    let (status, body) = tokio::time::timeout(WAIT, post(&app, event(&created, "next")))
        .await
        .expect("the next request is answered");
    assert!(
        !held.is_finished(),
        "the next request was answered only once the held group had given up"
    );
    assert_eq!(
        (status, body["new_hits"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    other.rollback().await.unwrap();
    let (status, body) = held.await.unwrap();
    assert_eq!(
        (status, body["new_hits"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    pool.close().await;
    app.stop().await;
    drop_postgres(admin, &name).await;
}
