//! A runner without the state folder: builds run through dispatch's runner API, served
//! on a real port by the dispatch function's own router, against a real store.

use std::sync::Arc;

use sparky_core::{
    Config, Ctx,
    ctx::NoPoke,
    model::{BuildStatus, NewBuild},
    reports::{Key, folder::collect, log::StoredLog},
    secrets::Secret,
    testing::TempCtx,
};
use tokio_util::sync::CancellationToken;

use crate::{Backend, BackendError, RemoteBackend};

const INTERNAL: &str = "internal-token-for-the-functions";

/// The state with dispatch's runner API on a port, and a runner on a root of its own
/// that shares only report storage with it.
struct Split {
    state: TempCtx,
    url: String,
    runner: Ctx,
    _runner_root: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

async fn split() -> Split {
    let state = TempCtx::new(|config| config.internal_token = Some(Secret::new(INTERNAL))).await;
    let dispatcher = sparky_dispatch::Dispatcher { ctx: state.ctx.clone(), passes: Arc::default() };
    let app = sparky_core::serve::app(sparky_dispatch::router(dispatcher), state.ctx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    let runner_root = tempfile::tempdir().expect("runner root");
    let mut config = Config::for_root(runner_root.path());
    config.reports = Some(state.ctx.config.reports_dir());
    let runner =
        Ctx::open_detached(config, Arc::new(NoPoke), CancellationToken::new()).await.expect("runner state");
    Split { state, url, runner, _runner_root: runner_root, server }
}

impl Split {
    fn backend(&self, token: &str) -> Arc<dyn Backend> {
        Arc::new(RemoteBackend::new(self.runner.clone(), &self.url, Secret::new(token)))
    }

    async fn dispatched(&self, project: &str) -> i64 {
        let new = NewBuild { project: project.into(), ..NewBuild::default() };
        sparky_core::testing::dispatched(&self.state.ctx, new).await
    }
}

impl Drop for Split {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[tokio::test]
async fn a_runner_without_the_state_folder_runs_a_job_file_with_its_secrets_through_dispatch() {
    let s = split().await;
    let secrets = s.state.ctx.config.secrets_dir();
    std::fs::create_dir_all(&secrets).expect("secrets folder");
    std::fs::write(secrets.join("DEPLOY_TOKEN"), "t0p-s3cr3t-value\n").expect("secret");
    std::fs::write(secrets.join("OTHER_PROJECTS_TOKEN"), "not-for-this-project\n").expect("secret");
    s.state.project("app", "secrets: [DEPLOY_TOKEN]\ndownstream: [next]\n");
    s.state.project("next", "script: echo next\n");
    let job = s.state.ctx.projects.dir().join("app/job");
    std::fs::write(&job, "#!/bin/sh\necho \"job file ran, token $DEPLOY_TOKEN\"\n").expect("job");
    std::fs::set_permissions(&job, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let id = s.dispatched("app").await;

    let status = crate::execute(&s.runner, &s.backend(INTERNAL), id, true).await.expect("execute");
    assert_eq!(status, Some(BuildStatus::Succeeded));
    let build = s.state.ctx.store.build(id).await.expect("read").expect("row");
    assert_eq!(build.status, BuildStatus::Succeeded, "the end is recorded in the state, by dispatch");
    let stored = StoredLog::open(s.runner.reports.as_ref(), "app", id).await.expect("log");
    let log = String::from_utf8(collect(stored.read_from(s.runner.reports.clone(), 0)).await.expect("read"))
        .expect("utf8");
    assert!(
        log.contains("job file ran, token ***"),
        "the job file came with the build, its secret masked: {log}"
    );
    assert!(!log.contains("t0p-s3cr3t-value"), "{log}");
    assert!(log.contains("queued downstream build"), "downstream queued through dispatch: {log}");
    let report =
        sparky_core::reports::get_bytes(s.runner.reports.as_ref(), &Key::report("app", id).expect("key"))
            .await
            .expect("read")
            .expect("report.json");
    let report: serde_json::Value = serde_json::from_slice(&report).expect("JSON");
    assert_eq!(report["status"], "succeeded");
    assert!(!s.runner.config.db_path().exists(), "the runner opened no database");
    assert!(s.runner.store.build(id).await.is_err(), "the runner's store has no database to read");
}

#[tokio::test]
async fn a_runner_with_a_wrong_internal_token_is_refused_and_changes_nothing() {
    let s = split().await;
    s.state.project("app", "script: echo hi\n");
    let id = s.dispatched("app").await;
    match crate::execute(&s.runner, &s.backend("a-guess"), id, true).await {
        Err(BackendError::Refused { status, message }) => assert_eq!(status, 401, "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let build = s.state.ctx.store.build(id).await.expect("read").expect("row");
    assert_eq!(build.status, BuildStatus::Dispatched, "still waiting for its runner");
}
