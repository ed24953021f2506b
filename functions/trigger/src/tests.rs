//! The trigger router, called in-process against a real store in a temp folder.

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use sparky_core::{
    Config, Ctx,
    model::BuildStatus,
    reports::Key,
    secrets::Secret,
    testing::{self, TempCtx},
};
use tower::ServiceExt;

struct Harness {
    temp: TempCtx,
    ctx: Ctx,
}

async fn harness(configure: impl FnOnce(&mut Config)) -> Harness {
    let temp = TempCtx::new(configure).await;
    Harness { ctx: temp.ctx.clone(), temp }
}

/// The headers of a logged-in person's form: their session's cookie, and a form body.
/// Their form token is `form-token`.
type FormHeaders = ((&'static str, &'static str), (&'static str, &'static str));

impl Harness {
    /// Logs a person in (a session whose form token is `form-token`).
    async fn logged_in(&self) -> FormHeaders {
        use sparky_core::{secrets::token_hash, store::Session, time::now_ms};
        let session = Session {
            id_hash: token_hash("cookie-value"),
            csrf: "form-token".into(),
            expires_at: now_ms() + 60_000,
        };
        self.ctx.store.create_session(session, now_ms()).await.expect("session");
        (("cookie", "sparky_session=cookie-value"), ("content-type", "application/x-www-form-urlencoded"))
    }

    fn project(&self, name: &str, yaml: &str) {
        self.temp.project(name, yaml);
    }

    async fn post(
        &self,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> (StatusCode, http::HeaderMap, Value) {
        let mut request = Request::post(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = crate::router(crate::Ticker::new(self.ctx.clone()))
            .oneshot(request.body(body.into()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let json =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("JSON body") };
        (status, headers, json)
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn triggers_a_build_with_params_and_defaults() {
    let h = harness(|_| {}).await;
    h.project(
        "app",
        "script: echo hi\nvars:\n  - { name: target, type: select, values: [staging, prod] }\n  - { name: note }\n",
    );
    let (status, headers, body) = h
        .post(
            "/api/v1/projects/app/builds",
            &[JSON],
            r#"{"params": {"target": "prod"}, "description": "ship"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers[header::LOCATION], "/builds/1");
    assert_eq!(body, serde_json::json!({"id": 1, "project": "app", "status": "queued", "url": "/builds/1"}));
    let build = h.ctx.store.build(1).await.expect("read").expect("stored");
    assert_eq!(build.params.get("target").map(String::as_str), Some("prod"));
    assert_eq!(build.params.get("note").map(String::as_str), Some(""));
    assert_eq!(build.description.as_deref(), Some("ship"));

    let (status, _, _) = h.post("/api/v1/projects/app/builds", &[], "").await;
    assert_eq!(status, StatusCode::CREATED, "no body at all is fine");
}

#[tokio::test]
async fn refuses_bad_requests_with_json_errors_and_queues_nothing() {
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\nvars:\n  - { name: target, type: select, values: [staging, prod] }\n");
    h.project("off", "script: echo\ndisabled: true\n");
    h.project("auto", "script: echo\nallow_manual_run: false\n");
    h.project("broken", "script: echo\nconcurrency: lots\n");
    let cases: &[(&str, &str, StatusCode, &str)] = &[
        ("/api/v1/projects/nope/builds", "", StatusCode::NOT_FOUND, "no project \"nope\""),
        ("/api/v1/projects/..%2Fetc/builds", "", StatusCode::NOT_FOUND, "no project"),
        ("/api/v1/projects/off/builds", "", StatusCode::CONFLICT, "disabled"),
        ("/api/v1/projects/auto/builds", "", StatusCode::CONFLICT, "allow_manual_run: false"),
        ("/api/v1/projects/broken/builds", "", StatusCode::CONFLICT, "projects/broken/sparky.yaml, line 2"),
        ("/api/v1/projects/app/builds", "{\"params\": ", StatusCode::BAD_REQUEST, "malformed JSON"),
        ("/api/v1/projects/app/builds", "{\"parms\": {}}", StatusCode::BAD_REQUEST, "unknown field `parms`"),
        (
            "/api/v1/projects/app/builds",
            r#"{"params": {"target": "moon"}}"#,
            StatusCode::BAD_REQUEST,
            "params.target",
        ),
        (
            "/api/v1/projects/app/builds",
            r#"{"params": {"color": "red"}}"#,
            StatusCode::BAD_REQUEST,
            "params.color",
        ),
    ];
    for (uri, body, expected, message) in cases {
        let (status, _, json) = h.post(uri, &[JSON], *body).await;
        assert_eq!(status, *expected, "{uri} {body}: {json}");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{uri} {body}: {error}");
    }
    let huge = format!("{{\"description\": \"{}\"}}", "x".repeat(1024 * 1024));
    let (status, _, json) = h.post("/api/v1/projects/app/builds", &[JSON], huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(json["error"].as_str().is_some_and(|e| e.contains("larger than")));
    assert!(h.ctx.store.live_builds().await.expect("live").is_empty());
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_build() {
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\n");
    let key = ("idempotency-key", "deploy-42");
    let (first, _, a) = h.post("/api/v1/projects/app/builds", &[key], "").await;
    let (again, headers, b) = h.post("/api/v1/projects/app/builds", &[key], "").await;
    assert_eq!((first, again), (StatusCode::CREATED, StatusCode::OK));
    assert_eq!(a, b);
    assert_eq!(headers[header::LOCATION], "/builds/1");
    assert_eq!(h.ctx.store.live_builds().await.expect("live").len(), 1);

    // The same key asking for something else is not the same request.
    h.project("other", "script: echo\n");
    h.project("vars", "script: echo\nvars: [{ name: N, default: '1' }]\n");
    let key = ("idempotency-key", "deploy-43");
    let (first, _, _) = h.post("/api/v1/projects/vars/builds", &[JSON, key], r#"{"params": {"N": 2}}"#).await;
    assert_eq!(first, StatusCode::CREATED);
    let conflicts = [
        ("/api/v1/projects/vars/builds", r#"{"params": {"N": 3}}"#, "other params"),
        (
            "/api/v1/projects/vars/builds",
            r#"{"params": {"N": 2}, "description": "x"}"#,
            "another description",
        ),
        ("/api/v1/projects/other/builds", "{}", "of project vars, not other"),
    ];
    for (path, body, says) in conflicts {
        let (status, _, json) = h.post(path, &[JSON, key], body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path} {body}: {json}");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(error.contains(says) && error.contains("build 2"), "{error}");
    }
    let (again, _, _) =
        h.post("/api/v1/projects/vars/builds", &[JSON, key], r#"{"params": {"N": "2"}}"#).await;
    assert_eq!(again, StatusCode::OK, "the same request again still gets its build");
    assert_eq!(h.ctx.store.live_builds().await.expect("live").len(), 2, "conflicts queued nothing");
}

#[tokio::test]
async fn cancels_and_rebuilds() {
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\nvars: [{ name: N, default: '1' }]\n");
    h.post("/api/v1/projects/app/builds", &[JSON], r#"{"params": {"N": 7}}"#).await;
    let (status, _, body) = h.post("/api/v1/builds/1/cancel", &[], "").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["status"], "canceled");
    let build = h.ctx.store.build(1).await.expect("read").expect("stored");
    assert_eq!(build.status, BuildStatus::Canceled);
    let report =
        sparky_core::reports::get_bytes(h.ctx.reports.as_ref(), &Key::report("app", 1).expect("key"))
            .await
            .expect("read")
            .expect("a build canceled while queued has its report.json");
    let report: serde_json::Value = serde_json::from_slice(&report).expect("JSON");
    assert_eq!((report["status"].as_str(), report["attempt"].as_u64()), (Some("canceled"), Some(0)));
    let (status, _, body) = h.post("/api/v1/builds/1/cancel", &[], "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _, _) = h.post("/api/v1/builds/99/cancel", &[], "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, headers, body) = h.post("/api/v1/builds/1/rebuild", &[], "").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers[header::LOCATION], "/builds/2");
    assert_eq!(body["status"], "queued");
    let rebuilt = h.ctx.store.build(2).await.expect("read").expect("stored");
    assert_eq!(rebuilt.params.get("N").map(String::as_str), Some("7"));
    assert_eq!(rebuilt.trigger.as_str(), "rebuild");
}

#[tokio::test]
async fn forms_land_on_the_build_page() {
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\nvars: [{ name: fast, type: checkbox, default: true }]\n");
    let form = ("content-type", "application/x-www-form-urlencoded");
    let (status, headers, _) =
        h.post("/api/v1/projects/app/builds", &[form], "fast=false&description=from+the+form").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/builds/1");
    let build = h.ctx.store.build(1).await.expect("read").expect("stored");
    assert_eq!(build.params.get("fast").map(String::as_str), Some("false"));
    assert_eq!(build.description.as_deref(), Some("from the form"));
}

#[tokio::test]
async fn a_configured_token_is_required() {
    let h = harness(|c| c.api_token = Some(Secret::new("s3cret"))).await;
    h.project("app", "script: echo\n");
    let (status, _, body) = h.post("/api/v1/projects/app/builds", &[], "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().is_some_and(|e| e.contains("Authorization: Bearer")));
    let (status, _, _) =
        h.post("/api/v1/projects/app/builds", &[("authorization", "Bearer wrong")], "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = h.post("/api/v1/builds/1/cancel", &[], "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) =
        h.post("/api/v1/projects/app/builds", &[("authorization", "Bearer s3cret")], "").await;
    assert_eq!(status, StatusCode::CREATED);
    let form = ("content-type", "application/x-www-form-urlencoded");
    let (status, _, _) = h.post("/api/v1/projects/app/builds", &[form], "_token=s3cret").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn deleting_a_history_needs_the_token_and_keeps_live_builds() {
    use sparky_core::model::NewBuild;

    let h = harness(|c| c.api_token = Some(Secret::new("s3cret"))).await;
    h.project("app", "script: echo hi\n");
    let queue = || h.ctx.queue_build(NewBuild { project: "app".into(), ..NewBuild::default() });
    let done = queue().await.expect("queue").build.id;
    h.ctx.cancel_build(done).await.expect("cancel the queued build: it is finished");
    let live = queue().await.expect("queue").build.id;
    let report = Key::report("app", done).expect("key");
    h.ctx.reports.put(&report, axum::body::Bytes::from_static(b"{}")).await.expect("put");

    let delete = |token: Option<&str>| {
        let mut request = Request::delete("/api/v1/projects/app/builds");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        crate::router(crate::Ticker::new(h.ctx.clone()))
            .oneshot(request.body(Body::empty()).expect("request"))
    };
    for token in [None, Some("wrong")] {
        let refused = delete(token).await.expect("response");
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    assert!(h.ctx.store.build(done).await.expect("read").is_some(), "a refused call deletes nothing");

    let answer = delete(Some("s3cret")).await.expect("response");
    assert_eq!(answer.status(), StatusCode::OK);
    let bytes = answer.into_body().collect().await.expect("body").to_bytes();
    let json: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(json, serde_json::json!({ "project": "app", "deleted": 1, "kept_live": 1 }));
    assert!(h.ctx.store.build(done).await.expect("read").is_none());
    assert!(h.ctx.store.build(live).await.expect("read").is_some(), "a queued build stays");
    assert!(h.ctx.reports.list("projects/app/").await.expect("list").is_empty(), "its reports went too");

    // A logged-in person's cookie alone is not enough: another site's page could make
    // the browser send it. Their session's form token goes in a header.
    let done = queue().await.expect("queue").build.id;
    h.ctx.cancel_build(done).await.expect("cancel: finished");
    let (cookie, _) = h.logged_in().await;
    let by_person = |form_token: Option<&str>| {
        let mut request = Request::delete("/api/v1/projects/app/builds").header(cookie.0, cookie.1);
        if let Some(form_token) = form_token {
            request = request.header("x-sparky-form-token", form_token);
        }
        crate::router(crate::Ticker::new(h.ctx.clone()))
            .oneshot(request.body(Body::empty()).expect("request"))
    };
    for form_token in [None, Some("guess")] {
        let refused = by_person(form_token).await.expect("response");
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "form token {form_token:?}");
    }
    assert!(h.ctx.store.build(done).await.expect("read").is_some(), "a refused call deletes nothing");
    assert_eq!(by_person(Some("form-token")).await.expect("response").status(), StatusCode::OK);
    assert!(h.ctx.store.build(done).await.expect("read").is_none(), "the person's call deleted it");
}

#[tokio::test]
async fn a_logged_in_persons_form_needs_the_sessions_form_token() {
    let h = harness(|c| c.api_token = Some(Secret::new("admin"))).await;
    h.project("app", "script: echo\n");
    let (cookie, form) = h.logged_in().await;
    let (status, _, body) = h.post("/api/v1/projects/app/builds", &[cookie, form], "description=x").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no form token: {body}");
    let (status, _, _) = h.post("/api/v1/projects/app/builds", &[cookie, form], "_csrf=guess").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a wrong form token");
    assert!(h.ctx.store.live_builds().await.expect("live").is_empty(), "nothing queued");
    let (status, headers, _) =
        h.post("/api/v1/projects/app/builds", &[cookie, form], "_csrf=form-token").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/builds/1");
    let (status, _, _) = h.post("/api/v1/builds/1/cancel", &[cookie, form], "_csrf=form-token").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "a person may cancel");
    // No session, no token: a guarded API refuses.
    let (status, _, _) = h.post("/api/v1/projects/app/builds", &[form], "_csrf=form-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A browser's form whose session ended, or whose cookie was never one: the login
    // page, which brings the person back to the form's page.
    let html = ("accept", "text/html,application/xhtml+xml");
    for cookie in ["sparky_session=forged", "sparky_session=cookie-value"] {
        if cookie.ends_with("cookie-value") {
            h.ctx.store.end_session(&sparky_core::secrets::token_hash("cookie-value")).await.expect("end it");
        }
        let (status, headers, _) = h
            .post("/api/v1/projects/app/builds", &[("cookie", cookie), form, html], "_csrf=form-token")
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{cookie}");
        assert_eq!(headers[header::LOCATION], "/login?next=%2Fprojects%2Fapp", "{cookie}");
    }
    assert_eq!(h.ctx.store.live_builds().await.expect("live").len(), 0, "nothing queued");
}

#[tokio::test]
async fn a_rebuild_may_change_some_params_and_its_description() {
    let h = harness(|_| {}).await;
    h.project(
        "app",
        "script: echo\nvars:\n  - { name: target, type: select, values: [staging, prod] }\n  - { name: note }\n",
    );
    let (status, _, _) = h
        .post("/api/v1/projects/app/builds", &[JSON], r#"{"params": {"target": "prod", "note": "first"}}"#)
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, headers, body) = h
        .post("/api/v1/builds/1/rebuild", &[JSON], r#"{"params": {"note": "again"}, "description": "retry"}"#)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(headers[header::LOCATION], "/builds/2");
    let rebuilt = h.ctx.store.build(2).await.expect("read").expect("stored");
    assert_eq!(rebuilt.params.get("target").map(String::as_str), Some("prod"), "kept");
    assert_eq!(rebuilt.params.get("note").map(String::as_str), Some("again"), "given");
    assert_eq!(rebuilt.description.as_deref(), Some("retry"));
    assert_eq!(rebuilt.trigger.as_str(), "rebuild");

    let (status, _, _) = h.post("/api/v1/builds/1/rebuild", &[JSON], "{}").await;
    assert_eq!(status, StatusCode::CREATED, "an empty object is no change");
    let plain = h.ctx.store.build(3).await.expect("read").expect("stored");
    assert_eq!(plain.params.get("note").map(String::as_str), Some("first"));
    assert_eq!(plain.description.as_deref(), Some("Rebuild of #1"));

    let cases: &[(&str, StatusCode, &str)] = &[
        (r#"{"params": {"target": "moon"}}"#, StatusCode::BAD_REQUEST, "params.target"),
        (r#"{"params": {"color": "red"}}"#, StatusCode::BAD_REQUEST, "params.color"),
        (r#"{"params": {"note": ["a"]}}"#, StatusCode::BAD_REQUEST, "params.note"),
        (r#"{"params": "#, StatusCode::BAD_REQUEST, "malformed JSON"),
        (r#"{"parms": {}}"#, StatusCode::BAD_REQUEST, "unknown field `parms`"),
    ];
    for (body, expected, message) in cases {
        let (status, _, json) = h.post("/api/v1/builds/1/rebuild", &[JSON], *body).await;
        assert_eq!(status, *expected, "{body}: {json}");
        let error = json["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{body}: {error}");
    }
    let huge = format!("{{\"description\": \"{}\"}}", "x".repeat(1024 * 1024));
    let (status, _, _) = h.post("/api/v1/builds/1/rebuild", &[JSON], huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(h.ctx.store.live_builds().await.expect("live").len(), 3, "refusals queued nothing");

    // A value of the earlier build that the project no longer offers may be replaced.
    h.project("app", "script: echo\nvars:\n  - { name: target, type: select, values: [staging, qa] }\n  - { name: note }\n");
    let (status, _, json) = h.post("/api/v1/builds/1/rebuild", &[], "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        json["error"].as_str().is_some_and(|e| e.contains("params.target") && e.contains("give another")),
        "{json}"
    );
    let (status, _, json) =
        h.post("/api/v1/builds/1/rebuild", &[JSON], r#"{"params": {"target": "qa"}}"#).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
}

#[tokio::test]
async fn who_may_rebuild_with_params() {
    let h = harness(|c| c.api_token = Some(Secret::new("admin"))).await;
    h.project("app", "script: echo\nvars: [{ name: N, default: '1' }]\n");
    let admin = ("authorization", "Bearer admin");
    let (status, _, _) = h.post("/api/v1/projects/app/builds", &[admin], "").await;
    assert_eq!(status, StatusCode::CREATED);
    let body = r#"{"params": {"N": "2"}}"#;
    let (status, _, _) = h.post("/api/v1/builds/1/rebuild", &[JSON], body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no token");
    let (status, _, _) =
        h.post("/api/v1/builds/1/rebuild", &[JSON, ("authorization", "Bearer no")], body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a wrong token");

    // A running build's job token may trigger, not rebuild.
    testing::claim(&h.ctx, "app").await;
    let started = testing::start(&h.ctx, 1, &h.ctx.config.instance).await;
    let job = format!("Bearer {}", started.token.expose());
    let (status, _, json) =
        h.post("/api/v1/builds/1/rebuild", &[JSON, ("authorization", job.as_str())], body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");

    let (status, _, _) = h.post("/api/v1/builds/1/rebuild", &[JSON, admin], body).await;
    assert_eq!(status, StatusCode::CREATED, "the admin");
    let rebuilt = h.ctx.store.build(2).await.expect("read").expect("stored");
    assert_eq!(rebuilt.params.get("N").map(String::as_str), Some("2"));
    assert_eq!(rebuilt.triggered_by.as_deref(), Some("API token"), "history says who");

    let (cookie, form) = h.logged_in().await;
    let (status, _, _) = h.post("/api/v1/builds/1/rebuild", &[cookie, form], "N=3").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a person's form without its form token");
    let (status, headers, _) =
        h.post("/api/v1/builds/1/rebuild", &[cookie, form], "N=3&_csrf=form-token").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/builds/3");
    let rebuilt = h.ctx.store.build(3).await.expect("read").expect("stored");
    assert_eq!(rebuilt.params.get("N").map(String::as_str), Some("3"));
    assert_eq!(rebuilt.triggered_by.as_deref(), Some("a person in the UI"));
}

#[tokio::test]
async fn a_forks_pull_request_job_may_not_trigger_builds() {
    use sparky_core::model::NewBuild;
    let h = harness(|c| c.api_token = Some(Secret::new("admin"))).await;
    h.project("app", "script: echo\n");
    h.project("deploy", "script: echo\n");
    let pull = Some(testing::pull_request(7, true));
    let id = testing::dispatched(
        &h.ctx,
        NewBuild { project: "app".into(), pull_request: pull, ..NewBuild::default() },
    )
    .await;
    let started = testing::start(&h.ctx, id, &h.ctx.config.instance).await;
    let job = format!("Bearer {}", started.token.expose());
    let (status, _, json) =
        h.post("/api/v1/projects/deploy/builds", &[JSON, ("authorization", job.as_str())], "{}").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    assert!(json["error"].as_str().is_some_and(|e| e.contains("fork")), "{json}");
    let live = h.ctx.store.live_builds().await.expect("live");
    assert!(live.iter().all(|b| b.project != "deploy"), "nothing queued: {live:?}");
}
