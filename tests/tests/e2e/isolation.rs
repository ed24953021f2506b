//! On Kubernetes, jobs can't reach Sparky's state: the four functions as processes, as
//! the Knative bundle runs them — trigger, dispatch and render-ui on the state folder,
//! reports on S3 (moto), and run on an empty root of its own, as another user (the run
//! pod has no volume), reaching the state only through dispatch's runner API.

use std::{os::unix::fs::PermissionsExt, path::Path, time::Duration};

use nix::sys::signal::Signal;
use serde_json::json;
use sparky_tests::{Api, Sparky, alive, free_port, moto::Moto, ping_request, write_project};

const INTERNAL: &str = "internal-token-only-the-functions-hold-7f3a";
const ADMIN: &str = "admin-token-of-the-isolated-cluster-91c2";
const SECRET: &str = "granted-secret-value-of-app-5d0e";
/// `nobody`: the run process's user, which owns nothing of the state.
const RUN_UID: u32 = 65534;

fn borrowed(list: &[(String, String)]) -> Vec<(&str, &str)> {
    list.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// `sparky serve run` as [`RUN_UID`] on `root`, with `envs`.
fn serve_run_as_nobody(port: u16, root: &Path, envs: &[(String, String)]) -> Sparky {
    assert!(
        std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0),
        "this test starts run as another user (setpriv) and must run as root, as ./scripts/test does here"
    );
    std::os::unix::fs::chown(root, Some(RUN_UID), Some(RUN_UID)).expect("give run its root");
    let listen = format!("127.0.0.1:{port}");
    let mut command = Sparky::command_as(RUN_UID, &["serve", "run", "--listen", &listen], root);
    command.envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Sparky::spawn(command)
}

/// The state root (root's alone, mode 0700, as a volume run doesn't mount) and run's
/// own empty root.
fn roots() -> (tempfile::TempDir, tempfile::TempDir) {
    let state = tempfile::tempdir().expect("state root");
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    (state, tempfile::tempdir().expect("run's own root"))
}

/// The four functions: trigger, dispatch and render-ui on the state root, run as
/// nobody on its own, reports in moto, dispatch and run holding the internal token.
struct Isolated {
    ports: [u16; 4],
    run: Sparky,
    _dispatch: Sparky,
    _trigger: Sparky,
    _ui: Sparky,
}

impl Isolated {
    async fn start(state: &Path, run_root: &Path, extra: &[(&str, &str)]) -> Isolated {
        let moto = Moto::shared();
        let bucket = format!("isolation-{}", free_port());
        moto.create_bucket(&bucket).await;
        let ports = [free_port(), free_port(), free_port(), free_port()];
        let mut shared = moto.sparky_env(&bucket, "reports");
        shared.extend([
            ("SPARKY_SQLITE_JOURNAL".into(), "delete".into()),
            ("SPARKY_DISPATCH_URL".into(), format!("http://127.0.0.1:{}", ports[1])),
            ("SPARKY_RUN_URL".into(), format!("http://127.0.0.1:{}", ports[2])),
            ("SPARKY_API_URL".into(), format!("http://127.0.0.1:{}", ports[0])),
            ("SPARKY_API_TOKEN".into(), ADMIN.into()),
        ]);
        shared.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut with_internal = shared.clone();
        with_internal.push(("SPARKY_INTERNAL_TOKEN".into(), INTERNAL.into()));
        Isolated {
            ports,
            run: serve_run_as_nobody(ports[2], run_root, &with_internal),
            _dispatch: Sparky::serve("dispatch", ports[1], state, &borrowed(&with_internal)),
            _trigger: Sparky::serve("trigger", ports[0], state, &borrowed(&shared)),
            _ui: Sparky::serve("render-ui", ports[3], state, &borrowed(&shared)),
        }
    }

    fn api(&self, i: usize) -> Api {
        Api::new(&format!("http://127.0.0.1:{}", self.ports[i]))
    }
    fn trigger(&self) -> Api {
        self.api(0)
    }
    fn dispatch(&self) -> Api {
        self.api(1)
    }
    fn ui(&self) -> Api {
        self.api(3)
    }

    async fn build(&self, project: &str) -> i64 {
        let api = self.trigger();
        let url = api.url(&format!("/api/v1/projects/{project}/builds"));
        let reply = api.send(api.http.post(url).bearer_auth(ADMIN).json(&json!({}))).await;
        assert_eq!(reply.status, 201, "{}", reply.json);
        reply.json["id"].as_i64().expect("id")
    }
}

#[tokio::test]
async fn a_run_without_the_state_folder_runs_jobs_that_cannot_reach_the_state_or_runs_secrets() {
    let (state, run_root) = roots();
    std::fs::create_dir_all(state.path().join("secrets")).expect("secrets");
    std::fs::write(state.path().join("secrets/DEPLOY_TOKEN"), format!("{SECRET}\n")).expect("secret");
    let db = state.path().join("sparky.db");
    write_project(
        state.path(),
        "app",
        &format!(
            "secrets: [DEPLOY_TOKEN]\nenv: {{ STATE_DB: '{db}', STATE_ROOT: '{root}' }}\nscript: |\n  \
             echo \"parent: $(cat /proc/$PPID/comm) uid $(id -u)\"\n  \
             if cat \"$STATE_DB\" > /dev/null 2>&1; then echo 'state database: OPENED'; else echo 'state database: refused'; fi\n  \
             if ls \"$STATE_ROOT\" > /dev/null 2>&1; then echo 'state folder: LISTED'; else echo 'state folder: refused'; fi\n  \
             if tr '\\0' '\\n' < /proc/$PPID/environ > /dev/null 2>&1; then echo \"run's environment: READ\"; else echo \"run's environment: refused\"; fi\n  \
             tr '\\0' '\\n' < /proc/$PPID/environ 2>/dev/null | fold -w3 || true\n  \
             env\n  env | fold -w3\n  echo \"token: $DEPLOY_TOKEN\"\n  \
             curl -s -o /dev/null -w 'child %{{http_code}}\\n' -X POST -H \"Authorization: Bearer $SPARKY_TOKEN\" -H 'Content-Type: application/json' -d '{{}}' \"$SPARKY_API/api/v1/projects/child/builds\"\n",
            db = db.display(),
            root = state.path().display()
        ),
    );
    write_project(state.path(), "child", "script: echo \"child of $SPARKY_PARENT_BUILD\"\n");
    // A project that runs an executable `job` file: it travels with the build.
    write_project(state.path(), "tool", "description: runs its job file\n");
    let job = state.path().join("projects/tool/job");
    std::fs::write(&job, "#!/bin/sh\necho \"job file of $SPARKY_PROJECT ran\"\n").expect("job");
    std::fs::set_permissions(&job, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let cluster = Isolated::start(state.path(), run_root.path(), &[]).await;
    let ui = cluster.ui();

    let id = cluster.build("app").await;
    let build = ui.wait_for(id, None, Duration::from_secs(30)).await;
    assert_eq!(build["status"], "succeeded", "{build}\n{}", ui.log(id).await);
    let log = ui.log(id).await;
    let parent = log.lines().find(|l| l.starts_with("parent: ")).unwrap_or_default();
    assert!(
        parent.starts_with("parent: sparky") && parent.ends_with(&format!(" uid {RUN_UID}")),
        "the job ran under run, as its user: {log}"
    );
    assert!(log.contains("state database: refused"), "{log}");
    assert!(log.contains("state folder: refused"), "{log}");
    assert!(log.contains("run's environment: refused"), "run is non-dumpable: {log}");
    assert!(log.contains("token: ***"), "the granted secret came through dispatch, masked: {log}");
    assert!(log.contains("child 201"), "the job token works from a run without the state: {log}");
    assert!(!run_root.path().join("sparky.db").exists(), "run opened no database of its own");
    let (status, metrics) = cluster.api(2).get_text("/metrics").await;
    assert_eq!(status, 200, "a run without the state still answers its metrics: {metrics}");
    assert!(metrics.contains("sparky_max_running"), "{metrics}");
    assert!(!metrics.contains("sparky_builds{"), "no build gauges without the store: {metrics}");
    // Its builds are counted where their changes are recorded: by dispatch.
    let (_, counted) = cluster.api(1).get_text("/metrics").await;
    assert!(counted.contains(r#"sparky_builds_started_total{project="app",trigger="api"}"#), "{counted}");
    assert_eq!(cluster.api(2).get_text("/healthz").await, (200, "ok\n".to_string()), "no database to fail");

    let page = ui.get_text(&format!("/builds/{id}")).await.1;
    let raw = ui.get_text(&format!("/builds/{id}/log?download=1")).await.1;
    let report = ui.get_text(&format!("/builds/{id}/report.json")).await.1;
    let json = ui.get_text(&format!("/api/v1/builds/{id}")).await.1;
    let server_values = [INTERNAL, ADMIN, SECRET];
    for (view, text) in [("log", &log), ("page", &page), ("raw", &raw), ("report", &report), ("api", &json)] {
        let joined = text.replace("\\n", "").replace(['\n', '\r'], "");
        for value in server_values {
            assert!(!joined.contains(value), "{value} shows in the {view}:\n{text}");
        }
    }
    for name in ["SPARKY_INTERNAL_TOKEN", "SPARKY_API_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        assert!(!log.lines().any(|l| l.starts_with(&format!("{name}="))), "{name} reached the job:\n{log}");
    }

    let tool_id = cluster.build("tool").await;
    let done = ui.wait_for(tool_id, None, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(ui.log(tool_id).await.contains("job file of tool ran"));

    // The runner API refuses anyone without the internal token: a job, a browser.
    let dispatch = cluster.dispatch();
    for token in [None, Some(ADMIN)] {
        let mut request = dispatch.http.get(dispatch.url(&format!("/internal/v1/builds/{id}")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(dispatch.send(request).await.status, 401, "reading a build with {token:?}");
    }
}

#[tokio::test]
async fn the_runner_protocol_refuses_bad_callers_and_a_runner_that_lost_its_lease_stops_its_job() {
    let (state, run_root) = roots();
    let work = tempfile::tempdir().expect("a folder the job reports to");
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let (pid_file, marker) = (work.path().join("pid"), work.path().join("finished"));
    write_project(
        state.path(),
        "long",
        &format!(
            "script: |\n  echo $$ > {pid}\n  sleep 20\n  touch {done}\n",
            pid = pid_file.display(),
            done = marker.display()
        ),
    );
    write_project(state.path(), "quick", "script: echo quick\n");
    let cluster = Isolated::start(state.path(), run_root.path(), &[("SPARKY_LEASE", "2s")]).await;
    let (ui, dispatch) = (cluster.ui(), cluster.dispatch());

    // Bad callers of the runner API, on a finished build.
    let quick = cluster.build("quick").await;
    assert_eq!(ui.wait_for(quick, None, Duration::from_secs(30)).await["status"], "succeeded");
    let finish = dispatch.url(&format!("/internal/v1/builds/{quick}/finish"));
    let ending = json!({"owner": "a-runner-that-never-had-it", "ending": {"status": "failed", "exit_code": 1,
        "error": null, "log_size": 0, "report_error": null, "finished_at": 1}});
    let post = |token: Option<&str>| {
        let request = dispatch.http.post(&finish).json(&ending);
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    };
    assert_eq!(dispatch.send(post(None)).await.status, 401, "no token");
    assert_eq!(dispatch.send(post(Some("not-the-internal-token"))).await.status, 401, "a wrong token");
    assert_eq!(dispatch.send(post(Some(ADMIN))).await.status, 401, "the admin's token is not the functions'");
    let malformed =
        dispatch.send(dispatch.http.post(&finish).bearer_auth(INTERNAL).body("{\"owner\":")).await;
    assert_eq!(malformed.status, 400, "{}", malformed.json);
    let conflict = dispatch.send(post(Some(INTERNAL))).await;
    assert_eq!(conflict.status, 409, "a result for a build that isn't this runner's: {}", conflict.json);
    assert_eq!(ui.build(quick).await["status"], "succeeded", "nothing changed");

    // A runner that lost its lease (frozen past it; the sweep took the build) stops the
    // job at its next renewal.
    let long = cluster.build("long").await;
    ui.wait_for(long, Some("running"), Duration::from_secs(30)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // The file exists a moment before the job's shell has written its pid into it.
    let job_pid: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|text| text.trim().parse().ok()) {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "the job never wrote its pid");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    cluster.run.signal(Signal::SIGSTOP);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let sweep =
        dispatch.send(ping_request(&dispatch, "/events/dispatch", "2026-12-01T12:00:00Z", "sweep-1")).await;
    assert_eq!(sweep.status, 200, "{}", sweep.json);
    assert_eq!(ui.build(long).await["status"], "lost", "the sweep took the build: {}", sweep.json);
    assert!(alive(job_pid), "the job ran on while its runner was frozen");
    cluster.run.signal(Signal::SIGCONT);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(job_pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "the runner did not stop its job:\n{}",
            cluster.run.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!marker.exists(), "the job was stopped before it finished");
    assert_eq!(
        ui.build(long).await["status"],
        "lost",
        "the runner's result was not recorded over the sweep's"
    );
}
