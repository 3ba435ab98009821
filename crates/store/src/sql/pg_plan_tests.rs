//! PostgreSQL's plan for a group's first statement (`recordset::insert_read_for`): a small
//! group probes `tokens` and `alert_windows` by key, and never reads the whole fleet into a
//! hash table, which each group did while the planner took it for 100 rows.

#[path = "../../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

use sqlx::Row;

use super::recordset::{insert_read_for, rows_json};
use super::SqlStore;
use crate::TokenStore;

#[tokio::test]
async fn a_small_group_probes_the_fleet_by_key() {
    let db = canarykeys_testkit::TestDatabase::create("ck_plan").await;
    let store = SqlStore::connect(db.url()).await.unwrap();
    let seed = support::token(1_000);
    store.insert_token(&seed).await.unwrap();
    // A fleet of 5,000 more tokens, copies of the seed with their own keys, each in a window.
    for sql in [
        "INSERT INTO tokens SELECT (jsonb_populate_record(t, jsonb_build_object(\
             'id', 'copy' || g, 'access_key_id', 'AKIACOPY' || lpad(g::text, 12, '0')))).* \
         FROM tokens t, generate_series(1, 5000) g",
        "INSERT INTO alert_windows (token_id, id, opened_at, closes_at, hits, \
             first_event_time, last_event_time, last_hit_id, addresses, other_addresses, \
             events, other_events) \
         SELECT id, id, 0, 10, 1, 0, 0, '', '', 0, '', 0 FROM tokens",
        "ANALYZE",
    ] {
        sqlx::query(sql).execute(&store.pool).await.unwrap();
    }
    let hits = [
        support::hit(&seed.id, "e-1", 1),
        support::hit(&seed.id, "e-2", 2),
    ];
    let packed: Vec<Vec<u8>> = hits.iter().map(crate::packed::pack_hit).collect();
    let rows = sqlx::query(&format!("EXPLAIN {}", insert_read_for(hits.len())))
        .bind(rows_json(&hits, &packed))
        .bind(100_i64)
        .fetch_all(&store.pool)
        .await
        .unwrap();
    let plan: Vec<String> = rows
        .iter()
        .map(|r| r.try_get::<String, _>(0).unwrap())
        .collect();
    let plan = plan.join("\n");
    for table in ["tokens", "alert_windows"] {
        assert!(
            !plan.contains(&format!("Seq Scan on {table}")),
            "reads every row of {table}:\n{plan}"
        );
    }
    assert!(plan.contains("Index"), "{plan}");
    store.close().await;
    db.drop_database().await;
}
