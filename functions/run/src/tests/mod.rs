//! Running real jobs (bash, process groups) against a real store in a temp folder.

use std::time::{Duration, Instant};

use sparky_core::{
    Ctx,
    model::{BuildStatus, NewBuild, Params},
    reports::{Key, folder::collect, get_bytes, log::StoredLog},
    store::CancelOutcome,
    testing::{self, TempCtx, age_events},
};

/// Whether `pid` is a live process (a zombie waiting for its reaper is dead). Gives a
/// process that was just SIGKILLed a moment to go.
fn running(pid: i32) -> bool {
    let live = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')))
    };
    for _ in 0..50 {
        if !live() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

struct Harness {
    temp: TempCtx,
    ctx: Ctx,
}

async fn harness() -> Harness {
    let temp = TempCtx::new(|config| config.api_url = Some("http://sparky.test".into())).await;
    Harness { ctx: temp.ctx.clone(), temp }
}

impl Harness {
    /// Sparky's state as this process's runner sees it.
    fn state(&self) -> std::sync::Arc<dyn crate::Backend> {
        std::sync::Arc::new(crate::LocalBackend { ctx: self.ctx.clone() })
    }

    fn project(&self, name: &str, yaml: &str) {
        self.temp.project(name, yaml);
    }

    /// Queues and dispatches one build, ready for `execute`.
    async fn dispatched(&self, project: &str, params: &[(&str, &str)]) -> i64 {
        let params: Params = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        testing::dispatched(&self.ctx, NewBuild { project: project.into(), params, ..NewBuild::default() })
            .await
    }

    async fn log(&self, project: &str, id: i64) -> String {
        let stored = StoredLog::open(self.ctx.reports.as_ref(), project, id).await.expect("log");
        String::from_utf8(collect(stored.read_from(self.ctx.reports.clone(), 0)).await.expect("read"))
            .expect("utf8")
    }
}

#[tokio::test]
async fn runs_a_script_with_its_environment_and_interleaved_output() {
    let h = harness().await;
    // The project's `env` can't pass for the build's own variables.
    h.project(
        "app",
        "script: |\n  echo out1\n  echo err1 >&2\n  echo out2\n  echo \"$SPARKY_PROJECT $SPARKY_BUILD_ID $SPARKY_TRIGGER $SPARKY_API $TARGET $FROM_ENV\"\n  pwd\n\
         env: { FROM_ENV: yes, SPARKY_PROJECT: other, SPARKY_BUILD_ID: \"0\" }\nvars: [{ name: TARGET }]\n",
    );
    let id = h.dispatched("app", &[("TARGET", "prod")]).await;
    let status = crate::execute(&h.ctx, &h.state(), id, true).await.expect("execute");
    assert_eq!(status, Some(BuildStatus::Succeeded));
    let log = h.log("app", id).await;
    let workspace = h.ctx.config.build_work_dir(id).join("workspace");
    assert_eq!(
        log,
        format!("out1\nerr1\nout2\napp {id} api http://sparky.test prod yes\n{}\n", workspace.display())
    );
    let build = h.ctx.store.build(id).await.expect("read").expect("row");
    assert_eq!(build.exit_code, Some(0));
    assert_eq!(build.log_size, Some(log.len() as u64));
    assert!(build.started_at.is_some() && build.finished_at.is_some());
}

#[tokio::test]
async fn a_failing_command_fails_the_build_with_its_exit_code() {
    let h = harness().await;
    h.project("app", "script: |\n  echo before\n  exit 3\n  echo never\n");
    let id = h.dispatched("app", &[]).await;
    assert_eq!(
        crate::execute(&h.ctx, &h.state(), id, true).await.expect("execute"),
        Some(BuildStatus::Failed)
    );
    assert_eq!(h.ctx.store.build(id).await.expect("read").and_then(|b| b.exit_code), Some(3));
    assert_eq!(h.log("app", id).await, "before\n");
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let h = harness().await;
    h.project("app", "timeout: 1s\nscript: |\n  sleep 300 &\n  echo $! > child.pid\n  sleep 300\n");
    let id = h.dispatched("app", &[]).await;
    let started = Instant::now();
    assert_eq!(
        crate::execute(&h.ctx, &h.state(), id, true).await.expect("execute"),
        Some(BuildStatus::TimedOut)
    );
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let pid_file = h.ctx.config.build_work_dir(id).join("workspace/child.pid");
    let pid: i32 = std::fs::read_to_string(pid_file).expect("pid").trim().parse().expect("number");
    assert!(!running(pid), "background child {pid} survived");
    assert!(h.log("app", id).await.contains("timed out after 1s"));
}

#[tokio::test]
async fn a_cancel_stops_a_running_build() {
    let h = harness().await;
    h.project("app", "script: |\n  echo started\n  sleep 300\n");
    let id = h.dispatched("app", &[]).await;
    let (ctx, state) = (h.ctx.clone(), h.state());
    let run = tokio::spawn(async move { crate::execute(&ctx, &state, id, true).await });
    while h.ctx.store.build(id).await.expect("read").map(|b| b.status) != Some(BuildStatus::Running) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    h.ctx.cancel_build(id).await.expect("cancel");
    let status = run.await.expect("join").expect("execute");
    assert_eq!(status, Some(BuildStatus::Canceled));
    assert!(asked.elapsed() < Duration::from_secs(2), "{:?}", asked.elapsed());
}

/// The start finds the cancel asked while the build waited for its runner: it ends
/// `canceled` there, without running, and its `report.json` is stored all the same.
#[tokio::test]
async fn a_cancel_asked_while_dispatched_ends_it_unrun_with_its_report() {
    let h = harness().await;
    h.project("app", "script: touch ran\n");
    let id = h.dispatched("app", &[]).await;
    assert_eq!(h.ctx.cancel_build(id).await.expect("cancel"), CancelOutcome::Requested);
    assert_eq!(crate::execute(&h.ctx, &h.state(), id, true).await.expect("execute"), None);
    let build = h.ctx.store.build(id).await.expect("read").expect("row");
    assert_eq!(build.status, BuildStatus::Canceled);
    assert!(!h.ctx.config.build_work_dir(id).join("workspace/ran").exists(), "the job did not run");

    let key = Key::report("app", id).expect("key");
    let stored = get_bytes(h.ctx.reports.as_ref(), &key).await.expect("read").expect("a report.json");
    let report: serde_json::Value = serde_json::from_slice(&stored).expect("JSON");
    assert_eq!(
        (report["status"].as_str(), report["error"].as_str(), report["complete"].as_bool()),
        (Some("canceled"), Some("canceled before it started"), Some(true))
    );
    let attempts = report["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "{report}");
    assert_eq!(
        (attempts[0]["outcome"].as_str(), attempts[0]["reason"].as_str()),
        (Some("canceled"), Some("canceled"))
    );
    assert!(attempts[0]["started_at"].is_null(), "{report}");
    // Followed up there and then: nothing is left for a sweep to do.
    age_events(&h.ctx, 60_000).await;
    assert_eq!(h.ctx.follow_up_pending().await.expect("follow up"), 0);
}

#[tokio::test]
async fn a_duplicate_delivery_does_nothing() {
    let h = harness().await;
    h.project("app", "script: echo once\n");
    let id = h.dispatched("app", &[]).await;
    assert_eq!(
        crate::execute(&h.ctx, &h.state(), id, true).await.expect("execute"),
        Some(BuildStatus::Succeeded)
    );
    assert_eq!(crate::execute(&h.ctx, &h.state(), id, true).await.expect("execute"), None);
    assert_eq!(h.log("app", id).await, "once\n");
}

#[tokio::test]
async fn a_broken_config_fails_the_build_saying_why() {
    let h = harness().await;
    h.project("app", "script: echo\n");
    let id = h.dispatched("app", &[]).await;
    h.project("app", "script: echo\nretries: -1\n");
    assert_eq!(
        crate::execute(&h.ctx, &h.state(), id, true).await.expect("execute"),
        Some(BuildStatus::Failed)
    );
    let log = h.log("app", id).await;
    assert!(log.contains("projects/app/sparky.yaml, line 2"), "{log}");
}

#[tokio::test]
async fn keeps_only_the_newest_builds() {
    let h = harness().await;
    h.project("app", "keep_builds: 2\nscript: echo hi > file.txt\n");
    let mut ids = Vec::new();
    for _ in 0..4 {
        let id = h.dispatched("app", &[]).await;
        crate::execute(&h.ctx, &h.state(), id, true).await.expect("execute");
        ids.push(id);
    }
    let page = h.ctx.store.project_builds("app", 10, None).await.expect("page");
    assert_eq!(page.builds.iter().map(|b| b.id).collect::<Vec<_>>(), vec![ids[3], ids[2]]);
    for old in &ids[..2] {
        assert!(!h.ctx.config.build_work_dir(*old).exists());
        assert!(h.log("app", *old).await.is_empty());
    }
    assert!(h.ctx.config.build_work_dir(ids[3]).join("workspace/file.txt").exists());
}

#[tokio::test]
async fn a_busy_database_delays_a_result_but_never_loses_it() {
    let h = harness().await;
    h.project("app", "script: |\n  echo started\n  sleep 0.5\n  echo done\n");
    let id = h.dispatched("app", &[]).await;
    let (ctx, state) = (h.ctx.clone(), h.state());
    let run = tokio::spawn(async move { crate::execute(&ctx, &state, id, true).await });
    while h.ctx.store.build(id).await.expect("read").map(|b| b.status) != Some(BuildStatus::Running) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another writer holds the lock past the store's busy timeout (5 s) while the job
    // ends: the runner's write waits it out instead of giving the build up.
    let holder = h.ctx.store.hold_write_lock(Duration::from_secs(7));
    let status = run.await.expect("run task").expect("execute");
    holder.join().expect("lock holder");
    assert_eq!(status, Some(BuildStatus::Succeeded));
    let build = h.ctx.store.build(id).await.expect("read").expect("row");
    assert_eq!((build.status, build.retries_used), (BuildStatus::Succeeded, 0));
    let events = h.ctx.store.build_events(id).await.expect("events");
    assert_eq!(
        events.last().map(|e| (e.from, e.to)),
        Some((Some(BuildStatus::Running), BuildStatus::Succeeded))
    );
    assert_eq!(h.log("app", id).await, "started\ndone\n");
    // The metrics say the runner waited on the database.
    let metrics = h.ctx.metrics.encode(None).expect("metrics");
    let retries = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"sparky_store_busy_retries_total{write="finish"} "#))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(retries.is_some_and(|n| n >= 1), "{metrics}");
}

#[tokio::test]
async fn a_job_gets_an_allowlisted_environment_and_its_secrets_masked_in_the_log() {
    let temp = TempCtx::new(|config| {
        config.api_url = Some("http://sparky.test".into());
        config.api_token = Some(sparky_core::secrets::Secret::new("ADMIN-TOKEN-VALUE"));
        config.webhook_secret = Some(sparky_core::secrets::Secret::new("WEBHOOK-SECRET-VALUE"));
        config.job_env.insert("HOME".into(), "/home/ci".into());
    })
    .await;
    let h = Harness { ctx: temp.ctx.clone(), temp };
    let secrets = h.ctx.config.secrets_dir();
    std::fs::create_dir_all(&secrets).expect("secrets folder");
    std::fs::write(secrets.join("DEPLOY_TOKEN"), "s3cr3t-d3pl0y-t0k3n\n").expect("secret");
    h.project(
        "app",
        "secrets: [DEPLOY_TOKEN]\nscript: |\n  env | sort\n  echo \"whole: $DEPLOY_TOKEN\"\n  \
         printf 'split: %s' \"${DEPLOY_TOKEN:0:7}\"\n  sleep 0.3\n  printf '%s\\n' \"${DEPLOY_TOKEN:7}\"\n  \
         echo \"$DEPLOY_TOKEN\" | fold -w3\n  test \"$DEPLOY_TOKEN\" = s3cr3t-d3pl0y-t0k3n && echo the job has it\n",
    );
    let id = h.dispatched("app", &[]).await;
    assert_eq!(
        crate::execute(&h.ctx, &h.state(), id, true).await.expect("execute"),
        Some(BuildStatus::Succeeded)
    );
    let log = h.log("app", id).await;
    assert!(log.contains("the job has it"), "{log}");
    let joined: String = log.chars().filter(|c| *c != '\n').collect();
    for leak in ["s3cr3t-d3pl0y-t0k3n", "ADMIN-TOKEN-VALUE", "WEBHOOK-SECRET-VALUE"] {
        assert!(!joined.contains(leak), "{leak} in the log:\n{log}");
    }
    assert!(log.contains("whole: ***\n") && log.contains("split: ***\n"), "{log}");
    let names: Vec<&str> = log.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
    for name in &names {
        let allowed =
            ["PATH", "HOME", "PWD", "SHLVL", "_", "OLDPWD", "CI", "GIT_TERMINAL_PROMPT", "DEPLOY_TOKEN"]
                .contains(name)
                || name.starts_with("SPARKY_")
                || name.starts_with("split: ");
        assert!(allowed, "{name} reached the job:\n{log}");
    }
    assert!(names.contains(&"HOME") && names.contains(&"SPARKY_BUILD_ID"), "{names:?}");
}

mod remote;

/// A stranger's pull request may not start the builds that hold a project's secrets:
/// a fork's successful build queues no downstream project; the project's own does.
#[tokio::test]
async fn a_forks_pull_request_queues_no_downstream_build() {
    let h = harness().await;
    h.project("app", "script: echo built\ndownstream: [deploy]\n");
    h.project("deploy", "script: echo deployed\n");
    for fork in [true, false] {
        let pull = Some(testing::pull_request(7, fork));
        let id = testing::dispatched(
            &h.ctx,
            NewBuild { project: "app".into(), pull_request: pull, ..NewBuild::default() },
        )
        .await;
        let status = crate::execute(&h.ctx, &h.state(), id, true).await.expect("execute");
        assert_eq!(status, Some(BuildStatus::Succeeded));
        let live = h.ctx.store.live_builds().await.expect("live");
        let deploys = live.iter().filter(|b| b.project == "deploy").count();
        let log = h.log("app", id).await;
        if fork {
            assert_eq!(deploys, 0, "{log}");
            assert!(log.contains("downstream deploy skipped: a pull request from a fork"), "{log}");
        } else {
            assert_eq!(deploys, 1, "the project's own request queues it: {log}");
        }
    }
}
