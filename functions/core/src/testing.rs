//! Helpers for the functions' in-process tests (feature `testing`): the shared state on a
//! fresh temp root, and project folders written the way a user writes them.

use tempfile::TempDir;

use crate::{
    Config, Ctx,
    lifecycle::Started,
    model::{NewBuild, PullRequest},
    store::Limits,
};

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

/// Claims the queued builds of `project`, as dispatch would, with room for all of them.
pub async fn claim(ctx: &Ctx, project: &str) {
    let limits = Limits { global: 100, concurrency: [(project.to_string(), 100)].into() };
    ctx.claim_builds(limits).await.expect("claim");
}

/// Queues `new` and claims it: a build dispatched to a runner; its id.
pub async fn dispatched(ctx: &Ctx, new: NewBuild) -> i64 {
    let project = new.project.clone();
    let id = ctx.queue_build(new).await.expect("queue").build.id;
    claim(ctx, &project).await;
    id
}

/// Starts dispatched build `id` for the runner `owner`: the build running, and its job
/// token.
pub async fn start(ctx: &Ctx, id: i64, owner: &str) -> Started {
    ctx.start_build(id, owner).await.expect("start").unwrap_or_else(|| panic!("build {id} started"))
}

/// Pull request `number` from branch `feature` into `main`, from a fork or not.
pub fn pull_request(number: u64, fork: bool) -> PullRequest {
    PullRequest {
        number,
        source_branch: "feature".into(),
        target_branch: "main".into(),
        head_ref: format!("refs/pull/{number}/head"),
        fork,
        url: None,
    }
}
