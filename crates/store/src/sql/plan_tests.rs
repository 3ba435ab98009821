//! SQLite's plans for the reads of pending alerts: `alerts` holds only alerts still to plan
//! (0023), so no read of it sees the stored history, and none visits every token, so the size
//! of the fleet adds nothing to a planner round either.

use sqlx::Row;

use super::outbox::new_alerts_query;
use super::{SqlStore, PENDING_ALERTS_SQL};

async fn plan(store: &SqlStore, sql: &str, params: usize) -> Vec<String> {
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let mut q = sqlx::query(&explain);
    for _ in 0..params {
        q = q.bind(10_i64);
    }
    let rows = q.fetch_all(&store.pool).await.unwrap();
    rows.iter()
        .map(|r| r.try_get::<String, _>("detail").unwrap())
        .collect()
}

#[tokio::test]
async fn pending_alert_reads_visit_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let store = SqlStore::connect(&url).await.unwrap();
    for (sql, params) in [(new_alerts_query(), 2), (PENDING_ALERTS_SQL.to_owned(), 0)] {
        let details = plan(&store, &sql, params).await;
        for d in &details {
            assert!(!d.contains("tokens"), "visits the fleet: {d}\n{details:#?}");
        }
    }
    // The oldest alerts overall come from the time index, not a sort of the queue.
    let details = plan(&store, &new_alerts_query(), 2).await;
    assert!(
        details.iter().any(|d| d.contains("alerts_new_time")),
        "{details:#?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("alerts_token_new (token_id>?)")),
        "the tokens with new alerts are found by a skip-scan: {details:#?}"
    );
    store.close().await;
}
