//! `POST /events/run`: the `dev.sparky.build.run` CloudEvent. The build runs in a task
//! of its own — it goes on even if the caller hangs up — while the response streams a
//! heartbeat line every few seconds, so that no idle timeout between the caller and
//! this pod fires, and ends with the build's result.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::State,
    response::{IntoResponse, Response},
    routing::post,
};
use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, header};
use serde_json::json;
use sparky_core::{
    Ctx,
    api::{ApiError, read_body},
    error::error_chain,
    events::{BUILD_RUN, CloudEvent},
};
use tokio::sync::oneshot;

use crate::backend::Backend;

/// Between heartbeat lines.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// What the run function works with: the process's state, and Sparky's state as a
/// runner sees it (this process's store, or dispatch's runner API).
#[derive(Clone)]
pub struct Runner {
    pub ctx: Ctx,
    pub state: Arc<dyn Backend>,
}

/// The run function's routes.
pub fn router(runner: Runner) -> Router {
    Router::new().route("/events/run", post(on_run)).with_state(runner)
}

#[tracing::instrument(skip_all)]
async fn on_run(State(runner): State<Runner>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let Runner { ctx, state } = runner;
    let body = read_body(&headers, body).await?;
    let event = CloudEvent::parse(&headers, &body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if event.kind != BUILD_RUN {
        return Err(ApiError::BadRequest(format!("expected a {BUILD_RUN} event, got {}", event.kind)));
    }
    let build_id =
        event.data.get("build_id").and_then(|v| v.as_i64()).ok_or_else(|| {
            ApiError::BadRequest("the event's data must be {\"build_id\": <integer>}".into())
        })?;

    let (done_tx, done_rx) = oneshot::channel();
    // Tracked, so that a shutting-down process waits for the build even if the caller
    // has hung up.
    let builds = ctx.builds.clone();
    builds.spawn(async move {
        let line = match crate::execute(&ctx, &state, build_id, false).await {
            Ok(Some(status)) => json!({ "build_id": build_id, "status": status }),
            Ok(None) => json!({ "build_id": build_id, "skipped": true }),
            Err(error) => {
                tracing::error!(build_id, error = %error_chain(&error), "running the build failed");
                json!({ "build_id": build_id, "error": "the build could not be recorded; see run's log" })
            }
        };
        let _ = done_tx.send(line);
    });

    let heartbeats = stream::unfold(Some(done_rx), move |state| async move {
        let mut done_rx = state?;
        tokio::select! {
            result = &mut done_rx => {
                let line = result.unwrap_or_else(|_| json!({ "build_id": build_id, "error": "the build task ended" }));
                Some((Ok::<_, std::io::Error>(Bytes::from(format!("{line}\n"))), None))
            }
            _ = tokio::time::sleep(HEARTBEAT_EVERY) => {
                let line = json!({ "build_id": build_id, "heartbeat": sparky_core::time::rfc3339(sparky_core::time::now_ms()) });
                Some((Ok(Bytes::from(format!("{line}\n"))), Some(done_rx)))
            }
        }
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(heartbeats)).into_response())
}
