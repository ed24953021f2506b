//! `GET /builds/{id}/events`: a build's log and status, live, as server-sent events.
//! The browser's build page and the `sparky` CLI both read it, so the format is fixed:
//!
//! ```text
//! event: status
//! data: {"id": 7, "status": "running", ...}          (a build as the API shows it)
//!
//! event: log
//! id: 1234                                           (byte offset after this piece)
//! data: {"offset": 1200, "text": "...", "html": "..."}
//!                                    (offset: where the piece starts; html: the text
//!                                     escaped, ANSI colours as spans, balanced)
//!
//! event: end
//! data: {"id": 7, "status": "succeeded", ...}
//!
//! : keepalive
//! ```
//!
//! - The stream starts at `Last-Event-ID` (a reconnecting client), else `?offset=N`,
//!   else 0. A `status` event comes first and again on every change.
//! - `log` pieces never split a character: an incomplete sequence waits for the rest
//!   (bytes that can never be UTF-8 become U+FFFD, but offsets count real bytes).
//! - `end` comes once the build is terminal and all its log was sent; the stream
//!   then ends. It also ends when the server shuts down or the build is deleted.
//!
//! New data is noticed through the in-process hub (immediate in `sparky up`) and by
//! re-reading the store and the log every 500 ms, because when the functions run as
//! separate services another process writes the log. Re-reading the log lists only
//! the chunks after the last one known, so following a long log stays cheap; and the
//! streams following one build share one reader of it ([`crate::live`]), so a
//! thousand viewers cost one read per change.

use std::{
    convert::Infallible,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Extension,
    extract::{Path, RawQuery, State},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures_util::{StreamExt, stream};
use http::HeaderMap;
use serde::Serialize;
use sparky_core::{
    Ctx,
    api::{ApiError, BuildJson},
    error::error_chain,
    hub::HubEvent,
    model::{Build, BuildStatus},
    reports::log::StoredLog,
};
use tokio::sync::{broadcast, mpsc};

use crate::{
    ansi::Ansi,
    live::{Source, Sources, TIMER_SLACK},
    log, query, utf8,
};

/// How often the store and the log are re-read when nothing is heard from the hub.
const POLL: Duration = Duration::from_millis(500);
/// How often an idle stream sends a comment, so that proxies keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// After a build ends, how many polls to wait for the rest of its recorded log size
/// to become readable before ending anyway.
const SETTLE_POLLS: u32 = 10;
/// Consecutive failures to read the store or the log before the stream gives up.
const MAX_FAILURES: u32 = 20;

/// `GET /builds/{id}/events`
#[tracing::instrument(skip_all, fields(build_id = %id))]
pub async fn events(
    State(ctx): State<Ctx>,
    Extension(sources): Extension<Sources>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let id = query::build_id(&id)?;
    let from = query::resume_offset(&headers, raw.as_deref())?;
    let build = ctx.store.build(id).await?.ok_or_else(|| query::no_build(id))?;
    // Resuming mid-log: the colours in force there.
    let ansi = match from {
        0 => Ansi::default(),
        at => match StoredLog::open(ctx.reports.as_ref(), &build.project, id).await {
            Ok(stored) => log::ansi_at(&ctx, &stored, at).await,
            Err(_) => Ansi::default(),
        },
    };
    // Subscribe before the first read, so that nothing happening in between is missed.
    let hub = ctx.hub.subscribe();
    let (tx, rx) = mpsc::channel(16);
    let follower = Follower {
        source: sources.get(&build.project, id),
        since: Instant::now(),
        id,
        sent: from,
        pending: Vec::new(),
        ansi,
        last_status: None,
        tx,
    };
    tokio::spawn(follower.run(ctx, hub));
    let events =
        stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|event| (Ok::<_, Infallible>(event), rx)) },
        );
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEPALIVE).text("keepalive")).into_response())
}

/// The data of a `log` event.
#[derive(Serialize)]
struct LogPiece<'a> {
    offset: u64,
    text: &'a str,
    html: &'a str,
}

/// Why following stopped early.
enum Stop {
    /// The client went away.
    Gone,
    /// Reading failed; the next poll tries again.
    Failed(ApiError),
}

impl From<ApiError> for Stop {
    fn from(e: ApiError) -> Self {
        Stop::Failed(e)
    }
}

/// Follows one build for one client.
struct Follower {
    /// The build's reader, shared with its other followers.
    source: Arc<Source>,
    /// Reads of the source that began before this are stale to this follower.
    since: Instant,
    id: i64,
    /// The offset of the first byte not yet sent; `pending` starts there.
    sent: u64,
    /// Bytes read but not sent: the start of an incomplete character.
    pending: Vec<u8>,
    ansi: Ansi,
    last_status: Option<BuildStatus>,
    tx: mpsc::Sender<Event>,
}

impl Follower {
    async fn run(mut self, ctx: Ctx, mut hub: broadcast::Receiver<HubEvent>) {
        let mut failures = 0;
        let mut settling = 0;
        loop {
            match self.step(&ctx).await {
                Ok(Some(build)) => {
                    failures = 0;
                    let expected = build.log_size.unwrap_or(0);
                    if build.status.is_terminal() {
                        if self.read() >= expected || settling >= SETTLE_POLLS {
                            self.finish(&build).await;
                            return;
                        }
                        settling += 1;
                    }
                }
                Ok(None) => return,
                Err(Stop::Gone) => return,
                Err(Stop::Failed(error)) => {
                    failures += 1;
                    tracing::warn!(build_id = self.id, error = %error_chain(&error), failures,
                        "could not follow the build; trying again");
                    if failures >= MAX_FAILURES {
                        return;
                    }
                }
            }
            tokio::select! {
                _ = ctx.shutdown.cancelled() => return,
                _ = self.tx.closed() => return,
                _ = wake(&mut hub, self.id) => self.since = Instant::now(),
                _ = tokio::time::sleep(POLL) => {
                    let now = Instant::now();
                    self.since = now.checked_sub(TIMER_SLACK).unwrap_or(now);
                }
            }
        }
    }

    /// Reads the build (sending its status if it changed), then sends whatever of
    /// its log is stored and not yet sent. The status is read first: when it is
    /// terminal, the log read after it is complete. `None`: the build is gone.
    async fn step(&mut self, ctx: &Ctx) -> Result<Option<Build>, Stop> {
        let snapshot = self.source.read(ctx, self.since, self.read()).await?;
        let Some(build) = snapshot.build else {
            return Ok(None);
        };
        if self.last_status != Some(build.status) {
            self.send(Event::default().event("status").data(build_json(&build))).await?;
            self.last_status = Some(build.status);
        }
        match (snapshot.bytes, snapshot.log) {
            (Some(pieces), _) => {
                for piece in pieces {
                    self.take(&piece).await?;
                }
            }
            // Behind what the source keeps: read the older part from storage.
            (None, Some(stored)) if snapshot.size > self.read() => {
                let mut pieces = stored.read_from(ctx.reports.clone(), self.read());
                while let Some(piece) = pieces.next().await {
                    self.take(&piece.map_err(ApiError::from)?).await?;
                }
            }
            _ => {}
        }
        Ok(Some(build))
    }

    /// Sends what of `piece` (the log's next bytes) makes whole characters.
    async fn take(&mut self, piece: &[u8]) -> Result<(), Stop> {
        self.pending.extend_from_slice(piece);
        let (text, used) = utf8::decode_prefix(&self.pending);
        self.send_text(&text, used).await
    }

    /// Sends the last incomplete bytes as they are, then `end`.
    async fn finish(&mut self, build: &Build) {
        if !self.pending.is_empty() {
            let text = String::from_utf8_lossy(&self.pending).into_owned();
            if self.send_text(&text, self.pending.len()).await.is_err() {
                return;
            }
        }
        let _ = self.send(Event::default().event("end").data(build_json(build))).await;
    }

    /// Sends `text`, which covers the first `used` bytes of `pending`.
    async fn send_text(&mut self, text: &str, used: usize) -> Result<(), Stop> {
        if used == 0 {
            return Ok(());
        }
        let end = self.sent + used as u64;
        let html = self.ansi.to_html(text);
        let data = serde_json::to_string(&LogPiece { offset: self.sent, text, html: &html })
            .map_err(ApiError::internal)?;
        self.send(Event::default().event("log").id(end.to_string()).data(data)).await?;
        self.pending.drain(..used);
        self.sent = end;
        Ok(())
    }

    /// The offset of the next byte to read from the store.
    fn read(&self) -> u64 {
        self.sent + self.pending.len() as u64
    }

    async fn send(&self, event: Event) -> Result<(), Stop> {
        self.tx.send(event).await.map_err(|_| Stop::Gone)
    }
}

fn build_json(build: &Build) -> String {
    // A build's JSON has only strings, numbers and maps of strings: it always serializes.
    serde_json::to_string(&BuildJson::from(build)).unwrap_or_default()
}

/// Returns when the hub says something about build `id` (or dropped messages, which
/// might have been about it); never, if the hub is gone, leaving the poll to wake us.
async fn wake(hub: &mut broadcast::Receiver<HubEvent>, id: i64) {
    loop {
        match hub.recv().await {
            Ok(HubEvent::LogGrew(of) | HubEvent::StatusChanged(of)) if of == id => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}
