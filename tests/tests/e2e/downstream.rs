//! `downstream:` projects after a successful build, and a cycle that must stop.

use std::time::Duration;

use serde_json::json;
use sparky_tests::{Api, Sparky, history_row, write_project};

#[tokio::test]
async fn downstream_builds_follow_success_and_a_cycle_stops() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), "a", "downstream: [b]\nscript: echo a\n");
    write_project(
        dir.path(),
        "b",
        "downstream: [a, nowhere]\nscript: echo \"b after $SPARKY_PARENT_BUILD by $SPARKY_TRIGGER\"\n",
    );
    write_project(dir.path(), "red", "downstream: [b]\nscript: exit 1\n");
    let sparky = Sparky::up(dir.path(), &[]);
    let api = Api::new(&sparky.url);

    let a = api.trigger("a", json!({})).await;
    assert_eq!(api.wait_for(a, None, Duration::from_secs(10)).await["status"], "succeeded");
    assert!(api.log(a).await.contains("[sparky] queued downstream build #"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let b = loop {
        let list = api.get("/api/v1/projects/b/builds").await.json;
        if let Some(id) = list["builds"][0]["id"].as_i64() {
            break id;
        }
        assert!(std::time::Instant::now() < deadline, "b was not queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let build = api.wait_for(b, None, Duration::from_secs(10)).await;
    assert_eq!(
        (build["status"].as_str(), build["trigger"].as_str(), build["parent_build"].as_i64()),
        (Some("succeeded"), Some("downstream"), Some(a))
    );
    // History, and the build's own page, link the build that started it.
    let by_parent = format!(r#"<span class="trigger">downstream</span> by <a href="/builds/{a}">#{a}</a>"#);
    let row = history_row(&api.get_text("/builds").await.1, b);
    assert!(row.contains(&by_parent), "{row}");
    let page = api.get_text(&format!("/builds/{b}")).await.1;
    assert!(page.contains(&format!(r#"<dd id="trigger">{by_parent}</dd>"#)), "{page}");
    let log = api.log(b).await;
    assert!(log.starts_with(&format!("b after {a} by downstream\n")), "{log}");
    assert!(log.contains("downstream a skipped: the chain a -> b already ran it"), "{log}");
    assert!(log.contains("downstream nowhere skipped: there is no such project"), "{log}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api.get("/api/v1/projects/a/builds").await.json["builds"].as_array().map(Vec::len),
        Some(1),
        "the cycle stopped"
    );

    let red = api.trigger("red", json!({})).await;
    assert_eq!(api.wait_for(red, None, Duration::from_secs(10)).await["status"], "failed");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api.get("/api/v1/projects/b/builds").await.json["builds"].as_array().map(Vec::len),
        Some(1),
        "no downstream after a failure"
    );
}
