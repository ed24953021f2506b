//! What a runner takes when it starts a build ([`Assignment`], [`Ctx::assign`]) and
//! the shapes in which dispatch's runner API sends it and hears back ([`wire`]), for a
//! runner that has no state folder of its own.

pub mod wire;

use std::{collections::BTreeMap, io};

use crate::{
    Ctx,
    error::error_chain,
    lifecycle::Started,
    model::Build,
    project::{Project, ProjectConfig, ProjectError, grants},
    secrets::Secret,
    store::StoreError,
};

/// A build a runner took: the build, its job token, its project as it is now
/// (`None`: the project is gone) and the values of the secrets granted to it (or why
/// they can't be had).
#[derive(Debug)]
pub struct Assignment {
    pub build: Build,
    pub token: Secret,
    pub project: Option<Project>,
    pub secrets: Result<BTreeMap<String, Secret>, String>,
}

impl Ctx {
    /// Starts dispatched build `build_id` for the runner `owner` ([`Ctx::start_build`])
    /// and gathers what its job needs. `None`: there is nothing to run.
    pub async fn assign(&self, build_id: i64, owner: &str) -> Result<Option<Assignment>, StoreError> {
        let Some(started) = self.start_build(build_id, owner).await? else {
            return Ok(None);
        };
        Ok(Some(self.gather(started).await))
    }

    /// What the job of a build that started needs: its project as it is now and the
    /// secrets granted to it.
    pub async fn gather(&self, started: Started) -> Assignment {
        let Started { build, token } = started;
        let project = self.projects.get(&build.project).await.unwrap_or_else(|error| {
            tracing::error!(project = %build.project, %error, "could not look at the project");
            let file = format!("projects/{}", build.project);
            let problem = format!("could not be read ({error})");
            let dir = self.projects.dir().join(&build.project);
            Some(Project {
                name: build.project.clone(),
                dir,
                config: Err(ProjectError { file, line: None, problem }),
            })
        });
        let secrets = match project.as_ref().map(|p| &p.config) {
            Some(Ok(config)) => self.granted_secrets(config, build.from_fork()).await,
            _ => Ok(BTreeMap::new()),
        };
        Assignment { build, token, project, secrets }
    }

    /// The values of the secrets granted to a project, from the secrets folder; for a
    /// pull request from a fork only those marked `forks: true`.
    async fn granted_secrets(
        &self,
        config: &ProjectConfig,
        from_fork: bool,
    ) -> Result<BTreeMap<String, Secret>, String> {
        let names: Vec<String> = grants::for_build(&config.secrets, from_fork).map(str::to_string).collect();
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let Some(dir) = self.projects.secrets().cloned() else {
            return Err("this process has no secrets folder".into());
        };
        tokio::task::spawn_blocking(move || dir.values(names.iter().map(String::as_str)))
            .await
            .map_err(|e| format!("could not read the secrets: {}", error_chain(&io::Error::other(e))))?
            .map_err(|e| format!("could not give the job its secrets: {}", error_chain(&e)))
    }
}
