//! sparky-trigger: every way a build is requested. It validates the request, queues
//! a build (committed before it answers) and pokes dispatch.
//!
//! # Layout
//! - [`builds`]: `POST /api/v1/projects/{project}/builds`, `.../builds/{id}/cancel`,
//!   `.../builds/{id}/rebuild`: the HTTP API and the UI's forms.
//! - [`request`]: reading a trigger request: JSON or an HTML form, within limits.

pub mod builds;
pub mod request;

use axum::{Router, routing::post};
use sparky_core::Ctx;

/// The trigger function's routes.
pub fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/api/v1/projects/{project}/builds", post(builds::trigger))
        .route("/api/v1/builds/{id}/cancel", post(builds::cancel))
        .route("/api/v1/builds/{id}/rebuild", post(builds::rebuild))
        .with_state(ctx)
}

#[cfg(test)]
mod tests;
