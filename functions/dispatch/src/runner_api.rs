//! The runner API: what a run pod without the state folder asks of Sparky's state
//! (see `sparky_core::runner::wire`). Who may call it: only the functions, holding
//! `SPARKY_INTERNAL_TOKEN` as `Authorization: Bearer`; a missing or wrong token is
//! `401`, and with no token configured the routes answer `404` (the API is off). Jobs
//! never get the token. Each answer is what the lifecycle said, as JSON. A result or a
//! hand-back for a build that is not the asking runner's (any more) is `409` and
//! changes nothing; a renewal says `still_ours: false`, and the runner stops its job.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST /internal/v1/builds/{id}/start` | `{owner}` | the build, its job token, project snapshot and secrets; `null`: nothing to run |
//! | `POST /internal/v1/builds/{id}/renew` | `{owner}` | `{still_ours, cancel_requested}` |
//! | `GET /internal/v1/builds/{id}/cancel` | | whether a cancel was asked |
//! | `POST /internal/v1/builds/{id}/commit` | the commit checked out | `null` |
//! | `POST /internal/v1/builds/{id}/downstream` | | a log line per downstream project (the build must be running) |
//! | `GET /internal/v1/builds/{id}` | | `{build, events}` |
//! | `POST /internal/v1/builds/{id}/finish` | `{owner, ending}` | `true`: recorded; `409`: not this runner's |
//! | `POST /internal/v1/builds/{id}/hand-back` | `{owner, retries}` | `true`: handed back; `409`: not this runner's |

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Request, State},
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};
use http::HeaderMap;
use serde::de::DeserializeOwned;
use sparky_core::{
    Ctx,
    api::{ApiError, build_id, check_token, no_build, read_body},
    model::{BuildStatus, ScmRef},
    runner::wire::{Current, Finish, HandBack, Owner, PREFIX, Started},
    store::Renewal,
};

/// The runner API's routes, behind the internal token.
pub fn routes(ctx: Ctx) -> Router {
    Router::new()
        .route(&format!("{PREFIX}/{{id}}"), get(current))
        .route(&format!("{PREFIX}/{{id}}/start"), post(start))
        .route(&format!("{PREFIX}/{{id}}/renew"), post(renew))
        .route(&format!("{PREFIX}/{{id}}/cancel"), get(cancel_requested))
        .route(&format!("{PREFIX}/{{id}}/commit"), post(commit))
        .route(&format!("{PREFIX}/{{id}}/downstream"), post(downstream))
        .route(&format!("{PREFIX}/{{id}}/finish"), post(finish))
        .route(&format!("{PREFIX}/{{id}}/hand-back"), post(hand_back))
        .route_layer(middleware::from_fn_with_state(ctx.clone(), internal_only))
        .with_state(ctx)
}

/// Lets through only requests with the internal token.
async fn internal_only(State(ctx): State<Ctx>, request: Request, next: Next) -> Result<Response, ApiError> {
    let Some(token) = ctx.config.internal_token.as_ref() else {
        return Err(ApiError::NotFound("the runner API is off: SPARKY_INTERNAL_TOKEN is not set".into()));
    };
    check_token(Some(token), request.headers()).map_err(|_| {
        ApiError::Unauthorized(
            "the runner API is for Sparky's functions: missing or wrong internal token".into(),
        )
    })?;
    Ok(next.run(request).await)
}

/// The request's JSON body.
async fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, ApiError> {
    let bytes = read_body(headers, body).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("malformed body: {e}")))
}

async fn start(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Option<Started>>, ApiError> {
    let Owner { owner } = json_body(&headers, body).await?;
    let Some(assignment) = ctx.assign(build_id(&id)?, &owner).await? else {
        return Ok(Json(None));
    };
    let started = tokio::task::spawn_blocking(move || Started::from_assignment(assignment))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(Some(started)))
}

async fn renew(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Renewal>, ApiError> {
    let Owner { owner } = json_body(&headers, body).await?;
    Ok(Json(ctx.renew_lease(build_id(&id)?, &owner).await?))
}

async fn cancel_requested(State(ctx): State<Ctx>, Path(id): Path<String>) -> Result<Json<bool>, ApiError> {
    Ok(Json(ctx.store.cancel_requested(build_id(&id)?).await?))
}

async fn commit(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<()>, ApiError> {
    let scm: ScmRef = json_body(&headers, body).await?;
    ctx.store.record_commit(build_id(&id)?, scm).await?;
    Ok(Json(()))
}

async fn downstream(State(ctx): State<Ctx>, Path(id): Path<String>) -> Result<Json<Vec<String>>, ApiError> {
    let build = ctx.store.build(build_id(&id)?).await?.ok_or_else(|| no_build(&id))?;
    if build.status != BuildStatus::Running {
        return Err(ApiError::Conflict(format!(
            "build {id} is {}: downstream projects are queued while it runs",
            build.status
        )));
    }
    Ok(Json(ctx.queue_downstream(&build).await))
}

async fn current(State(ctx): State<Ctx>, Path(id): Path<String>) -> Result<Json<Current>, ApiError> {
    let id = build_id(&id)?;
    let build = ctx.store.build(id).await?;
    let events = ctx.store.build_events(id).await?;
    Ok(Json(Current { build, events }))
}

async fn finish(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<bool>, ApiError> {
    let Finish { owner, ending } = json_body(&headers, body).await?;
    if !ending.status.is_terminal() {
        return Err(ApiError::BadRequest(format!("{} is not how a build ends", ending.status)));
    }
    ours(ctx.finish_build(build_id(&id)?, &owner, ending).await?, &id, &owner)
}

/// `true`, or the `409` for a build that is not `owner`'s.
fn ours(done: bool, id: &str, owner: &str) -> Result<Json<bool>, ApiError> {
    if done {
        Ok(Json(true))
    } else {
        Err(ApiError::Conflict(format!("build {id} is not running under {owner}: nothing was changed")))
    }
}

async fn hand_back(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<bool>, ApiError> {
    let HandBack { owner, retries } = json_body(&headers, body).await?;
    ours(ctx.hand_back(build_id(&id)?, &owner, retries).await?, &id, &owner)
}
