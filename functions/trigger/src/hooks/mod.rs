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

pub mod hosts;
pub mod payload;

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
    project::ProjectConfig,
    repo::{glob_match, normalize_url},
    secrets::Secret,
};

use hosts::{Event, Host};
use payload::{Push, RefKind};

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
        Event::Push => {}
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let push = payload::parse(&body, form)
        .map_err(|problem| ApiError::BadRequest(format!("unreadable push: {problem}")))?;
    let pushed: Vec<String> = push.urls.iter().map(|u| normalize_url(u)).collect();

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
        if !pushed.contains(&normalize_url(&scm.url)) {
            skipped.push(skip(format!("its scm.url {} is another repository", scm.url)));
            continue;
        }
        if !secret_of(config).is_some_and(|s| verified.contains(&s)) {
            skipped.push(skip("the request was not signed with this project's secret".into()));
            continue;
        }
        if let Some(reason) = refusal(config, &push) {
            skipped.push(skip(reason));
            continue;
        }
        let new = NewBuild {
            project: project.name.clone(),
            trigger: Some(TriggerKind::Webhook),
            description: Some(format!("{} push to {}", host.name(), push.name)),
            scm: ScmRef {
                url: Some(scm.url.clone()),
                branch: Some(push.name.clone()),
                sha: push.sha.clone(),
            },
            idempotency_key: delivery
                .as_ref()
                .map(|d| format!("webhook:{}:{d}:{}", host.name(), project.name)),
            ..NewBuild::default()
        };
        let inserted = ctx.queue_build(new).await?;
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
    tracing::info!(event = %event_name, delivery = ?delivery, queued = queued.len(), "push received");
    let body = json!({
        "event": event_name,
        "delivery": delivery,
        "ref": push.name,
        "sha": push.sha,
        "redelivery": redelivery,
        "message": message,
        "queued": queued,
        "skipped": skipped,
    });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
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
