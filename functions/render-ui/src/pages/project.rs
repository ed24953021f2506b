//! `GET /projects/{project}?status=&branch=&trigger=&q=&before=ID`: a project's
//! description, configuration (or why it is broken), its history a page at a time
//! (filtered, see [`super::history`]), and the Run form built from its
//! `vars` (with `?from=ID`, prefilled from that build and posting its rebuild). The form
//! posts to the trigger function, which answers `303 See Other` to
//! the new build's page.

use axum::{
    Extension,
    extract::{Path, RawQuery, State},
    response::Response,
};
use serde::Serialize;
use sparky_core::{
    Ctx,
    api::{ApiError, encode_path},
    model::Build,
    project::Var,
    time::now_ms,
};

use super::{ConfigErrorView, PageError, page};
use crate::{
    access::Viewer,
    pages::history::HistoryView,
    query::{self, History},
    summary::{self, ConfigJson},
    trends::{TREND_BUILDS, Trends},
    view::BuildView,
};

/// The Run form: one field per parameter, each at its default, or at the value of the
/// build it starts from (`?from=ID`), which it then rebuilds (same commit) with the
/// values as changed.
#[derive(Serialize)]
struct RunForm {
    vars: Vec<Var>,
    /// Where it posts: a new build, or a rebuild of `from`.
    action: String,
    from: Option<i64>,
    description: Option<String>,
}

impl RunForm {
    fn new(name: &str, vars: &[Var], from: Option<&Build>) -> RunForm {
        let mut vars = vars.to_vec();
        let Some(from) = from else {
            let action = format!("/api/v1/projects/{}/builds", encode_path(name));
            return RunForm { vars, action, from: None, description: None };
        };
        for var in &mut vars {
            if let Some(value) = from.params.get(&var.name) {
                var.default = value.clone();
            }
        }
        RunForm {
            vars,
            action: format!("/api/v1/builds/{}/rebuild", from.id),
            from: Some(from.id),
            description: from.description.clone(),
        }
    }
}

/// The build `?from=ID` names, which must be one of this project's.
async fn run_from(ctx: &Ctx, name: &str, raw: Option<&str>) -> Result<Option<Build>, ApiError> {
    let Some(id) = query::run_from(raw)? else { return Ok(None) };
    match ctx.store.build(id).await? {
        Some(build) if build.project == name => Ok(Some(build)),
        Some(build) => Err(ApiError::BadRequest(format!(
            "from={id}: build {id} is of project {}, not {name}",
            build.project
        ))),
        None => {
            Err(ApiError::BadRequest(format!("from={id}: there is no build {id} (pruned, or never made)")))
        }
    }
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
    trends: Option<Trends>,
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
    let from = run_from(&ctx, &name, raw.as_deref()).await?;
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
    let run = config.filter(|_| no_run.is_none()).map(|c| RunForm::new(&name, &c.vars, from.as_ref()));
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
        trends: Trends::new(&ctx.store.recent_finished(&name, TREND_BUILDS).await?),
        history,
        refused: query::refused(raw.as_deref()),
    };
    page("project.html", &viewer, context)
}
