//! The log writer against a folder store that can be switched off.

use std::{
    path::Path,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use super::*;
use crate::reports::{FolderStore, Object, ObjectMeta, folder::collect, log::StoredLog};

/// A folder store whose writes fail while `down` is set.
struct Flaky {
    inner: FolderStore,
    down: AtomicBool,
}

#[async_trait::async_trait]
impl ReportStore for Flaky {
    async fn put(&self, key: &Key, body: Bytes) -> Result<(), ReportError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(ReportError::Io {
                key: key.to_string(),
                source: std::io::Error::other("store is down"),
            });
        }
        self.inner.put(key, body).await
    }
    async fn put_file(&self, key: &Key, path: &Path) -> Result<u64, ReportError> {
        self.inner.put_file(key, path).await
    }
    async fn get(
        &self,
        key: &Key,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Option<Object>, ReportError> {
        self.inner.get(key, range).await
    }
    async fn list_after(&self, prefix: &str, after: Option<&str>) -> Result<Vec<ObjectMeta>, ReportError> {
        self.inner.list_after(prefix, after).await
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, ReportError> {
        self.inner.delete_prefix(prefix).await
    }
    fn describe(&self) -> String {
        "flaky".into()
    }
}

fn flaky(dir: &Path) -> Arc<Flaky> {
    Arc::new(Flaky { inner: FolderStore::new(dir), down: AtomicBool::new(false) })
}

async fn read_all(store: Arc<Flaky>) -> String {
    let stored = StoredLog::open(store.as_ref(), "app", 1).await.expect("open");
    String::from_utf8(collect(stored.read_from(store, 0)).await.expect("read")).expect("UTF-8")
}

/// A writer that has stored `first`, on a store that is down from then on.
async fn stored_then_down(dir: &Path, first: &[u8]) -> (Arc<Flaky>, LogWriter) {
    let store = flaky(dir);
    let mut log = LogWriter::new(store.clone(), "app", 1, None);
    log.append(first);
    log.flush().await.expect("stored");
    store.down.store(true, Ordering::SeqCst);
    (store, log)
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[tokio::test]
async fn stores_chunks_in_order_and_tells_the_hub() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = flaky(dir.path());
    let hub = Hub::default();
    let mut heard = hub.subscribe();
    let mut log = LogWriter::new(store.clone(), "app", 1, Some(hub));
    for i in 0..100 {
        log.append(format!("line {i}\n").as_bytes());
        if i % 7 == 0 {
            log.try_cut();
        }
    }
    log.flush().await.expect("flush");
    assert_eq!(heard.recv().await.expect("hub"), HubEvent::LogGrew(1));
    let end = log.finish(soon()).await;
    let expected: String = (0..100).map(|i| format!("line {i}\n")).collect();
    assert_eq!(end, LogEnd { size: expected.len() as u64, lost: 0, error: None });
    assert!(end.complete() && end.problem().is_none());
    assert_eq!(read_all(store).await, expected);
}

#[tokio::test]
async fn an_outage_drops_output_only_when_the_buffer_is_full_and_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, mut log) = stored_then_down(dir.path(), b"before\n").await;
    log.append(b"during 0000000\n");
    log.try_cut();
    while !log.failing() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Far more than the queue, the puts in flight and the buffer hold: nothing waits.
    let started = Instant::now();
    for i in 1..1_000_000 {
        log.append(format!("during {i:07}\n").as_bytes());
        if i % 5000 == 0 {
            log.try_cut();
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5), "appends waited {:?}", started.elapsed());
    assert!(!log.full(), "a failing store never holds the job up");
    assert!(log.flush().await.is_err(), "flush says storage fails");
    store.down.store(false, Ordering::SeqCst);
    log.append(b"after\n");
    let end = log.finish(soon()).await;
    assert!(end.lost > 0 && !end.complete(), "{end:?}");
    let text = read_all(store).await;
    assert_eq!(end.size, text.len() as u64);
    assert!(text.starts_with("before\nduring 0000000\nduring 0000001\n"), "{}", &text[..100]);
    assert!(text.contains("of output were lost here: report storage was unavailable\n"));
    assert!(text.ends_with("during 0999999\nafter\n"), "the end is kept");
    let numbers: Vec<usize> =
        text.lines().filter_map(|l| l.strip_prefix("during ")).filter_map(|n| n.parse().ok()).collect();
    assert!(numbers.windows(2).all(|w| w[1] > w[0]), "kept lines are in order");
    assert_eq!(numbers.len() as u64 * 15 + end.lost, 1_000_000 * 15, "every line is kept or counted lost");
    assert!(end.problem().expect("problem").contains("store is down"), "{end:?}");
}

#[tokio::test]
async fn a_store_down_until_the_deadline_leaves_an_incomplete_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, mut log) = stored_then_down(dir.path(), b"kept\n").await;
    log.append(b"never stored\n");
    let started = Instant::now();
    let end = log.finish(Instant::now() + Duration::from_millis(600)).await;
    assert!(started.elapsed() < Duration::from_secs(2), "finish kept to its deadline");
    assert_eq!((end.size, end.lost), (5, 13));
    assert!(
        end.problem().expect("incomplete").starts_with("13 bytes of the log could not be stored"),
        "{end:?}"
    );
    assert_eq!(read_all(store).await, "kept\n");
}
