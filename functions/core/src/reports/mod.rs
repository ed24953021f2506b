//! Report storage: logs, `report.json` and artifacts, stored by object-style key
//! (`projects/{project}/builds/{id}/...`) through one trait, so that the folder
//! backend behaves exactly like an object store: whole-object put, (ranged) get,
//! list by prefix, delete by prefix — no append, no rename visible to readers.
//!
//! - [`key`]: validated keys and the layout of a build's reports.
//! - [`folder`]: the folder backend (default; local disk or the shared volume).
//! - [`s3`]: the S3 backend (AWS, MinIO, Ceph RGW, ...), through `aws-sdk-s3`.
//! - [`log`]: a build log written as a sequence of chunk objects in the background,
//!   read from any offset.
//! - [`report`]: `report.json`, a build's summary for other tools.
//! - [`retry`]: retrying a report write with backoff until a deadline.
//! - [`open`]: picking the backend the configuration names.

pub mod folder;
pub mod key;
pub mod log;
pub mod report;
pub mod retry;
pub mod s3;

use std::{io, ops::Range, path::Path, pin::Pin, sync::Arc};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

pub use folder::FolderStore;
pub use key::Key;
pub use s3::{S3Settings, S3Store};

/// A body streamed in pieces, never held whole in memory.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// One stored object, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

/// An object being read: how many bytes `body` will yield, and the bytes.
pub struct Object {
    pub len: u64,
    pub body: ByteStream,
}

impl Object {
    /// An object (or a range of one) with no bytes.
    pub fn empty() -> Self {
        Object { len: 0, body: Box::pin(futures_util::stream::empty()) }
    }
}

/// What went wrong storing or reading a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("invalid report key {key:?}: {problem}")]
    InvalidKey { key: String, problem: &'static str },
    #[error("report storage failed on {key:?}")]
    Io {
        key: String,
        #[source]
        source: io::Error,
    },
    #[error("report storage: {operation} {key:?} failed")]
    Backend {
        operation: &'static str,
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Where reports live: [`FolderStore`] or [`S3Store`]. Both pass the same conformance
/// suite (`tests/tests/e2e/reports/conformance.rs`).
#[async_trait::async_trait]
pub trait ReportStore: Send + Sync + 'static {
    /// Stores `body` under `key`, replacing any object there; readers see the old
    /// object or the new one, never a part.
    async fn put(&self, key: &Key, body: Bytes) -> Result<(), ReportError>;

    /// Stores the file at `path` under `key`, streaming it (a file of any size never
    /// sits in memory); returns its size. Same visibility rule as [`ReportStore::put`].
    async fn put_file(&self, key: &Key, path: &Path) -> Result<u64, ReportError>;

    /// Streams the object at `key` (the bytes in `range` only, if given; a range
    /// past the end is cut short). `None` if there is no such object.
    async fn get(&self, key: &Key, range: Option<Range<u64>>) -> Result<Option<Object>, ReportError>;

    /// Every object whose key starts with `prefix` and sorts after `after` (if
    /// given), in key order (bytewise, as S3 lists).
    async fn list_after(&self, prefix: &str, after: Option<&str>) -> Result<Vec<ObjectMeta>, ReportError>;

    /// Every object whose key starts with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, ReportError> {
        self.list_after(prefix, None).await
    }

    /// Deletes every object whose key starts with `prefix`; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, ReportError>;

    /// A short description for logs and the UI, e.g. `folder /srv/sparky/reports`.
    fn describe(&self) -> String;
}

/// The backend the configuration names: S3 when `SPARKY_REPORTS` is an `s3://` URL
/// (`s3`), else the folder `dir`.
pub fn open(s3: Option<&S3Settings>, dir: &Path) -> Arc<dyn ReportStore> {
    match s3 {
        Some(settings) => Arc::new(S3Store::new(settings)),
        None => Arc::new(FolderStore::new(dir)),
    }
}

/// Reads a whole (small) object into memory.
pub async fn get_bytes(store: &dyn ReportStore, key: &Key) -> Result<Option<Bytes>, ReportError> {
    let Some(object) = store.get(key, None).await? else {
        return Ok(None);
    };
    let mut body = BytesMut::with_capacity(object.len.min(64 * 1024 * 1024) as usize);
    let mut stream = object.body;
    while let Some(piece) = stream.next().await {
        body.extend_from_slice(&piece.map_err(|source| ReportError::Io { key: key.to_string(), source })?);
    }
    Ok(Some(body.freeze()))
}
