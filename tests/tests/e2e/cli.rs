//! `sparky build` from the command line.

use std::process::Command;

use sparky_tests::{Sparky, sparky_bin, write_project};

fn sparky_build(server: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(sparky_bin())
        .arg("build")
        .args(args)
        .args(["--server", server])
        .env_remove("SPARKY_API_TOKEN")
        .output()
        .expect("run sparky build");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn build_prints_the_url_and_follow_streams_the_log_and_the_result() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(
        dir.path(),
        "ok",
        "vars: [{ name: WHO }]\nscript: |\n  echo \"one $WHO\"\n  sleep 0.3\n  echo two\n",
    );
    write_project(dir.path(), "bad", "script: |\n  echo oops\n  exit 5\n");
    let sparky = Sparky::up(dir.path(), &[]);
    let server = sparky.url.clone();
    let (code, out, err) = tokio::task::spawn_blocking({
        let server = server.clone();
        move || sparky_build(&server, &["ok", "-p", "WHO=cli", "--follow"])
    })
    .await
    .expect("join");
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let mut lines = out.lines();
    let url = lines.next().unwrap_or_default();
    assert!(url.starts_with(&format!("{server}/builds/")), "{out}");
    assert_eq!(lines.collect::<Vec<_>>(), ["one cli", "two"]);
    assert!(err.contains("succeeded"), "{err}");

    let (code, out, _) = tokio::task::spawn_blocking({
        let server = server.clone();
        move || sparky_build(&server, &["bad", "--follow"])
    })
    .await
    .expect("join");
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.lines().skip(1).collect::<Vec<_>>(), ["oops"]);

    let (code, out, _) =
        tokio::task::spawn_blocking(move || sparky_build(&server, &["ok"])).await.expect("join");
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "without --follow only the URL: {out}");

    let (code, _, err) =
        tokio::task::spawn_blocking(move || sparky_build("http://127.0.0.1:1", &["ok"])).await.expect("join");
    assert_ne!(code, 0);
    assert!(err.contains("could not reach"), "{err}");
}
