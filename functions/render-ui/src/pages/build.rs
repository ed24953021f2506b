//! `GET /builds/{id}`: one build — what triggered it, its parameters and times, Cancel
//! and Rebuild buttons (forms posting to the trigger function), its artifacts — and
//! its log. The server renders the log (ANSI colours as HTML), so the page reads fine
//! without JavaScript: by default its last [`MAX_LOG_ON_PAGE`] bytes, with links to
//! earlier parts (`?from=N`), the raw log and a download; with JavaScript, a small
//! script follows `/builds/{id}/events` from where the rendered tail ends.
//!
//! If report storage can't be read, the page still shows the build and says so; if
//! the build's report could not be stored in full, it says the report is incomplete.

use axum::{
    Extension,
    extract::{Path, RawQuery, State},
    response::Response,
};
use serde::Serialize;
use sparky_core::{
    Ctx,
    api::{ApiError, DeliveryJson},
    error::error_chain,
    model::Attempt,
    time::now_ms,
};

use super::{PageError, page};
use crate::{
    access::Viewer,
    artifacts::{self, ArtifactView},
    lines::numbered,
    log::{LogTail, tail, window},
    query,
    view::{AttemptView, BuildView, human_size},
};

/// The most log a page shows; the raw log has the rest.
pub const MAX_LOG_ON_PAGE: u64 = 1024 * 1024;

#[derive(Serialize)]
struct LogView {
    /// The part shown, as HTML (escaped, colours as spans).
    html: String,
    /// Where the live follower continues.
    end: u64,
    /// Whether the part shown is the log's end (and so may be followed live).
    tail: bool,
    /// Whether the part shown is less than the whole log.
    partial: bool,
    shown: String,
    size: String,
    earlier: Option<String>,
    later: Option<String>,
    /// The number the next line gets, and whether the last one shown is unfinished:
    /// where the live follower goes on numbering.
    next_line: u64,
    open_line: bool,
    /// The page its line links point into (empty: this page, from the log's start).
    page: String,
}

impl LogView {
    fn new(id: i64, mut part: LogTail, tail: bool) -> Self {
        let earlier = (part.start > 0)
            .then(|| format!("/builds/{id}?from={}", part.start.saturating_sub(MAX_LOG_ON_PAGE)));
        let later = (!tail && part.end < part.size).then(|| format!("/builds/{id}?from={}", part.end));
        // Numbers count from where the part shown starts; links to them say where.
        let page = if part.start == 0 { String::new() } else { format!("/builds/{id}?from={}", part.start) };
        let (html, next_line, open_line) = numbered(&part.ansi.to_html(&part.text), 1, false, &page);
        LogView {
            html,
            next_line,
            open_line,
            page,
            end: part.end,
            tail,
            partial: part.start > 0 || part.end < part.size,
            shown: human_size(part.end - part.start),
            size: human_size(part.size),
            earlier,
            later,
        }
    }
}

#[derive(Serialize)]
struct BuildPage {
    build: BuildView,
    /// Each attempt and how it ended, when there is more to say than one run.
    attempts: Vec<AttemptView>,
    /// The commit statuses posted for it, and how that went.
    deliveries: Vec<DeliveryJson>,
    log: Option<LogView>,
    artifacts: Vec<ArtifactView>,
    /// Why the log or the artifacts could not be read right now.
    storage_error: Option<String>,
    /// Why Cancel or Rebuild was refused, when it sent the browser back here.
    refused: Option<String>,
    /// Where the page of a live build goes when it refreshes itself without scripts.
    refresh: Option<String>,
}

/// Where a live build's page refreshes to without scripts (`None`: a finished build's
/// page stays). Showing the log's end, it comes back at the end (`#end-of-log`), where a
/// reader following the log wants to be, alternating between two spellings of the URL:
/// a browser sent to the URL it shows, with just a fragment added, scrolls instead of
/// loading the page again. A part of the log (`?from=N`) reloads as it is. (The cost:
/// Chromium keeps each refresh to another URL as a history entry.)
fn refresh_to(id: i64, live: bool, tail: bool, following: bool) -> Option<String> {
    match (live, tail, following) {
        (false, _, _) => None,
        (true, false, _) => Some(String::new()),
        (true, true, false) => Some(format!("/builds/{id}?follow=1#end-of-log")),
        (true, true, true) => Some(format!("/builds/{id}#end-of-log")),
    }
}

/// `GET /builds/{id}`, `GET /builds/{id}?from=N`
#[tracing::instrument(skip_all, fields(build_id = %id))]
pub async fn build(
    State(ctx): State<Ctx>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let id = query::build_id(&id)?;
    let from = query::log_from(raw.as_deref())?;
    let build = ctx.store.build(id).await?.ok_or_else(|| query::no_build(id))?;
    let part = match from {
        None => tail(&ctx, &build.project, id, MAX_LOG_ON_PAGE).await.map(|t| LogView::new(id, t, true)),
        Some(from) => window(&ctx, &build.project, id, from, MAX_LOG_ON_PAGE).await.map(|w| {
            let at_end = w.end >= w.size;
            LogView::new(id, w, at_end && build.status.is_terminal())
        }),
    };
    let events = ctx.store.build_events(id).await?;
    let deliveries = ctx.store.build_deliveries(id).await?;
    let artifacts = artifacts::list(&ctx, &build.project, id).await;
    let storage_error = match (&part, &artifacts) {
        (Err(e), _) | (_, Err(e)) => Some(unavailable(e)),
        _ => None,
    };
    let following = query::flag(raw.as_deref(), "follow")?;
    let refresh = refresh_to(id, !build.status.is_terminal(), from.is_none(), following);
    let context = BuildPage {
        build: BuildView::new(&build, now_ms()),
        attempts: AttemptView::list(&Attempt::from_events(&events), now_ms()),
        deliveries: deliveries.iter().map(DeliveryJson::from).collect(),
        log: part.ok(),
        artifacts: artifacts.unwrap_or_default(),
        storage_error,
        refused: query::refused(raw.as_deref()),
        refresh,
    };
    page("build.html", &viewer, context)
}

/// What the page says when report storage could not be read.
fn unavailable(error: &ApiError) -> String {
    if let ApiError::Internal(cause) = error {
        tracing::warn!(error = %error_chain(cause.as_ref()), "report storage could not be read");
    }
    "report storage could not be read just now; reload to try again".into()
}
