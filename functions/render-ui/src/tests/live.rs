//! Following a build live over server-sent events, read the way a client reads them:
//! frame by frame while the build runs.

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use sparky_core::model::BuildStatus;
use tower::ServiceExt;

use super::{Harness, harness, put};

/// One parsed event, and its text as sent.
#[derive(Debug)]
struct Sse {
    event: String,
    id: Option<String>,
    data: Value,
    raw: String,
}

/// Reads an event stream as it arrives.
struct Events {
    body: Body,
    buffer: String,
}

impl Events {
    async fn open(h: &Harness, uri: &str, headers: &[(&str, &str)]) -> Events {
        let mut request = Request::get(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = crate::router(h.ctx.clone())
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
        Events { body: response.into_body(), buffer: String::new() }
    }

    /// The next event (comments skipped), or `None` when the stream ended.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                let mut event = Sse { event: String::new(), id: None, data: Value::Null, raw: raw.clone() };
                let mut comment = true;
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event.event = v.into();
                        comment = false;
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        event.id = Some(v.into());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        event.data = serde_json::from_str(v).expect("JSON data");
                    }
                }
                if comment {
                    continue;
                }
                return Some(event);
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("an event within 10 s")?
                .expect("frame");
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).expect("UTF-8 stream"));
            }
        }
    }

    /// Every remaining event until the stream ends.
    async fn rest(&mut self) -> Vec<Sse> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

#[tokio::test]
async fn streams_log_pieces_then_end_as_the_build_finishes() {
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\n");
    let id = h.queue("app", &[], None).await;
    h.start("app", id).await;
    let mut events = Events::open(&h, &format!("/builds/{id}/events"), &[]).await;

    let status = events.next().await.expect("status");
    assert_eq!(status.event, "status");
    assert_eq!(status.data["status"], "running");
    assert_eq!(status.data["id"], id);

    // A euro sign (three bytes) split across two chunks.
    let euro = "€".as_bytes();
    let mut log = h.log_writer("app", id);
    let mut first = b"price: ".to_vec();
    first.extend_from_slice(&euro[..1]);
    put(&h, &mut log, id, &first).await;
    let piece = events.next().await.expect("first piece");
    assert_eq!(
        piece.raw, "event: log\nid: 7\ndata: {\"offset\":0,\"text\":\"price: \",\"html\":\"price: \"}\n\n",
        "the exact wire format"
    );

    let mut second = euro[1..].to_vec();
    second.extend_from_slice(b"5\n");
    put(&h, &mut log, id, &second).await;
    let piece = events.next().await.expect("second piece");
    assert_eq!(piece.event, "log");
    assert_eq!(piece.data["offset"], 7);
    assert_eq!(piece.data["text"], "€5\n", "the character arrives whole");
    assert_eq!(piece.id.as_deref(), Some("12"));

    put(&h, &mut log, id, b"done\n").await;
    let piece = events.next().await.expect("third piece");
    assert_eq!(piece.data["text"], "done\n");
    assert_eq!(piece.id.as_deref(), Some("17"));
    h.finish(id, BuildStatus::Succeeded, Some(0), log.stored()).await;
    let rest = events.rest().await;
    let kinds: Vec<&str> = rest.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["status", "end"], "{rest:#?}");
    assert_eq!(rest[0].data["status"], "succeeded");
    assert_eq!(rest[1].data["status"], "succeeded");
    assert_eq!(rest[1].data["exit_code"], 0);
    assert_eq!(rest[1].data["log_size"], 17);
    assert!(rest[1].raw.starts_with("event: end\ndata: {"), "{}", rest[1].raw);
}

#[tokio::test]
async fn follows_by_polling_when_the_hub_says_nothing() {
    // When the functions run as separate processes, another process writes the log
    // and the status: nothing arrives through this process's hub.
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\n");
    let id = h.queue("app", &[], None).await;
    h.start("app", id).await;
    let mut events = Events::open(&h, &format!("/builds/{id}/events"), &[]).await;
    assert_eq!(events.next().await.expect("status").data["status"], "running");

    let mut log = h.log_writer("app", id);
    log.append("ünï".as_bytes());
    log.flush().await.expect("flush");
    log.append("cödé\n".as_bytes());
    log.flush().await.expect("flush");
    h.finish(id, BuildStatus::Failed, Some(2), log.stored()).await;

    let rest = events.rest().await;
    let text: String =
        rest.iter().filter(|e| e.event == "log").filter_map(|e| e.data["text"].as_str()).collect();
    assert_eq!(text, "ünïcödé\n");
    let last = rest.last().expect("events");
    assert_eq!(last.event, "end");
    assert_eq!(last.data["status"], "failed");
    assert!(rest.iter().any(|e| e.event == "status" && e.data["status"] == "failed"));
}

#[tokio::test]
async fn resumes_from_last_event_id_or_offset() {
    let h = harness(|_| {}).await;
    let (id, mut log) = h.running_app_build().await;
    put(&h, &mut log, id, b"one\ntwo\n").await;
    h.finish(id, BuildStatus::Succeeded, Some(0), 8).await;

    let uri = format!("/builds/{id}/events?offset=2");
    let all = Events::open(&h, &uri, &[]).await.rest().await;
    assert_eq!(all[1].data, serde_json::json!({"offset": 2, "text": "e\ntwo\n", "html": "e\ntwo\n"}));
    let all = Events::open(&h, &uri, &[("last-event-id", "4")]).await.rest().await;
    assert_eq!(all[1].data, serde_json::json!({"offset": 4, "text": "two\n", "html": "two\n"}));
    let all = Events::open(&h, &uri, &[("last-event-id", "8")]).await.rest().await;
    let kinds: Vec<&str> = all.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["status", "end"], "nothing left to send");
}

#[tokio::test]
async fn a_resumed_stream_and_a_later_part_of_the_log_keep_the_colour_in_force() {
    let h = harness(|_| {}).await;
    let (id, mut log) = h.running_app_build().await;
    let text = "\x1b[1mbold\x1b[0m \x1b[32mgreen\nstill green\x1b[0m plain\n";
    put(&h, &mut log, id, text.as_bytes()).await;
    h.finish(id, BuildStatus::Succeeded, Some(0), text.len() as u64).await;

    let at = text.find("still").expect("offset");
    let uri = format!("/builds/{id}/events?offset={at}");
    let all = Events::open(&h, &uri, &[]).await.rest().await;
    assert_eq!(all[1].data["html"], "<span class=\"ansi-fg-2\">still green</span> plain\n");
    let page = h.get(&format!("/builds/{id}?from={at}")).await.body;
    assert!(page.contains("<span class=\"ansi-fg-2\">still green</span> plain"), "{page}");
    let whole = h.get(&format!("/builds/{id}")).await.body;
    assert!(
        whole.contains("<span class=\"ansi-bold\">bold</span> <span class=\"ansi-fg-2\">green"),
        "{whole}"
    );
}

#[tokio::test]
async fn the_stream_stops_at_shutdown() {
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\n");
    let id = h.queue("app", &[], None).await;
    let mut events = Events::open(&h, &format!("/builds/{id}/events"), &[]).await;
    assert_eq!(events.next().await.expect("status").data["status"], "queued");
    h.ctx.shutdown.cancel();
    assert!(events.next().await.is_none(), "ended without `end`");
}

#[tokio::test]
async fn unknown_builds_and_bad_offsets_are_json_errors() {
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\n");
    let answer = h.get("/builds/9/events").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.json()["error"].is_string());
    let id = h.queue("app", &[], None).await;
    let answer = h.get_with(&format!("/builds/{id}/events"), &[("last-event-id", "x")]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.json()["error"].is_string());
}
