//! Build logs as chunk objects: `.../log/{offset:016}` holds the log's bytes from
//! `offset` on. Chunks are whole objects, so a log grows on any object store without
//! append, readers can follow a running build, and a log of any size is read by
//! streaming chunk after chunk (ranged for the first).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};

use super::{ByteStream, Key, ObjectMeta, ReportError, ReportStore};

/// Digits of a chunk's offset in its key, so that key order is offset order.
const OFFSET_DIGITS: usize = 16;

/// Appends to a build's log by storing chunks.
pub struct LogWriter {
    store: Arc<dyn ReportStore>,
    prefix: String,
    /// Bytes already stored.
    stored: u64,
    buffer: BytesMut,
}

impl LogWriter {
    pub fn new(store: Arc<dyn ReportStore>, project: &str, build_id: i64) -> Self {
        LogWriter { store, prefix: Key::log_prefix(project, build_id), stored: 0, buffer: BytesMut::new() }
    }

    /// Adds bytes to the buffer; [`LogWriter::flush`] stores them.
    pub fn append(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// Bytes appended but not yet stored.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The log's size so far, stored or not.
    pub fn size(&self) -> u64 {
        self.stored + self.buffer.len() as u64
    }

    /// Stores the buffered bytes as one chunk. On failure the bytes stay buffered,
    /// so a later flush tries again.
    pub async fn flush(&mut self) -> Result<(), ReportError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let key = Key::new(format!("{}{:0width$}", self.prefix, self.stored, width = OFFSET_DIGITS))?;
        let chunk: Bytes = self.buffer.clone().freeze();
        self.store.put(&key, chunk).await?;
        self.stored += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }
}

/// A stored log: its chunks in order.
#[derive(Clone, Debug, Default)]
pub struct StoredLog {
    /// (offset, object) pairs in offset order.
    chunks: Vec<(u64, ObjectMeta)>,
}

impl StoredLog {
    /// Lists a build's log chunks.
    pub async fn open(store: &dyn ReportStore, project: &str, build_id: i64) -> Result<Self, ReportError> {
        let prefix = Key::log_prefix(project, build_id);
        let chunks = store
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|object| {
                let offset = object.key.strip_prefix(&prefix)?.parse::<u64>().ok()?;
                Some((offset, object))
            })
            .collect();
        Ok(StoredLog { chunks })
    }

    /// Bytes stored so far.
    pub fn size(&self) -> u64 {
        self.chunks.last().map_or(0, |(offset, object)| offset + object.size)
    }

    /// Streams the log from byte `from` to its stored end.
    pub fn read_from(&self, store: Arc<dyn ReportStore>, from: u64) -> ByteStream {
        let pieces: Vec<(Key, Option<std::ops::Range<u64>>)> = self
            .chunks
            .iter()
            .filter(|(offset, object)| offset + object.size > from)
            .filter_map(|(offset, object)| {
                let key = Key::new(object.key.clone()).ok()?;
                let range = (from > *offset).then(|| (from - offset)..object.size);
                Some((key, range))
            })
            .collect();
        let chunks = stream::iter(pieces).then(move |(key, range)| {
            let store = store.clone();
            async move {
                match store.get(&key, range).await {
                    Ok(Some(body)) => body,
                    Ok(None) => Box::pin(stream::iter([Err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("log chunk {key} vanished"),
                    ))])),
                    Err(e) => Box::pin(stream::iter([Err(std::io::Error::other(e))])),
                }
            }
        });
        Box::pin(chunks.flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::{FolderStore, folder::collect};

    #[tokio::test]
    async fn writes_chunks_and_reads_from_any_offset() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn ReportStore> = Arc::new(FolderStore::new(dir.path()));
        let mut log = LogWriter::new(store.clone(), "app", 7);
        log.append(b"first line\n");
        log.flush().await.expect("flush");
        log.flush().await.expect("empty flush is a no-op");
        log.append(b"second ");
        log.append(b"line\n");
        assert_eq!(log.buffered(), 12);
        log.flush().await.expect("flush");
        assert_eq!(log.size(), 23);
        let stored = StoredLog::open(store.as_ref(), "app", 7).await.expect("open");
        assert_eq!(stored.size(), 23);
        assert_eq!(stored.chunks.len(), 2);
        let all = collect(stored.read_from(store.clone(), 0)).await.expect("read");
        assert_eq!(all, b"first line\nsecond line\n");
        let tail = collect(stored.read_from(store.clone(), 6)).await.expect("read");
        assert_eq!(tail, b"line\nsecond line\n");
        let later = collect(stored.read_from(store.clone(), 18)).await.expect("read");
        assert_eq!(later, b"line\n");
        assert!(collect(stored.read_from(store, 23)).await.expect("read").is_empty());
    }
}
