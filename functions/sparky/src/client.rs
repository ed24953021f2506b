//! `sparky build` and `sparky logs`: the HTTP API from the command line. Following a
//! build reads its server-sent events (`/builds/{id}/events`), resuming from the last
//! byte received if the connection drops.

use std::{collections::BTreeMap, io::Write as _, process::ExitCode, time::Duration};

use anyhow::{Context as _, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sparky_core::Config;

/// Where the server is.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Sparky's URL [default: $SPARKY_API inside a job, else http://$SPARKY_LISTEN,
    /// i.e. http://127.0.0.1:4000]
    #[arg(long)]
    server: Option<String>,
    /// API token [default: $SPARKY_TOKEN inside a job, else $SPARKY_API_TOKEN]
    #[arg(long)]
    token: Option<String>,
}

struct Server {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Server {
    fn new(config: &Config, args: &ServerArgs) -> Self {
        let base = args
            .server
            .clone()
            .or_else(|| config.job_api.clone())
            .unwrap_or_else(|| format!("http://{}", config.listen));
        let token = args.token.clone().or_else(|| {
            config.job_token.as_ref().or(config.api_token.as_ref()).map(|t| t.expose().to_string())
        });
        Server { base: base.trim_end_matches('/').to_string(), token, http: sparky_core::tls::client() }
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.post(format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }
}

/// Exit code when the build did not succeed.
const BUILD_DID_NOT_SUCCEED: u8 = 1;

/// `sparky build PROJECT [-p NAME=VALUE]... [--follow]`
pub async fn build(
    config: &Config,
    args: &ServerArgs,
    project: &str,
    params: &[String],
    description: Option<String>,
    follow: bool,
) -> anyhow::Result<ExitCode> {
    let server = Server::new(config, args);
    let mut values = BTreeMap::new();
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            bail!("-p {param:?}: expected NAME=VALUE");
        };
        values.insert(name.to_string(), value.to_string());
    }
    let response = server
        .post(&format!("/api/v1/projects/{project}/builds"))
        .json(&json!({ "params": values, "description": description }))
        .send()
        .await
        .with_context(|| format!("could not reach Sparky at {}", server.base))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body.get("error").and_then(Value::as_str).unwrap_or("no details");
        bail!("{status}: {message}");
    }
    let id = body.get("id").and_then(Value::as_i64).context("the server's answer has no build id")?;
    println!("{}/builds/{id}", server.base);
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    follow_build(&server, id).await
}

/// `sparky logs ID [--follow]`
pub async fn logs(config: &Config, args: &ServerArgs, id: i64, follow: bool) -> anyhow::Result<ExitCode> {
    let server = Server::new(config, args);
    if follow {
        return follow_build(&server, id).await;
    }
    let response = server
        .http
        .get(format!("{}/builds/{id}/log", server.base))
        .send()
        .await
        .with_context(|| format!("could not reach Sparky at {}", server.base))?;
    if !response.status().is_success() {
        bail!("{}: no log for build {id}", response.status());
    }
    let mut body = response.bytes_stream();
    let mut out = std::io::stdout().lock();
    while let Some(piece) = body.next().await {
        out.write_all(&piece.context("reading the log")?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Streams the build's log to stdout until it ends; exit 0 only if it succeeded.
async fn follow_build(server: &Server, id: i64) -> anyhow::Result<ExitCode> {
    let mut offset: u64 = 0;
    let mut failures = 0;
    loop {
        match follow_once(server, id, &mut offset).await {
            Ok(Some(status)) => {
                eprintln!("build {id} {status}");
                let code = if status == "succeeded" { 0 } else { BUILD_DID_NOT_SUCCEED };
                return Ok(ExitCode::from(code));
            }
            Ok(None) => failures = 0,
            Err(error) if failures < 30 => {
                failures += 1;
                tracing::debug!(error = %format!("{error:#}"), "event stream interrupted; reconnecting");
            }
            Err(error) => return Err(error),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One connection to the event stream. `Some(status)` once the build has ended.
async fn follow_once(server: &Server, id: i64, offset: &mut u64) -> anyhow::Result<Option<String>> {
    let response = server
        .http
        .get(format!("{}/builds/{id}/events", server.base))
        .header("Last-Event-ID", offset.to_string())
        .send()
        .await
        .with_context(|| format!("could not reach Sparky at {}", server.base))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        bail!("there is no build {id}");
    }
    if !response.status().is_success() {
        bail!("{}: could not follow build {id}", response.status());
    }
    let mut body = response.bytes_stream();
    let mut pending: Vec<u8> = Vec::new();
    let mut out = std::io::stdout();
    while let Some(piece) = body.next().await {
        pending.extend_from_slice(&piece.context("reading the event stream")?);
        while let Some(end) = find_event_end(&pending) {
            let block = String::from_utf8_lossy(&pending[..end.0]).into_owned();
            pending.drain(..end.1);
            let event = parse_event(&block);
            match event.name.as_str() {
                "log" => {
                    let data: Value = serde_json::from_str(&event.data).context("a log event's data")?;
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
                    let build: Value = serde_json::from_str(&event.data).context("the end event's data")?;
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
