//! The JSON read API and the plain-text log endpoint.

use http::StatusCode;
use serde_json::Value;
use sparky_core::model::BuildStatus;

use super::{harness, put};

fn ids(body: &Value) -> Vec<i64> {
    body["builds"].as_array().expect("builds array").iter().map(|b| b["id"].as_i64().expect("id")).collect()
}

#[tokio::test]
async fn lists_projects_sorted_with_last_builds_and_broken_configs() {
    let h = harness(|_| {}).await;
    h.project("zeta", "description: Last\nscript: echo\ndisabled: true\n");
    h.project("app", "description: The app\nscript: echo\nallow_manual_run: false\n");
    h.project("broken", "script: echo\nconcurrency: lots\n");
    let first = h.queue("app", &[], None).await;
    h.start("app", first).await;
    h.finish(first, BuildStatus::Succeeded, Some(0), 0).await;
    let second = h.queue("app", &[], None).await;

    let answer = h.get("/api/v1/projects").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.content_type().starts_with("application/json"));
    let body = answer.json();
    let projects = body["projects"].as_array().expect("projects");
    let names: Vec<&str> = projects.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["app", "broken", "zeta"]);

    let app = &projects[0];
    assert_eq!(app["ok"], true);
    assert_eq!(app["error"], Value::Null);
    assert_eq!(app["description"], "The app");
    assert_eq!(app["allow_manual_run"], false);
    assert_eq!(app["disabled"], false);
    assert_eq!(app["last_build"]["id"], second);
    assert_eq!(app["last_build"]["status"], "queued");

    let broken = &projects[1];
    assert_eq!(broken["ok"], false);
    let error = broken["error"].as_str().expect("error text");
    assert!(error.starts_with("projects/broken/sparky.yaml, line 2:"), "{error}");
    assert_eq!(broken["last_build"], Value::Null);
    assert_eq!(projects[2]["disabled"], true);
}

#[tokio::test]
async fn describes_one_project_without_env_values() {
    let h = harness(|_| {}).await;
    h.project(
        "app",
        "description: Ship it\nscript: echo\ntimeout: 30m\nconcurrency: 2\nretries: 1\n\
         keep_builds: 7\ncrontab: '0 3 * * *'\ntimezone: Europe/Berlin\n\
         scm: { url: 'https://git.example/app.git', branch: main, poll: true }\n\
         downstream: [deploy]\nenv: { DB_PASSWORD: hunter2 }\n\
         vars:\n  - { name: target, type: select, values: [staging, prod], default: prod }\n",
    );
    let body = h.get("/api/v1/projects/app").await.json();
    assert_eq!(body["name"], "app");
    assert_eq!(body["ok"], true);
    assert_eq!(body["description"], "Ship it");
    assert_eq!(body["timeout_secs"], 1800);
    assert_eq!(body["concurrency"], 2);
    assert_eq!(body["retries"], 1);
    assert_eq!(body["keep_builds"], 7);
    assert_eq!(body["crontab"], "0 3 * * *");
    assert_eq!(body["timezone"], "Europe/Berlin");
    assert_eq!(body["scm"]["url"], "https://git.example/app.git");
    assert_eq!(body["scm"]["poll"], true);
    assert_eq!(body["downstream"], serde_json::json!(["deploy"]));
    assert_eq!(body["allow_manual_run"], true);
    assert_eq!(body["disabled"], false);
    assert_eq!(body["vars"][0]["name"], "target");
    assert_eq!(body["vars"][0]["type"], "select");
    assert_eq!(body["vars"][0]["default"], "prod");
    assert_eq!(body["env_keys"], serde_json::json!(["DB_PASSWORD"]));
    assert_eq!(body["last_build"], Value::Null);
    assert!(!body.to_string().contains("hunter2"), "env values may be secret");
}

#[tokio::test]
async fn a_broken_or_missing_project_says_so() {
    let h = harness(|_| {}).await;
    h.project("broken", "script: echo\ntimout: 5m\n");
    let body = h.get("/api/v1/projects/broken").await.json();
    assert_eq!(body["ok"], false);
    let error = body["error"].as_str().expect("error");
    assert!(error.contains("projects/broken/sparky.yaml, line 2") && error.contains("timout"), "{error}");
    assert!(body.get("timeout_secs").is_none(), "no config to show");

    for uri in ["/api/v1/projects/nope", "/api/v1/projects/..%2Fetc"] {
        let answer = h.get(uri).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(
            answer.json()["error"].as_str().is_some_and(|e| e.contains("there is no project")),
            "{uri}: {}",
            answer.body
        );
    }

    // A removed project's builds stay readable.
    h.queue("gone", &[], None).await;
    let body = h.get("/api/v1/projects/gone").await.json();
    assert_eq!(body["ok"], false);
    assert_eq!(body["last_build"]["project"], "gone");
}

#[tokio::test]
async fn pages_through_a_projects_builds_newest_first() {
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\n");
    h.project("other", "script: echo\n");
    for _ in 0..5 {
        h.queue("app", &[], None).await;
        h.queue("other", &[], None).await;
    }
    // app has builds 1, 3, 5, 7, 9.
    let page = h.get("/api/v1/projects/app/builds?limit=2").await.json();
    assert_eq!(ids(&page), [9, 7]);
    assert_eq!(page["next_before"], 7);
    let page = h.get("/api/v1/projects/app/builds?limit=2&before=7").await.json();
    assert_eq!(ids(&page), [5, 3]);
    assert_eq!(page["next_before"], 3);
    let page = h.get("/api/v1/projects/app/builds?limit=2&before=3").await.json();
    assert_eq!(ids(&page), [1]);
    assert_eq!(page["next_before"], Value::Null);
    let all = h.get("/api/v1/projects/app/builds").await.json();
    assert_eq!(ids(&all), [9, 7, 5, 3, 1]);
    assert_eq!(all["builds"][0]["url"], "/builds/9");

    for bad in ["limit=0", "limit=ten", "before=newest", "page=2"] {
        let answer = h.get(&format!("/api/v1/projects/app/builds?{bad}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(answer.json()["error"].is_string(), "{bad}: {}", answer.body);
    }
    let answer = h.get("/api/v1/projects/nope/builds").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.json()["error"].is_string());
}

#[tokio::test]
async fn shows_one_build_and_the_queue() {
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\nvars: [{ name: N }]\n");
    let done = h.queue("app", &[("N", "1")], Some("first")).await;
    h.start("app", done).await;
    h.finish(done, BuildStatus::Failed, Some(3), 0).await;
    let running = h.queue("app", &[], None).await;
    h.start("app", running).await;
    let queued = h.queue("app", &[], None).await;

    let answer = h.get(&format!("/api/v1/builds/{done}")).await;
    assert_eq!(answer.status, StatusCode::OK);
    let build = answer.json();
    assert_eq!(build["id"], done);
    assert_eq!(build["project"], "app");
    assert_eq!(build["status"], "failed");
    assert_eq!(build["exit_code"], 3);
    assert_eq!(build["params"]["N"], "1");
    assert_eq!(build["description"], "first");
    assert!(build["finished_at"].is_string());

    for uri in ["/api/v1/builds/99", "/api/v1/builds/abc"] {
        let answer = h.get(uri).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(answer.json()["error"].is_string(), "{uri}");
    }

    let queue = h.get("/api/v1/queue").await.json();
    assert_eq!(ids(&queue), [running, queued]);
    assert_eq!(queue["builds"][0]["status"], "running");
    assert_eq!(queue["builds"][1]["status"], "queued");
}

#[tokio::test]
async fn serves_the_log_from_an_offset() {
    let h = harness(|_| {}).await;
    let (id, mut log) = h.running_app_build().await;
    put(&h, &mut log, id, b"first line\n").await;
    put(&h, &mut log, id, b"second line\n").await;

    let answer = h.get(&format!("/builds/{id}/log")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type(), "text/plain; charset=utf-8");
    assert_eq!(answer.body, "first line\nsecond line\n");
    assert_eq!(answer.headers["x-log-size"], "23");
    assert_eq!(answer.headers["x-build-status"], "running");

    let answer = h.get(&format!("/builds/{id}/log?offset=6")).await;
    assert_eq!(answer.body, "line\nsecond line\n");
    assert_eq!(answer.headers["x-log-size"], "23");

    let answer = h.get(&format!("/builds/{id}/log?offset=500")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "");
    assert_eq!(answer.headers["x-log-size"], "23");

    h.finish(id, BuildStatus::Succeeded, Some(0), 23).await;
    let answer = h.get(&format!("/builds/{id}/log?offset=23")).await;
    assert_eq!(answer.headers["x-build-status"], "succeeded");

    let answer = h.get(&format!("/builds/{id}/log?offset=-1")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.json()["error"].is_string());
    let answer = h.get("/builds/99/log").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.json()["error"].is_string());

    let fresh = h.queue("app", &[], None).await;
    let answer = h.get(&format!("/builds/{fresh}/log")).await;
    assert_eq!(answer.status, StatusCode::OK, "no log yet is an empty log");
    assert_eq!(answer.headers["x-log-size"], "0");
    assert_eq!(answer.headers["x-build-status"], "queued");
}

#[tokio::test]
async fn follows_every_status_change_through_the_events_api() {
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\n");
    let first = h.queue("app", &[], None).await;
    h.start("app", first).await;
    h.finish(first, BuildStatus::Failed, Some(1), 0).await;
    let second = h.queue("app", &[], None).await;

    let body = h.get("/api/v1/events").await.json();
    let events = body["events"].as_array().expect("events");
    let seen: Vec<(i64, &str, &str, &str)> = events
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or("null");
            (e["build_id"].as_i64().expect("build id"), text("from"), text("to"), text("reason"))
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (first, "null", "queued", "triggered"),
            (first, "queued", "dispatched", "claimed"),
            (first, "dispatched", "running", "started"),
            (first, "running", "failed", "finished"),
            (second, "null", "queued", "triggered"),
        ]
    );
    assert_eq!(events[1]["attempt"], 1);
    assert_eq!(events[0]["url"], format!("/builds/{first}"));
    assert!(events[0]["at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let last = events[4]["id"].as_i64().expect("id");
    assert_eq!(body["next_after"], last);

    // Paging: two at a time from the second, then nothing new (the cursor stays).
    let after = events[0]["id"].as_i64().expect("id");
    let page = h.get(&format!("/api/v1/events?after={after}&limit=2")).await.json();
    assert_eq!(page["events"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["events"][0]["id"], events[1]["id"]);
    assert_eq!(page["next_after"], events[2]["id"]);
    let idle = h.get(&format!("/api/v1/events?after={last}")).await.json();
    assert_eq!((idle["events"].as_array().map(Vec::len), &idle["next_after"]), (Some(0), &Value::from(last)));

    for bad in ["after=-1", "after=x", "limit=0", "limit=many", "since=3"] {
        let answer = h.get(&format!("/api/v1/events?{bad}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        let error = answer.json()["error"].as_str().unwrap_or_default().to_string();
        let name = bad.split('=').next().unwrap_or_default();
        assert!(error.contains(name) || error.contains("unknown field"), "{bad}: {error}");
    }
    let huge = h.get("/api/v1/events?limit=100000").await;
    assert_eq!(huge.status, StatusCode::OK, "large limits are cut, not refused");
}

#[tokio::test]
async fn a_build_lists_its_attempts() {
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\n");
    let id = h.queue("app", &[], None).await;
    h.start("app", id).await;
    h.finish(id, BuildStatus::Succeeded, Some(0), 0).await;
    let build = h.get(&format!("/api/v1/builds/{id}")).await.json();
    assert_eq!((build["attempt"].as_u64(), build["retries_used"].as_u64()), (Some(1), Some(0)));
    let attempts = build["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["number"], 1);
    assert_eq!(attempts[0]["outcome"], "succeeded");
    assert_eq!(attempts[0]["reason"], "finished");
    assert!(attempts[0]["started_at"].is_string() && attempts[0]["ended_at"].is_string());
    let history = h.get("/api/v1/projects/app/builds").await.json();
    assert!(history["builds"][0].get("attempts").is_none(), "only a single build's answer lists them");
}
