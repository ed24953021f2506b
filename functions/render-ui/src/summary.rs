//! What the JSON API and the HTML pages both say about a project: the list entry
//! (with its newest build) and the full description of its configuration. A project
//! whose sparky.yaml is broken is still described, with `ok: false` and the error
//! naming the file, the line and the problem, so that one typo hides nothing.
//!
//! `env` values are never shown: they may be secrets. Only their names are.

use serde::Serialize;
use sparky_core::{
    Ctx,
    api::{ApiError, BuildJson},
    model::Build,
    project::{Project, ProjectConfig, Script, Var},
};

/// A project in the projects list.
#[derive(Debug, Serialize)]
pub struct ProjectSummary {
    pub name: String,
    pub description: Option<String>,
    /// Whether its sparky.yaml is usable.
    pub ok: bool,
    /// Why it is not, e.g. `projects/app/sparky.yaml, line 3: ...`.
    pub error: Option<String>,
    pub disabled: bool,
    /// Whether it can be run by hand now (`false` for a broken project too).
    pub allow_manual_run: bool,
    pub last_build: Option<BuildJson>,
}

impl ProjectSummary {
    pub fn new(project: &Project, last_build: Option<&Build>) -> Self {
        let (description, error, disabled, allow_manual_run) = match &project.config {
            Ok(config) => (config.description.clone(), None, config.disabled, config.allow_manual_run),
            Err(error) => (None, Some(error.to_string()), false, false),
        };
        ProjectSummary {
            name: project.name.clone(),
            description,
            ok: error.is_none(),
            error,
            disabled,
            allow_manual_run,
            last_build: last_build.map(BuildJson::from),
        }
    }
}

/// Every project, sorted by name, each with its newest build.
pub async fn all_projects(ctx: &Ctx) -> Result<Vec<ProjectSummary>, ApiError> {
    let projects = ctx.projects.list().await?;
    let last = ctx.store.last_builds().await?;
    Ok(projects.iter().map(|project| ProjectSummary::new(project, last.get(&project.name))).collect())
}

/// The `scm:` block, without the name of the webhook secret's variable.
#[derive(Debug, Serialize)]
pub struct ScmJson {
    pub url: String,
    pub branch: Option<String>,
    pub poll: bool,
    pub tags: bool,
}

/// A usable project's configuration.
#[derive(Debug, Serialize)]
pub struct ConfigJson {
    pub disabled: bool,
    pub allow_manual_run: bool,
    /// `inline` (a `script:`) or `job` (the executable `job` file).
    pub script: &'static str,
    pub timeout_secs: u64,
    pub concurrency: u32,
    pub retries: u32,
    pub keep_builds: u32,
    pub crontab: Option<String>,
    /// The crontab's time zone; UTC when not set.
    pub timezone: String,
    pub scm: Option<ScmJson>,
    pub downstream: Vec<String>,
    pub vars: Vec<Var>,
    /// Names of the variables set by `env:`; their values may be secret.
    pub env_keys: Vec<String>,
}

impl From<&ProjectConfig> for ConfigJson {
    fn from(config: &ProjectConfig) -> Self {
        ConfigJson {
            disabled: config.disabled,
            allow_manual_run: config.allow_manual_run,
            script: match config.script {
                Script::Inline(_) => "inline",
                Script::JobFile => "job",
            },
            timeout_secs: config.timeout.as_secs(),
            concurrency: config.concurrency,
            retries: config.retries,
            keep_builds: config.keep_builds,
            crontab: config.crontab.as_ref().map(ToString::to_string),
            timezone: config.timezone.name().to_string(),
            scm: config.scm.as_ref().map(|scm| ScmJson {
                url: scm.url.clone(),
                branch: scm.branch.clone(),
                poll: scm.poll,
                tags: scm.tags,
            }),
            downstream: config.downstream.clone(),
            vars: config.vars.clone(),
            env_keys: config.env.keys().cloned().collect(),
        }
    }
}

/// One project in full: `GET /api/v1/projects/{project}`.
#[derive(Debug, Serialize)]
pub struct ProjectDetail {
    pub name: String,
    pub description: Option<String>,
    pub ok: bool,
    pub error: Option<String>,
    /// Present when the config is usable.
    #[serde(flatten)]
    pub config: Option<ConfigJson>,
    /// Present when the config is usable.
    pub triggers: Option<crate::triggers::Triggers>,
    /// The last finished builds' durations and the success rate over them.
    pub trends: Option<crate::trends::TrendsJson>,
    pub last_build: Option<BuildJson>,
}

/// A project by name: its folder if it has one, and its newest build. `None` when
/// there is neither (a removed project's builds stay readable until pruned).
pub async fn find_project(
    ctx: &Ctx,
    name: &str,
) -> Result<Option<(Option<Project>, Option<Build>)>, ApiError> {
    let project = ctx.projects.get(name).await?;
    if project.is_none() && !sparky_core::project::valid_name(name) {
        return Ok(None);
    }
    let last = ctx.store.project_builds(name, 1, None).await?.builds.into_iter().next();
    if project.is_none() && last.is_none() {
        return Ok(None);
    }
    Ok(Some((project, last)))
}

/// The 404 for a project that does not exist.
pub fn no_project(name: &str) -> ApiError {
    ApiError::NotFound(format!("there is no project {name:?} (no projects/{name}/sparky.yaml and no builds)"))
}

impl ProjectDetail {
    pub fn new(name: &str, project: Option<&Project>, last_build: Option<&Build>) -> Self {
        let (description, error, config) = match project.map(|p| &p.config) {
            Some(Ok(config)) => (config.description.clone(), None, Some(config.into())),
            Some(Err(error)) => (None, Some(error.to_string()), None),
            None => (
                None,
                Some(format!("projects/{name}/sparky.yaml: the project was removed; its builds remain")),
                None,
            ),
        };
        ProjectDetail {
            name: name.into(),
            description,
            ok: error.is_none(),
            error,
            config,
            triggers: None,
            trends: None,
            last_build: last_build.map(BuildJson::from),
        }
    }
}
