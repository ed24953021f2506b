//! sparky-dispatch: the queue. On every poke (and on a sweep tick) it ends the attempts
//! whose lease ran out, then claims the builds that may start within the limits and
//! sends each to run.
//!
//! # Layout
//! - [`pass`]: one dispatch pass: sweep, drop what can never run, claim, deliver.
//! - [`passes`]: passes one at a time in tasks of their own, asked for by pokes, by
//!   `POST /events/dispatch` and by a tick.
//! - [`deliver`]: how a claimed build reaches run: a CloudEvent over HTTP (held open for
//!   the whole build, as Knative Eventing does), or a direct call in one process.
//! - [`runner_api`]: `/internal/v1/builds/...`, Sparky's state for run pods that have
//!   no state folder, behind `SPARKY_INTERNAL_TOKEN`.
//!
//! Route: `POST /events/dispatch` (any body). A poke (`ce-type:
//! dev.sparky.dispatch.poke`, from trigger and run) is answered `202` at once — the pass
//! it asks for runs in its own task — and anything else (a PingSource's sweep tick) is
//! answered with the report of a pass that began after it arrived. It takes no token — PingSources and Brokers can't send one — so it must not be
//! reachable from outside (the Knative bundle keeps it cluster-local); a pass only does
//! what the queue already says, so a caller can at most make dispatch look sooner.

pub mod deliver;
pub mod pass;
pub mod passes;
pub mod runner_api;

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    response::{IntoResponse, Response},
    routing::post,
};
use http::{HeaderMap, StatusCode};
use sparky_core::{Ctx, api::ApiError, ctx::Poke, events::DISPATCH_POKE, store::StoreError};

pub use deliver::{Deliver, Handoff, HttpDeliver, RunHere};
pub use pass::{PassError, PassReport, dispatch_once};
pub use passes::Passes;

/// What the dispatch router needs: the shared state and this process's pass loop.
#[derive(Clone)]
pub struct Dispatcher {
    pub ctx: Ctx,
    pub passes: Arc<Passes>,
}

/// The dispatch function's routes.
pub fn router(dispatcher: Dispatcher) -> Router {
    let runner_api = runner_api::routes(dispatcher.ctx.clone());
    Router::new().route("/events/dispatch", post(on_event)).with_state(dispatcher).merge(runner_api)
}

async fn on_event(State(d): State<Dispatcher>, headers: HeaderMap) -> Result<Response, ApiError> {
    if headers.get("ce-type").is_some_and(|kind| kind == DISPATCH_POKE) {
        d.passes.poke();
        return Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "pass": "asked" }))).into_response());
    }
    match d.passes.pass().await {
        Ok(report) => Ok(Json(report).into_response()),
        Err(PassError::Store(StoreError::Busy)) => Err(ApiError::Busy),
        Err(error) => Err(ApiError::internal(error)),
    }
}

#[cfg(test)]
mod tests;
