//! sparky-dispatch: the queue. On every poke (and on a sweep tick) it ends builds whose
//! runner vanished, then claims the builds that may start within the limits and sends
//! each to run.
//!
//! # Layout
//! - [`pass`]: one dispatch pass: sweep, drop what can never run, claim, deliver.
//! - [`deliver`]: how a claimed build reaches run: a CloudEvent over HTTP (held open for
//!   the whole build, as Knative Eventing does), or a direct call in one process.
//! - [`local`]: the dispatch loop of `sparky up`, woken by pokes.
//!
//! Route: `POST /events/dispatch` (any body: a poke, or a PingSource sweep tick).

pub mod deliver;
pub mod local;
pub mod pass;

use axum::{Json, Router, extract::State, routing::post};
use sparky_core::{Ctx, api::ApiError};
use std::sync::Arc;

pub use deliver::{Deliver, HttpDeliver};
pub use pass::{PassReport, dispatch_once};

/// What the dispatch router needs: the shared state and a way to reach run.
#[derive(Clone)]
pub struct Dispatcher {
    pub ctx: Ctx,
    pub deliver: Arc<dyn Deliver>,
}

/// The dispatch function's routes.
pub fn router(dispatcher: Dispatcher) -> Router {
    Router::new().route("/events/dispatch", post(on_event)).with_state(dispatcher)
}

async fn on_event(State(d): State<Dispatcher>) -> Result<Json<PassReport>, ApiError> {
    Ok(Json(dispatch_once(&d.ctx, d.deliver.as_ref()).await?))
}

#[cfg(test)]
mod tests;
