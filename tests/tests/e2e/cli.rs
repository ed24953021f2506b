//! The `sparky` command line against a real `sparky up`: each command, its `--json`,
//! its exit codes, and where its server and token come from.

use std::{os::unix::fs::PermissionsExt as _, path::Path, process::Command, time::Duration};

use serde_json::Value;
use sparky_tests::{Api, Sparky, sparky_bin, write_project};

/// How one run of the command line ended.
struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.out).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\nstdout: {}\nstderr: {}", self.code, self.out, self.err)
    }
}

/// Runs `sparky ARGS` with none of Sparky's variables but `envs`, its settings file
/// under `config_home`.
async fn sparky(config_home: &Path, args: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut command = Command::new(sparky_bin());
    command.args(args).env("XDG_CONFIG_HOME", config_home);
    for name in ["SPARKY_API_TOKEN", "SPARKY_TOKEN", "SPARKY_API", "SPARKY_SERVER", "SPARKY_LISTEN"] {
        command.env_remove(name);
    }
    for (name, value) in envs {
        command.env(name, value);
    }
    let output =
        tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run sparky");
    Run {
        code: output.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `sparky ARGS --server SERVER`.
fn on<'a>(config_home: &'a Path, server: &str, args: &[&str]) -> impl Future<Output = Run> + use<'a> {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["--server".to_string(), server.to_string()]);
    async move {
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        sparky(config_home, &all, &[]).await
    }
}

#[tokio::test]
async fn build_prints_the_url_and_follow_streams_the_log_and_the_result() {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = tempfile::tempdir().expect("config home");
    write_project(
        dir.path(),
        "ok",
        "vars: [{ name: WHO }]\nscript: |\n  echo \"one $WHO\"\n  sleep 0.3\n  echo two\n",
    );
    write_project(dir.path(), "bad", "script: |\n  echo oops\n  exit 5\n");
    let sparky_up = Sparky::up(dir.path(), &[]);
    let server = sparky_up.url.as_str();
    let run = |args: &[&str]| on(home.path(), server, args);

    let done = run(&["build", "ok", "-p", "WHO=cli", "--follow"]).await;
    assert_eq!(done.code, 0, "{done}");
    let mut lines = done.out.lines();
    let url = lines.next().unwrap_or_default();
    assert!(url.starts_with(&format!("{server}/builds/")), "{done}");
    assert_eq!(lines.collect::<Vec<_>>(), ["one cli", "two"]);
    assert!(done.err.contains("succeeded"), "{done}");

    let failed = run(&["build", "bad", "--follow"]).await;
    assert_eq!(failed.code, 1, "{failed}");
    assert_eq!(failed.out.lines().skip(1).collect::<Vec<_>>(), ["oops"]);

    let queued = run(&["build", "ok"]).await;
    assert_eq!(queued.code, 0, "{queued}");
    assert_eq!(queued.out.lines().count(), 1, "without --follow only the URL: {queued}");

    let down = sparky(home.path(), &["build", "ok", "--server", "http://127.0.0.1:1"], &[]).await;
    assert_eq!(down.code, 4, "{down}");
    assert!(down.err.contains("could not reach"), "{down}");
}

#[tokio::test]
async fn every_command_speaks_json_and_says_how_it_went_in_its_exit_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = tempfile::tempdir().expect("config home");
    write_project(dir.path(), "ok", "vars: [{ name: WHO, default: nobody }]\nscript: echo \"hello $WHO\"\n");
    write_project(dir.path(), "bad", "script: |\n  echo oops\n  exit 5\n");
    write_project(dir.path(), "slow", "script: sleep 30\n");
    let sparky_up = Sparky::up(dir.path(), &[]);
    let api = Api::new(&sparky_up.url);
    let server = sparky_up.url.as_str();
    let home = home.path();
    let run = |args: &[&str]| on(home, server, args);
    let limit = Duration::from_secs(30);

    let queued = run(&["build", "ok", "-p", "WHO=a", "--json"]).await;
    assert_eq!(queued.code, 0, "{queued}");
    let first = queued.json();
    assert_eq!(
        (first["project"].as_str(), first["status"].as_str()),
        (Some("ok"), Some("queued")),
        "{queued}"
    );
    let first = first["id"].as_i64().expect("id");
    api.wait_for(first, Some("succeeded"), limit).await;

    let status = run(&["status", &first.to_string(), "--json"]).await;
    assert_eq!(status.code, 0, "{status}");
    assert_eq!(status.json()["params"]["WHO"], "a");
    let status = run(&["status", &first.to_string()]).await;
    assert!(status.out.contains("succeeded (exit code 0)") && status.out.contains("WHO=a"), "{status}");

    let projects = run(&["list", "--json"]).await;
    assert_eq!(projects.code, 0, "{projects}");
    let listed = projects.json();
    let ok =
        listed["projects"].as_array().and_then(|p| p.iter().find(|p| p["name"] == "ok")).expect("ok listed");
    assert_eq!(ok["last_build"]["id"].as_i64(), Some(first));
    let projects = run(&["list"]).await;
    let row = projects.out.lines().find(|l| l.starts_with("ok ")).unwrap_or_default();
    assert!(row.contains(&format!("#{first}")) && row.contains("succeeded"), "{projects}");

    // A rebuild keeps the parameters it isn't given, and follows like a build.
    let again = run(&["rebuild", &first.to_string(), "--follow", "--json"]).await;
    assert_eq!(again.code, 0, "{again}");
    let rebuilt = again.json();
    assert_eq!(
        (rebuilt["status"].as_str(), rebuilt["trigger"].as_str()),
        (Some("succeeded"), Some("rebuild"))
    );
    assert_eq!(rebuilt["params"]["WHO"], "a");
    assert!(again.err.contains("hello a"), "with --json the log goes to stderr: {again}");
    let changed = run(&["rebuild", &first.to_string(), "-p", "WHO=b", "-d", "for b", "--follow"]).await;
    assert_eq!(changed.code, 0, "{changed}");
    assert_eq!(changed.out.lines().skip(1).collect::<Vec<_>>(), ["hello b"], "{changed}");
    let url = changed.out.lines().next().unwrap_or_default();
    let changed_id =
        url.rsplit('/').next().and_then(|id| id.parse::<i64>().ok()).expect("the new build's URL");
    assert_eq!(api.build(changed_id).await["description"], "for b");

    let history = run(&["list", "ok", "--limit", "2", "--json"]).await;
    let ids: Vec<i64> = history.json()["builds"]
        .as_array()
        .expect("builds")
        .iter()
        .filter_map(|b| b["id"].as_i64())
        .collect();
    assert_eq!(ids, [changed_id, changed_id - 1], "newest first, two of three: {history}");
    let history = run(&["list", "ok"]).await;
    assert_eq!(history.out.lines().count(), 4, "a header and three builds: {history}");
    assert!(history.out.starts_with("BUILD"), "{history}");

    let failed = run(&["build", "bad", "--follow", "--json"]).await;
    assert_eq!(failed.code, 1, "{failed}");
    let failed_build = failed.json();
    assert_eq!(
        (failed_build["status"].as_str(), failed_build["exit_code"].as_i64()),
        (Some("failed"), Some(5))
    );
    assert!(failed.err.contains("oops"), "{failed}");
    let failed_id = failed_build["id"].as_i64().expect("id").to_string();
    let log = run(&["logs", &failed_id]).await;
    assert_eq!((log.code, log.out.as_str()), (0, "oops\n"), "{log}");
    let log = run(&["logs", &failed_id, "--json"]).await;
    assert_eq!(log.json()["status"], "failed");
    assert_eq!(log.err, "oops\n");
    let log = run(&["logs", &failed_id, "--follow"]).await;
    assert_eq!((log.code, log.out.as_str()), (1, "oops\n"), "following a failed build: {log}");

    let slow = run(&["build", "slow", "--json"]).await.json()["id"].as_i64().expect("id").to_string();
    let canceled = run(&["cancel", &slow, "--json"]).await;
    assert_eq!(canceled.code, 0, "{canceled}");
    assert!(
        matches!(canceled.json()["status"].as_str(), Some("canceled" | "cancel_requested")),
        "{canceled}"
    );
    let followed = run(&["logs", &slow, "--follow"]).await;
    assert_eq!(followed.code, 1, "a canceled build: {followed}");
    let twice = run(&["cancel", &slow]).await;
    assert_eq!(twice.code, 3, "it already finished: {twice}");
    assert!(twice.err.contains("409") && twice.err.contains("already finished"), "{twice}");

    for args in
        [&["status", "999"][..], &["cancel", "999"], &["logs", "999"], &["rebuild", "999"], &["list", "nope"]]
    {
        let refused = run(args).await;
        assert_eq!(refused.code, 3, "{args:?}: {refused}");
        assert!(refused.err.contains("404"), "{args:?}: {refused}");
        assert!(refused.out.is_empty(), "{args:?}: {refused}");
    }
    let bad_param = run(&["rebuild", &first.to_string(), "-p", "COLOR=red"]).await;
    assert_eq!(bad_param.code, 3, "{bad_param}");
    assert!(bad_param.err.contains("params.COLOR"), "{bad_param}");
    for args in
        [&["rebuild", "1", "-p", "WHO"][..], &["status", "seven"], &["list", "--limit", "x"], &["frobnicate"]]
    {
        let usage = run(args).await;
        assert_eq!(usage.code, 2, "{args:?}: {usage}");
    }
    let down = sparky(home, &["status", "1", "--server", "http://127.0.0.1:1", "--json"], &[]).await;
    assert_eq!(down.code, 4, "{down}");
    assert!(down.out.is_empty(), "{down}");
}

#[tokio::test]
async fn the_server_and_token_come_from_flags_then_environment_then_the_settings_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let home = tempfile::tempdir().expect("config home");
    write_project(dir.path(), "ok", "script: echo hi\n");
    let sparky_up = Sparky::up(dir.path(), &[("SPARKY_API_TOKEN", "admin")]);
    let server = sparky_up.url.as_str();
    let home = home.path();
    let settings = home.join("sparky").join("cli.toml");
    std::fs::create_dir_all(settings.parent().expect("folder")).expect("settings folder");
    let write_settings = |text: &str, mode: u32| {
        std::fs::write(&settings, text).expect("settings file");
        std::fs::set_permissions(&settings, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };

    let nothing = sparky(home, &["build", "ok"], &[("SPARKY_LISTEN", "127.0.0.1:1")]).await;
    assert_eq!(nothing.code, 4, "no settings: http://$SPARKY_LISTEN: {nothing}");
    assert!(nothing.err.contains("http://127.0.0.1:1"), "{nothing}");

    write_settings(&format!("# mine\nserver = \"{server}\"\ntoken = \"admin\"\n"), 0o600);
    let from_file = sparky(home, &["build", "ok", "--json"], &[]).await;
    assert_eq!(from_file.code, 0, "{from_file}");
    assert!(!from_file.err.contains("warning"), "a private settings file: {from_file}");
    let id = from_file.json()["id"].as_i64().expect("id").to_string();

    write_settings(&format!("server = {server}\ntoken = admin\n"), 0o644);
    let readable = sparky(home, &["status", &id], &[]).await;
    assert_eq!(readable.code, 0, "{readable}");
    assert!(readable.err.contains("warning") && readable.err.contains("chmod 600"), "{readable}");
    write_settings(&format!("server = {server}\ntoken = admin\n"), 0o600);

    let wrong = sparky(home, &["build", "ok"], &[("SPARKY_API_TOKEN", "wrong")]).await;
    assert_eq!(wrong.code, 3, "the environment's token wins over the file's: {wrong}");
    assert!(wrong.err.contains("401"), "{wrong}");
    let flag = sparky(home, &["build", "ok", "--token", "admin"], &[("SPARKY_API_TOKEN", "wrong")]).await;
    assert_eq!(flag.code, 0, "the flag's token wins over the environment's: {flag}");
    let wrong_flag = sparky(home, &["cancel", &id, "--token", "wrong"], &[]).await;
    assert_eq!(wrong_flag.code, 3, "{wrong_flag}");

    let elsewhere = [("SPARKY_SERVER", "http://127.0.0.1:1")];
    let env_server = sparky(home, &["status", &id], &elsewhere).await;
    assert_eq!(env_server.code, 4, "the environment's server wins over the file's: {env_server}");
    let flag_server = sparky(home, &["status", &id, "--server", server], &elsewhere).await;
    assert_eq!(flag_server.code, 0, "the flag's server wins over the environment's: {flag_server}");

    write_settings("server: http://127.0.0.1:4000\n", 0o600);
    let broken = sparky(home, &["status", &id, "--server", server], &[]).await;
    assert_eq!(broken.code, 2, "{broken}");
    assert!(broken.err.contains("cli.toml, line 1"), "{broken}");
}
