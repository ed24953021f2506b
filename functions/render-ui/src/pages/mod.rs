//! The HTML pages. Handlers gather what a page shows into a context (see [`crate::view`])
//! and render its template; failures become an HTML error page with the right status
//! (a page for a project or build that does not exist is a 404 saying which).
//!
//! - [`projects`] `/` and [`queue`] `/queue` are here.
//! - [`project`] `/projects/{project}`: history and the Run form.
//! - [`build`] `/builds/{id}`: one build with its (live) log.
//! - [`history`] `/builds`: every project's builds, filtered; and the history part of
//!   a project's page.

mod build;
mod history;
mod project;

pub use build::build;
pub use history::builds;
pub use project::project;

use axum::{
    Extension,
    extract::State,
    response::{Html, IntoResponse, Response},
};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use sparky_core::{Ctx, api::ApiError, error::error_chain, project::ProjectError, time::now_ms};

use crate::{
    access::Viewer,
    summary,
    templates::render,
    view::{BuildView, When},
};

/// A page that could not be shown; rendered as the error page.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl<E> From<E> for PageError
where
    ApiError: From<E>,
{
    fn from(e: E) -> Self {
        PageError(ApiError::from(e))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let error = self.0;
        let status = error.status();
        if let ApiError::Internal(cause) = &error {
            tracing::error!(error = %error_chain(cause.as_ref()), "page failed");
        }
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::SERVICE_UNAVAILABLE => "Busy",
            StatusCode::BAD_REQUEST => "Bad request",
            _ => "Something went wrong",
        };
        let context = ErrorPage { title, message: error.to_string(), code: status.as_u16() };
        let mut response = match render("error.html", &context) {
            Ok(page) => (status, Html(page)).into_response(),
            Err(e) => {
                tracing::error!(error = %error_chain(&e), "the error page failed too");
                (status, context.message).into_response()
            }
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[derive(Serialize)]
struct ErrorPage {
    title: &'static str,
    message: String,
    code: u16,
}

/// Renders a page for `viewer` (the layout's login or logout, the forms' tokens); pages
/// are never cached, since they show live state.
pub fn page(name: &str, viewer: &Viewer, context: impl Serialize) -> Result<Response, PageError> {
    use minijinja::{Value, value::Serde};
    let context = minijinja::context! { viewer => Value::from(Serde(viewer)), ..Value::from(Serde(context)) };
    let html = render(name, context).map_err(|e| PageError(ApiError::internal(e)))?;
    Ok(([(header::CACHE_CONTROL, "no-cache")], Html(html)).into_response())
}

/// A broken sparky.yaml, split for display.
#[derive(Debug, Serialize)]
pub struct ConfigErrorView {
    pub file: String,
    pub line: Option<usize>,
    pub problem: String,
}

impl From<&ProjectError> for ConfigErrorView {
    fn from(e: &ProjectError) -> Self {
        ConfigErrorView { file: e.file.clone(), line: e.line, problem: e.problem.clone() }
    }
}

#[derive(Serialize)]
struct ProjectRow {
    name: String,
    description: Option<String>,
    disabled: bool,
    error: Option<ConfigErrorView>,
    last: Option<LastBuild>,
}

/// What the projects page shows of a project's newest build (a whole [`BuildView`]
/// per row would be computed and handed to the template for three fields).
#[derive(Serialize)]
struct LastBuild {
    id: i64,
    status: &'static str,
    created: When,
}

/// `GET /`: every project with its newest build.
#[tracing::instrument(skip_all)]
pub async fn projects(
    State(ctx): State<Ctx>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Response, PageError> {
    // Both on the blocking pool, at once.
    let (projects, last) = tokio::join!(ctx.projects.list(), ctx.store.last_builds());
    let (projects, last) = (projects?, last?);
    let now = now_ms();
    let rows: Vec<ProjectRow> = projects
        .iter()
        .map(|project| {
            let summary = summary::ProjectSummary::new(project, None);
            ProjectRow {
                name: summary.name,
                description: summary.description,
                disabled: summary.disabled,
                error: project.config.as_ref().err().map(ConfigErrorView::from),
                last: last.get(&project.name).map(|b| LastBuild {
                    id: b.id,
                    status: b.status.as_str(),
                    created: When::new(b.created_at, now),
                }),
            }
        })
        .collect();
    // A struct, not `json!`: turned into the template's values once, not twice.
    #[derive(Serialize)]
    struct Context {
        projects: Vec<ProjectRow>,
    }
    page("projects.html", &viewer, Context { projects: rows })
}

/// A build in the queue, with why it is not running yet.
#[derive(Serialize)]
struct QueueRow {
    #[serde(flatten)]
    build: BuildView,
    waiting_for: Option<String>,
}

/// `GET /queue`: what runs now, and the builds waiting, oldest first, each with why
/// it waits (its project's concurrency, the global cap, a runner, dispatch's next pass).
#[tracing::instrument(skip_all)]
pub async fn queue(
    State(ctx): State<Ctx>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Response, PageError> {
    let now = now_ms();
    let live = ctx.store.live_builds().await?;
    let mut reasons = crate::waits::of_queue(&ctx, &live).await?;
    let (running, waiting): (Vec<QueueRow>, Vec<QueueRow>) = live
        .iter()
        .map(|b| QueueRow { build: BuildView::new(b, now), waiting_for: reasons.remove(&b.id) })
        .partition(|row| row.waiting_for.is_none());
    let context = serde_json::json!({
        "running": running,
        "waiting": waiting,
        "max_running": ctx.config.max_running,
    });
    page("queue.html", &viewer, context)
}
