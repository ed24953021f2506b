//! The HTTP edge shared by the functions: the error type that maps each failure to a
//! status code and a JSON body a person can act on (logging the whole cause chain, and
//! telling the client nothing internal), the JSON shape of a build, request-body
//! limits and API-token checks.

use std::fmt::Write as _;

use axum::{
    Json,
    body::Body,
    response::{IntoResponse, Response},
};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode, header};
use serde::Serialize;

use crate::{
    config::Secret,
    model::{Build, Event, Params},
    reports::{ReportError, report::AttemptEntry},
    store::StoreError,
    time::rfc3339,
};

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY: usize = 1024 * 1024;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the database is busy; retry in a moment")]
    Busy,
    #[error("internal error; the server log has the details")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A missing or wrong API token.
    pub fn bad_token() -> Self {
        ApiError::Unauthorized(
            "missing or wrong API token: send `Authorization: Bearer <token>` with the value of SPARKY_API_TOKEN".into(),
        )
    }

    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(error.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A build id from a path: a positive integer, else a 404 for a build that can't exist.
pub fn build_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| no_build(text))
}

/// The 404 for a build that does not exist.
pub fn no_build(id: impl std::fmt::Display) -> ApiError {
    ApiError::NotFound(format!("there is no build {id}"))
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_busy() { ApiError::Busy } else { ApiError::internal(e) }
    }
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        ApiError::internal(e)
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::internal(e)
    }
}

/// `error: cause: cause ...`, for logs.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %error_chain(cause.as_ref()), "request failed");
            }
            ApiError::Busy => tracing::warn!("database busy; answered 503"),
            _ => {}
        }
        let mut response = (status, Json(serde_json::json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        }
        response
    }
}

/// Reads a request body of at most [`MAX_BODY`] bytes.
pub async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    read_body_up_to(headers, body, MAX_BODY).await
}

/// Reads a request body of at most `limit` bytes.
pub async fn read_body_up_to(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    if declared.is_some_and(|n| n > limit as u64) {
        if declared.is_some_and(|n| n <= DRAIN_LIMIT as u64) {
            drain(&mut stream, 0).await;
        }
        return Err(ApiError::TooLarge(limit));
    }
    let mut read = BytesMut::new();
    while let Some(piece) = stream.next().await {
        let piece =
            piece.map_err(|e| ApiError::BadRequest(format!("could not read the request body: {e}")))?;
        if read.len() + piece.len() > limit {
            drain(&mut stream, read.len() + piece.len()).await;
            return Err(ApiError::TooLarge(limit));
        }
        read.extend_from_slice(&piece);
    }
    Ok(read.freeze())
}

/// A refused body is still read and thrown away, up to this many bytes and
/// [`DRAIN_TIME`], so that a client still sending it gets the `413` rather than a
/// broken connection; beyond that the connection is simply closed.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

async fn drain(stream: &mut axum::body::BodyDataStream, mut seen: usize) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(piece)) = stream.next().await {
            seen += piece.len();
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    })
    .await;
}

/// With a token configured, the request must carry `Authorization: Bearer <token>`.
/// The comparison takes the same time wherever the first difference is.
pub fn check_token(expected: Option<&Secret>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .unwrap_or_default();
    if constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::bad_token())
    }
}

/// Compares two byte strings without stopping at the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Only the length leaks, and a token's length is no secret worth keeping.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// A build in the API's JSON.
#[derive(Debug, Serialize)]
pub struct BuildJson {
    pub id: i64,
    pub project: String,
    pub status: &'static str,
    pub trigger: &'static str,
    pub params: Params,
    pub description: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<i64>,
    /// The number of its current or last attempt (0: never sent to a runner yet).
    pub attempt: u32,
    /// Retries used: attempts that started and whose runner vanished.
    pub retries_used: u32,
    /// Each attempt and how it ended (a single build's answer only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<AttemptEntry>>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub scm_url: Option<String>,
    pub scm_branch: Option<String>,
    pub scm_sha: Option<String>,
    pub parent_build: Option<i64>,
    pub log_size: Option<u64>,
    /// Why the build's report is incomplete: report storage failed past its retries.
    pub report_error: Option<String>,
    pub url: String,
    pub log_url: String,
}

impl From<&Build> for BuildJson {
    fn from(b: &Build) -> Self {
        BuildJson {
            id: b.id,
            project: b.project.clone(),
            status: b.status.as_str(),
            trigger: b.trigger.as_str(),
            params: b.params.clone(),
            description: b.description.clone(),
            created_at: rfc3339(b.created_at),
            started_at: b.started_at.map(rfc3339),
            finished_at: b.finished_at.map(rfc3339),
            exit_code: b.exit_code,
            duration_ms: b.started_at.zip(b.finished_at).map(|(s, f)| f - s),
            attempt: b.attempt,
            retries_used: b.retries_used,
            attempts: None,
            error: b.error.clone(),
            cancel_requested: b.cancel_requested,
            scm_url: b.scm.url.clone(),
            scm_branch: b.scm.branch.clone(),
            scm_sha: b.scm.sha.clone(),
            parent_build: b.parent_build,
            log_size: b.log_size,
            report_error: b.report_error.clone(),
            url: build_url(b.id),
            log_url: format!("{}/log", build_url(b.id)),
        }
    }
}

impl BuildJson {
    /// A build with its attempts, from its lifecycle `events`.
    pub fn with_attempts(build: &Build, events: &[Event]) -> Self {
        BuildJson { attempts: Some(AttemptEntry::list(build, events)), ..BuildJson::from(build) }
    }
}

/// A lifecycle event in the API's JSON (`GET /api/v1/events`).
#[derive(Debug, Serialize)]
pub struct EventJson {
    pub id: i64,
    pub build_id: i64,
    pub project: String,
    /// `null` for the event that created the build.
    pub from: Option<&'static str>,
    pub to: &'static str,
    pub reason: &'static str,
    pub attempt: u32,
    pub at: String,
    pub url: String,
}

impl From<&Event> for EventJson {
    fn from(e: &Event) -> Self {
        EventJson {
            id: e.id,
            build_id: e.build_id,
            project: e.project.clone(),
            from: e.from.map(|s| s.as_str()),
            to: e.to.as_str(),
            reason: e.reason.as_str(),
            attempt: e.attempt,
            at: rfc3339(e.at),
            url: build_url(e.build_id),
        }
    }
}

/// The page of a build, relative to the server's root.
pub fn build_url(id: i64) -> String {
    format!("/builds/{id}")
}

/// Where artifact `path` of build `id` is downloaded.
pub fn artifact_url(id: i64, path: &str) -> String {
    format!("/builds/{id}/artifacts/{}", encode_path(path))
}

/// Percent-encodes a path for a URL, keeping `/` and unreserved characters.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret1"));
        assert!(!constant_time_eq(b"", b"x"));
        let mut headers = HeaderMap::new();
        let token = Secret::new("t0k");
        assert!(check_token(None, &headers).is_ok());
        assert!(matches!(check_token(Some(&token), &headers), Err(ApiError::Unauthorized(_))));
        headers.insert(header::AUTHORIZATION, http::HeaderValue::from_static("Bearer t0k"));
        assert!(check_token(Some(&token), &headers).is_ok());
        headers.insert(header::AUTHORIZATION, http::HeaderValue::from_static("bearer t0k"));
        assert!(check_token(Some(&token), &headers).is_ok(), "the scheme is case-insensitive");
        headers.insert(header::AUTHORIZATION, http::HeaderValue::from_static("Basic t0k"));
        assert!(check_token(Some(&token), &headers).is_err());
    }

    #[test]
    fn artifact_urls_are_percent_encoded() {
        assert_eq!(artifact_url(7, "a b/é#?.txt"), "/builds/7/artifacts/a%20b/%C3%A9%23%3F.txt");
    }

    #[tokio::test]
    async fn refuses_bodies_over_the_limit() {
        let big = Body::from(vec![b'x'; MAX_BODY + 1]);
        assert!(matches!(read_body(&HeaderMap::new(), big).await, Err(ApiError::TooLarge(_))));
        let ok = read_body(&HeaderMap::new(), Body::from("{}")).await.expect("small body");
        assert_eq!(&ok[..], b"{}");
    }
}
