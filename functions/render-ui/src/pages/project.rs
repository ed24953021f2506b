//! `GET /projects/{project}?status=&branch=&trigger=&q=&before=ID`: a project's
//! description, configuration (or why it is broken), its history a page at a time
//! (filtered, see [`super::history`]), and the Run form built from its
//! `vars`. The form posts to the trigger function, which answers `303 See Other` to
//! the new build's page.

use axum::{
    Extension,
    extract::{Path, RawQuery, State},
    response::Response,
};
use serde::Serialize;
use sparky_core::{Ctx, project::Var, time::now_ms};

use super::{ConfigErrorView, PageError, page};
use crate::{
    access::Viewer,
    pages::history::HistoryView,
    query::{self, History},
    summary::{self, ConfigJson},
    view::BuildView,
};

/// The Run form: one field per parameter.
#[derive(Serialize)]
struct RunForm {
    vars: Vec<Var>,
}

#[derive(Serialize)]
struct ProjectPage {
    name: String,
    description: Option<String>,
    error: Option<ConfigErrorView>,
    /// The project has builds but no folder any more.
    removed: bool,
    config: Option<ConfigJson>,
    /// `timeout` as written in sparky.yaml, e.g. `30m`.
    timeout: Option<String>,
    triggers: Option<crate::triggers::Triggers>,
    run: Option<RunForm>,
    /// Why there is no Run form, when the project is usable.
    no_run: Option<&'static str>,
    last: Option<BuildView>,
    history: HistoryView,
    /// Why the Run form was refused, when it sent the browser back here.
    refused: Option<String>,
}

/// `GET /projects/{project}`
#[tracing::instrument(skip_all, fields(project = %name))]
pub async fn project(
    State(ctx): State<Ctx>,
    Extension(viewer): Extension<Viewer>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let history = History::parse(raw.as_deref(), Some(&name))?;
    let (project, last) =
        summary::find_project(&ctx, &name).await?.ok_or_else(|| summary::no_project(&name))?;
    let path = format!("/projects/{}", sparky_core::api::encode_path(&name));
    let history = HistoryView::load(&ctx, history, &path, false).await?;
    let now = now_ms();
    let config = project.as_ref().and_then(|p| p.config.as_ref().ok());
    let no_run = match config {
        Some(c) if c.disabled => Some("This project is disabled (`disabled: true`): nothing triggers it."),
        Some(c) if !c.allow_manual_run => {
            Some("Manual runs are off for this project (`allow_manual_run: false`).")
        }
        _ => None,
    };
    let run = config.filter(|_| no_run.is_none()).map(|c| RunForm { vars: c.vars.clone() });
    let context = ProjectPage {
        name: name.clone(),
        description: config.and_then(|c| c.description.clone()),
        error: project.as_ref().and_then(|p| p.config.as_ref().err()).map(ConfigErrorView::from),
        removed: project.is_none(),
        config: config.map(ConfigJson::from),
        timeout: config.map(|c| humantime::format_duration(c.timeout).to_string()),
        triggers: match config {
            Some(config) => Some(crate::triggers::triggers(&ctx, &name, config).await?),
            None => None,
        },
        run,
        no_run,
        last: last.as_ref().map(|b| BuildView::new(b, now)),
        history,
        refused: query::refused(raw.as_deref()),
    };
    page("project.html", &viewer, context)
}
