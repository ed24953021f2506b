//! The build API: trigger, cancel, rebuild. Each answers JSON, or — when the request
//! came from one of the UI's forms — a `303 See Other` to the build's page. A form a
//! browser posted that is refused goes back to the page it came from (the project's,
//! or the build's) with `?refused=<why>`, which that page shows.

use std::collections::BTreeMap;

use axum::{
    Json,
    body::Body,
    extract::{Path, State},
    response::{IntoResponse, Redirect, Response},
};
use http::{HeaderMap, StatusCode, header};
use serde_json::json;
use sparky_core::{
    Ctx,
    api::{self, ApiError, BuildJson, Caller, build_url},
    model::{Build, NewBuild, Params, TriggerKind},
    project::{Project, ProjectConfig, params},
    store::{CancelOutcome, Inserted},
};

use crate::request::{self, TriggerRequest};

/// `POST /api/v1/projects/{project}/builds`
#[tracing::instrument(skip_all, fields(project = %name))]
pub async fn trigger(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let back = format!("/projects/{}", api::encode_path(&name));
    answer(queue(&ctx, &name, &headers, body).await, &headers, &back)
}

async fn queue(ctx: &Ctx, name: &str, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let request = request::read(headers, body).await?;
    let caller = caller(ctx, headers, &request).await?;
    caller.may_trigger(ctx)?;
    let key = request::idempotency_key(headers)?;
    let project = ctx.projects.get(name).await?.ok_or_else(|| unknown_project(name))?;
    let config = manual_runs_allowed(&project)?;
    let params =
        params::resolve(&config.vars, request.params).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mut new = NewBuild {
        project: project.name.clone(),
        trigger: Some(TriggerKind::Api),
        params,
        description: request.description,
        idempotency_key: key,
        triggered_by: caller.who(),
        ..NewBuild::default()
    };
    if let Some(parent) = caller.job() {
        // A job's build is its child, whatever the request says; a chain of builds
        // triggering each other never comes back to a project it went through.
        let mut chain = parent.chain.clone();
        chain.push(parent.project.clone());
        if chain.contains(&project.name) {
            return Err(ApiError::Conflict(format!(
                "build {} would loop: the chain {} already ran {}",
                parent.id,
                chain.join(" -> "),
                project.name
            )));
        }
        new.parent_build = Some(parent.id);
        new.chain = chain;
    }
    Ok(created(queue_once(ctx, new).await?, request.from_form))
}

/// `POST /api/v1/builds/{id}/cancel`
#[tracing::instrument(skip_all, fields(build_id = %id))]
pub async fn cancel(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let back = format!("/builds/{}", api::encode_path(&id));
    answer(cancel_build(&ctx, &id, &headers, body).await, &headers, &back)
}

async fn cancel_build(ctx: &Ctx, id: &str, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let id = api::build_id(id)?;
    let request = read_action(headers, body).await?;
    caller(ctx, headers, &request).await?.may_change(ctx)?;
    let state = match ctx.cancel_build(id).await? {
        CancelOutcome::NotFound => {
            return Err(api::no_build(id));
        }
        CancelOutcome::AlreadyFinished(status) => {
            return Err(ApiError::Conflict(format!("build {id} already finished ({status})")));
        }
        CancelOutcome::Canceled(_) => "canceled",
        CancelOutcome::Requested => "cancel_requested",
    };
    tracing::info!(outcome = state, "cancel requested");
    if request.from_form {
        return Ok(Redirect::to(&build_url(id)).into_response());
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id, "status": state, "url": build_url(id) })))
        .into_response())
}

/// `POST /api/v1/builds/{id}/rebuild`: a new build of the same project and commit,
/// with the same parameters except those the request gives (`{"params": {...},
/// "description": "..."}`, or no body at all). A pull request's build is rebuilt as
/// one of the same request: its head is fetched from the request's ref, and one from
/// a fork still gets only the secrets marked for forks. The Run form that starts from
/// an earlier build posts here too.
#[tracing::instrument(skip_all, fields(build_id = %id))]
pub async fn rebuild(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let back = format!("/builds/{}", api::encode_path(&id));
    answer(rebuild_build(&ctx, &id, &headers, body).await, &headers, &back)
}

async fn rebuild_build(ctx: &Ctx, id: &str, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let id = api::build_id(id)?;
    let request = request::read(headers, body).await?;
    let caller = caller(ctx, headers, &request).await?;
    caller.may_change(ctx)?;
    let key = request::idempotency_key(headers)?;
    let old: Build = ctx.store.build(id).await?.ok_or_else(|| api::no_build(id))?;
    let project = ctx.projects.get(&old.project).await?.ok_or_else(|| unknown_project(&old.project))?;
    let config = manual_runs_allowed(&project)?;
    let params = rebuild_params(&config.vars, &old, request.params)?;
    let new = NewBuild {
        project: old.project.clone(),
        trigger: Some(TriggerKind::Rebuild),
        params,
        description: request.description.or_else(|| Some(format!("Rebuild of #{id}"))),
        scm: old.scm.clone(),
        // Without it, a fork's commit would run as the project's own, with every secret.
        pull_request: old.pull_request.clone(),
        commit_message: old.commit_message.clone(),
        triggered_by: caller.who(),
        idempotency_key: key,
        ..NewBuild::default()
    };
    Ok(created(queue_once(ctx, new).await?, request.from_form))
}

/// The earlier build's parameters with `given` in place of the same names, checked
/// against the project's `vars` as they are now (those added since take their
/// defaults). A bad value is a 400 naming the field; one of the earlier build's that
/// no longer fits says so.
fn rebuild_params(
    vars: &[params::Var],
    old: &Build,
    given: BTreeMap<String, params::ParamValue>,
) -> Result<Params, ApiError> {
    let mut merged: BTreeMap<String, params::ParamValue> =
        old.params.iter().map(|(k, v)| (k.clone(), params::ParamValue::Text(v.clone()))).collect();
    let overridden: Vec<String> = given.keys().cloned().collect();
    merged.extend(given);
    params::resolve(vars, merged).map_err(|e| {
        let id = old.id;
        let hint = if overridden.contains(&e.field) {
            String::new()
        } else if vars.iter().any(|v| v.name == e.field) {
            format!(" (build {id}'s value no longer fits the project's vars; give another)")
        } else {
            format!(
                " (build {id}'s parameters no longer fit the project's vars; trigger a new build instead)"
            )
        };
        ApiError::BadRequest(format!("{e}{hint}"))
    })
}

/// Queues `new`; the same Idempotency-Key again gets the first build, unless it asked
/// for something else (a key names one request): that is a 422 naming the difference.
async fn queue_once(ctx: &Ctx, new: NewBuild) -> Result<Inserted, ApiError> {
    let inserted = ctx.queue_build(new.clone()).await?;
    if !inserted.created
        && let Some(conflict) = new.conflict_with(&inserted.build)
    {
        return Err(ApiError::Unprocessable(conflict));
    }
    Ok(inserted)
}

/// Cancel takes no parameters; a form may carry the token.
async fn read_action(headers: &HeaderMap, body: Body) -> Result<TriggerRequest, ApiError> {
    let request = request::read(headers, body).await?;
    if let Some(name) = request.params.keys().next() {
        return Err(ApiError::BadRequest(format!(
            "unexpected field `{name}`: this call takes no parameters"
        )));
    }
    Ok(request)
}

/// Who is calling: the bearer token (or the `_token` field of a form), else the session
/// of a person logged in, whose form must carry the session's form token (`_csrf`).
async fn caller(ctx: &Ctx, headers: &HeaderMap, request: &TriggerRequest) -> Result<Caller, ApiError> {
    let caller = Caller::of(ctx, headers, request.form_token.as_deref()).await?;
    caller.check_form_token(request.form_csrf.as_deref())?;
    Ok(caller)
}

fn unknown_project(name: &str) -> ApiError {
    ApiError::NotFound(format!("there is no project {name:?} (no projects/{name}/sparky.yaml)"))
}

/// The project's config, if it may be triggered by hand.
fn manual_runs_allowed(project: &Project) -> Result<&ProjectConfig, ApiError> {
    let config = project.config.as_ref().map_err(|e| {
        ApiError::Conflict(format!("project {} can't run until its config is fixed: {e}", project.name))
    })?;
    if config.disabled {
        return Err(ApiError::Conflict(format!(
            "project {} is disabled (disabled: true in its sparky.yaml)",
            project.name
        )));
    }
    if !config.allow_manual_run {
        return Err(ApiError::Conflict(format!(
            "project {} does not allow manual runs (allow_manual_run: false in its sparky.yaml)",
            project.name
        )));
    }
    Ok(config)
}

/// The answer to a build API call: a form a browser posted without a valid session
/// (it ended, or the cookie was never one) goes to the login page, which brings the
/// person back to `back`; another refused form goes back to `back` with
/// `?refused=<why>`; every other refusal is the JSON error.
fn answer(result: Result<Response, ApiError>, headers: &HeaderMap, back: &str) -> Response {
    match result {
        Ok(response) => response,
        Err(ApiError::Unauthorized(_)) if from_browser_form(headers) => {
            let query = serde_urlencoded::to_string([("next", back)]).unwrap_or_default();
            Redirect::to(&format!("/login?{query}")).into_response()
        }
        Err(error) if from_browser_form(headers) => {
            let why: String = error.to_string().chars().take(400).collect();
            let query = serde_urlencoded::to_string([("refused", why)]).unwrap_or_default();
            Redirect::to(&format!("{back}?{query}")).into_response()
        }
        Err(error) => error.into_response(),
    }
}

/// A form post from a browser (which asks for HTML), not an API client's.
fn from_browser_form(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    text(header::CONTENT_TYPE).starts_with("application/x-www-form-urlencoded")
        && text(header::ACCEPT).contains("text/html")
}

/// `201 Created` with the new build (or `200 OK` with the earlier one when an
/// idempotency key matched); a form gets `303 See Other` to the build's page.
fn created(inserted: Inserted, from_form: bool) -> Response {
    let url = build_url(inserted.build.id);
    if from_form {
        return Redirect::to(&url).into_response();
    }
    let status = if inserted.created { StatusCode::CREATED } else { StatusCode::OK };
    let build = BuildJson::from(&inserted.build);
    let body = json!({ "id": build.id, "project": build.project, "status": build.status, "url": url });
    (status, [(header::LOCATION, url)], Json(body)).into_response()
}
