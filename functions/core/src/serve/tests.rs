use std::time::{Duration, Instant};

use axum::{Router, body::Body, routing::get};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::app;
use crate::{Config, Ctx, secrets::Secret, store::JournalMode};

async fn ctx(configure: impl FnOnce(&mut Config)) -> (tempfile::TempDir, Ctx) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::for_root(dir.path());
    configure(&mut config);
    let ctx = Ctx::open_standalone(config).await.expect("open");
    (dir, ctx)
}

/// `app` with one route of its own, as a function's router would have.
fn router(ctx: &Ctx) -> Router {
    app(Router::new().route("/things/{id}", get(|| async { "a thing" })), ctx.clone())
}

async fn get_text(router: &Router, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response =
        router.clone().oneshot(request.body(Body::empty()).expect("request")).await.expect("answer");
    let status = response.status();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn requests_are_counted_by_route_pattern_not_by_path() {
    let (_dir, ctx) = ctx(|_| {}).await;
    let router = router(&ctx);
    for id in 1..=3 {
        assert_eq!(get_text(&router, &format!("/things/{id}"), None).await.0, StatusCode::OK);
    }
    assert_eq!(get_text(&router, "/nothing/here", None).await.0, StatusCode::NOT_FOUND);
    let (status, text) = get_text(&router, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let has = |line: &str| assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    has(r#"sparky_http_requests_total{route="/things/{id}",method="GET",status="200"} 3"#);
    has(r#"sparky_http_request_duration_seconds_count{route="/things/{id}",method="GET"} 3"#);
    has(r#"sparky_http_requests_total{route="unmatched",method="GET",status="404"} 1"#);
    assert!(!text.contains("/things/1"), "{text}");
}

#[tokio::test]
async fn a_private_sparky_shows_its_metrics_to_readers_only() {
    let (_dir, ctx) = ctx(|config| {
        config.private = true;
        config.api_token = Some(Secret::new("the-admin-token"));
    })
    .await;
    let router = router(&ctx);
    let (status, body) = get_text(&router, "/metrics", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!body.contains("sparky_"), "{body}");
    assert_eq!(get_text(&router, "/metrics", Some("a-wrong-token")).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = get_text(&router, "/metrics", Some("the-admin-token")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("sparky_max_running"), "{body}");
    // The probe stays open.
    assert_eq!(get_text(&router, "/healthz", None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn healthz_fails_while_the_database_cannot_be_read() {
    for journal in [JournalMode::Delete, JournalMode::Wal] {
        let (dir, ctx) = ctx(|config| config.journal = Some(journal)).await;
        let router = router(&ctx);
        assert_eq!(get_text(&router, "/healthz", None).await, (StatusCode::OK, "ok\n".into()));
        // The database goes away with its journal files (in WAL mode the newest pages
        // are in sparky.db-wal, which would still answer for the file).
        let db = dir.path().join("sparky.db");
        let kept = dir.path().join("kept");
        std::fs::create_dir(&kept).expect("a folder for the database");
        let files = ["sparky.db", "sparky.db-wal", "sparky.db-shm"];
        for name in files.into_iter().filter(|name| dir.path().join(name).exists()) {
            std::fs::rename(dir.path().join(name), kept.join(name)).expect("move away");
        }

        std::fs::write(&db, "this is not a database\n".repeat(200)).expect("garbage");
        let (status, body) = get_text(&router, "/healthz", None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{journal:?}: {body}");
        assert!(body.starts_with("the database can't be read: "), "{body}");
        std::fs::remove_file(&db).expect("remove the garbage");

        // A folder in its place (what permissions can't keep root out of).
        std::fs::create_dir(&db).expect("a folder");
        assert_eq!(get_text(&router, "/healthz", None).await.0, StatusCode::SERVICE_UNAVAILABLE);
        std::fs::remove_dir(&db).expect("remove the folder");

        // Gone: the check must not create an empty database in its place.
        assert_eq!(get_text(&router, "/healthz", None).await.0, StatusCode::SERVICE_UNAVAILABLE);
        assert!(!db.exists());

        for name in files.into_iter().filter(|name| kept.join(name).exists()) {
            std::fs::rename(kept.join(name), dir.path().join(name)).expect("restore");
        }
        assert_eq!(get_text(&router, "/healthz", None).await, (StatusCode::OK, "ok\n".into()), "{journal:?}");
    }
}

#[tokio::test]
async fn healthz_stays_ok_and_fast_while_a_writer_holds_the_lock() {
    let (dir, ctx) = ctx(|config| config.journal = Some(JournalMode::Delete)).await;
    let router = router(&ctx);
    // An exclusive lock keeps every reader out (in the rollback journal mode), as a
    // writer in another process does while it commits.
    let path = dir.path().join("sparky.db");
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(path).expect("connect");
        conn.execute_batch("BEGIN EXCLUSIVE").expect("lock");
        let _ = locked_tx.send(());
        std::thread::sleep(Duration::from_secs(2));
        conn.execute_batch("ROLLBACK").expect("unlock");
    });
    locked_rx.recv().expect("locked");
    let start = Instant::now();
    assert_eq!(get_text(&router, "/healthz", None).await.0, StatusCode::OK);
    assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    holder.join().expect("holder");
}
