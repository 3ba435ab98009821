//! Reading CloudTrail's log files out of S3: list the keys after the last one processed, and
//! fetch one file with a hard size cap. The S3 poller keeps its cursor (the last key) itself.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::Client;

use crate::error::{classify, AwsError, ErrorDetail};

/// S3 answers at most this many keys per ListObjectsV2 page, whatever MaxKeys says.
const PAGE_MAX: i32 = 1000;

/// One object in the trail bucket: its key and size in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrailObject {
    pub key: String,
    pub size: i64,
}

#[async_trait]
pub trait TrailBucket: Send + Sync + 'static {
    /// Keys under `prefix` that sort after `start_after`, in key order, at most `max`
    /// (S3 ListObjectsV2 StartAfter). `max <= 0` returns nothing without calling AWS.
    async fn list_after(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        max: i32,
    ) -> Result<Vec<TrailObject>, AwsError>;

    /// The "folders" directly under `prefix` (ListObjectsV2 with delimiter `/`), each ending in
    /// `/`: how the poller finds the account and region folders a trail writes to.
    async fn list_prefixes(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, AwsError>;

    /// The object's bytes; refuses (`AwsError::Other` with a clear message) objects larger than
    /// `max_bytes` without downloading them whole.
    async fn get(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Vec<u8>, AwsError>;
}

/// [`TrailBucket`] over the AWS SDK's S3 client.
#[derive(Clone, Debug)]
pub struct S3TrailBucket {
    client: Client,
}

impl S3TrailBucket {
    pub fn new(cfg: &SdkConfig) -> Self {
        let mut conf = aws_sdk_s3::config::Builder::from(cfg);
        // A custom endpoint (moto, MinIO, a proxy) has no per-bucket DNS names, so the bucket
        // must go in the path. AWS itself gets the SDK's default virtual-hosted style.
        if cfg.endpoint_url().is_some() {
            conf = conf.force_path_style(true);
        }
        Self {
            client: Client::from_conf(conf.build()),
        }
    }
}

/// `size` is the declared size when S3 sent one; without it we only know the body ran over.
fn too_large(bucket: &str, key: &str, size: Option<u64>, max_bytes: u64) -> AwsError {
    let why = match size {
        Some(n) => format!(
            "s3://{bucket}/{key} is {n} bytes, over the {max_bytes}-byte limit; not downloaded"
        ),
        None => format!("s3://{bucket}/{key} is over the {max_bytes}-byte limit; download stopped"),
    };
    AwsError::refused("S3 GetObject", why)
}

#[async_trait]
impl TrailBucket for S3TrailBucket {
    async fn list_prefixes(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, AwsError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .delimiter("/")
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| classify("S3 ListObjectsV2", e))?;
            found.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_owned)),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(found)
    }

    async fn list_after(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        max: i32,
    ) -> Result<Vec<TrailObject>, AwsError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        // Page until `max` keys or the end: a caller asking for 5000 keys should get them in one
        // call, not discover S3's page size.
        loop {
            let want = max.saturating_sub(found.len().try_into().unwrap_or(i32::MAX));
            if want <= 0 {
                break;
            }
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                // S3 ignores StartAfter once a continuation token is sent, so sending both is fine.
                .set_start_after(start_after.map(str::to_owned))
                .set_continuation_token(token.take())
                .max_keys(want.min(PAGE_MAX))
                .send()
                .await
                .map_err(|e| classify("S3 ListObjectsV2", e))?;
            found.extend(page.contents().iter().filter_map(|o| {
                Some(TrailObject {
                    key: o.key()?.to_owned(),
                    size: o.size().unwrap_or(0),
                })
            }));
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(found)
    }

    async fn get(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Vec<u8>, AwsError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("S3 GetObject", e))?;
        // Content-Length lets us refuse before reading a byte of the body; dropping the
        // unread body closes the connection instead of draining it.
        let declared = out.content_length().and_then(|n| u64::try_from(n).ok());
        if let Some(size) = declared {
            if size > max_bytes {
                return Err(too_large(bucket, key, Some(size), max_bytes));
            }
        }
        // Still count while reading: the header may be absent, or wrong.
        let cap = usize::try_from(declared.unwrap_or(0).min(max_bytes)).unwrap_or(0);
        let mut bytes = Vec::with_capacity(cap);
        let mut body = out.body;
        while let Some(chunk) = body.try_next().await.map_err(|e| AwsError::Unavailable {
            op: "S3 GetObject",
            detail: ErrorDetail::message("reading the object's body failed"),
            source: Some(Box::new(e)),
        })? {
            if (bytes.len() + chunk.len()) as u64 > max_bytes {
                return Err(too_large(bucket, key, None, max_bytes));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}
