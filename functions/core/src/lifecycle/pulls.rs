//! `scm.cancel_previous`: a new commit on a pull request cancels that request's older
//! builds still queued or running.

use crate::{Ctx, error::error_chain};

impl Ctx {
    /// Cancels the builds of `project` for pull request `number` older than `newer`
    /// that have not ended; a failure is logged (the older build runs on).
    pub async fn cancel_older_pull_builds(&self, project: &str, number: u64, newer: i64) {
        let older = match self.store.live_pull_builds(project, number, newer).await {
            Ok(ids) => ids,
            Err(error) => {
                tracing::warn!(project, number, error = %error_chain(&error), "could not look for older builds of the pull request");
                return;
            }
        };
        for id in older {
            match self.cancel_build(id).await {
                Ok(_) => tracing::info!(
                    project,
                    number,
                    build_id = id,
                    newer,
                    "canceled: the pull request has a newer commit"
                ),
                Err(error) => {
                    tracing::warn!(build_id = id, error = %error_chain(&error), "could not cancel an older build of the pull request")
                }
            }
        }
    }
}
