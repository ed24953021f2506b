//! Report storage going away mid-build, with a real S3 server process: killed
//! (connections refused) and started again, log chunks are retried with backoff and
//! nothing is lost; stopped (SIGSTOP: requests hang) and continued, likewise; killed
//! past `SPARKY_REPORTS_TIMEOUT`, the build still finishes with its result, and its
//! page says the report is incomplete.

use std::time::{Duration, Instant};

use serde_json::json;
use sparky_tests::{moto::Moto, unescape_html};

use super::setup::{Backend, Site};

const WAIT: Duration = Duration::from_secs(60);

fn job(gates: &std::path::Path) -> String {
    format!(
        "env: {{ GATES: {} }}\nscript: |\n  while [ ! -e \"$GATES/start\" ]; do sleep 0.02; done\n  echo before\n  while [ ! -e \"$GATES/go\" ]; do sleep 0.02; done\n  \
         for i in $(seq 1 200); do echo \"during $i\"; sleep 0.005; done\n  echo after\n  touch \"$GATES/done\"\n",
        gates.display()
    )
}

async fn wait_for_log(site: &Site, id: i64, text: &str) {
    let deadline = Instant::now() + WAIT;
    while !site.api.log(id).await.contains(text) {
        assert!(Instant::now() < deadline, "the log never showed {text:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for_file(path: &std::path::Path) {
    let deadline = Instant::now() + WAIT;
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn expected_log() -> String {
    format!("before\n{}after\n", (1..=200).map(|i| format!("during {i}\n")).collect::<String>())
}

/// Sparky with its reports on `moto` and the gated job; with `started`, the job may
/// start printing at once. Returns the site and its gates folder.
async fn start(moto: &Moto, timeout: &str, started: bool) -> (Site, std::path::PathBuf) {
    let site = Site::up(Backend::S3, Some(moto), &[("SPARKY_REPORTS_TIMEOUT", timeout)]).await;
    let gates = site.dir.path().join("gates");
    std::fs::create_dir_all(&gates).expect("gates");
    site.project("app", &job(&gates));
    if started {
        std::fs::write(gates.join("start"), "").expect("start");
    }
    (site, gates)
}

/// Waits for build `id` to succeed with its whole log and report stored.
async fn assert_stored_whole(site: &Site, id: i64) {
    let build = site.api.wait_for(id, Some("succeeded"), WAIT).await;
    assert_eq!(build["report_error"], json!(null), "{build}");
    assert_eq!(site.api.log(id).await, expected_log(), "the whole log, in order");
    let report = site.ui.get(&format!("/builds/{id}/report.json")).await;
    assert_eq!((report.status, &report.json["complete"]), (200, &json!(true)));
}

#[tokio::test]
async fn a_store_killed_and_started_again_mid_build_gets_every_chunk_by_retrying() {
    let mut moto = Moto::start();
    let (site, gates) = start(&moto, "60s", false).await;
    let id = site.api.trigger("app", json!({})).await;
    site.api.wait_for(id, Some("running"), WAIT).await;

    // Down before the job prints anything (a restarted moto keeps no objects).
    moto.kill();
    std::fs::write(gates.join("start"), "").expect("start");
    std::fs::write(gates.join("go"), "").expect("go");
    wait_for_file(&gates.join("done")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(site.api.build(id).await["status"], "running", "storing is being retried");
    moto.restart();
    moto.create_bucket(site.bucket.as_deref().expect("bucket")).await;
    assert_stored_whole(&site, id).await;
}

#[tokio::test]
async fn a_store_stopped_and_continued_mid_build_loses_nothing() {
    let moto = Moto::start();
    let (site, gates) = start(&moto, "60s", true).await;
    let id = site.api.trigger("app", json!({})).await;
    wait_for_log(&site, id, "before\n").await;

    moto.pause();
    std::fs::write(gates.join("go"), "").expect("go");
    // The job is not held up by the stalled store: it runs to its end meanwhile.
    wait_for_file(&gates.join("done")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(site.api.build(id).await["status"], "running", "recording waits for the store");
    moto.resume();
    assert_stored_whole(&site, id).await;
}

#[tokio::test]
async fn a_store_down_past_the_timeout_leaves_the_build_finished_and_says_the_report_is_incomplete() {
    let mut moto = Moto::start();
    let (site, gates) = start(&moto, "3s", true).await;
    let id = site.api.trigger("app", json!({})).await;
    wait_for_log(&site, id, "before\n").await;

    moto.kill();
    std::fs::write(gates.join("go"), "").expect("go");
    let build = site.api.wait_for(id, None, WAIT).await;
    assert_eq!(
        (&build["status"], &build["exit_code"]),
        (&json!("succeeded"), &json!(0)),
        "the job's result stands"
    );
    let problem = build["report_error"].as_str().expect("the report is marked incomplete");
    assert!(problem.contains("of the log could not be stored"), "{problem}");
    assert!(problem.contains("report.json could not be stored"), "{problem}");

    // With the store still down, the page says so and that the report is incomplete.
    let (status, page) = site.ui.get_text(&format!("/builds/{id}")).await;
    let page = unescape_html(&page);
    assert_eq!(status, 200);
    assert!(page.contains(r#"id="report-error">The report is incomplete: "#), "{page}");
    assert!(page.contains(r#"id="storage-error""#), "{page}");

    // Started again (moto keeps nothing: an empty bucket), the page still says it.
    moto.restart();
    moto.create_bucket(site.bucket.as_deref().expect("bucket")).await;
    let (status, page) = site.ui.get_text(&format!("/builds/{id}")).await;
    assert_eq!(status, 200);
    assert!(unescape_html(&page).contains("The report is incomplete: "));
    assert_eq!(site.ui.get(&format!("/builds/{id}/report.json")).await.status, 404);
    // And the next build is stored whole again.
    std::fs::remove_file(gates.join("done")).expect("reset");
    let next = site.api.trigger("app", json!({})).await;
    let build = site.api.wait_for(next, None, WAIT).await;
    assert_eq!((&build["status"], &build["report_error"]), (&json!("succeeded"), &json!(null)), "{build}");
}
