//! Writing a log while its job runs. The job's output is buffered and cut into chunks,
//! which a background task stores (a few at once, recorded in order), so reading the
//! job's pipe never waits on a store round trip. The queue between them and the buffer
//! are bounded: memory stays small whatever the job prints. While storage is merely
//! slower than the job, the buffer fills and the caller stops reading output
//! ([`LogWriter::full`]), which slows the job down to storage's pace.
//!
//! When storage fails, each chunk is retried with [`Backoff`] for as long as the build
//! runs. If the buffer fills meanwhile, the job is not held up: buffered output is
//! dropped and counted, and the next chunk stored starts with a `[sparky]` line saying
//! how many bytes were lost there. At the end, [`LogWriter::finish`] keeps trying until a
//! deadline and reports what could not be stored ([`LogEnd`]), so the build still
//! finishes and its page can say the log is incomplete. The stored log never has a
//! gap: chunks are stored at the offsets they were cut at, and dropped bytes never
//! get one.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use tokio::{
    sync::{Notify, mpsc},
    task::JoinHandle,
    time::Instant,
};

use super::{chunk_key, mask::Masker};
use crate::{
    error::error_chain,
    hub::{Hub, HubEvent},
    reports::{Key, ReportError, ReportStore, retry::Backoff},
};

/// Chunks waiting to be stored, at most.
const QUEUE: usize = 4;
/// Chunks being stored at once.
const CONCURRENT_PUTS: usize = 4;
/// Output buffered at most while the queue is full.
pub const MAX_BUFFER: usize = 4 * 1024 * 1024;

/// A piece of the log on its way to storage.
struct Chunk {
    offset: u64,
    bytes: Bytes,
}

/// What the writer and its upload task share.
#[derive(Default)]
struct Shared {
    /// Bytes stored, from offset 0 without a gap.
    stored: AtomicU64,
    /// Chunks whose last attempt failed.
    failing: AtomicUsize,
    last_error: Mutex<Option<String>>,
    progress: Notify,
}

impl Shared {
    fn last_error(&self) -> String {
        self.last_error.lock().ok().and_then(|e| e.clone()).unwrap_or_else(|| "unknown error".into())
    }
}

/// How a log ended up in storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEnd {
    /// Bytes stored, from the start without a gap: the log's size as readers see it.
    pub size: u64,
    /// Output that could not be stored.
    pub lost: u64,
    /// Why, if anything was lost.
    pub error: Option<String>,
}

impl LogEnd {
    pub fn complete(&self) -> bool {
        self.lost == 0
    }

    /// A sentence for the build page when the log is incomplete.
    pub fn problem(&self) -> Option<String> {
        (!self.complete()).then(|| {
            format!(
                "{} of the log could not be stored ({})",
                human_bytes(self.lost),
                self.error.as_deref().unwrap_or("report storage was unavailable")
            )
        })
    }
}

fn human_bytes(n: u64) -> String {
    if n < 1024 { format!("{n} bytes") } else { format!("{:.1} KiB", n as f64 / 1024.0) }
}

/// Appends to a build's log by storing chunks in the background.
pub struct LogWriter {
    prefix: String,
    buffer: BytesMut,
    /// Bytes handed to the upload task: the offset of `buffer`'s first byte.
    handed: u64,
    /// Bytes dropped since the last chunk handed over.
    dropping: u64,
    /// Bytes dropped in all.
    lost: u64,
    tx: Option<mpsc::Sender<Chunk>>,
    shared: Arc<Shared>,
    uploader: Option<JoinHandle<()>>,
    /// Masks secret values before anything is buffered.
    mask: Option<Masker>,
}

impl LogWriter {
    /// Starts the upload task of build `build_id`'s log; `hub`, if given, hears of
    /// every chunk stored.
    pub fn new(store: Arc<dyn ReportStore>, project: &str, build_id: i64, hub: Option<Hub>) -> Self {
        let prefix = Key::log_prefix(project, build_id);
        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared::default());
        let uploader = tokio::spawn(upload(store, prefix.clone(), rx, shared.clone(), hub, build_id));
        LogWriter {
            prefix,
            buffer: BytesMut::new(),
            handed: 0,
            dropping: 0,
            lost: 0,
            tx: Some(tx),
            shared,
            uploader: Some(uploader),
            mask: None,
        }
    }

    /// From now on, masks each of `values` as `***` (see [`Masker`]).
    pub fn mask(&mut self, masker: Masker) {
        self.mask = (!masker.is_empty()).then_some(masker);
    }

    /// Adds bytes to the buffer. While storage fails and the buffer is full
    /// ([`MAX_BUFFER`]), what is buffered is dropped (and counted) first, so that the
    /// job can go on.
    pub fn append(&mut self, data: &[u8]) {
        if self.buffer.len() >= MAX_BUFFER && self.failing() {
            self.drop_buffer();
        }
        match &mut self.mask {
            Some(masker) => {
                let masked = masker.feed(data);
                self.buffer.extend_from_slice(&masked);
            }
            None => self.buffer.extend_from_slice(data),
        }
    }

    /// The end of the output: what the masker held back (it may have begun a value
    /// that never came) is buffered.
    fn release_held(&mut self) {
        if let Some(masker) = &mut self.mask {
            let rest = masker.finish();
            self.buffer.extend_from_slice(&rest);
        }
    }

    /// Bytes appended but not yet handed on.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Whether the buffer is full: the caller should stop reading output until
    /// [`LogWriter::cut_when_room`] makes room (unless storage is failing, when
    /// [`LogWriter::append`] drops output instead).
    pub fn full(&self) -> bool {
        self.buffer.len() >= MAX_BUFFER && !self.failing()
    }

    /// Bytes stored so far.
    pub fn stored(&self) -> u64 {
        self.shared.stored.load(Ordering::Acquire)
    }

    /// Whether storing has been failing (and is being retried).
    pub fn failing(&self) -> bool {
        self.shared.failing.load(Ordering::Acquire) > 0
    }

    /// Hands the buffered bytes to the upload task as one chunk if its queue has room;
    /// otherwise they stay buffered. Never waits.
    pub fn try_cut(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let Some(tx) = self.tx.clone() else { return };
        match tx.try_reserve() {
            Ok(permit) => {
                let chunk = self.next_chunk();
                permit.send(chunk);
            }
            Err(mpsc::error::TrySendError::Full(())) => {}
            Err(mpsc::error::TrySendError::Closed(())) => self.drop_buffer(),
        }
    }

    /// Waits for room in the upload queue, then hands the buffered bytes on. Safe to
    /// cancel (in a `select!`): nothing is handed on unless there is room.
    pub async fn cut_when_room(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let Some(tx) = self.tx.clone() else { return };
        match tx.reserve().await {
            Ok(permit) => {
                let chunk = self.next_chunk();
                permit.send(chunk);
            }
            Err(_) => self.drop_buffer(),
        }
    }

    /// Waits for room until `deadline` (however storage is doing), then hands the
    /// buffered bytes on, or drops them if there is still no room.
    async fn cut_until(&mut self, deadline: Instant) {
        if tokio::time::timeout_at(deadline, self.cut_when_room()).await.is_err() {
            self.drop_buffer();
        }
    }

    /// The buffer as the next chunk, at the next offset.
    fn next_chunk(&mut self) -> Chunk {
        let bytes = self.take_chunk();
        let chunk = Chunk { offset: self.handed, bytes };
        self.handed += chunk.bytes.len() as u64;
        chunk
    }

    /// Drops what is buffered, counting it as lost.
    fn drop_buffer(&mut self) {
        let dropped = self.buffer.len() as u64;
        if dropped == 0 {
            return;
        }
        tracing::warn!(prefix = %self.prefix, dropped, "report storage is failing and the log buffer is full; output dropped");
        self.dropping += dropped;
        self.lost += dropped;
        self.buffer.clear();
    }

    /// The buffer as a chunk, after a note on output dropped before it.
    fn take_chunk(&mut self) -> Bytes {
        let bytes = self.buffer.split();
        if self.dropping == 0 {
            return bytes.freeze();
        }
        let note = format!(
            "\n[sparky] {} of output were lost here: report storage was unavailable\n",
            human_bytes(self.dropping)
        );
        self.dropping = 0;
        let mut chunk = BytesMut::with_capacity(note.len() + bytes.len());
        chunk.extend_from_slice(note.as_bytes());
        chunk.extend_from_slice(&bytes);
        chunk.freeze()
    }

    /// Hands on what is buffered and waits until everything handed on is stored;
    /// fails as soon as storing fails (it goes on being retried in the background).
    pub async fn flush(&mut self) -> Result<(), ReportError> {
        self.release_held();
        self.cut_when_room().await;
        loop {
            let progress = self.shared.progress.notified();
            if self.stored() >= self.handed {
                return Ok(());
            }
            if self.failing() {
                return Err(ReportError::Io {
                    key: self.prefix.clone(),
                    source: std::io::Error::other(self.shared.last_error()),
                });
            }
            progress.await;
        }
    }

    /// Hands on the rest and waits for the upload task to store everything, retrying
    /// until `deadline`; then says what is stored and what is not.
    pub async fn finish(mut self, deadline: Instant) -> LogEnd {
        self.release_held();
        self.cut_until(deadline).await;
        self.tx = None;
        if let Some(mut uploader) = self.uploader.take()
            && tokio::time::timeout_at(deadline, &mut uploader).await.is_err()
        {
            uploader.abort();
        }
        let size = self.stored();
        let lost = self.lost + self.handed.saturating_sub(size);
        let error = (lost > 0).then(|| self.shared.last_error());
        if let Some(error) = &error {
            tracing::error!(prefix = %self.prefix, lost, %error, "the log is incomplete");
        }
        LogEnd { size, lost, error }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // A writer dropped without `finish` must not leave a task retrying forever.
        if let Some(uploader) = self.uploader.take()
            && self.failing()
        {
            uploader.abort();
        }
    }
}

/// Stores chunks as they come, a few at once, and records them in order.
async fn upload(
    store: Arc<dyn ReportStore>,
    prefix: String,
    rx: mpsc::Receiver<Chunk>,
    shared: Arc<Shared>,
    hub: Option<Hub>,
    build_id: i64,
) {
    let chunks = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) });
    let mut stored = std::pin::pin!(
        chunks.map(|chunk| store_chunk(store.as_ref(), &prefix, chunk, &shared)).buffered(CONCURRENT_PUTS)
    );
    while let Some(end) = stored.next().await {
        shared.stored.store(end, Ordering::Release);
        shared.progress.notify_waiters();
        if let Some(hub) = &hub {
            hub.publish(HubEvent::LogGrew(build_id));
        }
    }
}

/// Stores one chunk, retrying with backoff until it works (or the task is aborted);
/// returns the offset just after it.
async fn store_chunk(store: &dyn ReportStore, prefix: &str, chunk: Chunk, shared: &Shared) -> u64 {
    let end = chunk.offset + chunk.bytes.len() as u64;
    let key = match chunk_key(prefix, chunk.offset) {
        Ok(key) => key,
        Err(error) => {
            // Offsets are digits under a checked prefix: this cannot happen.
            tracing::error!(error = %error_chain(&error), "bad log chunk key");
            return end;
        }
    };
    let mut backoff = Backoff::default();
    let mut failed = false;
    loop {
        match store.put(&key, chunk.bytes.clone()).await {
            Ok(()) => {
                if failed {
                    shared.failing.fetch_sub(1, Ordering::AcqRel);
                    tracing::info!(%key, "log chunk stored after retrying");
                }
                return end;
            }
            Err(error) => {
                let text = error_chain(&error);
                if let Ok(mut last) = shared.last_error.lock() {
                    *last = Some(text.clone());
                }
                if !failed {
                    failed = true;
                    shared.failing.fetch_add(1, Ordering::AcqRel);
                    shared.progress.notify_waiters();
                }
                let delay = backoff.next_delay();
                tracing::warn!(%key, error = %text, retry_in = ?delay, "storing a log chunk failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
