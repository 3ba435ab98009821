//! Fault suite: two replicas on one PostgreSQL database deliver one outbox at once, with no crash.
//! Hits reach both replicas; each alert must reach the receiver exactly once, and each cooldown
//! window's summary exactly once, whichever replica plans or sends it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use canarykeys_server::config::{Config, Secret};
use canarykeys_testkit::receiver::Receiver;
use canarykeys_testkit::{spawn_app_with, wait_for, TestApp, TestDatabase, WAIT};
use serde_json::{json, Value};

const INGEST: &str = "faults-replicas-ingest-secret";
const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const TOKENS: usize = 4;
const HITS_PER_TOKEN: usize = 5;

async fn ingest(app: &TestApp, token: &Value, event_id: &str) {
    let record = json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "accessKeyId": token["aws"]["access_key_id"],
            "userName": token["aws"]["username"], "accountId": token["aws"]["account_id"]},
        "eventTime": "2026-11-28T10:00:00Z", "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity", "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.4", "eventID": event_id
    });
    let resp = app
        .http
        .post(app.url("/ingest/v1/cloudtrail"))
        .bearer_auth(INGEST)
        .json(&record)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// How many hits the alerts received so far account for: one per hit alert, `count` per summary.
fn accounted(bodies: &[Value]) -> usize {
    bodies
        .iter()
        .map(|b| match b["type"].as_str() {
            Some("summary") => b["summary"]["count"].as_u64().unwrap() as usize,
            _ => 1,
        })
        .sum()
}

#[tokio::test]
async fn two_replicas_send_each_alert_and_summary_once() {
    let db = TestDatabase::create("ck_faults_replicas").await;
    let url = db.url().to_owned();
    let webhook = Receiver::start().await;
    let configure = |c: &mut Config| {
        c.database_url = Some(url.clone());
        c.encryption_key = Some(Secret::new(KEY));
        c.ingest.secret = Some(Secret::new(INGEST));
        c.alerts.allow_private_webhooks = true;
        // Long enough that a token's later hits fall in the window its first hit opened.
        c.alerts.cooldown = Duration::from_secs(3);
    };
    let replicas = [
        spawn_app_with(configure).await,
        spawn_app_with(configure).await,
    ];

    let mut tokens = Vec::new();
    for n in 0..TOKENS {
        let resp = replicas[n % 2]
            .post_token(&json!({"memo": format!("db{n} backup"), "webhook_url": webhook.url()}))
            .await;
        assert_eq!(resp.status(), 201);
        tokens.push(resp.json::<Value>().await.unwrap());
    }
    // Each token's hits alternate between the replicas, as a load balancer would spread them.
    for h in 0..HITS_PER_TOKEN {
        for (n, token) in tokens.iter().enumerate() {
            ingest(&replicas[(n + h) % 2], token, &format!("replica-{n}-{h}")).await;
        }
    }

    let total = TOKENS * HITS_PER_TOKEN;
    // Each replica runs on its own test clock: let the 3 s cooldown pass on both, and let both
    // take turns at the outbox, as their workers would, until every hit is accounted for.
    for _ in 0..20 {
        if accounted(&webhook.bodies()) >= total {
            break;
        }
        for app in &replicas {
            app.advance(Duration::from_secs(4));
        }
        for app in &replicas {
            app.deliver_once().await;
        }
    }
    wait_for(
        "every hit accounted for by an alert or summary",
        WAIT * 2,
        || {
            let bodies = webhook.bodies();
            async move { (accounted(&bodies) >= total).then_some(()) }
        },
    )
    .await;
    // Both replicas take more turns at the outbox: nothing may be sent again.
    for app in &replicas {
        app.jobs.deliver_once().await.unwrap();
    }
    for app in &replicas {
        app.jobs.deliver_once().await.unwrap();
    }

    let bodies = webhook.bodies();
    let ids: Vec<_> = bodies.iter().map(|b| b["alert_id"].to_string()).collect();
    let unique: BTreeSet<_> = ids.iter().collect();
    let summaries = bodies.iter().filter(|b| b["type"] == "summary").count();
    println!(
        "faults: replicas: {} alerts ({summaries} summaries) for {total} hits, {} sent twice",
        bodies.len(),
        ids.len() - unique.len()
    );
    assert_eq!(unique.len(), ids.len(), "an alert was sent twice: {ids:?}");
    assert_eq!(accounted(&bodies), total, "every hit in exactly one alert");
    let mut per_token: BTreeMap<&str, usize> = BTreeMap::new();
    for b in &bodies {
        *per_token
            .entry(b["token"]["id"].as_str().unwrap())
            .or_default() += 1;
    }
    assert_eq!(per_token.len(), TOKENS, "every token alerted");

    for app in replicas {
        app.stop().await;
    }
    db.drop_database().await;
}
