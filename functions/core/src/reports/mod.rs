//! Report storage: logs, `report.json` and artifacts, stored by object-style key
//! (`projects/{project}/builds/{id}/...`) through one trait, so that the folder
//! backend behaves exactly like an object store: whole-object put, (ranged) get,
//! list by prefix, delete by prefix — no append, no rename visible to readers.
//!
//! - [`key`]: validated keys and the layout of a build's reports.
//! - [`folder`]: the folder backend (default; local disk or the shared volume).
//! - [`log`]: a build log written as a sequence of chunk objects, read from any offset.

pub mod folder;
pub mod key;
pub mod log;

use std::{io, ops::Range, pin::Pin};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

pub use folder::FolderStore;
pub use key::Key;

/// A body streamed in pieces, never held whole in memory.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// One stored object, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
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
}

/// Where reports live. Implementations: [`FolderStore`] (and S3 in a later backend).
#[async_trait::async_trait]
pub trait ReportStore: Send + Sync + 'static {
    /// Stores `body` under `key`, replacing any object there; readers see the old
    /// object or the new one, never a part.
    async fn put(&self, key: &Key, body: Bytes) -> Result<(), ReportError>;

    /// Streams the object at `key` (the bytes in `range` only, if given; a range
    /// past the end is cut short). `None` if there is no such object.
    async fn get(&self, key: &Key, range: Option<Range<u64>>) -> Result<Option<ByteStream>, ReportError>;

    /// Every object whose key starts with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, ReportError>;

    /// Deletes every object whose key starts with `prefix`; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, ReportError>;

    /// A short description for logs and the UI, e.g. `folder /srv/sparky/reports`.
    fn describe(&self) -> String;
}

/// Reads a whole (small) object into memory.
pub async fn get_bytes(store: &dyn ReportStore, key: &Key) -> Result<Option<Bytes>, ReportError> {
    let Some(mut stream) = store.get(key, None).await? else {
        return Ok(None);
    };
    let mut body = BytesMut::new();
    while let Some(piece) = stream.next().await {
        body.extend_from_slice(&piece.map_err(|source| ReportError::Io { key: key.to_string(), source })?);
    }
    Ok(Some(body.freeze()))
}
