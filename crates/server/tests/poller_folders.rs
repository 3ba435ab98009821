//! The S3 poller over an organisation trail: region folders and files are read several at once,
//! a folder S3 cannot list holds up no other, and each folder's position still moves only past
//! files whose hits are stored. The bucket is an in-memory stand-in, so the test can see how
//! many reads are in flight.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use canarykeys_aws::{AwsError, TrailBucket, TrailObject};
use canarykeys_server::jobs::s3_poller::S3Poller;
use canarykeys_testkit::pollers::{alert_total, pipeline, record, BUCKET};
use canarykeys_testkit::{gzip, WAIT};
use serde_json::{json, Value};
use tokio::sync::Barrier;

const ORG: &str = "AWSLogs/o-k3x9q2m7wz/";

/// A bucket held in memory. The first two downloads wait for each other, so a poller that
/// reads one file at a time never gets past the first; listing `broken`'s folder fails while
/// `broken_on` is set.
struct MemBucket {
    objects: BTreeMap<String, Vec<u8>>,
    broken: String,
    broken_on: AtomicBool,
    gets: AtomicUsize,
    meet: Barrier,
}

#[async_trait::async_trait]
impl TrailBucket for MemBucket {
    async fn list_after(
        &self,
        _bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        max: i32,
    ) -> Result<Vec<TrailObject>, AwsError> {
        if prefix.starts_with(&self.broken) && self.broken_on.load(Ordering::SeqCst) {
            return Err(AwsError::Unavailable {
                op: "S3 ListObjectsV2",
                detail: Default::default(),
                source: None,
            });
        }
        Ok(self
            .objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && start_after.is_none_or(|a| k.as_str() > a))
            .take(max.max(0) as usize)
            .map(|(k, v)| TrailObject {
                key: k.clone(),
                size: v.len() as i64,
            })
            .collect())
    }

    async fn list_prefixes(&self, _bucket: &str, prefix: &str) -> Result<Vec<String>, AwsError> {
        let mut folders: Vec<String> = self
            .objects
            .keys()
            .filter_map(|k| {
                let rest = k.strip_prefix(prefix)?;
                let end = rest.find('/')?;
                Some(format!("{prefix}{}", &rest[..=end]))
            })
            .collect();
        folders.dedup();
        Ok(folders)
    }

    async fn get(&self, _bucket: &str, key: &str, _max: u64) -> Result<Vec<u8>, AwsError> {
        if self.gets.fetch_add(1, Ordering::SeqCst) < 2 {
            tokio::time::timeout(WAIT, self.meet.wait())
                .await
                .expect("a second download started while the first was in flight");
        }
        Ok(self.objects[key].clone())
    }
}

fn folder(account: &str) -> String {
    format!("{ORG}{account}/CloudTrail/us-east-1/")
}

fn file(account: &str, stamp: &str) -> String {
    format!(
        "{}2026/11/28/{account}_CloudTrail_us-east-1_20261128T{stamp}Z_x.json.gz",
        folder(account)
    )
}

fn body(records: &[Value]) -> Vec<u8> {
    gzip(&serde_json::to_vec(&json!({ "Records": records })).unwrap())
}

#[tokio::test]
async fn s3_poller_reads_folders_at_once_and_a_failing_folder_stops_no_other() {
    let app = canarykeys_testkit::spawn_app().await;
    let created = app.create_token().await;
    let (store, ingest) = pipeline(&app).await;
    let accounts = ["111111111111", "222222222222", "333333333333"];
    let mut objects = BTreeMap::new();
    let mut n = 0;
    for account in accounts {
        for stamp in ["1000", "1005", "1010"] {
            let id = format!("{account}-{stamp}");
            objects.insert(file(account, stamp), body(&[record(&created, &id, n)]));
            n += 1;
        }
    }
    let bucket_api = Arc::new(MemBucket {
        objects,
        broken: folder(accounts[2]),
        broken_on: true.into(),
        gets: 0.into(),
        meet: Barrier::new(2),
    });
    let mut poller = S3Poller::new(
        bucket_api.clone(),
        store.clone(),
        ingest,
        BUCKET.into(),
        "AWSLogs/".into(),
        1 << 20,
    );

    let error = poller
        .round()
        .await
        .expect_err("one folder cannot be listed");
    assert!(format!("{error:#}").contains("ListObjectsV2"), "{error:#}");
    assert_eq!(
        alert_total(&app, &created).await,
        6,
        "the two folders S3 lists are read in the same round"
    );
    for account in &accounts[..2] {
        let position = store
            .get_setting(&format!("s3_poller:{BUCKET}:{}", folder(account)))
            .await
            .unwrap();
        assert_eq!(position.as_deref(), Some(file(account, "1010").as_str()));
    }
    let broken = format!("s3_poller:{BUCKET}:{}", folder(accounts[2]));
    assert_eq!(store.get_setting(&broken).await.unwrap(), None);

    bucket_api.broken_on.store(false, Ordering::SeqCst);
    let report = poller.round().await.unwrap();
    assert_eq!(
        (report.prefixes, report.objects, report.new_hits),
        (3, 3, 3),
        "only the folder that failed has files to read"
    );
    assert_eq!(alert_total(&app, &created).await, 9);
    assert_eq!(
        store.get_setting(&broken).await.unwrap().as_deref(),
        Some(file(accounts[2], "1010").as_str())
    );
    assert_eq!(poller.round().await.unwrap().objects, 0, "nothing twice");
}
