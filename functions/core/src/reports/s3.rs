//! The S3 backend: each key is an object in one bucket, under an optional prefix
//! (`SPARKY_REPORTS=s3://bucket/prefix`), through `aws-sdk-s3`. It talks to AWS or to
//! any S3-compatible store (`SPARKY_S3_ENDPOINT`: MinIO, Ceph RGW, ...), with
//! path-style addressing by default, since such stores rarely have a DNS name per
//! bucket.
//!
//! Request checksums are only sent when an operation requires one
//! (`RequestChecksumCalculation::WhenRequired`): the SDK's newer default adds CRC
//! headers and `aws-chunked` bodies to every upload, which many S3-compatible stores
//! reject. Files are uploaded straight from disk, in multipart parts above
//! [`MULTIPART_ABOVE`], and objects are read as streams: nothing large is held in
//! memory. A store that refuses `DeleteObjects` (which needs a checksum) gets one
//! `DeleteObject` per key instead.

use std::{ops::Range, path::Path, time::Duration};

use aws_sdk_s3::{
    Client,
    config::{
        BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
        http::HttpResponse, retry::RetryConfig, timeout::TimeoutConfig,
    },
    error::{BuildError, SdkError},
    primitives::{ByteStream as SdkStream, Length},
    types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier},
};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::{Key, Object, ObjectMeta, ReportError, ReportStore};
use crate::secrets::Secret;

/// Files larger than this are uploaded in parts.
pub const MULTIPART_ABOVE: u64 = 16 * 1024 * 1024;
/// The size of one part (S3 allows at most 10,000 parts; bigger files get bigger parts).
const PART_BYTES: u64 = 8 * 1024 * 1024;
/// `DeleteObjects` takes at most this many keys.
const DELETE_BATCH: usize = 1000;
/// Single deletes in flight at once, when a store refuses `DeleteObjects`.
const DELETE_CONCURRENCY: usize = 16;

/// Where the S3 backend stores reports and how it signs in; read from the
/// environment by [`crate::Config::from_env`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: String,
    /// Prepended to every key (without a trailing `/`); may be empty.
    pub prefix: String,
    /// `SPARKY_S3_ENDPOINT`; `None`: AWS's endpoint for the region.
    pub endpoint: Option<String>,
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    /// `https://host/bucket/key` rather than `https://bucket.host/key`.
    pub path_style: bool,
}

impl S3Settings {
    /// Reads `s3://bucket[/prefix]`; the rest of the settings take their defaults
    /// and no credentials.
    pub fn from_url(url: &str) -> Result<S3Settings, String> {
        let rest = url.strip_prefix("s3://").ok_or("expected s3://bucket/prefix")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(bucket)?;
        let prefix = prefix.trim_matches('/').to_string();
        if !prefix.is_empty() {
            Key::new(prefix.clone()).map_err(|e| format!("the prefix is not a valid key: {e}"))?;
        }
        Ok(S3Settings {
            bucket: bucket.to_string(),
            prefix,
            endpoint: None,
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: Secret::new(""),
            session_token: None,
            path_style: true,
        })
    }
}

fn check_bucket(bucket: &str) -> Result<(), String> {
    let ok_chars =
        bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !(3..=63).contains(&bucket.len()) || !ok_chars {
        return Err(format!(
            "{bucket:?} is not a bucket name: 3 to 63 lowercase letters, digits, dots and hyphens"
        ));
    }
    Ok(())
}

/// Reports in an S3 bucket.
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    description: String,
}

impl S3Store {
    pub fn new(settings: &S3Settings) -> Self {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let credentials = Credentials::new(
            settings.access_key_id.clone(),
            settings.secret_access_key.expose().to_string(),
            settings.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "sparky-config",
        );
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(credentials)
            .http_client(http)
            .force_path_style(settings.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            );
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        let where_ = settings.endpoint.as_deref().unwrap_or("AWS");
        let description = if settings.prefix.is_empty() {
            format!("s3://{} at {where_}", settings.bucket)
        } else {
            format!("s3://{}/{} at {where_}", settings.bucket, settings.prefix)
        };
        S3Store {
            client: Client::from_conf(config.build()),
            bucket: settings.bucket.clone(),
            prefix: settings.prefix.clone(),
            description,
        }
    }

    /// The object key of a report key (or prefix).
    fn object_key(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_string() } else { format!("{}/{key}", self.prefix) }
    }

    /// The report key of an object key listed under our prefix.
    fn report_key<'a>(&self, object_key: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            Some(object_key)
        } else {
            object_key.strip_prefix(self.prefix.as_str())?.strip_prefix('/')
        }
    }

    async fn put_body(&self, key: &Key, body: SdkStream, len: u64) -> Result<(), ReportError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_key(key.as_str()))
            .content_length(len as i64)
            .body(body)
            .send()
            .await
            .map_err(backend("PutObject", key.as_str()))?;
        Ok(())
    }

    async fn multipart(&self, key: &Key, path: &Path, size: u64) -> Result<(), ReportError> {
        let object_key = self.object_key(key.as_str());
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&object_key)
            .send()
            .await
            .map_err(backend("CreateMultipartUpload", key.as_str()))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let parts = async {
            let part_bytes = PART_BYTES.max(size.div_ceil(10_000));
            let mut parts = Vec::new();
            let mut offset = 0;
            while offset < size {
                let len = part_bytes.min(size - offset);
                let number = parts.len() as i32 + 1;
                let body = file_body(key, path, offset, len).await?;
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(&object_key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .content_length(len as i64)
                    .body(body)
                    .send()
                    .await
                    .map_err(backend("UploadPart", key.as_str()))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(Into::into))
                        .build(),
                );
                offset += len;
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&object_key)
                .upload_id(&upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map_err(backend("CompleteMultipartUpload", key.as_str()))?;
            Ok(())
        }
        .await;
        if parts.is_err() {
            // Parts of an unfinished upload cost storage until aborted.
            let aborted = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&object_key)
                .upload_id(&upload_id)
                .send()
                .await;
            if let Err(error) = aborted {
                tracing::warn!(key = %key, error = %crate::error::error_chain(&error), "could not abort a multipart upload");
            }
        }
        parts
    }

    /// Deletes `keys` (object keys) in batches; a store that refuses batches gets
    /// single deletes.
    async fn delete_keys(&self, keys: Vec<String>) -> Result<(), ReportError> {
        for batch in keys.chunks(DELETE_BATCH) {
            let unbuildable = |e: BuildError| ReportError::Backend {
                operation: "DeleteObjects",
                key: batch[0].clone(),
                source: e.into(),
            };
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(unbuildable)?;
            let delete =
                Delete::builder().set_objects(Some(objects)).quiet(true).build().map_err(unbuildable)?;
            let batched = self.client.delete_objects().bucket(&self.bucket).delete(delete).send().await;
            let leftover: Vec<String> = match batched {
                Ok(out) => out.errors().iter().filter_map(|e| e.key().map(String::from)).collect(),
                Err(error) => {
                    tracing::debug!(error = %crate::error::error_chain(&error), "DeleteObjects refused; deleting one by one");
                    batch.to_vec()
                }
            };
            stream::iter(leftover)
                .map(|k| async move {
                    self.client
                        .delete_object()
                        .bucket(&self.bucket)
                        .key(&k)
                        .send()
                        .await
                        .map_err(backend("DeleteObject", &k))
                })
                .buffer_unordered(DELETE_CONCURRENCY)
                .try_collect::<Vec<_>>()
                .await?;
        }
        Ok(())
    }
}

/// `len` bytes of the file at `path` from `offset`, read as the request is sent (and
/// read again if it is retried).
async fn file_body(key: &Key, path: &Path, offset: u64, len: u64) -> Result<SdkStream, ReportError> {
    SdkStream::read_from()
        .path(path)
        .offset(offset)
        .length(Length::Exact(len))
        .build()
        .await
        .map_err(|e| ReportError::Io { key: key.to_string(), source: std::io::Error::other(e) })
}

fn backend<E, R>(operation: &'static str, key: &str) -> impl FnOnce(SdkError<E, R>) -> ReportError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let key = key.to_string();
    move |e| ReportError::Backend { operation, key, source: Box::new(e) }
}

/// The HTTP status of a failed call, if the store answered.
fn status<E>(error: &SdkError<E, HttpResponse>) -> Option<u16> {
    error.raw_response().map(|response| response.status().as_u16())
}

#[async_trait::async_trait]
impl ReportStore for S3Store {
    async fn put(&self, key: &Key, body: Bytes) -> Result<(), ReportError> {
        let len = body.len() as u64;
        self.put_body(key, SdkStream::from(body), len).await
    }

    async fn put_file(&self, key: &Key, path: &Path) -> Result<u64, ReportError> {
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|source| ReportError::Io { key: key.to_string(), source })?
            .len();
        if size > MULTIPART_ABOVE {
            self.multipart(key, path, size).await?;
        } else {
            self.put_body(key, file_body(key, path, 0, size).await?, size).await?;
        }
        Ok(size)
    }

    async fn get(&self, key: &Key, range: Option<Range<u64>>) -> Result<Option<Object>, ReportError> {
        let object_key = self.object_key(key.as_str());
        if range.as_ref().is_some_and(|r| r.end <= r.start) {
            // An empty range has no `Range:` header; only whether the object exists matters.
            return match self.client.head_object().bucket(&self.bucket).key(&object_key).send().await {
                Ok(_) => Ok(Some(Object::empty())),
                Err(e) if status(&e) == Some(404) => Ok(None),
                Err(e) => Err(backend("HeadObject", key.as_str())(e)),
            };
        }
        let mut request = self.client.get_object().bucket(&self.bucket).key(&object_key);
        if let Some(range) = &range {
            request = request.range(format!("bytes={}-{}", range.start, range.end - 1));
        }
        match request.send().await {
            Ok(out) => {
                let len = out.content_length().unwrap_or(0).max(0) as u64;
                let body = stream::unfold(out.body, |mut body| async move {
                    body.next().await.map(|piece| (piece.map_err(std::io::Error::other), body))
                });
                Ok(Some(Object { len, body: Box::pin(body) }))
            }
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(e) if status(&e) == Some(404) => Ok(None),
            // A range starting past the end of an object that exists.
            Err(e) if status(&e) == Some(416) => Ok(Some(Object::empty())),
            Err(e) => Err(backend("GetObject", key.as_str())(e)),
        }
    }

    async fn list_after(&self, prefix: &str, after: Option<&str>) -> Result<Vec<ObjectMeta>, ReportError> {
        let object_prefix = self.object_key(prefix);
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = self.client.list_objects_v2().bucket(&self.bucket).prefix(&object_prefix);
            match (&token, after) {
                (Some(token), _) => request = request.continuation_token(token),
                (None, Some(after)) => request = request.start_after(self.object_key(after)),
                (None, None) => {}
            }
            let page = request.send().await.map_err(backend("ListObjectsV2", prefix))?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| self.report_key(k)) else { continue };
                found.push(ObjectMeta {
                    key: key.to_string(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                });
            }
            token = page.next_continuation_token().map(String::from);
            if page.is_truncated() != Some(true) || token.is_none() {
                return Ok(found);
            }
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, ReportError> {
        let objects = self.list(prefix).await?;
        let count = objects.len() as u64;
        self.delete_keys(objects.into_iter().map(|o| self.object_key(&o.key)).collect()).await?;
        Ok(count)
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bucket_and_prefix() {
        let s = S3Settings::from_url("s3://ci-reports/sparky/prod/").expect("valid");
        assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("ci-reports", "sparky/prod"));
        assert_eq!(S3Settings::from_url("s3://ci-reports").expect("valid").prefix, "");
        for bad in ["s3://", "s3://Upper", "s3://a", "http://x/y", "s3://ok-bucket/a/../b"] {
            assert!(S3Settings::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn maps_keys_under_the_prefix() {
        let mut settings = S3Settings::from_url("s3://bucket/pre").expect("valid");
        settings.endpoint = Some("http://127.0.0.1:1".into());
        let store = S3Store::new(&settings);
        assert_eq!(store.object_key("projects/a"), "pre/projects/a");
        assert_eq!(store.report_key("pre/projects/a"), Some("projects/a"));
        assert_eq!(store.report_key("prefix/x"), None);
        assert_eq!(store.describe(), "s3://bucket/pre at http://127.0.0.1:1");
    }
}
