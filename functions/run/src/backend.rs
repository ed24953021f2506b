//! What a runner needs of Sparky's state — taking a build, renewing its lease, hearing
//! of a cancel, recording its commit and its end, queueing its downstream projects —
//! wherever that state is: in this process's store ([`LocalBackend`]: `sparky up`, or
//! `serve run` beside the shared volume), or behind dispatch's runner API
//! ([`crate::remote::RemoteBackend`]: a run pod without the volume, on Kubernetes).

use async_trait::async_trait;
use sparky_core::{
    Ctx,
    error::error_chain,
    model::{Build, Event, ScmRef},
    runner::Assignment,
    store::{Ending, Renewal, StoreError},
};

/// Why the state could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("the build store failed")]
    Store(#[from] StoreError),
    #[error("could not write the project's files")]
    Project(#[source] std::io::Error),
    #[error("dispatch's runner API failed")]
    Http(#[from] reqwest::Error),
    #[error("dispatch's runner API refused ({status}): {message}")]
    Refused { status: http::StatusCode, message: String },
    #[error("dispatch's runner API answered {0}")]
    Unavailable(http::StatusCode),
}

/// Sparky's state, as a runner sees it.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Takes dispatched build `build_id` for `owner`; `None` when there is nothing to
    /// run (not dispatched any more, or canceled meanwhile).
    async fn start(&self, build_id: i64, owner: &str) -> Result<Option<Assignment>, BackendError>;
    /// Extends the lease; says whether the build is still `owner`'s and whether a
    /// cancel was asked.
    async fn renew(&self, build_id: i64, owner: &str) -> Result<Renewal, BackendError>;
    /// Whether someone asked to cancel the build (asked often: cheap).
    async fn cancel_requested(&self, build_id: i64) -> Result<bool, BackendError>;
    /// Records the commit the build checked out.
    async fn record_commit(&self, build_id: i64, scm: ScmRef) -> Result<(), BackendError>;
    /// Queues the project's `downstream:` projects after `build` succeeded; a line for
    /// the log per project.
    async fn downstream(&self, build: &Build) -> Result<Vec<String>, BackendError>;
    /// The build's row as it is now, and its lifecycle events (for its report).
    async fn current(&self, build_id: i64) -> Result<(Option<Build>, Vec<Event>), BackendError>;
    /// Records the end; `false` when the build was no longer `owner`'s.
    async fn finish(&self, build_id: i64, owner: &str, ending: Ending) -> Result<bool, BackendError>;
    /// Hands the build back as the runner goes away; `false` if it was not `owner`'s.
    async fn hand_back(&self, build_id: i64, owner: &str, retries: u32) -> Result<bool, BackendError>;
}

/// The state in this process's store.
pub struct LocalBackend {
    pub ctx: Ctx,
}

#[async_trait]
impl Backend for LocalBackend {
    async fn start(&self, build_id: i64, owner: &str) -> Result<Option<Assignment>, BackendError> {
        Ok(self.ctx.assign(build_id, owner).await?)
    }

    async fn renew(&self, build_id: i64, owner: &str) -> Result<Renewal, BackendError> {
        Ok(self.ctx.renew_lease(build_id, owner).await?)
    }

    async fn cancel_requested(&self, build_id: i64) -> Result<bool, BackendError> {
        Ok(self.ctx.store.cancel_requested(build_id).await?)
    }

    async fn record_commit(&self, build_id: i64, scm: ScmRef) -> Result<(), BackendError> {
        Ok(self.ctx.store.record_commit(build_id, scm).await?)
    }

    async fn downstream(&self, build: &Build) -> Result<Vec<String>, BackendError> {
        Ok(self.ctx.queue_downstream(build).await)
    }

    async fn current(&self, build_id: i64) -> Result<(Option<Build>, Vec<Event>), BackendError> {
        let build = self.ctx.store.build(build_id).await?;
        let events = self.ctx.store.build_events(build_id).await?;
        Ok((build, events))
    }

    async fn finish(&self, build_id: i64, owner: &str, ending: Ending) -> Result<bool, BackendError> {
        Ok(self.ctx.finish_build(build_id, owner, ending).await?)
    }

    async fn hand_back(&self, build_id: i64, owner: &str, retries: u32) -> Result<bool, BackendError> {
        match self.ctx.hand_back(build_id, owner, retries).await {
            Ok(handed) => Ok(handed),
            Err(error) => {
                tracing::error!(build_id, error = %error_chain(&error), "could not hand the build back");
                Err(error.into())
            }
        }
    }
}
