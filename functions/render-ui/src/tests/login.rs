//! Logging in and out, sessions, and private reads.

use http::{StatusCode, header};
use sparky_core::{
    secrets::{Secret, token_hash},
    store::Session,
    time::now_ms,
};

use super::harness;

const TOKEN: &str = "s3cret-admin";

#[tokio::test]
async fn logging_in_gives_a_session_and_logging_out_ends_it() {
    let h = harness(|c| c.api_token = Some(Secret::new(TOKEN))).await;
    h.project("app", "script: echo\n");
    let page = h.get("/login?next=/projects/app").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"name="next" value="&#x2f;projects&#x2f;app""#), "{}", page.body);

    let wrong = h.post_form("/login", &[], "token=guess&next=/").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.body.contains("That is not the API token.") && !wrong.headers.contains_key(header::SET_COOKIE)
    );

    let right = h.post_form("/login", &[], &format!("token={TOKEN}&next=/projects/app")).await;
    assert_eq!(right.status, StatusCode::SEE_OTHER);
    assert_eq!(right.headers[header::LOCATION], "/projects/app");
    let set = right.headers[header::SET_COOKIE].to_str().expect("cookie");
    for part in ["sparky_session=", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "not over plain HTTP");
    let cookie = set.split(';').next().expect("name=value").to_string();
    let page = h.get_with("/", &[("cookie", &cookie)]).await.body;
    assert!(page.contains(r#"id="logout""#), "{page}");
    let csrf =
        page.split(r#"name="_csrf" value=""#).nth(1).and_then(|r| r.split('"').next()).expect("form token");

    // Logging out needs the session's form token: another site can't log people out.
    let refused = h.post_form("/logout", &[("cookie", &cookie)], "").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let out = h.post_form("/logout", &[("cookie", &cookie)], &format!("_csrf={csrf}")).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.headers[header::SET_COOKIE].to_str().expect("cookie").contains("Max-Age=0"));
    let page = h.get_with("/", &[("cookie", &cookie)]).await.body;
    assert!(page.contains(r#"id="login-link""#) && !page.contains("logout"), "the session ended: {page}");
}

#[tokio::test]
async fn a_login_goes_back_only_to_this_site_and_secure_cookies_over_https() {
    let h = harness(|c| {
        c.api_token = Some(Secret::new(TOKEN));
        c.public_url = Some("https://ci.example".into());
    })
    .await;
    for next in ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"] {
        let query = serde_urlencoded::to_string([("token", TOKEN), ("next", next)]).expect("form");
        let answer = h.post_form("/login", &[], &query).await;
        assert_eq!(answer.headers[header::LOCATION], "/", "{next}");
        assert!(answer.headers[header::SET_COOKIE].to_str().expect("cookie").contains("; Secure"));
    }
}

#[tokio::test]
async fn private_reads_need_a_session_or_a_token() {
    let h = harness(|c| {
        c.api_token = Some(Secret::new(TOKEN));
        c.private = true;
    })
    .await;
    h.project("app", "script: echo\n");
    let id = h.queue("app", &[], None).await;
    let routes = [
        "/".to_string(),
        "/queue".into(),
        "/projects/app".into(),
        "/projects/app/badge.svg".into(),
        format!("/builds/{id}"),
        format!("/builds/{id}/log"),
        format!("/builds/{id}/events"),
        format!("/builds/{id}/artifacts/x.txt"),
        format!("/builds/{id}/report.json"),
        "/api/v1/projects".into(),
        "/api/v1/projects/app".into(),
        "/api/v1/projects/app/builds".into(),
        format!("/api/v1/builds/{id}"),
        "/api/v1/queue".into(),
        "/api/v1/events".into(),
        "/builds".into(),
        "/builds?status=failed".into(),
        "/api/v1/builds".into(),
        "/api/v1/builds?project=app&status=queued".into(),
    ];
    let forged = format!("sparky_session={}", "f".repeat(64));
    // An expired session is no session.
    let expired = "e".repeat(64);
    let session = Session { id_hash: token_hash(&expired), csrf: "c".into(), expires_at: now_ms() - 1 };
    h.ctx.store.create_session(session, now_ms() - 10).await.expect("session");
    let expired = format!("sparky_session={expired}");
    for route in &routes {
        for cookie in ["", forged.as_str(), expired.as_str()] {
            let answer = h.get_with(route, &[("cookie", cookie), ("accept", "application/json")]).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{route} {cookie}: {}", answer.body);
            let page = h.get_with(route, &[("cookie", cookie), ("accept", "text/html")]).await;
            assert_eq!(page.status, StatusCode::SEE_OTHER, "{route}");
            let to = page.headers[header::LOCATION].to_str().expect("location");
            assert!(to.starts_with("/login?next="), "{route}: {to}");
        }
        if route.ends_with("/events") {
            continue; // allowed, it streams until the build ends: see the live tests
        }
        let admin = h.get_with(route, &[("authorization", &format!("Bearer {TOKEN}"))]).await;
        assert_ne!(admin.status, StatusCode::UNAUTHORIZED, "{route} with the token");
    }
    let cookie = h.log_in(TOKEN).await;
    for route in routes.iter().filter(|r| !r.ends_with("/events")) {
        let answer = h.get_with(route, &[("cookie", &cookie)]).await;
        assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{route} with a session");
    }
    // A running build's job token reads too (its job may look at builds), and stops
    // reading when its build ends.
    sparky_core::testing::claim(&h.ctx, "app").await;
    let started = sparky_core::testing::start(&h.ctx, id, "test").await;
    let job = format!("Bearer {}", started.token.expose());
    for route in routes.iter().filter(|r| !r.ends_with("/events")) {
        let answer = h.get_with(route, &[("authorization", &job)]).await;
        assert_ne!(answer.status, StatusCode::UNAUTHORIZED, "{route} with a running build's token");
    }
    h.finish(id, sparky_core::model::BuildStatus::Succeeded, Some(0), 0).await;
    let answer = h.get_with("/api/v1/projects", &[("authorization", &job)]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "a token whose build ended: {}", answer.body);
    // The login page and what it needs stay open.
    for open in ["/login", "/static/sparky.css"] {
        assert_eq!(h.get(open).await.status, StatusCode::OK, "{open}");
    }
}
