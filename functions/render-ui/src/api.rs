//! The JSON read API. Every error is the API's JSON `{"error": "..."}` with a status
//! code that says what kind of mistake it was.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/v1/projects` | `{"projects": [ProjectSummary]}`, sorted by name |
//! | `GET /api/v1/projects/{project}` | [`ProjectDetail`], with its trends |
//! | `GET /api/v1/projects/{project}/builds?status=&branch=&trigger=&q=&limit=N&before=ID` | `{"builds": [Build], "next_before": ID or null}`, newest first |
//! | `GET /api/v1/builds?project=&status=&branch=&trigger=&q=&limit=N&before=ID` | the same, of every project |
//! | `GET /api/v1/builds/{id}` | a build ([`BuildJson`]) |
//! | `GET /api/v1/queue` | `{"builds": [Build + waiting_for], "max_running": N}`: queued, dispatched and running, oldest first; `waiting_for` says why one is not running yet |
//! | `GET /api/v1/events?after=N&limit=M` | `{"events": [Event], "next_after": N}`: every status change, oldest first |
//!
//! Filters: `status` (a status name), `branch` (the branch built), `trigger` (a
//! trigger kind), `q` (text in the description or commit message, 3 to 200
//! characters), `project` (the feed only); a bad value is a `400` saying what is
//! accepted.
//!
//! Who may call them: anyone who may read ([`crate::access`]: everyone, or with
//! `SPARKY_PRIVATE=true` only the API token, a job's token or a person logged in);
//! they change nothing.

use axum::{
    Json,
    extract::{Path, RawQuery, State},
};
use serde_json::{Value, json};
use sparky_core::{
    Ctx,
    api::{ApiError, BuildJson, EventJson},
};

use crate::{
    query::{self, History},
    summary::{self, ProjectDetail},
};

/// `GET /api/v1/projects`
#[tracing::instrument(skip_all)]
pub async fn projects(State(ctx): State<Ctx>) -> Result<Json<Value>, ApiError> {
    let projects = summary::all_projects(&ctx).await?;
    Ok(Json(json!({ "projects": projects })))
}

/// `GET /api/v1/projects/{project}`
#[tracing::instrument(skip_all, fields(project = %name))]
pub async fn project(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
) -> Result<Json<ProjectDetail>, ApiError> {
    let (project, last) =
        summary::find_project(&ctx, &name).await?.ok_or_else(|| summary::no_project(&name))?;
    let mut detail = ProjectDetail::new(&name, project.as_ref(), last.as_ref());
    let recent = ctx.store.recent_finished(&name, crate::trends::TREND_BUILDS).await?;
    detail.trends = Some(crate::trends::TrendsJson::new(&recent));
    if let Some(config) = project.as_ref().and_then(|p| p.config.as_ref().ok()) {
        detail.triggers = Some(crate::triggers::triggers(&ctx, &name, config).await?);
    }
    Ok(Json(detail))
}

/// `GET /api/v1/projects/{project}/builds?status=&branch=&trigger=&q=&limit=N&before=ID`
#[tracing::instrument(skip_all, fields(project = %name))]
pub async fn builds(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let history = History::parse(raw.as_deref(), Some(&name))?;
    if summary::find_project(&ctx, &name).await?.is_none() {
        return Err(summary::no_project(&name));
    }
    history_json(&ctx, history).await
}

/// `GET /api/v1/builds?project=&status=&branch=&trigger=&q=&limit=N&before=ID`: every
/// project's builds, newest first.
#[tracing::instrument(skip_all)]
pub async fn all_builds(State(ctx): State<Ctx>, RawQuery(raw): RawQuery) -> Result<Json<Value>, ApiError> {
    history_json(&ctx, History::parse(raw.as_deref(), None)?).await
}

async fn history_json(ctx: &Ctx, history: History) -> Result<Json<Value>, ApiError> {
    let found = ctx.store.history(history.filter, history.page.limit, history.page.before).await?;
    let builds: Vec<BuildJson> = found.builds.iter().map(BuildJson::from).collect();
    Ok(Json(json!({ "builds": builds, "next_before": found.next_before })))
}

/// `GET /api/v1/builds/{id}`
#[tracing::instrument(skip_all, fields(build_id = %id))]
pub async fn build(State(ctx): State<Ctx>, Path(id): Path<String>) -> Result<Json<BuildJson>, ApiError> {
    let id = query::build_id(&id)?;
    let build = ctx.store.build(id).await?.ok_or_else(|| query::no_build(id))?;
    let events = ctx.store.build_events(id).await?;
    let deliveries = ctx.store.build_deliveries(build.id).await?;
    Ok(Json(BuildJson::with_history(&build, &events, &deliveries)))
}

/// `GET /api/v1/events?after=N&limit=M`: the lifecycle's events with ids above `after`
/// (default 0), oldest first, at most `limit` (default 100, at most 1000). Pass
/// `next_after` as `after` to go on; it stays `after` when nothing is new, so a tool
/// can poll with it and miss nothing.
#[tracing::instrument(skip_all)]
pub async fn events(State(ctx): State<Ctx>, RawQuery(raw): RawQuery) -> Result<Json<Value>, ApiError> {
    let cursor = query::EventCursor::parse(raw.as_deref())?;
    let events = ctx.store.events_after(cursor.after, cursor.limit).await?;
    let next_after = events.last().map_or(cursor.after, |e| e.id);
    let events: Vec<EventJson> = events.iter().map(EventJson::from).collect();
    Ok(Json(json!({ "events": events, "next_after": next_after })))
}

/// `GET /api/v1/queue`: live builds, oldest first; each not yet running says why in
/// `waiting_for`.
#[tracing::instrument(skip_all)]
pub async fn queue(State(ctx): State<Ctx>) -> Result<Json<Value>, ApiError> {
    let live = ctx.store.live_builds().await?;
    let reasons = crate::waits::of_queue(&ctx, &live).await?;
    let builds: Vec<Value> = live
        .iter()
        .map(|b| {
            let mut build = json!(BuildJson::from(b));
            build["waiting_for"] = json!(reasons.get(&b.id));
            build
        })
        .collect();
    Ok(Json(json!({ "builds": builds, "max_running": ctx.config.max_running })))
}
