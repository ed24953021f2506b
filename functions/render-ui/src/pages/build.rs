//! `GET /builds/{id}`: one build — what triggered it, its parameters and times, Cancel
//! and Rebuild buttons (forms posting to the trigger function) — and its log. The
//! server renders the log (its last [`MAX_LOG_ON_PAGE`] bytes, with a link to the
//! whole), so the page reads fine without JavaScript; with it, a small script follows
//! `/builds/{id}/events` from where the rendered log ends.

use axum::{
    extract::{Path, State},
    response::Response,
};
use serde::Serialize;
use sparky_core::{Ctx, time::now_ms};

use super::{PageError, page};
use crate::{
    log::tail,
    query,
    view::{BuildView, human_size},
};

/// The most log a page shows; the raw log has the rest.
pub const MAX_LOG_ON_PAGE: u64 = 1024 * 1024;

#[derive(Serialize)]
struct LogView {
    text: String,
    /// Where the live follower continues.
    end: u64,
    truncated: bool,
    shown: String,
    size: String,
}

#[derive(Serialize)]
struct BuildPage {
    build: BuildView,
    log: LogView,
    /// Whether the forms need the API token.
    token: bool,
}

/// `GET /builds/{id}`
#[tracing::instrument(skip_all, fields(build_id = %id))]
pub async fn build(State(ctx): State<Ctx>, Path(id): Path<String>) -> Result<Response, PageError> {
    let id = query::build_id(&id)?;
    let build = ctx.store.build(id).await?.ok_or_else(|| query::no_build(id))?;
    let log = tail(&ctx, &build.project, id, MAX_LOG_ON_PAGE).await?;
    let context = BuildPage {
        build: BuildView::new(&build, now_ms()),
        log: LogView {
            truncated: log.truncated(),
            shown: human_size(log.end - log.start),
            size: human_size(log.size),
            end: log.end,
            text: log.text,
        },
        token: ctx.config.api_token.is_some(),
    };
    page("build.html", context)
}
