//! Finding projects on disk. Each lookup reads the files again, so a changed
//! sparky.yaml applies to the next build without a restart.

use std::{
    io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use super::{ProjectConfig, ProjectError, valid_name};

/// A project folder and its config (or why the config can't be used).
#[derive(Clone, Debug)]
pub struct Project {
    pub name: String,
    pub dir: PathBuf,
    pub config: Result<ProjectConfig, ProjectError>,
}

impl Project {
    /// The executable `job` file, used when sparky.yaml has no script.
    pub fn job_file(&self) -> PathBuf {
        self.dir.join("job")
    }
}

/// The `projects/` folder.
#[derive(Clone, Debug)]
pub struct Projects {
    dir: PathBuf,
}

/// The example project written into an empty root.
const EXAMPLE: &str = "\
description: Says hello; edit projects/hello/sparky.yaml to make it yours
script: |
  echo \"Hello from Sparky! This is build $SPARKY_BUILD_ID of $SPARKY_PROJECT, greeting $NAME.\"
vars:
  - name: NAME
    type: text
    default: world
    description: Who to greet
keep_builds: 20
timeout: 5m
";

impl Projects {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Projects { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every project, sorted by name. Folders without sparky.yaml or with names
    /// outside `[A-Za-z0-9][A-Za-z0-9._-]*` are not projects.
    pub async fn list(&self) -> io::Result<Vec<Project>> {
        let mut entries = match tokio::fs::read_dir(&self.dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        while let Some(entry) = entries.next_entry().await? {
            if let Ok(name) = entry.file_name().into_string()
                && valid_name(&name)
            {
                names.push(name);
            }
        }
        names.sort();
        let mut projects = Vec::new();
        for name in names {
            if let Some(project) = self.get(&name).await? {
                projects.push(project);
            }
        }
        Ok(projects)
    }

    /// The project called `name`, or `None` if there is none (invalid names included,
    /// so that no name can reach outside `projects/`).
    pub async fn get(&self, name: &str) -> io::Result<Option<Project>> {
        if !valid_name(name) {
            return Ok(None);
        }
        let dir = self.dir.join(name);
        let file = dir.join("sparky.yaml");
        let source = match tokio::fs::read(&file).await {
            Ok(bytes) => bytes,
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let shown = format!("projects/{name}/sparky.yaml");
        let job = match tokio::fs::metadata(dir.join("job")).await {
            Ok(meta) if meta.is_file() => Some(meta.permissions().mode() & 0o111 != 0),
            _ => None,
        };
        let config = match String::from_utf8(source) {
            Ok(text) => ProjectConfig::parse(&shown, &text, job),
            Err(_) => Err(ProjectError { file: shown, line: None, problem: "not UTF-8 text".into() }),
        };
        Ok(Some(Project { name: name.into(), dir, config }))
    }

    /// On a root without a `projects/` folder, creates it with the example project
    /// `hello`. Returns whether it did.
    pub async fn create_example_if_empty(&self) -> io::Result<bool> {
        if tokio::fs::try_exists(&self.dir).await? {
            return Ok(false);
        }
        let hello = self.dir.join("hello");
        tokio::fs::create_dir_all(&hello).await?;
        tokio::fs::write(hello.join("sparky.yaml"), EXAMPLE).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_projects_keeping_broken_ones_with_their_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let projects = Projects::new(dir.path().join("projects"));
        assert!(projects.create_example_if_empty().await.expect("example"));
        assert!(!projects.create_example_if_empty().await.expect("example"), "only once");
        std::fs::create_dir_all(dir.path().join("projects/broken")).expect("mkdir");
        std::fs::write(dir.path().join("projects/broken/sparky.yaml"), "script: echo\nconcurrency: many\n")
            .expect("write");
        std::fs::create_dir_all(dir.path().join("projects/.hidden")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("projects/empty")).expect("mkdir");
        let list = projects.list().await.expect("list");
        let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["broken", "hello"]);
        let err = list[0].config.as_ref().unwrap_err().to_string();
        assert!(err.starts_with("projects/broken/sparky.yaml, line 2:"), "{err}");
        assert!(list[1].config.is_ok());
        assert!(projects.get("../etc").await.expect("get").is_none());
    }
}
