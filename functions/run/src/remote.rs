//! Sparky's state behind dispatch's runner API, for a run pod that has no state folder
//! (on Kubernetes: no shared volume, so no job can reach `sparky.db` or another
//! project's files). Each call is a JSON request with the functions' internal token;
//! the project arrives with the build, as a snapshot written into the build's folder.
//!
//! A call that fails on the way (dispatch restarting, a busy database: 5xx, a
//! connection refused or cut) is retried with backoff for up to a lease — the time the
//! build's claim lasts unrenewed — except `start`, which is retried only when the
//! request never got through (a start that may have happened is not started twice),
//! and the renewals and cancel checks made while the job runs, which are tried once
//! with a short time limit (the supervisor tries again soon, and must not stop reading
//! the job's output meanwhile). A 4xx is dispatch's refusal and is not retried.

use std::time::Duration;

use async_trait::async_trait;
use http::{Method, StatusCode};
use serde::{Serialize, de::DeserializeOwned};
use sparky_core::{
    Ctx,
    model::{Build, Event, ScmRef},
    runner::{
        Assignment,
        wire::{self, Current, Finish, HandBack, Owner, Started},
    },
    secrets::Secret,
    store::{Ending, Renewal},
};
use tokio::time::Instant;

use crate::backend::{Backend, BackendError};

/// One request's time limit (a start carries the project's files).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The time limit of a call tried once while the job runs.
const QUICK_TIMEOUT: Duration = Duration::from_secs(3);
/// The first wait between tries; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// dispatch's runner API at `dispatch_url`.
pub struct RemoteBackend {
    ctx: Ctx,
    http: reqwest::Client,
    dispatch_url: String,
    token: Secret,
}

/// Which failures a call retries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Any failure on the way: the call is safe to repeat.
    Failures,
    /// Only a request that was never acted on: no connection, or a 503.
    Unsent,
    /// None, and a short time limit.
    Never,
}

impl RemoteBackend {
    pub fn new(ctx: Ctx, dispatch_url: &str, token: Secret) -> Self {
        RemoteBackend { ctx, http: sparky_core::tls::client(), dispatch_url: dispatch_url.into(), token }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
        retry: Retry,
    ) -> Result<T, BackendError> {
        let url = format!("{}{path}", self.dispatch_url);
        let give_up = Instant::now() + self.ctx.config.lease;
        let mut backoff = FIRST_BACKOFF;
        let limit = match retry {
            Retry::Never => (self.ctx.config.lease / 3).min(QUICK_TIMEOUT),
            _ => REQUEST_TIMEOUT,
        };
        loop {
            let mut request =
                self.http.request(method.clone(), &url).bearer_auth(self.token.expose()).timeout(limit);
            if let Some(body) = body {
                request = request.json(body);
            }
            let failure = match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response.json().await?),
                Ok(response) if response.status().is_client_error() => {
                    let status = response.status();
                    let message = response.text().await.unwrap_or_default().trim().to_string();
                    return Err(BackendError::Refused { status, message });
                }
                Ok(response) => Failure::Status(response.status()),
                Err(error) => Failure::Transport(error),
            };
            let retryable = match (&failure, retry) {
                (_, Retry::Failures) => true,
                (Failure::Transport(error), Retry::Unsent) => error.is_connect(),
                // Nothing was done: the database was busy, or dispatch is not up yet.
                (Failure::Status(status), Retry::Unsent) => *status == StatusCode::SERVICE_UNAVAILABLE,
                (_, Retry::Never) => false,
            };
            if !retryable || Instant::now() + backoff > give_up {
                return Err(failure.into());
            }
            tracing::warn!(%url, problem = %failure, "dispatch's runner API failed; trying again");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// A call that failed on the way.
enum Failure {
    Status(StatusCode),
    Transport(reqwest::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status(status) => write!(f, "answered {status}"),
            Failure::Transport(error) => write!(f, "{}", sparky_core::error::error_chain(error)),
        }
    }
}

impl From<Failure> for BackendError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Transport(error) => BackendError::Http(error),
            Failure::Status(status) => BackendError::Unavailable(status),
        }
    }
}

const NO_BODY: Option<&()> = None;

#[async_trait]
impl Backend for RemoteBackend {
    async fn start(&self, build_id: i64, owner: &str) -> Result<Option<Assignment>, BackendError> {
        let body = Owner { owner: owner.into() };
        let started: Option<Started> =
            self.call(Method::POST, &wire::path(build_id, "start"), Some(&body), Retry::Unsent).await?;
        let Some(Started { build, token, project, secrets }) = started else {
            return Ok(None);
        };
        let project = match project {
            // The build's own folder: its next attempt writes it afresh.
            Some(snapshot) => {
                let dir = self.ctx.config.build_work_dir(build.id).join("project");
                Some(snapshot.materialize(&dir).await.map_err(BackendError::Project)?)
            }
            None => None,
        };
        let secrets = Started::secret_values(secrets);
        Ok(Some(Assignment { build, token: Secret::new(token), project, secrets }))
    }

    async fn renew(&self, build_id: i64, owner: &str) -> Result<Renewal, BackendError> {
        let body = Owner { owner: owner.into() };
        self.call(Method::POST, &wire::path(build_id, "renew"), Some(&body), Retry::Never).await
    }

    async fn cancel_requested(&self, build_id: i64) -> Result<bool, BackendError> {
        self.call(Method::GET, &wire::path(build_id, "cancel"), NO_BODY, Retry::Never).await
    }

    async fn record_commit(&self, build_id: i64, scm: ScmRef) -> Result<(), BackendError> {
        self.call(Method::POST, &wire::path(build_id, "commit"), Some(&scm), Retry::Failures).await
    }

    async fn downstream(&self, build: &Build) -> Result<Vec<String>, BackendError> {
        self.call(Method::POST, &wire::path(build.id, "downstream"), NO_BODY, Retry::Failures).await
    }

    async fn current(&self, build_id: i64) -> Result<(Option<Build>, Vec<Event>), BackendError> {
        let Current { build, events } =
            self.call(Method::GET, &wire::path(build_id, ""), NO_BODY, Retry::Failures).await?;
        Ok((build, events))
    }

    async fn finish(&self, build_id: i64, owner: &str, ending: Ending) -> Result<bool, BackendError> {
        let body = Finish { owner: owner.into(), ending };
        not_ours_is_false(
            self.call(Method::POST, &wire::path(build_id, "finish"), Some(&body), Retry::Failures).await,
        )
    }

    async fn hand_back(&self, build_id: i64, owner: &str, retries: u32) -> Result<bool, BackendError> {
        let body = HandBack { owner: owner.into(), retries };
        not_ours_is_false(
            self.call(Method::POST, &wire::path(build_id, "hand-back"), Some(&body), Retry::Failures).await,
        )
    }
}

/// dispatch's `409` for a build that is not this runner's any more: `false`, as the
/// store says it.
fn not_ours_is_false(answer: Result<bool, BackendError>) -> Result<bool, BackendError> {
    match answer {
        Err(BackendError::Refused { status: StatusCode::CONFLICT, .. }) => Ok(false),
        other => other,
    }
}
