//! Hostile records on PostgreSQL: a NUL (`\u0000`, legal in JSON) in a text field of one record
//! must not fail the group commit it shares with other senders' records. PostgreSQL's `text`
//! refuses NUL, so the parser replaces it; every sender gets its 200 and every hit is stored.

use canarykeys_server::config::Secret;
use canarykeys_testkit::pollers::record;
use canarykeys_testkit::{spawn_app_with, TestDatabase};
use serde_json::{json, Value};

const SECRET: &str = "hostile-records-ingest-secret-0123";

#[tokio::test]
async fn a_nul_record_beside_twenty_concurrent_ingests_fails_nobody_on_postgres() {
    let db = TestDatabase::create("ck_hostile_nul").await;
    let url = db.url().to_owned();
    let app = spawn_app_with(|c| {
        c.database_url = Some(url.clone());
        c.ingest.secret = Some(Secret::new(SECRET));
    })
    .await;
    let created = app.create_token().await;

    let mut bodies: Vec<Value> = (0..20)
        .map(|i| json!({ "Records": [record(&created, &format!("nul-ok-{i}"), i % 60)] }))
        .collect();
    let mut bad = record(&created, "nul-bad\u{0}", 30);
    bad["userAgent"] = json!("aws-cli/2\u{0}<b>x</b>");
    bad["eventName"] = json!("List\u{0}Buckets");
    bodies.insert(10, json!({ "Records": [bad] }));

    let ingest = app.url("/ingest/v1/cloudtrail");
    let sends = bodies
        .iter()
        .map(|body| app.http.post(&ingest).bearer_auth(SECRET).json(body).send());
    let answers = futures_util::future::join_all(sends).await;
    for (i, answer) in answers.into_iter().enumerate() {
        let resp = answer.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 200, "ingest {i}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["new_hits"], 1, "ingest {i}: {text}");
    }

    let (id, secret) = canarykeys_testkit::id_and_secret(&created);
    let hits: Value = app
        .get_authed(&format!("/api/v1/tokens/{id}/hits?limit=100"), &secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hits = hits["hits"].as_array().expect("a list of hits");
    assert_eq!(hits.len(), 21);
    let stored = hits
        .iter()
        .find(|h| h["event_name"] == "List\u{FFFD}Buckets")
        .expect("the NUL record is stored, the character replaced");
    assert_eq!(stored["user_agent"], "aws-cli/2\u{FFFD}<b>x</b>");

    app.stop().await;
    db.drop_database().await;
}
