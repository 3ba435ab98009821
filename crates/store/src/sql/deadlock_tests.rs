//! `retry_deadlocks` against a real PostgreSQL deadlock: two transactions lock two rows in
//! opposite orders, PostgreSQL rolls one back (40P01), and the retry finishes it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sqlx::{Any, Pool};
use tokio::sync::Barrier;

use super::retry_deadlocks;
use crate::Result;

/// Locks row `first`, waits (on the first try only) until the other transaction holds its own
/// first row, then locks `second`.
async fn cross(
    pool: &Pool<Any>,
    first: i64,
    second: i64,
    meet: &Barrier,
    tries: &AtomicUsize,
) -> Result<()> {
    let attempt = tries.fetch_add(1, Ordering::SeqCst);
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE pair SET n = n + 1 WHERE id = $1")
        .bind(first)
        .execute(&mut *tx)
        .await?;
    if attempt < 2 {
        meet.wait().await;
    }
    sqlx::query("UPDATE pair SET n = n + 1 WHERE id = $1")
        .bind(second)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn a_deadlock_victim_runs_again_and_both_finish() {
    sqlx::any::install_default_drivers();
    let db = canarykeys_testkit::TestDatabase::create("ck_deadlock").await;
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(4)
        .connect(db.url())
        .await
        .unwrap();
    sqlx::query("CREATE TABLE pair (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO pair (id, n) VALUES (1, 0), (2, 0)")
        .execute(&pool)
        .await
        .unwrap();
    let meet = Arc::new(Barrier::new(2));
    let tries = Arc::new(AtomicUsize::new(0));
    let (a, b) = tokio::join!(
        retry_deadlocks(|| cross(&pool, 1, 2, &meet, &tries)),
        retry_deadlocks(|| cross(&pool, 2, 1, &meet, &tries)),
    );
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    assert_eq!(tries.load(Ordering::SeqCst), 3, "one victim, run once more");
    let total: i64 = sqlx::query_scalar("SELECT CAST(SUM(n) AS BIGINT) FROM pair")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(total, 4, "both transactions' updates, once each");
    pool.close().await;
    db.drop_database().await;
}
