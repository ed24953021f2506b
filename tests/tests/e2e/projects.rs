//! Project folders: broken configs are reported precisely, edits apply at once.

use std::time::Duration;

use serde_json::json;
use sparky_tests::{Api, Sparky, unescape_html, write_project};

#[tokio::test]
async fn a_broken_config_is_reported_and_others_keep_working_and_edits_apply() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), "good", "script: echo v1\n");
    write_project(dir.path(), "bad", "script: echo\ntimeout: [nope\n");
    let sparky = Sparky::up(dir.path(), &[]);
    let api = Api::new(&sparky.url);

    let list = api.get("/api/v1/projects").await;
    let bad = list.json["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .find(|p| p["name"] == "bad")
        .cloned()
        .expect("bad listed");
    let error = bad["error"].as_str().unwrap_or_default();
    assert!(error.contains("projects/bad/sparky.yaml") && error.contains("line"), "{error}");
    let (status, page) = api.get_text("/projects/bad").await;
    assert_eq!(status, 200);
    let page = unescape_html(&page);
    assert!(
        page.contains("projects/bad/sparky.yaml") && page.contains("line 3"),
        "the UI shows the error: {page}"
    );
    let refused = api.post("/api/v1/projects/bad/builds").await;
    assert_eq!(refused.status, 409);
    assert!(
        refused.json["error"].as_str().unwrap_or_default().contains("projects/bad/sparky.yaml, line 3"),
        "{}",
        refused.json
    );

    let id = api.trigger("good", json!({})).await;
    api.wait_for(id, Some("succeeded"), Duration::from_secs(10)).await;
    assert_eq!(api.log(id).await, "v1\n");

    // Edits apply without a restart: the fixed project builds, the edited one runs v2.
    write_project(dir.path(), "bad", "script: echo fixed\n");
    write_project(dir.path(), "good", "script: echo v2\n");
    let fixed = api.trigger("bad", json!({})).await;
    let again = api.trigger("good", json!({})).await;
    api.wait_for(fixed, Some("succeeded"), Duration::from_secs(10)).await;
    api.wait_for(again, Some("succeeded"), Duration::from_secs(10)).await;
    assert_eq!((api.log(fixed).await, api.log(again).await), ("fixed\n".into(), "v2\n".into()));
    // A project added while running appears at once.
    write_project(dir.path(), "new", "script: echo new\n");
    assert_eq!(api.get("/api/v1/projects/new").await.status, 200);
}
