//! `keep_builds`: a project's oldest finished builds beyond the newest N lose their
//! reports, their working directories and, last, their rows (so that an interrupted
//! prune is finished by the next one rather than leaving orphaned files).

use crate::{Ctx, api::error_chain, reports::Key, store::StoreError};

impl Ctx {
    /// Prunes `project` down to its newest `keep` builds; returns how many went.
    #[tracing::instrument(skip(self))]
    pub async fn prune(&self, project: &str, keep: u32) -> Result<usize, StoreError> {
        let ids = self.store.builds_to_prune(project, keep).await?;
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
            tracing::info!(project, count, "pruned old builds");
        }
        Ok(count)
    }
}
