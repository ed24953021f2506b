//! Git webhooks: `POST /hooks/github`, `/hooks/gitlab`, `/hooks/gitea` (Forgejo too).
//!
//! A request must prove it knows a secret — `SPARKY_WEBHOOK_SECRET`, or the secret a
//! project names in `scm.secret_env` — else `401` and nothing is queued. A push then
//! queues one build (trigger `webhook`, `SCM_URL`/`SCM_BRANCH`/`SCM_SHA` set) for each
//! project whose `scm.url` names the same repository and whose `scm.branch` glob
//! matches; the `202` answer lists what was queued and, for each other project, why not.
//! A redelivery of the same event (same delivery id) queues nothing new and says so.
//!
//! - [`hosts`]: each host's headers, signature and event names.
//! - [`payload`]: reading a push.
//! - [`pull`]: reading a pull (merge) request event.
//!
//! A pull request (opened, new commits, reopened) builds the projects of its target
//! repository that set `scm.pull_requests: true` and whose `scm.branch` glob matches
//! its target branch; the build checks out the request's head, and with
//! `scm.cancel_previous` (the default) cancels the request's older builds.

pub mod hosts;
pub mod payload;
pub mod pull;

use axum::{
    Json,
    body::Body,
    extract::State,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use serde_json::json;
use sparky_core::{
    Ctx,
    api::{ApiError, build_url, read_body_up_to},
    model::{NewBuild, ScmRef, TriggerKind},
    project::{ProjectConfig, params},
    repo::{glob_match, normalize_url},
    secrets::Secret,
};

use hosts::{Event, Host};
use payload::{Push, RefKind};
use pull::PullEvent;

/// GitHub caps webhook payloads at 25 MB; so does Sparky.
const MAX_PAYLOAD: usize = 25 * 1024 * 1024;

pub async fn github(state: State<Ctx>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    receive(Host::GitHub, state, headers, body).await
}

pub async fn gitlab(state: State<Ctx>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    receive(Host::GitLab, state, headers, body).await
}

pub async fn gitea(state: State<Ctx>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    receive(Host::Gitea, state, headers, body).await
}

/// A project the push queued a build for.
#[derive(Debug, Serialize)]
struct Queued {
    project: String,
    build_id: i64,
    url: String,
    /// `false`: an earlier delivery of this event queued it.
    new: bool,
}

/// A project the push did not build, and why.
#[derive(Debug, Serialize)]
struct Skipped {
    project: String,
    reason: String,
}

#[tracing::instrument(skip_all, fields(host = host.name()))]
async fn receive(
    host: Host,
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = read_body_up_to(&headers, body, MAX_PAYLOAD).await?;
    let projects = ctx.projects.list().await?;
    let secret_of = |config: &ProjectConfig| -> Option<&Secret> {
        match config.scm.as_ref().and_then(|scm| scm.secret_env.as_ref()) {
            Some(name) => ctx.config.project_secrets.get(name),
            None => ctx.config.webhook_secret.as_ref(),
        }
    };
    let mut secrets: Vec<&Secret> = ctx.config.webhook_secret.iter().collect();
    secrets.extend(projects.iter().filter_map(|p| p.config.as_ref().ok().and_then(secret_of)));
    if secrets.is_empty() {
        return Err(ApiError::Forbidden(
            "webhooks are off: set SPARKY_WEBHOOK_SECRET (or a project's scm.secret_env variable) \
             and give the same secret to the Git host"
                .into(),
        ));
    }
    let verified: Vec<&Secret> =
        secrets.into_iter().filter(|s| host.verify(&headers, &body, s.expose())).collect();
    if verified.is_empty() {
        tracing::warn!("webhook with a missing or wrong signature refused");
        return Err(ApiError::Unauthorized(format!(
            "missing or wrong {}: it must be made with the webhook secret configured in Sparky",
            host.proof()
        )));
    }

    let (event, event_name) = host.event(&headers);
    let delivery = host.delivery(&headers);
    match event {
        Event::Ping => {
            return Ok((StatusCode::OK, Json(json!({ "ok": true, "event": event_name }))).into_response());
        }
        Event::Other => {
            let message = format!("event {event_name:?} is not one Sparky builds on; nothing queued");
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "event": event_name, "queued": [], "message": message })),
            )
                .into_response());
        }
        Event::Push | Event::PullRequest => {}
    }
    let what = match event {
        Event::PullRequest => What::Pull(
            pull::parse(host, &body)
                .map_err(|problem| ApiError::BadRequest(format!("unreadable pull request: {problem}")))?,
        ),
        _ => {
            let form = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
            What::Push(
                payload::parse(&body, form)
                    .map_err(|problem| ApiError::BadRequest(format!("unreadable push: {problem}")))?,
            )
        }
    };
    let urls: Vec<String> = what.urls().iter().map(|u| normalize_url(u)).collect();

    let mut queued = Vec::new();
    let mut skipped = Vec::new();
    for project in &projects {
        let skip = |reason: String| Skipped { project: project.name.clone(), reason };
        let config = match &project.config {
            Ok(config) => config,
            Err(e) => {
                skipped.push(skip(format!("its sparky.yaml is broken: {e}")));
                continue;
            }
        };
        let Some(scm) = &config.scm else {
            skipped.push(skip("it has no scm.url".into()));
            continue;
        };
        if !urls.contains(&normalize_url(&scm.url)) {
            skipped.push(skip(format!("its scm.url {} is another repository", scm.url)));
            continue;
        }
        if !secret_of(config).is_some_and(|s| verified.contains(&s)) {
            skipped.push(skip("the request was not signed with this project's secret".into()));
            continue;
        }
        let refused = match &what {
            What::Push(push) => refusal(config, push),
            What::Pull(pull) => pull_refusal(config, pull),
        };
        if let Some(reason) = refused {
            skipped.push(skip(reason));
            continue;
        }
        let mut new = NewBuild {
            project: project.name.clone(),
            trigger: Some(TriggerKind::Webhook),
            params: params::defaults(&config.vars),
            idempotency_key: delivery
                .as_ref()
                .map(|d| format!("webhook:{}:{d}:{}", host.name(), project.name)),
            ..NewBuild::default()
        };
        match &what {
            What::Push(push) => {
                new.description = Some(format!("{} push to {}", host.name(), push.name));
                new.triggered_by = push.by.clone();
                new.commit_message = push.message.as_deref().map(clip);
                new.scm = ScmRef {
                    url: Some(scm.url.clone()),
                    branch: Some(push.name.clone()),
                    sha: push.sha.clone(),
                };
            }
            What::Pull(event) => {
                let pull = &event.pull;
                new.description = Some(format!(
                    "{} pull request #{}: {} into {}",
                    host.name(),
                    pull.number,
                    pull.source_branch,
                    pull.target_branch
                ));
                new.scm = ScmRef {
                    url: Some(scm.url.clone()),
                    branch: Some(pull.source_branch.clone()),
                    sha: Some(event.sha.clone()),
                };
                new.pull_request = Some(pull.clone());
                new.triggered_by = event.by.clone();
                new.commit_message = event.title.as_deref().map(clip);
            }
        }
        let inserted = ctx.queue_build(new).await?;
        if let (What::Pull(event), true) = (&what, inserted.created && scm.cancel_previous) {
            ctx.cancel_older_pull_builds(&project.name, event.pull.number, inserted.build.id).await;
        }
        queued.push(Queued {
            project: project.name.clone(),
            build_id: inserted.build.id,
            url: build_url(inserted.build.id),
            new: inserted.created,
        });
    }
    let redelivery = !queued.is_empty() && queued.iter().all(|q| !q.new);
    let message = if redelivery {
        "redelivery of an event already received: nothing new queued".to_string()
    } else {
        format!("{} build(s) queued", queued.iter().filter(|q| q.new).count())
    };
    tracing::info!(event = %event_name, delivery = ?delivery, queued = queued.len(), "webhook received");
    let mut body = json!({
        "event": event_name,
        "delivery": delivery,
        "redelivery": redelivery,
        "message": message,
        "queued": queued,
        "skipped": skipped,
    });
    match &what {
        What::Push(push) => {
            body["ref"] = json!(push.name);
            body["sha"] = json!(push.sha);
        }
        What::Pull(event) => {
            body["pull_request"] = json!(event.pull.number);
            body["action"] = json!(event.action);
            body["sha"] = json!(event.sha);
        }
    }
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// The longest commit message kept (a host's payload may carry a long one).
const MAX_MESSAGE: usize = 2000;

fn clip(message: &str) -> String {
    message.trim().chars().take(MAX_MESSAGE).collect()
}

/// What a webhook asks to build.
enum What {
    Push(Push),
    Pull(PullEvent),
}

impl What {
    fn urls(&self) -> &[String] {
        match self {
            What::Push(push) => &push.urls,
            What::Pull(pull) => &pull.urls,
        }
    }
}

/// Why a project of the request's target repository does not build it, if it doesn't.
fn pull_refusal(config: &ProjectConfig, event: &PullEvent) -> Option<String> {
    let scm = config.scm.as_ref()?;
    if config.disabled {
        return Some("it is disabled".into());
    }
    if !scm.pull_requests {
        return Some("it doesn't build pull requests (scm.pull_requests: true would)".into());
    }
    if let Err(reason) = &event.builds {
        return Some(reason.clone());
    }
    let glob = scm.branch.as_deref().unwrap_or("*");
    (!glob_match(glob, &event.pull.target_branch))
        .then(|| format!("target branch {} does not match scm.branch {glob:?}", event.pull.target_branch))
}

/// Why a project of the pushed repository does not build this push, if it doesn't.
fn refusal(config: &ProjectConfig, push: &Push) -> Option<String> {
    let scm = config.scm.as_ref()?;
    if config.disabled {
        return Some("it is disabled".into());
    }
    if push.sha.is_none() {
        return Some(format!("the push deleted {}", push.name));
    }
    match push.kind {
        RefKind::Tag if !scm.tags => {
            Some(format!("{} is a tag; set scm.tags: true to build tags", push.name))
        }
        RefKind::Tag => None,
        RefKind::Branch => {
            let glob = scm.branch.as_deref().unwrap_or("*");
            (!glob_match(glob, &push.name))
                .then(|| format!("branch {} does not match scm.branch {glob:?}", push.name))
        }
    }
}
