//! A project as a runner without the state folder gets it: sparky.yaml's text and the
//! `job` file's bytes, taken by dispatch when the build starts ([`snapshot`]) and
//! written into the build's own folder by the runner ([`ProjectSnapshot::materialize`]),
//! where the catalog parses it as it would in `projects/`.

use std::{io, os::unix::fs::PermissionsExt, path::Path};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};

use super::{
    Project, ProjectError, Projects, Script,
    files::{self, Found},
};

/// The largest `job` file a runner is sent.
pub const MAX_JOB_BYTES: u64 = 16 * 1024 * 1024;

/// A project's files as they were when its build started.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProjectSnapshot {
    pub name: String,
    /// sparky.yaml's text, or why the project can't be used.
    pub config: Result<String, ProjectError>,
    /// The executable `job` file, base64, when the project runs one.
    pub job: Option<String>,
}

/// Takes `project`'s snapshot (blocking: it reads files).
pub fn snapshot(project: &Project) -> ProjectSnapshot {
    let name = project.name.clone();
    let config = match &project.config {
        Ok(config) => config,
        Err(error) => return ProjectSnapshot { name, config: Err(error.clone()), job: None },
    };
    let shown_dir = format!("projects/{name}");
    let read = |file: &str, limit: u64| -> Result<Vec<u8>, ProjectError> {
        let shown = format!("{shown_dir}/{file}");
        let problem = |problem: String| ProjectError { file: shown.clone(), line: None, problem };
        match files::find(&project.dir, &shown_dir, file) {
            Found::File { path, meta } => {
                files::read_bytes(&path, &meta, limit).map_err(|e| problem(format!("unreadable ({e})")))
            }
            Found::Missing => Err(problem("gone".into())),
            Found::Unusable(why) => Err(problem(why)),
        }
    };
    let text = read("sparky.yaml", super::MAX_CONFIG_BYTES as u64)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let job = match (&text, &config.script) {
        (Ok(_), Script::JobFile) => match read("job", MAX_JOB_BYTES) {
            Ok(bytes) => Some(Ok(STANDARD.encode(bytes))),
            Err(error) => Some(Err(error)),
        },
        _ => None,
    };
    match job {
        Some(Err(error)) => ProjectSnapshot { name, config: Err(error), job: None },
        Some(Ok(job)) => ProjectSnapshot { name, config: text, job: Some(job) },
        None => ProjectSnapshot { name, config: text, job: None },
    }
}

impl ProjectSnapshot {
    /// Writes the files under `dir/NAME/` and reads them back as a project, parsed as
    /// the catalog parses `projects/` (secret grants were checked by dispatch).
    pub async fn materialize(self, dir: &Path) -> io::Result<Project> {
        let project_dir = dir.join(&self.name);
        let text = match self.config {
            Ok(text) => text,
            Err(error) => return Ok(Project { name: self.name, dir: project_dir, config: Err(error) }),
        };
        tokio::fs::create_dir_all(&project_dir).await?;
        tokio::fs::write(project_dir.join("sparky.yaml"), text).await?;
        if let Some(job) = self.job {
            let bytes = STANDARD.decode(job).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let path = project_dir.join("job");
            tokio::fs::write(&path, bytes).await?;
            tokio::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).await?;
        }
        Projects::new(dir).get(&self.name).await?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{} is not a project name", self.name))
        })
    }
}
