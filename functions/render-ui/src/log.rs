//! A build's log as plain text: `GET /builds/{id}/log?offset=N` streams the stored
//! bytes from byte `N` on (chunk after chunk, never the whole log in memory), with
//! `X-Log-Size` (bytes stored when the request was answered) and `X-Build-Status`, so
//! that a client can poll: read from its offset, add what it got, and stop once the
//! status is terminal and it has `X-Log-Size` bytes. The status is read before the
//! log, so a terminal status means the size is final.
//!
//! With `?download=1` the log comes as a file (`Content-Disposition: attachment`).
//!
//! [`tail`] and [`window`] read the end of a log, or a part of it, for the build page;
//! [`ansi_at`] finds the colours in force where such a part starts.

use axum::{
    body::Body,
    extract::{Path, RawQuery, State},
    response::Response,
};
use futures_util::StreamExt;
use http::{HeaderValue, header};
use sparky_core::{Ctx, api::ApiError, reports::log::StoredLog};

use crate::{ansi::Ansi, query, utf8};

/// How far back [`ansi_at`] looks for the colour codes in force at a point of a log.
const ANSI_LOOKBACK: u64 = 64 * 1024;

/// `GET /builds/{id}/log?offset=N`
#[tracing::instrument(skip_all, fields(build_id = %id))]
pub async fn log(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let id = query::build_id(&id)?;
    let from = query::offset(raw.as_deref())?;
    let download = query::flag(raw.as_deref(), "download")?;
    let build = ctx.store.build(id).await?.ok_or_else(|| query::no_build(id))?;
    let stored = StoredLog::open(ctx.reports.as_ref(), &build.project, id).await?;
    let size = stored.size();
    let body = if from >= size {
        Body::empty()
    } else {
        Body::from_stream(stored.read_from(ctx.reports.clone(), from))
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    // A log is whatever a job printed: never let a browser take it for HTML.
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-log-size", HeaderValue::from(size));
    headers.insert("x-build-status", HeaderValue::from_static(build.status.as_str()));
    if download {
        let name = format!("attachment; filename=\"{}-{id}.log\"", build.project);
        if let Ok(value) = HeaderValue::from_str(&name) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

/// The end of a log, decoded for a page.
#[derive(Debug, Default)]
pub struct LogTail {
    pub text: String,
    /// The colours in force where `text` starts.
    pub ansi: Ansi,
    /// The byte offset where `text` starts (0 unless the log was longer than asked).
    pub start: u64,
    /// The byte offset just after `text`: where a live follower continues. An
    /// incomplete character at the end is left for it.
    pub end: u64,
    /// Bytes stored when the log was read.
    pub size: u64,
}

impl LogTail {
    /// Whether the beginning of the log was left out.
    pub fn truncated(&self) -> bool {
        self.start > 0
    }
}

/// Reads at most the last `max` bytes of a build's log, starting at a character.
pub async fn tail(ctx: &Ctx, project: &str, id: i64, max: u64) -> Result<LogTail, ApiError> {
    let stored = StoredLog::open(ctx.reports.as_ref(), project, id).await?;
    let from = stored.size().saturating_sub(max);
    read(ctx, &stored, from, max).await
}

/// Reads at most `max` bytes of a build's log from byte `from` (moved on to the next
/// character), for paging through a long log.
pub async fn window(ctx: &Ctx, project: &str, id: i64, from: u64, max: u64) -> Result<LogTail, ApiError> {
    let stored = StoredLog::open(ctx.reports.as_ref(), project, id).await?;
    read(ctx, &stored, from.min(stored.size()), max).await
}

async fn read(ctx: &Ctx, stored: &StoredLog, from: u64, max: u64) -> Result<LogTail, ApiError> {
    let size = stored.size();
    let bytes = read_range(ctx, stored, from, size.min(from.saturating_add(max))).await?;
    let skip = if from > 0 { utf8::char_boundary(&bytes) } else { 0 };
    let (text, used) = utf8::decode_prefix(&bytes[skip..]);
    let start = from + skip as u64;
    let ansi = ansi_at(ctx, stored, start).await;
    Ok(LogTail { text, ansi, start, end: start + used as u64, size })
}

/// The colours in force at byte `at` of a log: those that the last [`ANSI_LOOKBACK`]
/// bytes before it set and did not reset, so that a part of a log shown from `at` on
/// starts in the colour the job printed it in. Colours are decoration: if that part
/// can't be read, the part starts plain.
pub async fn ansi_at(ctx: &Ctx, stored: &StoredLog, at: u64) -> Ansi {
    let mut ansi = Ansi::default();
    if at == 0 {
        return ansi;
    }
    if let Ok(before) = read_range(ctx, stored, at.saturating_sub(ANSI_LOOKBACK), at).await {
        ansi.advance(&String::from_utf8_lossy(&before));
    }
    ansi
}

/// The bytes `from..until` of a log (`until` at most its size).
async fn read_range(ctx: &Ctx, stored: &StoredLog, from: u64, until: u64) -> Result<Vec<u8>, ApiError> {
    let want = until.saturating_sub(from) as usize;
    let mut bytes = Vec::with_capacity(want);
    let mut stream = stored.read_from(ctx.reports.clone(), from);
    while bytes.len() < want {
        let Some(piece) = stream.next().await else { break };
        let piece = piece?;
        bytes.extend_from_slice(&piece[..piece.len().min(want - bytes.len())]);
    }
    Ok(bytes)
}
