//! The trigger and read APIs over real HTTP.

use std::time::Duration;

use serde_json::json;
use sparky_tests::{Api, Sparky, write_project};

#[tokio::test]
async fn trigger_api_answers_and_refuses_as_documented() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(
        dir.path(),
        "app",
        "script: echo \"target=$target\"\nvars:\n  - { name: target, type: select, values: [staging, prod] }\n",
    );
    write_project(dir.path(), "off", "script: echo\ndisabled: true\n");
    let sparky = Sparky::up(dir.path(), &[]);
    let api = Api::new(&sparky.url);

    let reply = api
        .post_json("/api/v1/projects/app/builds", json!({"params": {"target": "prod"}, "description": "go"}))
        .await;
    assert_eq!(reply.status, 201);
    let id = reply.json["id"].as_i64().expect("id");
    assert_eq!(reply.headers["location"], format!("/builds/{id}"));
    assert_eq!(
        reply.json,
        json!({"id": id, "project": "app", "status": "queued", "url": format!("/builds/{id}")})
    );
    let build = api.wait_for(id, None, Duration::from_secs(10)).await;
    assert_eq!(build["status"], "succeeded");
    assert_eq!(build["params"], json!({"target": "prod"}));
    assert_eq!(build["trigger"], "api");
    assert_eq!(build["description"], "go");
    for field in ["created_at", "started_at", "finished_at"] {
        let time = build[field].as_str().unwrap_or_default();
        assert!(time.len() >= 20 && time.ends_with('Z') && time.contains('T'), "{field}: {time}");
    }
    assert_eq!(api.log(id).await, "target=prod\n");

    let cases = [
        (api.post("/api/v1/projects/nope/builds").await, 404),
        (api.post("/api/v1/projects/off/builds").await, 409),
        (api.post_json("/api/v1/projects/app/builds", json!({"params": {"target": "moon"}})).await, 400),
        (
            api.send(
                api.http
                    .post(api.url("/api/v1/projects/app/builds"))
                    .header("content-type", "application/json")
                    .body("{oops"),
            )
            .await,
            400,
        ),
        (
            api.send(api.http.post(api.url("/api/v1/projects/app/builds")).body(vec![b' '; 2 * 1024 * 1024]))
                .await,
            413,
        ),
        (api.post("/api/v1/builds/abc/cancel").await, 404),
        (api.post("/api/v1/builds/abc/rebuild").await, 404),
        (api.get("/api/v1/nothing").await, 404),
        (api.send(api.http.put(api.url("/api/v1/projects/app/builds"))).await, 405),
        (api.get(&format!("/builds/{id}/artifacts/")).await, 400),
    ];
    for (reply, expected) in cases {
        assert_eq!(reply.status, expected, "{}", reply.json);
        assert!(
            reply.json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "JSON error body: {}",
            reply.json
        );
    }
    let page = api.get("/api/v1/projects/app/builds").await;
    assert_eq!(page.json["builds"].as_array().map(Vec::len), Some(1), "refused requests queued nothing");
}

#[tokio::test]
async fn idempotency_rebuild_and_pagination() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(
        dir.path(),
        "app",
        "script: echo \"n=$n\"\nconcurrency: 4\nvars: [{ name: n, default: '0' }]\n",
    );
    let sparky = Sparky::up(dir.path(), &[]);
    let api = Api::new(&sparky.url);
    let keyed = || {
        api.http
            .post(api.url("/api/v1/projects/app/builds"))
            .header("Idempotency-Key", "release-7")
            .json(&json!({"params": {"n": "7"}}))
    };
    let first = api.send(keyed()).await;
    let second = api.send(keyed()).await;
    assert_eq!((first.status, second.status), (201, 200));
    assert_eq!(first.json["id"], second.json["id"]);
    let id = first.json["id"].as_i64().expect("id");
    api.wait_for(id, None, Duration::from_secs(10)).await;

    let rebuilt = api.post(&format!("/api/v1/builds/{id}/rebuild")).await;
    assert_eq!(rebuilt.status, 201);
    let new_id = rebuilt.json["id"].as_i64().expect("id");
    assert_ne!(new_id, id);
    let build = api.wait_for(new_id, None, Duration::from_secs(10)).await;
    assert_eq!((build["trigger"].as_str(), build["params"]["n"].as_str()), (Some("rebuild"), Some("7")));
    assert_eq!(api.log(new_id).await, "n=7\n");

    for _ in 0..5 {
        api.trigger("app", json!({})).await;
    }
    let page = api.get("/api/v1/projects/app/builds?limit=3").await;
    let ids: Vec<i64> =
        page.json["builds"].as_array().expect("builds").iter().filter_map(|b| b["id"].as_i64()).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let before = page.json["next_before"].as_i64().expect("more pages");
    let next = api.get(&format!("/api/v1/projects/app/builds?limit=3&before={before}")).await;
    let older: Vec<i64> =
        next.json["builds"].as_array().expect("builds").iter().filter_map(|b| b["id"].as_i64()).collect();
    assert_eq!(older.len(), 3);
    assert!(older.iter().all(|o| *o < ids[2]), "{older:?} after {ids:?}");
    // 7 builds in all: 3, 3, then the first one alone.
    let before = next.json["next_before"].as_i64().expect("a third page");
    let last = api.get(&format!("/api/v1/projects/app/builds?limit=3&before={before}")).await;
    assert_eq!(
        last.json["builds"].as_array().map(|b| b.iter().filter_map(|b| b["id"].as_i64()).collect::<Vec<_>>()),
        Some(vec![id])
    );
    assert_eq!(last.json["next_before"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_token_guards_the_build_changing_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), "app", "script: echo\n");
    let sparky = Sparky::up(dir.path(), &[("SPARKY_API_TOKEN", "t0ken")]);
    let api = Api::new(&sparky.url);
    let refused = api.post("/api/v1/projects/app/builds").await;
    assert_eq!(refused.status, 401);
    assert!(refused.json["error"].as_str().is_some_and(|e| e.contains("Bearer")));
    let accepted = api.send(api.http.post(api.url("/api/v1/projects/app/builds")).bearer_auth("t0ken")).await;
    assert_eq!(accepted.status, 201);
    let id = accepted.json["id"].as_i64().expect("id");
    assert_eq!(api.post(&format!("/api/v1/builds/{id}/cancel")).await.status, 401);
    let lower = api
        .http
        .post(api.url(&format!("/api/v1/builds/{id}/cancel")))
        .header("authorization", "bearer t0ken");
    assert_eq!(api.send(lower).await.status, 202, "the scheme is case-insensitive");
    assert_eq!(api.get(&format!("/api/v1/builds/{id}")).await.status, 200, "reads stay open");
}

#[tokio::test]
async fn the_log_reads_from_an_offset_while_the_build_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gate = dir.path().join("gate");
    write_project(
        dir.path(),
        "app",
        &format!(
            "script: |\n  echo first\n  while [ ! -e {g} ]; do sleep 0.05; done\n  echo second\n",
            g = gate.display()
        ),
    );
    let sparky = Sparky::up(dir.path(), &[]);
    let api = Api::new(&sparky.url);
    let id = api.trigger("app", json!({})).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while api.log(id).await != "first\n" {
        assert!(std::time::Instant::now() < deadline, "the first line never showed while running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(api.build(id).await["status"], "running");
    std::fs::write(&gate, "").expect("open the gate");
    api.wait_for(id, Some("succeeded"), Duration::from_secs(10)).await;
    let response = api.http.get(api.url(&format!("/builds/{id}/log?offset=6"))).send().await.expect("GET");
    assert_eq!(response.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(response.text().await.expect("text"), "second\n");
}

#[tokio::test]
async fn a_rebuild_checks_the_old_parameters_against_the_vars_of_now() {
    let dir = tempfile::tempdir().expect("temp dir");
    let project = |values: &str| {
        let yaml =
            format!("script: echo \"t=$t\"\nvars: [{{ name: t, type: select, values: [{values}] }}]\n");
        write_project(dir.path(), "app", &yaml);
    };
    project("a, b");
    let sparky = Sparky::up(dir.path(), &[]);
    let api = Api::new(&sparky.url);
    let id = api.trigger("app", json!({ "t": "b" })).await;
    api.wait_for(id, None, Duration::from_secs(10)).await;
    project("a, c");
    let refused = api.post(&format!("/api/v1/builds/{id}/rebuild")).await;
    assert_eq!(refused.status, 400, "{}", refused.json);
    let error = refused.json["error"].as_str().unwrap_or_default();
    assert!(error.contains("params.t") && error.contains("no longer fit"), "{error}");
    // Given anew, the parameter fits; a value the project doesn't offer, or a body that
    // isn't JSON, is refused.
    let rebuild = format!("/api/v1/builds/{id}/rebuild");
    let refused = api.post_json(&rebuild, json!({ "params": { "t": "d" } })).await;
    assert_eq!(refused.status, 400, "{}", refused.json);
    assert!(refused.json["error"].as_str().is_some_and(|e| e.starts_with("params.t:")), "{}", refused.json);
    let malformed =
        api.send(api.http.post(api.url(&rebuild)).header("content-type", "application/json").body("{")).await;
    assert_eq!(malformed.status, 400, "{}", malformed.json);
    let changed = api.post_json(&rebuild, json!({ "params": { "t": "c" }, "description": "now c" })).await;
    assert_eq!(changed.status, 201, "{}", changed.json);
    let changed = api.wait_for(changed.json["id"].as_i64().expect("id"), None, Duration::from_secs(10)).await;
    assert_eq!(
        (changed["trigger"].as_str(), changed["description"].as_str()),
        (Some("rebuild"), Some("now c"))
    );
    assert_eq!(api.log(changed["id"].as_i64().expect("id")).await, "t=c\n");
    project("a, b, c");
    let rebuilt = api.post(&format!("/api/v1/builds/{id}/rebuild")).await;
    assert_eq!(rebuilt.status, 201, "{}", rebuilt.json);
    let new_id = rebuilt.json["id"].as_i64().expect("id");
    api.wait_for(new_id, None, Duration::from_secs(10)).await;
    assert_eq!(api.log(new_id).await, "t=b\n");
}
