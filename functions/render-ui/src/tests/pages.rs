//! The HTML pages, the badge and the stylesheet.

use axum::routing::post;
use http::{StatusCode, header};
use serde_json::Value;
use sparky_core::{model::BuildStatus, secrets::Secret};

use super::{harness, put};

const SCRIPT: &str = "<script>alert(1)</script>";
const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;&#x2f;script&gt;";

#[tokio::test]
async fn the_projects_page_lists_projects_errors_and_last_builds() {
    let h = harness(|_| {}).await;
    h.project("app", &format!("description: \"{SCRIPT}\"\nscript: echo\n"));
    h.project("broken", "script: echo\nconcurrency: lots\n");
    let id = h.queue("app", &[], None).await;
    h.start("app", id).await;
    h.finish(id, BuildStatus::Failed, Some(1), 0).await;

    let page = h.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.content_type(), "text/html; charset=utf-8");
    assert!(page.body.contains(r#"<a href="/projects/app">app</a>"#), "{}", page.body);
    assert!(page.body.contains(ESCAPED), "description escaped");
    assert!(!page.body.contains(SCRIPT), "no raw script from a description");
    assert!(page.body.contains(r#"<a href="/builds/1">#1</a>"#));
    assert!(page.body.contains(r#"<span class="badge status-failed">failed</span>"#));
    // The broken project names its file, line and problem.
    assert!(page.body.contains("projects&#x2f;broken&#x2f;sparky.yaml"), "{}", page.body);
    assert!(page.body.contains("line 2"));
    assert!(page.body.contains("concurrency"));
    assert!(page.body.contains(r#"href="/static/sparky.css""#));

    let empty = harness(|_| {}).await.get("/").await;
    assert!(empty.body.contains("No projects yet"));
}

#[tokio::test]
async fn the_run_form_has_a_field_for_each_parameter() {
    let h = harness(|_| {}).await;
    h.project(
        "app",
        "script: echo\nvars:\n\
         \x20 - { name: target, type: select, values: [staging, prod], default: prod }\n\
         \x20 - { name: note, type: text, default: 'a \"quoted\" note', description: What to say }\n\
         \x20 - { name: dry_run, type: checkbox, default: true }\n\
         \x20 - { name: fast, type: checkbox }\n\
         \x20 - { name: notes, type: textarea, default: 'line one' }\n",
    );
    let page = h.get("/projects/app").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(
        body.contains(r#"<form id="run-form" method="post" action="&#x2f;api&#x2f;v1&#x2f;projects&#x2f;app&#x2f;builds" enctype="application/x-www-form-urlencoded">"#),
        "{body}"
    );
    assert!(body.contains(r#"<select id="var-target" name="target">"#));
    assert!(body.contains(r#"<option value="staging">staging</option>"#));
    assert!(body.contains(r#"<option value="prod" selected>prod</option>"#));
    assert!(
        body.contains(r#"<input type="text" id="var-note" name="note" value="a &quot;quoted&quot; note">"#)
    );
    assert!(body.contains("What to say"));
    // A hidden `false` first, then the box: the trigger takes the last value.
    assert!(body.contains(
        r#"<input type="hidden" name="dry_run" value="false"><input type="checkbox" id="var-dry_run" name="dry_run" value="true" checked>"#
    ));
    assert!(body.contains(
        r#"<input type="hidden" name="fast" value="false"><input type="checkbox" id="var-fast" name="fast" value="true">"#
    ));
    assert!(body.contains("name=\"notes\" rows=\"4\">\nline one</textarea>"));
    assert!(body.contains(r#"name="description""#));
    assert!(!body.contains(r#"name="_token""#), "no token configured");

    // With a token set, people log in first; their form then carries the session's
    // form token, never the API token.
    let h = harness(|c| c.api_token = Some(Secret::new("s3cret"))).await;
    h.project("app", "script: echo\n");
    let body = h.get("/projects/app").await.body;
    assert!(
        body.contains(r#"<a href="/login?next=/projects/app">Log in</a> to run this project."#),
        "{body}"
    );
    assert!(!body.contains("run-form"));
    let cookie = h.log_in("s3cret").await;
    let body = h.get_with("/projects/app", &[("cookie", &cookie)]).await.body;
    assert!(body.contains(r#"id="run-form""#), "{body}");
    assert!(body.matches(r#"<input type="hidden" name="_csrf" value=""#).count() >= 1, "{body}");
    assert!(!body.contains("s3cret") && !body.contains("_token"));
}

#[tokio::test]
async fn no_run_form_when_a_project_cannot_be_run_by_hand() {
    let h = harness(|_| {}).await;
    h.project("off", "script: echo\ndisabled: true\n");
    h.project("auto", "script: echo\nallow_manual_run: false\n");
    h.project("broken", "script: echo\ntimout: 5m\n");
    for (name, says) in [("off", "disabled"), ("auto", "allow_manual_run: false"), ("broken", "timout")] {
        let page = h.get(&format!("/projects/{name}")).await;
        assert_eq!(page.status, StatusCode::OK, "{name}");
        assert!(!page.body.contains("run-form"), "{name}");
        assert!(page.body.contains(says), "{name}: {}", page.body);
    }
    let broken = h.get("/projects/broken").await.body;
    assert!(broken.contains("projects&#x2f;broken&#x2f;sparky.yaml"));
    assert!(broken.contains("line 2"));
}

#[tokio::test]
async fn the_project_page_pages_through_history() {
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\n");
    for _ in 0..25 {
        h.queue("app", &[], None).await;
    }
    let page = h.get("/projects/app").await.body;
    assert!(page.contains(r#"<a href="/builds/25">#25</a>"#));
    assert!(page.contains(r#"<a href="/builds/6">#6</a>"#));
    assert!(!page.contains(r#"<a href="/builds/5">#5</a>"#), "20 a page");
    assert!(page.contains(r#"<a href="&#x2f;projects&#x2f;app?before=6" id="older">Older</a>"#));
    let older = h.get("/projects/app?before=6").await.body;
    assert!(older.contains(r#"<a href="/builds/5">#5</a>"#));
    assert!(older.contains(r#"<a href="/builds/1">#1</a>"#));
    assert!(!older.contains(r#"<a href="/builds/6">#6</a>"#));
    assert!(!older.contains(r#"id="older""#), "the last page");
    assert!(older.contains(r#"id="newest""#));
}

#[tokio::test]
async fn unknown_pages_are_html_404s_saying_what_is_missing() {
    let h = harness(|_| {}).await;
    for (uri, says) in [
        ("/projects/nope", "there is no project &quot;nope&quot;"),
        ("/builds/42", "there is no build 42"),
        ("/builds/abc", "there is no build abc"),
    ] {
        let page = h.get(uri).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(page.content_type(), "text/html; charset=utf-8", "{uri}");
        assert!(page.body.contains("<h1>Not found</h1>"), "{uri}");
        assert!(page.body.contains(says), "{uri}: {}", page.body);
    }
}

#[tokio::test]
async fn the_build_page_shows_the_build_escaped_with_its_log() {
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\nvars: [{ name: msg }]\n");
    let id = h.queue("app", &[("msg", SCRIPT)], Some(SCRIPT)).await;
    h.start("app", id).await;
    let mut log = h.log_writer("app", id);
    put(&h, &mut log, id, b"compiling <b>app</b>\n").await;

    let page = h.get(&format!("/builds/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    assert!(!body.contains(SCRIPT), "{body}");
    assert!(body.contains(&format!(r#"<p class="description" id="description">{ESCAPED}</p>"#)));
    assert!(body.contains(&format!("<th>msg</th><td><pre>{ESCAPED}</pre></td>")));
    assert!(body.contains(r#"<span class="badge status-running" id="status">running</span>"#));
    assert!(body.contains(r#"<a href="/projects/app">app</a>"#));
    assert!(body.contains("compiling &lt;b&gt;app&lt;/b&gt;\n</pre>"), "{body}");
    assert!(body.contains(r#"data-build="1" data-offset="21""#), "{body}");
    // Live: follow with JavaScript, refresh without it, and offer Cancel.
    // Without scripts it refreshes to the log's end, alternating between two URLs: one
    // with only a fragment added to the page's own would just scroll.
    let refresh =
        |to: &str| format!(r#"<noscript><meta http-equiv="refresh" content="3; url={to}"></noscript>"#);
    assert!(body.contains(&refresh("&#x2f;builds&#x2f;1?follow=1#end-of-log")), "{body}");
    assert!(body.contains("</pre>\n<div id=\"end-of-log\"></div>"), "the anchor ends the log");
    let following = h.get(&format!("/builds/{id}?follow=1")).await.body;
    assert!(following.contains(&refresh("&#x2f;builds&#x2f;1#end-of-log")), "{following}");
    // A part of the log reloads as it is.
    let part = h.get(&format!("/builds/{id}?from=0")).await.body;
    assert!(part.contains(r#"<noscript><meta http-equiv="refresh" content="3"></noscript>"#), "{part}");
    assert!(body.contains(r#"<script src="/static/build.js" defer></script>"#), "{body}");
    assert!(!body.contains("<script>"), "no inline script");
    let script = h.get("/static/build.js").await;
    assert!(script.content_type().starts_with("text/javascript") && script.body.contains("new EventSource("));
    assert!(body.contains(r#"action="/api/v1/builds/1/cancel""#));
    assert!(body.contains(r#"action="/api/v1/builds/1/rebuild""#));
    assert!(body.contains(r#"href="/builds/1/log""#));
    assert!(!body.contains("_token"));

    h.finish(id, BuildStatus::Succeeded, Some(0), 21).await;
    let body = h.get(&format!("/builds/{id}")).await.body;
    assert!(body.contains(r#"<span class="badge status-succeeded" id="status">succeeded</span>"#));
    assert!(body.contains("<dt>Exit code</dt><dd>0</dd>"));
    assert!(body.contains("<dt>Duration</dt>"));
    assert!(body.contains("<dt>Finished</dt>"));
    assert!(!body.contains("http-equiv=\"refresh\""), "finished: no refresh");
    assert!(body.contains(r#"data-live="false""#), "finished: nothing to follow");
    assert!(!body.contains("/cancel"), "finished: nothing to cancel");
    assert!(body.contains(r#"action="/api/v1/builds/1/rebuild""#));
}

#[tokio::test]
async fn the_build_page_asks_people_to_log_in_when_a_token_is_set() {
    let h = harness(|c| c.api_token = Some(Secret::new("s3cret"))).await;
    h.project("app", "script: echo\n");
    let id = h.queue("app", &[], None).await;
    let body = h.get(&format!("/builds/{id}")).await.body;
    assert!(body.contains("to cancel or rebuild.") && !body.contains("cancel-form"), "{body}");
    assert!(body.contains(r#"id="login-link""#));
    let cookie = h.log_in("s3cret").await;
    let body = h.get_with(&format!("/builds/{id}"), &[("cookie", &cookie)]).await.body;
    assert_eq!(
        body.matches(r#"<input type="hidden" name="_csrf" value=""#).count(),
        3,
        "in the Cancel, Rebuild and Log out forms: {body}"
    );
    assert!(!body.contains("_token") && body.contains(r#"id="logout""#));
}

#[tokio::test]
async fn a_long_log_shows_its_end_and_links_the_whole() {
    let h = harness(|_| {}).await;
    let (id, mut log) = h.running_app_build().await;
    let line = "é".repeat(40) + "\n"; // 81 bytes, two per character
    let text = line.repeat(20_000); // about 1.5 MiB
    put(&h, &mut log, id, text.as_bytes()).await;
    put(&h, &mut log, id, b"the end\n").await;
    let size = text.len() + 8;

    let body = h.get(&format!("/builds/{id}")).await.body.replace("&#x2f;", "/");
    assert!(body.contains("Showing 1.0 MiB of 1.5 MiB."), "shows the tail");
    assert!(body.contains("the end\n</pre>"));
    assert!(body.contains(&format!(r#"data-offset="{size}""#)));
    assert!(!body.contains('\u{FFFD}'), "starts at a character");
    let lines = body.matches(r#"<a class="ln" id="L"#).count();
    assert!((12_000..13_000).contains(&lines), "not the whole log: {lines} lines of 20,001");
    // Numbered from the part shown, the links saying which part.
    assert!(body.contains(&format!(r#"href="/builds/{id}?from="#)) && body.contains(r#"id="L1" "#));
    assert!(body.contains(r#"href="/builds/1/log?download=1" id="download-log""#));
    assert!(!body.contains(r#"id="log-later""#), "the tail has nothing later");

    // Earlier parts on request: the link goes to the part just before the tail.
    // (The tail starts 1 MiB before the end, or a byte later, at a character.)
    let start = size as u64 - 1024 * 1024;
    let earlier =
        |at: u64| format!(r#"href="/builds/{id}?from={}" id="log-earlier""#, at.saturating_sub(1024 * 1024));
    assert!(body.contains(&earlier(start)) || body.contains(&earlier(start + 1)), "a link to earlier parts");
    let first = h.get(&format!("/builds/{id}?from=0")).await.body.replace("&#x2f;", "/");
    assert!(first.contains(&format!("<pre id=\"log\" class=\"log\" data-build=\"{id}\" data-offset=")));
    assert!(
        first.contains(&format!(">\n<a class=\"ln\" id=\"L1\" href=\"#L1\">1</a>{line}<a class=\"ln\" id=\"L2\" href=\"#L2\">2</a>{line}")),
        "starts at the beginning, its lines numbered from 1"
    );
    assert!(first.contains(r#"id="log-later""#) && !first.contains(r#"id="log-earlier""#));
    assert!(!first.contains("new EventSource("), "only the tail is followed live");
    let odd = h.get(&format!("/builds/{id}?from=1")).await.body;
    assert!(!odd.contains('\u{FFFD}'), "a window starts at a character");
    assert_eq!(h.get(&format!("/builds/{id}?from=x")).await.status, StatusCode::BAD_REQUEST);
    let download = h.get(&format!("/builds/{id}/log?download=1")).await;
    assert_eq!(download.headers[header::CONTENT_DISPOSITION], "attachment; filename=\"app-1.log\"");
    assert_eq!(download.body.len(), size);
}

#[tokio::test]
async fn the_queue_page_shows_live_builds() {
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\n");
    let done = h.queue("app", &[], None).await;
    h.start("app", done).await;
    h.finish(done, BuildStatus::Succeeded, Some(0), 0).await;
    let running = h.queue("app", &[], None).await;
    h.start("app", running).await;
    let queued = h.queue("app", &[], Some(SCRIPT)).await;

    let body = h.get("/queue").await.body;
    assert!(body.contains(&format!(r#"<a href="/builds/{running}">#{running}</a>"#)));
    assert!(body.contains(&format!(r#"<a href="/builds/{queued}">#{queued}</a>"#)));
    assert!(!body.contains(&format!(r#"<a href="/builds/{done}">"#)));
    assert!(body.contains(r#"<span class="badge status-running">running</span>"#));
    assert!(body.contains(r#"<span class="badge status-queued">queued</span>"#));
    assert!(body.contains(r#"class="ago""#) && body.contains(" UTC</time>"), "UTC until time.js runs");
    assert!(body.contains(ESCAPED) && !body.contains(SCRIPT));
    assert!(body.find("running</span>") < body.find("queued</span>"), "oldest first");
    assert!(
        body.contains(&format!(r#"<td data-label="Waiting for" class="waiting-for">project&#x27;s concurrency 1 reached: #{running} running</td>"#)),
        "{body}"
    );
    let api = h.get("/api/v1/queue").await.json();
    let waiting: Vec<(i64, Value)> = api["builds"]
        .as_array()
        .expect("builds")
        .iter()
        .map(|b| (b["id"].as_i64().unwrap_or(0), b["waiting_for"].clone()))
        .collect();
    assert_eq!(
        waiting,
        [
            (running, Value::Null),
            (queued, Value::from(format!("project's concurrency 1 reached: #{running} running")))
        ]
    );

    let empty = harness(|_| {}).await.get("/queue").await.body;
    assert!(empty.contains("Nothing is queued or running."));
}

#[tokio::test]
async fn badges_show_the_last_status() {
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\n");
    let badge = h.get("/projects/app/badge.svg").await;
    assert_eq!(badge.status, StatusCode::OK);
    assert_eq!(badge.content_type(), "image/svg+xml");
    assert!(badge.body.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(badge.body.contains("<title>build: no builds</title>"));

    let id = h.queue("app", &[], None).await;
    h.start("app", id).await;
    h.finish(id, BuildStatus::TimedOut, None, 0).await;
    let badge = h.get("/projects/app/badge.svg").await;
    assert!(badge.body.contains("<title>build: timed out</title>"));
    assert!(badge.body.contains("#c62828"), "red");

    let missing = h.get("/projects/nope/badge.svg").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("not found"));
}

#[tokio::test]
async fn serves_its_stylesheet() {
    let h = harness(|_| {}).await;
    let css = h.get("/static/sparky.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.content_type(), "text/css; charset=utf-8");
    assert!(css.body.contains(".status-succeeded"));
}

#[tokio::test]
async fn mounts_beside_the_trigger_routes() {
    // `sparky up` merges every function's router: GET here and POST there on the same
    // paths must not collide.
    let h = harness(|_| {}).await;
    let trigger = axum::Router::new()
        .route("/api/v1/projects/{project}/builds", post(|| async { "posted" }))
        .route("/api/v1/builds/{id}/cancel", post(|| async { "canceled" }));
    let _merged = crate::router(h.ctx.clone()).merge(trigger);
}

#[tokio::test]
async fn the_build_page_lists_attempts_and_why_each_ended() {
    let h = harness(|c| c.lease = std::time::Duration::from_millis(1)).await;
    h.project("app", "script: echo\n");
    let id = h.queue("app", &[], None).await;
    sparky_core::testing::claim(&h.ctx, "app").await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // Its lease ran out before any runner took it: back in the queue.
    let swept = h.ctx.sweep_leases(Default::default()).await.expect("sweep");
    assert_eq!(swept.iter().map(|e| e.to).collect::<Vec<_>>(), vec![BuildStatus::Queued]);
    h.start("app", id).await;
    h.finish(id, BuildStatus::Succeeded, Some(0), 0).await;

    let page = h.get(&format!("/builds/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let table = page.body.split("id=\"attempts\"").nth(1).expect("an attempts table");
    let first =
        table.split("id=\"attempt-1\"").nth(1).expect("attempt 1").split("</tr>").next().unwrap_or("");
    assert!(first.contains("never") && first.contains("delivery lost: it never started"), "{first}");
    let second =
        table.split("id=\"attempt-2\"").nth(1).expect("attempt 2").split("</tr>").next().unwrap_or("");
    assert!(second.contains("succeeded") && second.contains("finished"), "{second}");
    assert!(page.body.contains("<dt>Attempt</dt><dd>2</dd>"), "the current attempt's number");

    // One plain attempt needs no table.
    let plain = h.queue("app", &[], None).await;
    h.start("app", plain).await;
    h.finish(plain, BuildStatus::Succeeded, Some(0), 0).await;
    assert!(!h.get(&format!("/builds/{plain}")).await.body.contains("id=\"attempts\""));
}
