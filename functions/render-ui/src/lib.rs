//! sparky-render-ui: every read. Server-rendered HTML pages for people, a JSON read
//! API for programs, a build's log as plain text from any byte offset, and its live
//! updates as server-sent events, and people's logins. It reads the store, report
//! storage and the project folders, and writes only sessions; builds are changed by
//! the trigger function (the pages' forms post to it).
//!
//! # Layout
//! - [`access`]: who is looking, and with `SPARKY_PRIVATE=true` the gate for every read.
//! - [`login`]: `GET`/`POST /login`, `POST /logout`: sessions for people.
//! - [`api`]: `GET /api/v1/...`: projects, one project, a project's builds, one build,
//!   the queue, as JSON.
//! - [`summary`]: what the API and the pages both say about a project.
//! - [`pages`]: the HTML pages: projects, one project (with its Run form), one build,
//!   the queue, and the 404 page.
//! - [`trends`]: a project's last builds' durations as an SVG, and its success rate.
//! - [`triggers`]: what starts a project's builds: cron, webhooks, polling.
//! - [`view`]: builds and projects shaped for the templates.
//! - [`templates`]: the minijinja templates from `templates/`, embedded at build time,
//!   and the stylesheet.
//! - [`log`]: `GET /builds/{id}/log?offset=N`, and the tail of a log for the build page.
//! - [`events`]: `GET /builds/{id}/events`, the live log and status as server-sent events.
//! - [`live`]: one reader per followed build, shared by its live streams.
//! - [`artifacts`]: a build's artifacts, listed and downloaded, and its `report.json`.
//! - [`lines`]: line numbers, each a link to its line, for a log shown as HTML.
//! - [`ansi`]: logs as HTML, ANSI colour codes as spans.
//! - [`utf8`]: cutting a byte stream into text without splitting a character.
//! - [`badge`]: `GET /projects/{project}/badge.svg`.
//! - [`waits`]: why each build in the queue waits.
//! - [`query`]: reading query strings and path ids, with errors a person can act on.

pub mod access;
pub mod ansi;
pub mod api;
pub mod artifacts;
pub mod badge;
pub mod events;
pub mod lines;
pub mod live;
pub mod log;
pub mod login;
pub mod pages;
pub mod query;
pub mod summary;
pub mod templates;
pub mod trends;
pub mod triggers;
pub mod utf8;
pub mod view;
pub mod waits;

use axum::{
    Router,
    routing::{get, post},
};
use sparky_core::Ctx;

/// The render-ui function's routes. Path parameters are named like the trigger
/// function's (`{project}`, `{id}`), so that the two routers merge into one process
/// (`GET` here and `POST` there on `/api/v1/projects/{project}/builds`).
pub fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/", get(pages::projects))
        .route("/queue", get(pages::queue))
        .route("/projects/{project}", get(pages::project))
        .route("/projects/{project}/badge.svg", get(badge::badge))
        .route("/builds", get(pages::builds))
        .route("/builds/{id}", get(pages::build))
        .route("/builds/{id}/log", get(log::log))
        .route("/builds/{id}/events", get(events::events))
        .route("/builds/{id}/artifacts/", get(artifacts::no_path))
        .route("/builds/{id}/artifacts/{*path}", get(artifacts::download))
        .route("/builds/{id}/report.json", get(artifacts::report))
        .route("/static/sparky.css", get(templates::stylesheet))
        .route("/static/build.js", get(templates::build_script))
        .route("/static/time.js", get(templates::time_script))
        .route("/login", get(login::form).post(login::login))
        .route("/logout", post(login::logout))
        .route("/api/v1/projects", get(api::projects))
        .route("/api/v1/projects/{project}", get(api::project))
        .route("/api/v1/projects/{project}/builds", get(api::builds))
        .route("/api/v1/builds", get(api::all_builds))
        .route("/api/v1/builds/{id}", get(api::build))
        .route("/api/v1/queue", get(api::queue))
        .route("/api/v1/events", get(api::events))
        .layer(axum::Extension(live::Sources::default()))
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), access::gate))
        .with_state(ctx)
}

#[cfg(test)]
mod tests;
