//! Removing finished builds: `keep_builds` prunes a project's oldest beyond the newest
//! N, and deleting a project's history removes all of them. Either way a build loses
//! its reports (every object under its prefix: log chunks, artifacts, `report.json`,
//! on whichever backend), its working directory and, last, its row — so that an
//! interrupted removal is finished by the next one rather than leaving orphaned files.

use crate::{Ctx, error::error_chain, reports::Key, store::StoreError};

impl Ctx {
    /// Prunes `project` down to its newest `keep` builds; returns how many went.
    #[tracing::instrument(skip(self))]
    pub async fn prune(&self, project: &str, keep: u32) -> Result<usize, StoreError> {
        let ids = self.store.builds_to_prune(project, keep).await?;
        let (count, _) = self.remove_builds(project, ids).await?;
        if count > 0 {
            tracing::info!(project, count, "pruned old builds");
        }
        Ok(count)
    }

    /// Removes every finished build of `project`; returns how many went and how many
    /// could not be removed (their reports could not be deleted; a later call retries).
    /// Builds still queued or running stay.
    #[tracing::instrument(skip(self))]
    pub async fn delete_history(&self, project: &str) -> Result<(usize, usize), StoreError> {
        let ids = self.store.finished_builds(project).await?;
        let (deleted, failed) = self.remove_builds(project, ids).await?;
        tracing::info!(project, deleted, failed, "deleted the project's history");
        Ok((deleted, failed))
    }

    /// Removes finished builds with their reports and working directories; a build
    /// whose files could not all be removed keeps its row for the next try.
    async fn remove_builds(&self, project: &str, ids: Vec<i64>) -> Result<(usize, usize), StoreError> {
        let total = ids.len();
        let mut removed = Vec::with_capacity(ids.len());
        for id in ids {
            if let Err(error) = self.reports.delete_prefix(&Key::build_prefix(project, id)).await {
                tracing::warn!(build_id = id, error = %error_chain(&error), "could not delete reports; will retry");
                continue;
            }
            let work = self.config.build_work_dir(id);
            match tokio::fs::remove_dir_all(&work).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(build_id = id, %error, "could not delete the working directory; will retry");
                    continue;
                }
            }
            removed.push(id);
        }
        let count = removed.len();
        if count > 0 {
            self.store.delete_builds(removed).await?;
        }
        Ok((count, total - count))
    }
}
