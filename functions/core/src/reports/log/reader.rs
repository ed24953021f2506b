//! Reading a stored log: its chunks, listed in key (= offset) order, are used as far
//! as they follow each other without a gap from offset 0. A gap can only be left by
//! a writer that gave up (storage was away until its deadline) or by a store that
//! lost objects; what lies after it is not part of the log.

use std::{ops::Range, sync::Arc};

use futures_util::{StreamExt, stream};

use crate::reports::{ByteStream, Key, ObjectMeta, ReportError, ReportStore};

/// A stored log: its contiguous chunks in order.
#[derive(Clone, Debug, Default)]
pub struct StoredLog {
    prefix: String,
    /// (offset, object) pairs in offset order, each starting where the last ends.
    chunks: Vec<(u64, ObjectMeta)>,
}

impl StoredLog {
    /// Lists a build's log chunks.
    pub async fn open(store: &dyn ReportStore, project: &str, build_id: i64) -> Result<Self, ReportError> {
        let mut log = Self::unlisted(project, build_id);
        log.refresh(store).await?;
        Ok(log)
    }

    /// A build's log with no chunks listed yet (see [`StoredLog::refresh`]).
    pub fn unlisted(project: &str, build_id: i64) -> Self {
        StoredLog { prefix: Key::log_prefix(project, build_id), chunks: Vec::new() }
    }

    /// Adds the chunks stored since the last listing (listing only keys after the
    /// last chunk known, so following a long log stays cheap).
    pub async fn refresh(&mut self, store: &dyn ReportStore) -> Result<(), ReportError> {
        let after = self.chunks.last().map(|(_, object)| object.key.clone());
        let listed = store.list_after(&self.prefix, after.as_deref()).await?;
        for object in listed {
            let Some(offset) = object.key.strip_prefix(&self.prefix).and_then(|o| o.parse::<u64>().ok())
            else {
                continue;
            };
            if offset != self.size() {
                break;
            }
            self.chunks.push((offset, object));
        }
        Ok(())
    }

    /// Bytes stored so far.
    pub fn size(&self) -> u64 {
        self.chunks.last().map_or(0, |(offset, object)| offset + object.size)
    }

    /// Streams the log from byte `from` to its stored end.
    pub fn read_from(&self, store: Arc<dyn ReportStore>, from: u64) -> ByteStream {
        let pieces: Vec<(Key, Option<Range<u64>>)> = self
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
                    Ok(Some(object)) => object.body,
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
    use bytes::Bytes;

    use super::*;
    use crate::reports::{FolderStore, folder::collect, log::chunk_key};

    #[tokio::test]
    async fn reads_from_any_offset_and_stops_at_a_gap() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn ReportStore> = Arc::new(FolderStore::new(dir.path()));
        let prefix = Key::log_prefix("app", 7);
        for (offset, text) in [(0, "first line\n"), (11, "second line\n")] {
            store.put(&chunk_key(&prefix, offset).expect("key"), Bytes::from(text)).await.expect("put");
        }
        let mut stored = StoredLog::open(store.as_ref(), "app", 7).await.expect("open");
        assert_eq!(stored.size(), 23);
        let all = collect(stored.read_from(store.clone(), 0)).await.expect("read");
        assert_eq!(all, b"first line\nsecond line\n");
        let tail = collect(stored.read_from(store.clone(), 6)).await.expect("read");
        assert_eq!(tail, b"line\nsecond line\n");
        assert_eq!(collect(stored.read_from(store.clone(), 18)).await.expect("read"), b"line\n");
        assert!(collect(stored.read_from(store.clone(), 23)).await.expect("read").is_empty());

        // A chunk after a gap is not part of the log; the one filling the gap is.
        store.put(&chunk_key(&prefix, 30).expect("key"), Bytes::from("later\n")).await.expect("put");
        stored.refresh(store.as_ref()).await.expect("refresh");
        assert_eq!(stored.size(), 23);
        store.put(&chunk_key(&prefix, 23).expect("key"), Bytes::from("third\n\n")).await.expect("put");
        let stored = StoredLog::open(store.as_ref(), "app", 7).await.expect("open");
        assert_eq!(stored.size(), 36);
        let all = collect(stored.read_from(store, 0)).await.expect("read");
        assert_eq!(all, b"first line\nsecond line\nthird\n\nlater\n");
    }
}
