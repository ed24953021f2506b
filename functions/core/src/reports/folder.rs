//! The folder backend: each key is a file below a root folder. A put writes a
//! temporary file and renames it into place, so readers never see a partial object,
//! which keeps this backend's behaviour the same as an object store's.

use std::{
    io,
    ops::Range,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use super::{ByteStream, Key, Object, ObjectMeta, ReportError, ReportStore, key::TEMP_PREFIX};

/// Reports in a folder.
#[derive(Debug)]
pub struct FolderStore {
    root: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FolderStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FolderStore { root: root.into() }
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.root.join(key.as_str())
    }

    /// Writes a temporary file beside `key`'s path with `write`, then renames it into
    /// place; on failure the temporary file goes and nothing else changes.
    async fn write_atomically<T, F, Fut>(&self, key: &Key, write: F) -> Result<T, ReportError>
    where
        F: FnOnce(tokio::fs::File) -> Fut,
        Fut: std::future::Future<Output = io::Result<T>>,
    {
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.root);
        tokio::fs::create_dir_all(dir).await.map_err(io_err(key.as_str()))?;
        let temp = dir.join(format!(
            "{TEMP_PREFIX}{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = async {
            let value = write(tokio::fs::File::create(&temp).await?).await?;
            tokio::fs::rename(&temp, &path).await?;
            Ok(value)
        };
        match written.await {
            Ok(value) => Ok(value),
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                Err(io_err(key.as_str())(e))
            }
        }
    }
}

fn io_err(key: &str) -> impl FnOnce(io::Error) -> ReportError + '_ {
    move |source| ReportError::Io { key: key.into(), source }
}

#[async_trait::async_trait]
impl ReportStore for FolderStore {
    async fn put(&self, key: &Key, body: Bytes) -> Result<(), ReportError> {
        self.write_atomically(key, |mut file| async move {
            file.write_all(&body).await?;
            file.flush().await
        })
        .await
    }

    async fn put_file(&self, key: &Key, path: &Path) -> Result<u64, ReportError> {
        let mut source = tokio::fs::File::open(path).await.map_err(io_err(key.as_str()))?;
        self.write_atomically(key, |mut file| async move {
            let copied = tokio::io::copy(&mut source, &mut file).await?;
            file.flush().await?;
            Ok(copied)
        })
        .await
    }

    async fn get(&self, key: &Key, range: Option<Range<u64>>) -> Result<Option<Object>, ReportError> {
        let mut file = match tokio::fs::File::open(self.path(key)).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(key.as_str())(e)),
        };
        let meta = file.metadata().await.map_err(io_err(key.as_str()))?;
        if meta.is_dir() {
            // A folder stands for a prefix of keys, and a prefix is not an object.
            return Ok(None);
        }
        let size = meta.len();
        let range = range.unwrap_or(0..size);
        let (start, end) = (range.start.min(size), range.end.min(size));
        let len = end.saturating_sub(start);
        if start > 0 {
            file.seek(io::SeekFrom::Start(start)).await.map_err(io_err(key.as_str()))?;
        }
        // `take`: bytes written after the size was read (there are none for objects
        // put whole, but be exact) are not part of this read.
        let body: ByteStream = Box::pin(ReaderStream::with_capacity(file.take(len), 64 * 1024));
        Ok(Some(Object { len, body }))
    }

    async fn list_after(&self, prefix: &str, after: Option<&str>) -> Result<Vec<ObjectMeta>, ReportError> {
        // Only the folder holding the prefix's last `/` can contain matches.
        let dir_part = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let mut found = Vec::new();
        let mut pending = vec![(self.root.join(dir_part), dir_part.to_string())];
        while let Some((dir, key_dir)) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(prefix)(e)),
            };
            while let Some(entry) = entries.next_entry().await.map_err(io_err(prefix))? {
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if name.starts_with(TEMP_PREFIX) {
                    continue;
                }
                let key = if key_dir.is_empty() { name } else { format!("{key_dir}/{name}") };
                // An object deleted while it is being listed is simply not listed.
                let meta = match entry.metadata().await {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err(prefix)(e)),
                };
                if meta.is_dir() {
                    if key.starts_with(prefix) || prefix.starts_with(&format!("{key}/")) {
                        pending.push((entry.path(), key));
                    }
                } else if meta.is_file() && key.starts_with(prefix) {
                    found.push(ObjectMeta { key, size: meta.len() });
                }
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        if let Some(after) = after {
            found.retain(|o| o.key.as_str() > after);
        }
        Ok(found)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, ReportError> {
        let objects = self.list(prefix).await?;
        let mut dirs = Vec::new();
        for object in &objects {
            let path = self.root.join(&object.key);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&object.key)(e)),
            }
            if let Some(parent) = path.parent() {
                dirs.push(parent.to_path_buf());
            }
        }
        // Remove folders left empty, deepest first, never the root itself.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        dirs.dedup();
        for dir in dirs {
            remove_empty_up_to(&dir, &self.root).await;
        }
        Ok(objects.len() as u64)
    }

    fn describe(&self) -> String {
        format!("folder {}", self.root.display())
    }
}

async fn remove_empty_up_to(dir: &Path, root: &Path) {
    let mut current = Some(dir);
    while let Some(dir) = current {
        if dir == root || !dir.starts_with(root) || tokio::fs::remove_dir(dir).await.is_err() {
            break;
        }
        current = dir.parent();
    }
}

/// Collects a stream into memory (tests and small objects).
pub async fn collect(stream: ByteStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut stream = stream;
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listing_while_objects_are_deleted_never_fails() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = std::sync::Arc::new(FolderStore::new(dir.path()));
        let deleter = store.clone();
        let deleting = tokio::spawn(async move {
            for round in 0..200 {
                for n in 0..20 {
                    let key = Key::new(format!("p/b{round}/f{n}")).expect("key");
                    deleter.put(&key, Bytes::from_static(b"x")).await.expect("put");
                }
                deleter.delete_prefix(&format!("p/b{round}/")).await.expect("delete");
            }
        });
        let mut failure = None;
        while !deleting.is_finished() && failure.is_none() {
            failure = store.list("p/").await.err();
        }
        // The deleter ends before the folder goes, whatever the outcome.
        deleting.await.expect("deleter");
        assert!(failure.is_none(), "a listing failed while objects were deleted: {failure:?}");
    }

    #[tokio::test]
    async fn put_get_list_delete() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FolderStore::new(dir.path());
        let key = |k: &str| Key::new(k).expect("key");
        store.put(&key("p/a/1"), Bytes::from_static(b"hello world")).await.expect("put");
        store.put(&key("p/a/2"), Bytes::from_static(b"x")).await.expect("put");
        store.put(&key("p/ab/3"), Bytes::from_static(b"y")).await.expect("put");
        store.put(&key("q/1"), Bytes::from_static(b"z")).await.expect("put");
        let whole = store.get(&key("p/a/1"), None).await.expect("get").expect("exists");
        assert_eq!(collect(whole.body).await.expect("read"), b"hello world");
        let part = store.get(&key("p/a/1"), Some(6..100)).await.expect("get").expect("exists");
        assert_eq!(collect(part.body).await.expect("read"), b"world");
        assert!(store.get(&key("p/none"), None).await.expect("get").is_none());
        let keys = |list: Vec<ObjectMeta>| list.into_iter().map(|o| o.key).collect::<Vec<_>>();
        assert_eq!(keys(store.list("p/a").await.expect("list")), ["p/a/1", "p/a/2", "p/ab/3"]);
        assert_eq!(keys(store.list("p/a/").await.expect("list")), ["p/a/1", "p/a/2"]);
        assert_eq!(store.delete_prefix("p/a/").await.expect("delete"), 2);
        assert_eq!(keys(store.list("").await.expect("list")), ["p/ab/3", "q/1"]);
        assert!(!dir.path().join("p/a").exists(), "empty folders are removed");
    }
}
