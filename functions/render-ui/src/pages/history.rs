//! History as the pages show it: `GET /builds`, the feed of every project's builds, and
//! the history part of a project's page. Both have the same columns (commit, branch or
//! pull request, trigger and who, duration, status), the same filters (status, branch,
//! trigger, text) in a form that works without JavaScript, and pages whose links keep
//! the filters.

use axum::{
    Extension,
    extract::{RawQuery, State},
    response::Response,
};
use serde::Serialize;
use sparky_core::{
    Ctx,
    api::ApiError,
    model::{BuildStatus, TriggerKind},
    time::now_ms,
};

use super::{PageError, page};
use crate::{access::Viewer, query::History, view::BuildView};

/// One page of a history, with its filter form and links.
#[derive(Serialize)]
pub struct HistoryView {
    pub builds: Vec<BuildView>,
    /// Where the filter form posts (by `GET`).
    pub path: String,
    /// The feed shows each build's project, and filters by it.
    pub all_projects: bool,
    pub project: Option<String>,
    pub status: Option<&'static str>,
    pub branch: Option<String>,
    pub trigger: Option<&'static str>,
    pub q: Option<String>,
    pub statuses: Vec<&'static str>,
    pub triggers: Vec<&'static str>,
    /// Whether a filter narrows it (the page then offers to clear them).
    pub filtered: bool,
    /// The newest page with the same filters, when this is an older one.
    pub newest: Option<String>,
    pub older: Option<String>,
}

impl HistoryView {
    /// Reads the page `history` asks for; `path` is the page's own path, and
    /// `all_projects` whether it is the feed.
    pub async fn load(ctx: &Ctx, history: History, path: &str, all_projects: bool) -> Result<Self, ApiError> {
        let found =
            ctx.store.history(history.filter.clone(), history.page.limit, history.page.before).await?;
        let now = now_ms();
        let filter = &history.filter;
        Ok(HistoryView {
            builds: found.builds.iter().map(|b| BuildView::new(b, now)).collect(),
            path: path.to_string(),
            all_projects,
            project: filter.project.clone().filter(|_| all_projects),
            status: filter.status.map(BuildStatus::as_str),
            branch: filter.branch.clone(),
            trigger: filter.trigger.map(TriggerKind::as_str),
            q: filter.text.clone(),
            statuses: BuildStatus::ALL.iter().map(|s| s.as_str()).collect(),
            triggers: TriggerKind::ALL.iter().map(|t| t.as_str()).collect(),
            filtered: history.filtered() || (all_projects && filter.project.is_some()),
            newest: history.page.before.map(|_| history.link(path, None, all_projects)),
            older: found.next_before.map(|b| history.link(path, Some(b), all_projects)),
        })
    }
}

/// `GET /builds?project=&status=&branch=&trigger=&q=&before=ID`: every project's
/// builds, newest first. Who may see it: whoever may read (see [`crate::access`]).
#[tracing::instrument(skip_all)]
pub async fn builds(
    State(ctx): State<Ctx>,
    Extension(viewer): Extension<Viewer>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let history = History::parse(raw.as_deref(), None)?;
    let view = HistoryView::load(&ctx, history, "/builds", true).await?;
    #[derive(serde::Serialize)]
    struct Context {
        history: HistoryView,
    }
    page("builds.html", &viewer, Context { history: view })
}
