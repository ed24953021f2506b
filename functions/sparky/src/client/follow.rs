//! Following a build: its server-sent events (`/builds/{id}/events`) carry the log
//! and, once it is over, how it ended. A dropped connection resumes from the last byte
//! received; a refusal (no such build, a wrong token) does not.

use std::{io::Write, time::Duration};

use anyhow::Context as _;
use futures_util::StreamExt;
use serde_json::Value;

use super::{Failure, Server};

/// Consecutive failed connections before following gives up.
const MAX_RECONNECTS: u32 = 30;

/// Writes build `id`'s log to `out` as it grows until the build ends; returns the
/// status it ended with.
pub async fn follow(server: &Server, id: i64, out: &mut dyn Write) -> Result<String, Failure> {
    let mut offset: u64 = 0;
    let mut failures = 0;
    loop {
        match follow_once(server, id, &mut offset, out).await {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => failures = 0,
            Err(Failure::Unavailable(error)) if failures < MAX_RECONNECTS => {
                failures += 1;
                tracing::debug!(error = %format!("{error:#}"), "event stream interrupted; reconnecting");
            }
            Err(failure) => return Err(failure),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One connection to the event stream. `Some(status)` once the build has ended.
async fn follow_once(
    server: &Server,
    id: i64,
    offset: &mut u64,
    out: &mut dyn Write,
) -> Result<Option<String>, Failure> {
    let request = server.request(reqwest::Method::GET, &format!("/builds/{id}/events"));
    let response = server.send(request.header("Last-Event-ID", offset.to_string())).await?;
    let mut body = response.bytes_stream();
    let mut pending: Vec<u8> = Vec::new();
    while let Some(piece) = body.next().await {
        let piece = piece.context("reading the event stream").map_err(Failure::Unavailable)?;
        pending.extend_from_slice(&piece);
        while let Some(end) = find_event_end(&pending) {
            let block = String::from_utf8_lossy(&pending[..end.0]).into_owned();
            pending.drain(..end.1);
            let event = parse_event(&block);
            match event.name.as_str() {
                "log" => {
                    let data: Value = serde_json::from_str(&event.data)
                        .context("a log event's data")
                        .map_err(Failure::Unavailable)?;
                    let start = data.get("offset").and_then(Value::as_u64).unwrap_or(*offset);
                    let text = data.get("text").and_then(Value::as_str).unwrap_or_default();
                    // After a reconnect the server may resend what we have; skip it.
                    let skip = offset.saturating_sub(start) as usize;
                    if skip < text.len() && text.is_char_boundary(skip) {
                        out.write_all(&text.as_bytes()[skip..])?;
                        out.flush()?;
                    }
                    if let Some(next) = event.id.and_then(|id| id.parse::<u64>().ok()) {
                        *offset = (*offset).max(next);
                    }
                }
                "end" => {
                    let build: Value = serde_json::from_str(&event.data)
                        .context("the end event's data")
                        .map_err(Failure::Unavailable)?;
                    let status = build.get("status").and_then(Value::as_str).unwrap_or("unknown");
                    return Ok(Some(status.to_string()));
                }
                _ => {}
            }
        }
    }
    Ok(None)
}

/// Where the first complete event in `buf` ends: (end of its text, start of the next).
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2));
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

struct Event {
    name: String,
    data: String,
    id: Option<String>,
}

fn parse_event(block: &str) -> Event {
    let mut event = Event { name: "message".into(), data: String::new(), id: None };
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event.name = value.to_string(),
            "data" => {
                if !event.data.is_empty() {
                    event.data.push('\n');
                }
                event.data.push_str(value);
            }
            "id" => event.id = Some(value.to_string()),
            _ => {}
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_sent_events() {
        let buf = b"event: log\nid: 6\ndata: {\"offset\":0,\"text\":\"hello\\n\"}\n\n: keepalive\n\n";
        let (end, next) = find_event_end(buf).expect("one event");
        let event = parse_event(std::str::from_utf8(&buf[..end]).expect("utf8"));
        assert_eq!(event.name, "log");
        assert_eq!(event.id.as_deref(), Some("6"));
        assert_eq!(event.data, "{\"offset\":0,\"text\":\"hello\\n\"}");
        assert_eq!(&buf[next..], b": keepalive\n\n");
    }
}
