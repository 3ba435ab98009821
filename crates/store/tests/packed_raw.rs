//! Raw records are stored packed (zstd with the built-in dictionary, migration 0019), with the
//! hit's detail fields inside (form 2), and read back byte for byte: every record of the vendored
//! CloudTrail corpus, through the store, on SQLite and PostgreSQL, each hit with detail fields
//! taken from its record plus hostile and absent ones. Rows written before (text in `raw` and
//! nothing packed; or form 1, the text alone packed) read as they were, columns and all. The
//! table is also checked to hold what was written, so a store that kept the text or the detail
//! columns would fail here.

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
            let field = |key: &str| {
                let v: serde_json::Value = serde_json::from_str(raw).unwrap();
                v[key].as_str().map(str::to_owned)
            };
            // The record's own values where it has them (what the frame compresses well),
            // hostile text, empty text and absent fields in turn elsewhere.
            h.user_agent = field("userAgent").unwrap_or_default();
            h.event_source = field("eventSource").unwrap_or_else(|| "\u{0}'\"<b>".into());
            h.region = if i % 3 == 0 {
                String::new()
            } else {
                "us-east-1".into()
            };
            h.request_id = field("requestID");
            h.error_message = (i % 2 == 0).then(|| "line\nbreak \u{202e} é".into());
            h.vpc_endpoint_id = (i % 5 == 0).then(String::new);
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
        assert_eq!(h, &hits[i], "hit {i} reads back field for field");
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
    let filled: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM hits WHERE event_source <> '' OR region <> '' OR user_agent <> '' \
         OR error_code IS NOT NULL OR error_message IS NOT NULL OR account_id IS NOT NULL \
         OR access_key_id IS NOT NULL OR tls_host IS NOT NULL OR vpc_endpoint_id IS NOT NULL \
         OR request_id IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        filled, 0,
        "new rows keep their detail fields in the packed record only"
    );
    assert!(
        usize::try_from(packed).unwrap() * 4 < total,
        "packed {packed} bytes of {total}"
    );

    // Rows from before: the text in `raw` and NULL in `raw_packed` (before 0019), or the text
    // alone packed (form 1); both with their detail fields as columns.
    let detail_columns =
        "UPDATE hits SET event_source = 'ec2.amazonaws.com', region = 'eu-west-1', \
         user_agent = 'old agent', error_code = 'Denied', account_id = '111122223333', \
         tls_host = 'ec2.eu-west-1.amazonaws.com' WHERE event_id IN ('e0', 'e2')";
    sqlx::query(detail_columns).execute(&pool).await.unwrap();
    sqlx::query("UPDATE hits SET raw = $1, raw_packed = NULL WHERE event_id = 'e0'")
        .bind(&records[0])
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE hits SET raw_packed = $1 WHERE event_id = 'e2'")
        .bind(canarykeys_store::packed::pack(&records[2]))
        .execute(&pool)
        .await
        .unwrap();
    let listed = store.list_hits(&a.id, 10_000, 0).await.unwrap();
    for i in [0, 2] {
        let old = listed
            .iter()
            .find(|h| h.event_id == format!("e{i}"))
            .unwrap();
        assert_eq!(old.raw, records[i]);
        assert_eq!(
            (
                old.event_source.as_str(),
                old.region.as_str(),
                old.user_agent.as_str()
            ),
            ("ec2.amazonaws.com", "eu-west-1", "old agent")
        );
        assert_eq!(old.error_code.as_deref(), Some("Denied"));
        assert_eq!(old.account_id.as_deref(), Some("111122223333"));
        assert_eq!(old.request_id, None, "an old row's columns are what it has");
    }

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
