//! Raw records are stored packed (zstd with the built-in dictionary, migration 0019) and read
//! back byte for byte: every record of the vendored CloudTrail corpus, through the store, on
//! SQLite and PostgreSQL. A row written before the migration (text in `raw`, nothing packed)
//! reads as it was. The packed form is also checked to be what was written, so a store that
//! kept the text would fail here.

#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};

use canarykeys_core::cloudtrail::{parse, Limits};
use canarykeys_store::{HitStore, SqlStore, TokenStore};
use sqlx::Row;
use support::{hit, token};

/// The compact text of every record in `testdata/cloudtrail`, as ingest stores it.
fn corpus_records() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let root = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/cloudtrail"
    ));
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let mut records = Vec::new();
    for file in files {
        if let Ok(parsed) = parse(&std::fs::read(&file).unwrap(), &Limits::default()) {
            records.extend(parsed.records.iter().map(|r| r.raw.compact()));
        }
    }
    assert!(records.len() > 3_000, "the corpus is vendored whole");
    records
}

async fn check(store: &SqlStore, url: &str) {
    let a = token(1_000);
    store.insert_token(&a).await.unwrap();
    let records = corpus_records();
    let hits: Vec<_> = records
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let mut h = hit(&a.id, &format!("e{i}"), i64::try_from(i).unwrap());
            h.raw.clone_from(raw);
            h
        })
        .collect();
    for group in hits.chunks(500) {
        assert!(store.record_hits(group).await.unwrap().iter().all(|n| *n));
    }
    let stored = store.list_hits(&a.id, 10_000, 0).await.unwrap();
    assert_eq!(stored.len(), records.len());
    for h in &stored {
        let i: usize = h.event_id[1..].parse().unwrap();
        assert_eq!(h.raw, records[i], "record {i} reads back byte for byte");
    }

    // What the table holds: no text, and packed bytes much smaller than the records.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, SUM(LENGTH(raw)) AS text, SUM(LENGTH(raw_packed)) AS packed \
         FROM hits",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let text: i64 = row.get("text");
    let packed: i64 = row.get("packed");
    let total: usize = records.iter().map(String::len).sum();
    assert_eq!(text, 0, "new rows keep no text");
    assert!(
        usize::try_from(packed).unwrap() * 4 < total,
        "packed {packed} bytes of {total}"
    );

    // A row from before the migration: its text in `raw`, NULL in `raw_packed`.
    sqlx::query("UPDATE hits SET raw = $1, raw_packed = NULL WHERE event_id = 'e0'")
        .bind(&records[0])
        .execute(&pool)
        .await
        .unwrap();
    let old = store
        .list_hits(&a.id, 10_000, 0)
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.event_id == "e0")
        .unwrap();
    assert_eq!(old.raw, records[0]);

    // A damaged packed row is an error, not a panic, a huge allocation or a wrong text.
    sqlx::query("UPDATE hits SET raw_packed = $1 WHERE event_id = 'e1'")
        .bind(vec![1_u8, 0xff, 0xff, 0xff, 0x7f, 0x28, 0xb5])
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let err = store.list_hits(&a.id, 10_000, 0).await.unwrap_err();
    assert!(err.to_string().contains("raw_packed"), "{err}");
}

#[tokio::test]
async fn corpus_records_read_back_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("db").display());
    let store = SqlStore::connect(&url).await.unwrap();
    check(&store, &url).await;
    store.close().await;
}

#[tokio::test]
async fn corpus_records_read_back_on_postgres() {
    let db = canarykeys_testkit::TestDatabase::create("ck_packed").await;
    let store = SqlStore::connect(db.url()).await.unwrap();
    check(&store, db.url()).await;
    store.close().await;
    db.drop_database().await;
}
