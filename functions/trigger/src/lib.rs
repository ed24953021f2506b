//! sparky-trigger: every way a build is requested. It validates the request, queues
//! a build (committed before it answers) and pokes dispatch.
//!
//! # Layout
//! - [`builds`]: `POST /api/v1/projects/{project}/builds`, `.../builds/{id}/cancel`,
//!   `.../builds/{id}/rebuild`: the HTTP API and the UI's forms.
//! - [`history`]: `DELETE /api/v1/projects/{project}/builds`: deleting a project's
//!   history with its reports.
//! - [`request`]: reading a trigger request: JSON or an HTML form, within limits.
//! - [`hooks`]: `POST /hooks/{github,gitlab,gitea}`: Git push webhooks.
//! - [`tick`]: `POST /events/cron` (a PingSource tick) and `sparky up`'s ticker: cron
//!   builds, then the inboxes and the SCM polls.
//! - [`files`]: the `.triggers/` file protocol.
//! - [`poll`]: SCM polling with `git ls-remote`.

pub mod builds;
pub mod files;
pub mod history;
pub mod hooks;
pub mod poll;
pub mod request;
pub mod tick;

use axum::{Router, routing::post};

pub use tick::Ticker;

/// The trigger function's routes.
pub fn router(ticker: Ticker) -> Router {
    let builds = Router::new()
        .route("/api/v1/projects/{project}/builds", post(builds::trigger).delete(history::delete))
        .route("/api/v1/builds/{id}/cancel", post(builds::cancel))
        .route("/api/v1/builds/{id}/rebuild", post(builds::rebuild))
        .route("/hooks/github", post(hooks::github))
        .route("/hooks/gitlab", post(hooks::gitlab))
        .route("/hooks/gitea", post(hooks::gitea))
        .with_state(ticker.ctx.clone());
    builds.merge(Router::new().route("/events/cron", post(tick::on_cron)).with_state(ticker))
}

#[cfg(test)]
mod tests;
