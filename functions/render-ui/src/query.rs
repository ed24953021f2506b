//! Reading what a request asks for: build ids in paths, `?limit=&before=` pages,
//! `?offset=` and `Last-Event-ID` positions in a log. Mistakes are `400`s that name
//! the parameter and say what would be accepted (axum's own extractors would answer
//! plain text, not the API's JSON).

use http::HeaderMap;
use serde::Deserialize;
use sparky_core::api::ApiError;
pub use sparky_core::api::{build_id, no_build};

/// Builds per page unless `?limit=` says otherwise.
pub const DEFAULT_LIMIT: u32 = 20;
/// The largest page; larger limits are cut to this.
pub const MAX_LIMIT: u32 = 200;

/// One page of a history: at most `limit` builds older than `before`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub before: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPage {
    limit: Option<String>,
    before: Option<String>,
    /// Not part of a page, but allowed beside it: see [`refused`].
    #[serde(rename = "refused")]
    _refused: Option<String>,
}

impl Page {
    /// Reads `?limit=N&before=ID` (both optional).
    pub fn parse(query: Option<&str>) -> Result<Page, ApiError> {
        let raw: RawPage = serde_urlencoded::from_str(query.unwrap_or_default())
            .map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))?;
        let limit = limit(raw.limit.as_deref(), "builds", DEFAULT_LIMIT, MAX_LIMIT)?;
        let before = match raw.before.as_deref() {
            None | Some("") => None,
            Some(text) => Some(text.parse::<i64>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "before={text:?}: expected a build id (the `next_before` of the previous page)"
                ))
            })?),
        };
        Ok(Page { limit, before })
    }
}

/// `?limit=`: how many `things` (`default` when absent; at least 1; cut to `max`).
fn limit(text: Option<&str>, things: &str, default: u32, max: u32) -> Result<u32, ApiError> {
    match text {
        None | Some("") => Ok(default),
        Some(text) => match text.parse::<u64>() {
            Ok(0) | Err(_) => Err(ApiError::BadRequest(format!(
                "limit={text:?}: expected a number of {things}, at least 1 (more than {max} is cut to {max})"
            ))),
            Ok(n) => Ok(n.min(u64::from(max)) as u32),
        },
    }
}

/// Events per answer unless `?limit=` says otherwise, and the most.
pub const EVENTS_LIMIT: u32 = 100;
pub const MAX_EVENTS_LIMIT: u32 = 1000;

/// Where a reader of the lifecycle's events is: after event `after`, `limit` at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventCursor {
    pub after: i64,
    pub limit: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCursor {
    after: Option<String>,
    limit: Option<String>,
}

impl EventCursor {
    /// Reads `?after=N&limit=M` (both optional).
    pub fn parse(query: Option<&str>) -> Result<EventCursor, ApiError> {
        let raw: RawCursor = serde_urlencoded::from_str(query.unwrap_or_default())
            .map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))?;
        let after = match raw.after.as_deref() {
            None | Some("") => 0,
            Some(text) => text.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "after={text:?}: expected an event id, 0 or more (the `next_after` of the previous answer)"
                ))
            })?,
        };
        let limit = limit(raw.limit.as_deref(), "events", EVENTS_LIMIT, MAX_EVENTS_LIMIT)?;
        Ok(EventCursor { after, limit })
    }
}

/// The first value of parameter `name` in a query string; other parameters are ignored.
fn param(query: Option<&str>, name: &str) -> Result<Option<String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|e| ApiError::BadRequest(format!("bad query string: {e}")))?;
    Ok(pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v))
}

/// `?offset=N`: a byte offset into a log, 0 when absent.
pub fn offset(query: Option<&str>) -> Result<u64, ApiError> {
    match param(query, "offset")?.as_deref() {
        None | Some("") => Ok(0),
        Some(text) => parse_offset("offset", text),
    }
}

/// Whether `?NAME=1` (or `true`, or just `?NAME`) is set.
pub fn flag(query: Option<&str>, name: &str) -> Result<bool, ApiError> {
    match param(query, name)?.as_deref() {
        None | Some("0" | "false") => Ok(false),
        Some("" | "1" | "true") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!("{name}={other:?}: expected 1 or 0"))),
    }
}

/// `?refused=<why>`: the trigger function sends a browser back to the page whose form
/// it refused with this; the page shows it.
pub fn refused(query: Option<&str>) -> Option<String> {
    let why = param(query, "refused").ok()??;
    Some(why.chars().take(400).collect()).filter(|w: &String| !w.trim().is_empty())
}

/// `?from=N` on the build page: where the part of the log shown starts; `None`: the
/// log's end is shown.
pub fn log_from(query: Option<&str>) -> Result<Option<u64>, ApiError> {
    match param(query, "from")?.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => parse_offset("from", text).map(Some),
    }
}

/// Where a live log resumes: the `Last-Event-ID` a reconnecting client sends, else
/// `?offset=N`, else the start.
pub fn resume_offset(headers: &HeaderMap, query: Option<&str>) -> Result<u64, ApiError> {
    match headers.get("last-event-id") {
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| ApiError::BadRequest("Last-Event-ID: expected a byte offset".into()))?;
            parse_offset("Last-Event-ID", text.trim())
        }
        None => offset(query),
    }
}

fn parse_offset(name: &str, text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>().map_err(|_| {
        ApiError::BadRequest(format!(
            "{name}={text:?}: expected a byte offset (a whole number, 0 for the start)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_default_clamp_and_refuse_nonsense() {
        assert_eq!(Page::parse(None).ok(), Some(Page { limit: DEFAULT_LIMIT, before: None }));
        assert_eq!(Page::parse(Some("limit=5&before=9")).ok(), Some(Page { limit: 5, before: Some(9) }));
        assert_eq!(Page::parse(Some("limit=5000")).ok().map(|p| p.limit), Some(MAX_LIMIT));
        for bad in ["limit=0", "limit=many", "before=x", "limt=3"] {
            assert!(matches!(Page::parse(Some(bad)), Err(ApiError::BadRequest(_))), "{bad}");
        }
    }

    #[test]
    fn resume_prefers_last_event_id() {
        let mut headers = HeaderMap::new();
        assert_eq!(resume_offset(&headers, None).ok(), Some(0));
        assert_eq!(resume_offset(&headers, Some("offset=12")).ok(), Some(12));
        headers.insert("last-event-id", http::HeaderValue::from_static("40"));
        assert_eq!(resume_offset(&headers, Some("offset=12")).ok(), Some(40));
        assert!(offset(Some("offset=-1")).is_err());
        assert_eq!(build_id("7").ok(), Some(7));
        assert!(matches!(build_id("7x"), Err(ApiError::NotFound(_))));
    }
}
