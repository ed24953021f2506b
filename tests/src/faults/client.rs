//! Posting a build as a careful client does: every request carries its own
//! `Idempotency-Key`, and a retry sends the same key and the same body, so however many
//! times it is sent, one build is queued.

use std::time::{Duration, Instant};

use serde_json::Value;

/// One HTTP attempt to trigger a build.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The response's status; `None` when there was none (refused, reset, timed out).
    pub status: Option<u16>,
    pub latency: Duration,
    /// `Retry-After`, when the response had one that reads as seconds.
    pub retry_after: Option<Duration>,
    /// Whether the response had a `Retry-After` header at all.
    pub has_retry_after: bool,
    /// The build's id, on `201 Created` or `200 OK` (the key matched an earlier build).
    pub id: Option<i64>,
}

/// An HTTP client for the benchmarks: no proxies, a bound on each request.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    sparky_core::tls::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .unwrap_or_else(|_| sparky_core::tls::client())
}

/// `POST {trigger}/api/v1/projects/{project}/builds` with `Idempotency-Key: key`, once.
pub async fn post_build(http: &reqwest::Client, trigger: &str, project: &str, key: &str) -> Attempt {
    let started = Instant::now();
    let sent = http
        .post(format!("{trigger}/api/v1/projects/{project}/builds"))
        .header("idempotency-key", key)
        .json(&serde_json::json!({ "params": {} }))
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(_) => {
            return Attempt {
                status: None,
                latency: started.elapsed(),
                retry_after: None,
                has_retry_after: false,
                id: None,
            };
        }
    };
    let status = response.status().as_u16();
    let header = response.headers().get(reqwest::header::RETRY_AFTER);
    let has_retry_after = header.is_some();
    let retry_after = header
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    // A body cut short (the process killed while answering) is no answer either.
    let body = response.bytes().await;
    let latency = started.elapsed();
    let id = match (&body, status) {
        (Ok(bytes), 200 | 201) => {
            serde_json::from_slice::<Value>(bytes).ok().and_then(|json| json["id"].as_i64())
        }
        _ => None,
    };
    let status = if body.is_ok() { Some(status) } else { None };
    Attempt { status, latency, retry_after, has_retry_after, id }
}

/// How a build request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `201` or `200` with this build id.
    Accepted(i64),
    /// A `4xx` other than `408`/`429`: the server refused the request itself.
    Refused(u16),
    /// No answer before the client's deadline.
    GaveUp,
}

/// Posts until the build is accepted, retrying with the same key and body on any
/// connection error, timeout or `5xx` (a `503` after its `Retry-After`), until
/// `give_up_at`. Returns the outcome and the number of HTTP attempts made.
pub async fn post_until_accepted(
    http: &reqwest::Client,
    trigger: &str,
    project: &str,
    key: &str,
    give_up_at: Instant,
) -> (Outcome, u64) {
    let mut attempts = 0;
    let mut backoff = Duration::from_millis(20);
    loop {
        attempts += 1;
        let attempt = post_build(http, trigger, project, key).await;
        let wait = match (attempt.status, attempt.id) {
            (_, Some(id)) => return (Outcome::Accepted(id), attempts),
            (Some(status @ 400..=499), _) if status != 408 && status != 429 => {
                return (Outcome::Refused(status), attempts);
            }
            (Some(503), _) => attempt.retry_after.unwrap_or(backoff),
            _ => backoff,
        };
        backoff = (backoff * 2).min(Duration::from_millis(500));
        if Instant::now() + wait > give_up_at {
            return (Outcome::GaveUp, attempts);
        }
        tokio::time::sleep(wait).await;
    }
}
