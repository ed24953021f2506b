//! One reader per live build, shared by everyone following it: the build's row, its
//! log's chunk listing and the log's newest bytes are read once per change, however
//! many streams follow the build, and each stream takes its bytes from memory. A
//! stream that falls behind what is kept (or starts at an old offset) reads the older
//! part from storage itself, once.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::StreamExt as _;
use sparky_core::{Ctx, api::ApiError, model::Build, reports::log::StoredLog};

/// The newest bytes kept in memory for a build's followers.
const KEEP: u64 = 256 * 1024;

/// The sources of builds being followed, by build id; one per router.
#[derive(Clone, Default)]
pub struct Sources {
    by_build: Arc<Mutex<HashMap<i64, Weak<Source>>>>,
}

impl Sources {
    /// The shared source of build `id` of `project`, made if nobody follows it yet.
    pub fn get(&self, project: &str, id: i64) -> Arc<Source> {
        let Ok(mut map) = self.by_build.lock() else {
            // A poisoned map (a panic elsewhere): this follower reads alone.
            return Arc::new(Source::new(project, id));
        };
        if let Some(source) = map.get(&id).and_then(Weak::upgrade) {
            return source;
        }
        map.retain(|_, source| source.strong_count() > 0);
        let source = Arc::new(Source::new(project, id));
        map.insert(id, Arc::downgrade(&source));
        source
    }
}

/// What was last read of one build.
pub struct Source {
    id: i64,
    state: tokio::sync::Mutex<State>,
}

struct State {
    log: StoredLog,
    build: Option<Build>,
    /// When the last read began; `None` before the first.
    read_at: Option<Instant>,
    /// The newest bytes of the log, in order, ending at `log.size()`.
    tail: VecDeque<(u64, Bytes)>,
}

/// A snapshot for one follower: the build, and the log's bytes from where it asked.
pub struct Snapshot {
    /// `None`: the build is gone.
    pub build: Option<Build>,
    /// The log's bytes from the asked offset on, when they are in memory; `None` when
    /// they must be read from storage (see [`Snapshot::size`]).
    pub bytes: Option<Vec<Bytes>>,
    /// The log's stored size.
    pub size: u64,
    /// The chunk listing, to read the bytes from storage, when they are not in memory.
    pub log: Option<StoredLog>,
}

impl Source {
    fn new(project: &str, id: i64) -> Source {
        let state = State {
            log: StoredLog::unlisted(project, id),
            build: None,
            read_at: None,
            tail: VecDeque::new(),
        };
        Source { id, state: tokio::sync::Mutex::new(state) }
    }

    /// The build and its log from `from` on, read again first unless a read began
    /// after `since` (another follower woke by the same news already read it).
    pub async fn read(&self, ctx: &Ctx, since: Instant, from: u64) -> Result<Snapshot, ApiError> {
        let mut state = self.state.lock().await;
        if state.read_at.is_none_or(|at| at < since) {
            state.read_at = Some(Instant::now());
            state.build = ctx.store.build(self.id).await?;
            let before = state.log.size();
            state.log.refresh(ctx.reports.as_ref()).await?;
            let size = state.log.size();
            if size > before {
                // Only the newest KEEP bytes are worth holding (a long log first
                // followed mid-way is not read whole).
                let start = before.max(size.saturating_sub(KEEP));
                if start > before {
                    state.tail.clear();
                }
                let mut pieces = state.log.read_from(ctx.reports.clone(), start);
                let mut at = start;
                while let Some(piece) = pieces.next().await {
                    let piece = match piece {
                        Ok(piece) => piece,
                        Err(error) => {
                            // What is kept must run to the listed end without a gap:
                            // keep nothing, and let followers read from storage.
                            state.tail.clear();
                            state.read_at = None;
                            return Err(error.into());
                        }
                    };
                    let len = piece.len() as u64;
                    state.tail.push_back((at, piece));
                    at += len;
                }
                // Keep the newest KEEP bytes (whole pieces).
                while state.tail.get(1).is_some_and(|(start, _)| size - start >= KEEP) {
                    state.tail.pop_front();
                }
            }
        }
        let size = state.log.size();
        let kept_from = state.tail.front().map_or(size, |(start, _)| *start);
        let bytes: Option<Vec<Bytes>> = (from >= kept_from).then(|| {
            state
                .tail
                .iter()
                .filter(|(start, piece)| start + piece.len() as u64 > from)
                .map(|(start, piece)| piece.slice(from.saturating_sub(*start) as usize..))
                .collect()
        });
        let log = if bytes.is_none() { Some(state.log.clone()) } else { None };
        Ok(Snapshot { build: state.build.clone(), bytes, size, log })
    }
}

/// How stale a timer's wake may find the shared read before reading again itself:
/// followers woken by their own timers (not by news) share reads this close together.
pub const TIMER_SLACK: Duration = Duration::from_millis(250);
