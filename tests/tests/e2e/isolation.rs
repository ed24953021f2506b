//! On Kubernetes, jobs can't reach Sparky's state: the four functions as processes, as
//! the Knative bundle runs them — trigger, dispatch and render-ui on the state folder,
//! reports on S3 (moto), and run on an empty root of its own, as another user (the run
//! pod has no volume), reaching the state only through dispatch's runner API.

use std::{os::unix::fs::PermissionsExt, path::Path, process::Command, time::Duration};

use serde_json::json;
use sparky_tests::{Api, Sparky, free_port, moto::Moto, sparky_bin, write_project};

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
    let mut command = Command::new("setpriv");
    command
        .args([&format!("--reuid={RUN_UID}"), &format!("--regid={RUN_UID}"), "--clear-groups", "--"])
        .arg(sparky_bin())
        .args(["serve", "run", "--listen", &format!("127.0.0.1:{port}"), "--root"])
        .arg(root)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", root)
        .env("RUST_LOG", "info")
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    Sparky::spawn(command)
}

#[tokio::test]
async fn a_run_without_the_state_folder_runs_jobs_that_cannot_reach_the_state_or_runs_secrets() {
    let state = tempfile::tempdir().expect("state root");
    let run_root = tempfile::tempdir().expect("run's own root");
    // The state folder is root's alone (mode 0700), as a volume run doesn't mount.
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
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
    let mut with_internal = shared.clone();
    with_internal.push(("SPARKY_INTERNAL_TOKEN".into(), INTERNAL.into()));
    let _run = serve_run_as_nobody(ports[2], run_root.path(), &with_internal);
    let _dispatch = Sparky::serve("dispatch", ports[1], state.path(), &borrowed(&with_internal));
    let trigger = Sparky::serve("trigger", ports[0], state.path(), &borrowed(&shared));
    let _ui = Sparky::serve("render-ui", ports[3], state.path(), &borrowed(&shared));
    let api = Api::new(&trigger.url);
    let ui = Api::new(&format!("http://127.0.0.1:{}", ports[3]));

    let reply = api
        .send(api.http.post(api.url("/api/v1/projects/app/builds")).bearer_auth(ADMIN).json(&json!({})))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.json);
    let id = reply.json["id"].as_i64().expect("id");
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

    let tool = api
        .send(api.http.post(api.url("/api/v1/projects/tool/builds")).bearer_auth(ADMIN).json(&json!({})))
        .await;
    let tool_id = tool.json["id"].as_i64().expect("id");
    let done = ui.wait_for(tool_id, None, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(ui.log(tool_id).await.contains("job file of tool ran"));

    // The runner API refuses anyone without the internal token: a job, a browser.
    let dispatch = Api::new(&format!("http://127.0.0.1:{}", ports[1]));
    for token in [None, Some(ADMIN)] {
        let mut request = dispatch.http.get(dispatch.url(&format!("/internal/v1/builds/{id}")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(dispatch.send(request).await.status, 401, "reading a build with {token:?}");
    }
}
