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
