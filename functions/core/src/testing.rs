//! Helpers for the functions' in-process tests (feature `testing`): the shared state on a
//! fresh temp root, and project folders written the way a user writes them.

use tempfile::TempDir;

use crate::{Config, Ctx};

/// A [`Ctx`] on a temp root that is removed when this is dropped.
pub struct TempCtx {
    pub ctx: Ctx,
    _dir: TempDir,
}

impl TempCtx {
    /// Opens the state on a new temp root; `configure` adjusts the defaults first.
    pub async fn new(configure: impl FnOnce(&mut Config)) -> TempCtx {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::for_root(dir.path());
        configure(&mut config);
        let ctx = Ctx::open_standalone(config).await.expect("open the state");
        TempCtx { ctx, _dir: dir }
    }

    /// Writes `projects/NAME/sparky.yaml`.
    pub fn project(&self, name: &str, yaml: &str) {
        let dir = self.ctx.projects.dir().join(name);
        std::fs::create_dir_all(&dir).expect("project folder");
        std::fs::write(dir.join("sparky.yaml"), yaml).expect("sparky.yaml");
    }
}

/// Ends queued builds as `canceled` (their project gone) the way a process that died
/// right after the change would leave them: rows and events written, nothing followed
/// up (no `report.json`, no pruning).
pub async fn end_without_follow_up(ctx: &Ctx, ids: &[i64]) {
    let reason = crate::model::Reason::ProjectGone;
    ctx.store.end_queued(ids.to_vec(), reason, crate::time::now_ms()).await.expect("end the builds");
}

/// Moves every lifecycle event `ms` into the past.
pub async fn age_events(ctx: &Ctx, ms: i64) {
    ctx.store.age_events(ms).await.expect("age the events");
}
