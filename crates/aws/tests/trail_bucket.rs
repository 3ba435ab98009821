//! `S3TrailBucket` against a real S3 API (moto): listing after a cursor, prefixes, limits,
//! paging past S3's 1000-key pages, exact bytes, the size cap and missing buckets.

use aws_sdk_s3::primitives::ByteStream;
use canarykeys_aws::testing::Moto;
use canarykeys_aws::{sdk_config, AwsError, S3TrailBucket, TrailBucket, TrailObject};

const BUCKET: &str = "org-cloudtrail-logs";
const DAY: &str = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/28/";

/// A key in CloudTrail's own naming scheme; `n` orders them.
fn trail_key(n: u32) -> String {
    format!("{DAY}123456789012_CloudTrail_us-east-1_20261128T09{n:02}Z_Ab{n}cD.json.gz")
}

/// Distinct bytes per object, including every byte value, so "exact bytes" means something.
fn body(n: u32) -> Vec<u8> {
    let mut b = vec![0x1f, 0x8b, 0x08, n as u8];
    b.extend((0..=255u8).cycle().take(100 + n as usize * 37));
    b
}

/// An admin S3 client on moto (path style, as `S3TrailBucket` does for custom endpoints).
async fn admin(moto: &Moto) -> aws_sdk_s3::Client {
    let cfg = sdk_config(&moto.settings()).await;
    let conf = aws_sdk_s3::config::Builder::from(&cfg)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

async fn put(s3: &aws_sdk_s3::Client, key: &str, bytes: Vec<u8>) {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

/// A bucket with five trail files for one day (uploaded out of order) and neighbours that a
/// prefix must keep out: another region, the digest files, a stray object at the top.
async fn seeded() -> (Moto, S3TrailBucket, Vec<TrailObject>) {
    let moto = Moto::start();
    let s3 = admin(&moto).await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    for n in [3, 1, 5, 2, 4] {
        put(&s3, &trail_key(n), body(n)).await;
    }
    let others = [
        "AWSLogs/123456789012/CloudTrail/eu-west-1/2026/11/28/123456789012_CloudTrail_eu-west-1_20261128T0900Z_x.json.gz",
        "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2026/11/28/digest.json.gz",
        "README.txt",
    ];
    for key in others {
        put(&s3, key, b"{}".to_vec()).await;
    }
    let expected = (1..=5)
        .map(|n| TrailObject {
            key: trail_key(n),
            size: body(n).len() as i64,
        })
        .collect();
    let bucket = S3TrailBucket::new(&sdk_config(&moto.settings()).await);
    (moto, bucket, expected)
}

#[tokio::test]
async fn list_after_returns_the_keys_under_the_prefix_in_key_order() {
    let (_moto, bucket, expected) = seeded().await;
    let all = bucket.list_after(BUCKET, DAY, None, 100).await.unwrap();
    assert_eq!(all, expected);

    // A wider prefix takes in the other region, but not CloudTrail-Digest or the stray object.
    let wide = "AWSLogs/123456789012/CloudTrail/";
    let keys: Vec<String> = (bucket.list_after(BUCKET, wide, None, 100).await.unwrap())
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys.len(), 6, "{keys:?}");
    assert!(
        keys[0].contains("/eu-west-1/"),
        "eu-west-1 sorts first: {keys:?}"
    );
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");

    assert!(bucket
        .list_after(BUCKET, "AWSLogs/999999999999/", None, 100)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn list_after_honours_start_after_and_max() {
    let (_moto, bucket, expected) = seeded().await;
    let two = bucket
        .list_after(BUCKET, DAY, Some(&expected[1].key), 2)
        .await
        .unwrap();
    assert_eq!(two, expected[2..4]);

    // The cursor need not be an existing key: anything that sorts between two keys works.
    let between = format!("{}~", expected[1].key);
    let rest = bucket
        .list_after(BUCKET, DAY, Some(&between), 100)
        .await
        .unwrap();
    assert_eq!(rest, expected[2..]);

    let last = &expected[4].key;
    assert!(bucket
        .list_after(BUCKET, DAY, Some(last), 100)
        .await
        .unwrap()
        .is_empty());
    assert!(bucket
        .list_after(BUCKET, DAY, None, 0)
        .await
        .unwrap()
        .is_empty());

    // What the poller does: walk the day two keys at a time, carrying the last key as the cursor.
    let mut cursor: Option<String> = None;
    let mut walked = Vec::new();
    loop {
        let page = bucket
            .list_after(BUCKET, DAY, cursor.as_deref(), 2)
            .await
            .unwrap();
        let Some(tail) = page.last() else { break };
        cursor = Some(tail.key.clone());
        walked.extend(page);
    }
    assert_eq!(walked, expected);
}

#[tokio::test]
async fn list_after_pages_past_s3s_thousand_key_limit() {
    let moto = Moto::start();
    let s3 = admin(&moto).await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    // 1005 small objects, uploaded a few at a time: one ListObjectsV2 page holds at most 1000.
    let keys: Vec<String> = (0..1005).map(|n| format!("{DAY}f{n:05}.json.gz")).collect();
    for chunk in keys.chunks(8) {
        let mut puts = tokio::task::JoinSet::new();
        for key in chunk {
            let (s3, key) = (s3.clone(), key.clone());
            puts.spawn(async move { put(&s3, &key, vec![b'x']).await });
        }
        while let Some(done) = puts.join_next().await {
            done.unwrap();
        }
    }
    let bucket = S3TrailBucket::new(&sdk_config(&moto.settings()).await);

    let all = bucket.list_after(BUCKET, DAY, None, 5000).await.unwrap();
    let got: Vec<&str> = all.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(got, keys.iter().map(String::as_str).collect::<Vec<_>>());

    let some = bucket
        .list_after(BUCKET, DAY, Some(&keys[2]), 1001)
        .await
        .unwrap();
    assert_eq!(some.len(), 1001);
    assert_eq!(some[0].key, keys[3]);
    assert_eq!(some[1000].key, keys[1003]);
}

#[tokio::test]
async fn get_returns_the_exact_bytes_and_refuses_objects_over_the_limit() {
    let (_moto, bucket, expected) = seeded().await;
    let key = &expected[2].key;
    let size = expected[2].size as u64;
    assert_eq!(bucket.get(BUCKET, key, 1 << 20).await.unwrap(), body(3));
    // The limit is inclusive: an object exactly max_bytes long is fine.
    assert_eq!(bucket.get(BUCKET, key, size).await.unwrap(), body(3));

    let err = bucket.get(BUCKET, key, size - 1).await.unwrap_err();
    assert!(matches!(err, AwsError::Other { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("{size} bytes")), "{msg}");
    assert!(msg.contains(&format!("{}-byte limit", size - 1)), "{msg}");
    assert!(msg.contains(key.as_str()), "{msg}");
}

#[tokio::test]
async fn missing_buckets_and_keys_are_not_found() {
    let (_moto, bucket, expected) = seeded().await;
    let err = bucket
        .list_after("no-such-bucket", "", None, 10)
        .await
        .unwrap_err();
    assert!(matches!(err, AwsError::NotFound { .. }), "{err:?}");
    assert_eq!(err.detail().code.as_deref(), Some("NoSuchBucket"), "{err}");
    assert_eq!(err.detail().status, Some(404), "{err}");
    assert!(!err.is_transient());

    let err = bucket
        .get("no-such-bucket", &expected[0].key, 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, AwsError::NotFound { .. }), "{err:?}");

    let err = bucket
        .get(BUCKET, &format!("{DAY}nope.json.gz"), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, AwsError::NotFound { .. }), "{err:?}");
    assert_eq!(err.detail().code.as_deref(), Some("NoSuchKey"), "{err}");
    println!("moto answered: {err}");
}

#[tokio::test]
async fn list_prefixes_walks_the_folders_a_trail_writes() {
    let (_moto, bucket, _) = seeded().await;
    assert_eq!(
        bucket.list_prefixes(BUCKET, "AWSLogs/").await.unwrap(),
        ["AWSLogs/123456789012/"]
    );
    assert_eq!(
        bucket
            .list_prefixes(BUCKET, "AWSLogs/123456789012/")
            .await
            .unwrap(),
        [
            "AWSLogs/123456789012/CloudTrail-Digest/",
            "AWSLogs/123456789012/CloudTrail/"
        ]
    );
    assert_eq!(
        bucket
            .list_prefixes(BUCKET, "AWSLogs/123456789012/CloudTrail/")
            .await
            .unwrap(),
        [
            "AWSLogs/123456789012/CloudTrail/eu-west-1/",
            "AWSLogs/123456789012/CloudTrail/us-east-1/"
        ]
    );
    assert!(bucket
        .list_prefixes(BUCKET, "nothing/")
        .await
        .unwrap()
        .is_empty());
}
