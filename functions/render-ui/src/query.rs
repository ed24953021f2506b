//! Reading what a request asks for: build ids in paths, histories (`?status=&branch=
//! &trigger=&q=` filters and `?limit=&before=` pages),
//! `?offset=` and `Last-Event-ID` positions in a log. Mistakes are `400`s that name
//! the parameter and say what would be accepted (axum's own extractors would answer
//! plain text, not the API's JSON).

use http::HeaderMap;
use serde::Deserialize;
pub use sparky_core::api::{build_id, no_build};
use sparky_core::{
    api::ApiError,
    model::{BuildStatus, TriggerKind},
    project::valid_name,
    store::{HistoryFilter, MIN_SEARCH},
};

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

/// A history as asked for: which builds (`?project=&status=&branch=&trigger=&q=`) and
/// which page of them (`?limit=&before=`). Empty values mean "any", as a form sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    pub page: Page,
    pub filter: HistoryFilter,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHistory {
    limit: Option<String>,
    before: Option<String>,
    project: Option<String>,
    status: Option<String>,
    branch: Option<String>,
    trigger: Option<String>,
    q: Option<String>,
    /// Not part of a history, but allowed beside it: see [`refused`].
    #[serde(rename = "refused")]
    _refused: Option<String>,
    /// Not part of a history: the project page's Run form starting from a build (see
    /// [`run_from`]).
    #[serde(rename = "from")]
    _from: Option<String>,
}

/// The longest branch name or search text a filter takes.
const MAX_FILTER: usize = 200;

/// `Some(value)` unless it is absent or blank.
fn given(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// `?name=` as one of `T`'s names, or a 400 listing them.
fn one_of<T: std::str::FromStr>(
    name: &str,
    value: Option<String>,
    names: &[&str],
) -> Result<Option<T>, ApiError> {
    given(value)
        .map(|text| {
            text.parse::<T>().map_err(|_| {
                ApiError::BadRequest(format!("{name}={text:?}: expected one of {}", names.join(", ")))
            })
        })
        .transpose()
}

impl History {
    /// Reads a history's query string. `project` is the project whose page or API
    /// this is (then `?project=` is refused: the path already says).
    pub fn parse(query: Option<&str>, project: Option<&str>) -> Result<History, ApiError> {
        let raw: RawHistory = serde_urlencoded::from_str(query.unwrap_or_default())
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
        let project = match (project, given(raw.project)) {
            (Some(path), Some(_)) => {
                return Err(ApiError::BadRequest(format!(
                    "project=: this is project {path:?}'s history already; use /builds?project= for another"
                )));
            }
            (Some(path), None) => Some(path.to_string()),
            (None, Some(name)) if !valid_name(&name) => {
                return Err(ApiError::BadRequest(format!(
                    "project={name:?}: not a project name (letters, digits, `.`, `_`, `-`)"
                )));
            }
            (None, name) => name,
        };
        let statuses: Vec<&str> = BuildStatus::ALL.iter().map(|s| s.as_str()).collect();
        let triggers: Vec<&str> = TriggerKind::ALL.iter().map(|t| t.as_str()).collect();
        let status = one_of("status", raw.status, &statuses)?;
        let trigger = one_of("trigger", raw.trigger, &triggers)?;
        let branch = given(raw.branch);
        if let Some(branch) = branch.as_ref().filter(|b| b.chars().count() > MAX_FILTER) {
            return Err(ApiError::BadRequest(format!(
                "branch={:?}...: a branch name is at most {MAX_FILTER} characters",
                branch.chars().take(20).collect::<String>()
            )));
        }
        let text = given(raw.q);
        if let Some(text) = &text {
            let chars = text.chars().count();
            if !(MIN_SEARCH..=MAX_FILTER).contains(&chars) {
                return Err(ApiError::BadRequest(format!(
                    "q={:?}: search for {MIN_SEARCH} to {MAX_FILTER} characters",
                    text.chars().take(20).collect::<String>()
                )));
            }
        }
        Ok(History {
            page: Page { limit, before },
            filter: HistoryFilter { project, status, branch, trigger, text },
        })
    }

    /// Whether anything narrows the history (beyond a project).
    pub fn filtered(&self) -> bool {
        let f = &self.filter;
        f.status.is_some() || f.branch.is_some() || f.trigger.is_some() || f.text.is_some()
    }

    /// The link to this history's page older than `before` (the newest page when
    /// `None`), keeping its filters. `with_project`: whether `?project=` belongs in it
    /// (the feed), or the path names the project.
    pub fn link(&self, path: &str, before: Option<i64>, with_project: bool) -> String {
        let f = &self.filter;
        let limit = (self.page.limit != DEFAULT_LIMIT).then(|| self.page.limit.to_string());
        let pairs: Vec<(&str, String)> = [
            ("project", f.project.clone().filter(|_| with_project)),
            ("status", f.status.map(|s| s.as_str().to_string())),
            ("branch", f.branch.clone()),
            ("trigger", f.trigger.map(|t| t.as_str().to_string())),
            ("q", f.text.clone()),
            ("limit", limit),
            ("before", before.map(|b| b.to_string())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        match serde_urlencoded::to_string(&pairs) {
            Ok(query) if !query.is_empty() => format!("{path}?{query}"),
            _ => path.to_string(),
        }
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

/// `?from=ID` on a project's page: the build whose parameters and description the
/// Run form starts from.
pub fn run_from(query: Option<&str>) -> Result<Option<i64>, ApiError> {
    match param(query, "from")?.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => text.parse::<i64>().map(Some).map_err(|_| {
            ApiError::BadRequest(format!("from={text:?}: expected the id of a build to start from"))
        }),
    }
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
        let page = |q| History::parse(Some(q), None).map(|h| h.page);
        assert_eq!(page("").ok(), Some(Page { limit: DEFAULT_LIMIT, before: None }));
        assert_eq!(page("limit=5&before=9").ok(), Some(Page { limit: 5, before: Some(9) }));
        assert_eq!(page("limit=5000").ok().map(|p| p.limit), Some(MAX_LIMIT));
        for bad in ["limit=0", "limit=many", "before=x", "limt=3"] {
            assert!(matches!(page(bad), Err(ApiError::BadRequest(_))), "{bad}");
        }
    }

    #[test]
    fn filters_are_read_checked_and_kept_in_links() {
        let history =
            History::parse(Some("status=failed&branch=main&trigger=webhook&q=flux+cap&limit=5"), None)
                .expect("a good query");
        let expected = HistoryFilter {
            project: None,
            status: Some(BuildStatus::Failed),
            branch: Some("main".into()),
            trigger: Some(TriggerKind::Webhook),
            text: Some("flux cap".into()),
        };
        assert_eq!(history.filter, expected);
        assert!(history.filtered());
        assert_eq!(
            history.link("/builds", Some(40), true),
            "/builds?status=failed&branch=main&trigger=webhook&q=flux+cap&limit=5&before=40"
        );
        // Blank fields, as an unfilled form sends them, mean "any".
        let blank = History::parse(Some("status=&branch=+&trigger=&q=&project="), None).expect("blank");
        assert_eq!(blank.filter, HistoryFilter::default());
        assert!(!blank.filtered());
        assert_eq!(blank.link("/builds", None, true), "/builds");
        // A project's own history takes its project from the path.
        let own = History::parse(Some("status=lost"), Some("app")).expect("own");
        assert_eq!(own.filter.project.as_deref(), Some("app"));
        assert_eq!(own.link("/projects/app", Some(3), false), "/projects/app?status=lost&before=3");
        for (bad, says) in [
            ("status=done", "expected one of queued, dispatched"),
            ("trigger=manual", "expected one of api, cron"),
            ("q=ab", "search for 3 to 200"),
            ("project=a/b", "not a project name"),
            ("colour=red", "bad query string"),
        ] {
            match History::parse(Some(bad), None) {
                Err(ApiError::BadRequest(message)) => assert!(message.contains(says), "{bad}: {message}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(History::parse(Some("project=x"), Some("app")), Err(ApiError::BadRequest(_))));
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
