//! Starting a job: bash running the project's script (or its executable `job` file)
//! in a fresh working directory, in its own process group, with stdout and stderr
//! sharing one pipe so that they interleave in the order they were written.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
    process::Stdio,
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use sparky_core::{
    Config,
    error::error_chain,
    model::Build,
    project::{Project, ProjectConfig, Script},
    secrets::Secret,
};
use tokio::{net::unix::pipe, process::Child};

use crate::ready;

/// A job's whole environment (nothing else of Sparky's reaches it).
pub struct JobEnv {
    pub vars: BTreeMap<String, String>,
}

/// A started job: the child (its process group has the same id) and the read end of
/// its output pipe.
pub struct Job {
    pub child: Child,
    pub pgid: Pid,
    pub output: pipe::Receiver,
}

/// Where a build's files go.
pub struct BuildDirs {
    pub dir: PathBuf,
    pub workspace: PathBuf,
    pub artifacts: PathBuf,
    pub script: PathBuf,
    pub checkout_script: PathBuf,
}

impl BuildDirs {
    pub fn new(build_dir: &Path) -> Self {
        BuildDirs {
            dir: build_dir.to_path_buf(),
            workspace: build_dir.join("workspace"),
            artifacts: build_dir.join("artifacts"),
            script: build_dir.join("script.sh"),
            checkout_script: build_dir.join("checkout.sh"),
        }
    }

    /// Makes the folders, from a set made ahead of time in `work` when one is ready
    /// ([`ready`]), else emptying what a previous attempt left (in one trip to the
    /// blocking pool).
    pub async fn prepare(&self, work: &Path, ready_slots: usize) -> io::Result<()> {
        let (work, dir) = (work.to_path_buf(), self.dir.clone());
        let dirs = [self.workspace.clone(), self.artifacts.clone()];
        tokio::task::spawn_blocking(move || {
            if ready::take(&work, ready_slots, &dir) {
                return Ok(());
            }
            for dir in &dirs {
                match std::fs::remove_dir_all(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                std::fs::create_dir_all(dir)?;
            }
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// The environment a job gets, whole: the allowlisted part of Sparky's own
/// (`PATH`, `HOME`, `LANG`, `LC_*`, ...), `SPARKY_*`, `SCM_*` where known (a pull
/// request's number and branches too), the project's
/// `env`, its parameters (which win over `env`), and last the values of the secrets
/// granted to it. Nothing of Sparky's configuration: no API token, no credentials.
pub fn job_env(
    build: &Build,
    config: &ProjectConfig,
    dirs: &BuildDirs,
    sparky: &Config,
    secrets: &BTreeMap<String, Secret>,
) -> JobEnv {
    let api_url = sparky.api_url.as_deref().unwrap_or_default();
    // The build's own variables are set last: a project's `env`, a parameter or a secret
    // of the same name can't pass for what Sparky says (a parent build, a commit).
    let mut own = BTreeMap::new();
    let mut set = |k: &str, v: &str| {
        own.insert(k.to_string(), v.to_string());
    };
    set("SPARKY_PROJECT", &build.project);
    set("SPARKY_BUILD_ID", &build.id.to_string());
    set("SPARKY_TRIGGER", build.trigger.as_str());
    set("SPARKY_API", api_url);
    set("SPARKY_ARTIFACTS", &dirs.artifacts.to_string_lossy());
    set("SPARKY_WORKSPACE", &dirs.workspace.to_string_lossy());
    set("CI", "true");
    set("GIT_TERMINAL_PROMPT", "0");
    if let Some(parent) = build.parent_build {
        set("SPARKY_PARENT_BUILD", &parent.to_string());
    }
    for (name, value) in
        [("SCM_URL", &build.scm.url), ("SCM_BRANCH", &build.scm.branch), ("SCM_SHA", &build.scm.sha)]
    {
        if let Some(value) = value {
            set(name, value);
        }
    }
    if let Some(pull) = &build.pull_request {
        set("SPARKY_PULL_REQUEST", &pull.number.to_string());
        set("SCM_SOURCE_BRANCH", &pull.source_branch);
        set("SCM_TARGET_BRANCH", &pull.target_branch);
    }
    let mut env = sparky.job_env.clone();
    env.extend(config.env.clone());
    env.extend(build.params.clone());
    env.extend(secrets.iter().map(|(name, value)| (name.clone(), value.expose().to_string())));
    env.extend(own);
    JobEnv { vars: env }
}

/// Starts the job. Scripts run as `bash -eo pipefail script.sh`: the first failing
/// command fails the build, as in most CI systems.
pub async fn spawn(
    project: &Project,
    config: &ProjectConfig,
    dirs: &BuildDirs,
    env: &JobEnv,
) -> io::Result<Job> {
    match &config.script {
        Script::Inline(script) => spawn_script(&dirs.script, script, dirs, env).await,
        Script::JobFile => spawn_command(tokio::process::Command::new(project.job_file()), dirs, env),
    }
}

/// Writes `script` to `path` and starts it with `bash -eo pipefail`.
pub async fn spawn_script(path: &Path, script: &str, dirs: &BuildDirs, env: &JobEnv) -> io::Result<Job> {
    tokio::fs::write(path, script).await?;
    let mut command = tokio::process::Command::new(on_path("bash", env));
    command.arg("-eo").arg("pipefail").arg(path);
    spawn_command(command, dirs, env)
}

/// Where `program` is on the job's `PATH` (as the shell would find it), or the name
/// alone when it is nowhere there (starting it then fails with "not found"). Starting a
/// program by its full path lets the standard library use `posix_spawn`, which shares
/// Sparky's memory with the new process until it runs the program, instead of `fork`,
/// which copies the page tables of every thread's memory for each job.
fn on_path(program: &str, env: &JobEnv) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = env.vars.get("PATH").map(String::as_str).unwrap_or("/usr/bin:/bin");
    std::env::split_paths(path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| PathBuf::from(program))
}

/// Starts `command` in the workspace, in its own process group, with stdout and stderr
/// on one pipe.
fn spawn_command(mut command: tokio::process::Command, dirs: &BuildDirs, env: &JobEnv) -> io::Result<Job> {
    let (reader, writer) = io::pipe()?;
    command
        .current_dir(&dirs.workspace)
        .env_clear()
        .envs(&env.vars)
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .process_group(0);
    let child = command.spawn()?;
    // The command holds the pipe's write ends; drop it so that the pipe reaches EOF
    // once the job's processes are gone.
    drop(command);
    let pid = child.id().ok_or_else(|| io::Error::other("the job exited before it could be tracked"))?;
    let output = pipe::Receiver::from_owned_fd(reader.into())?;
    Ok(Job { child, pgid: Pid::from_raw(pid as i32), output })
}

/// Sends `signal` to every process in the job's group (a group already gone is fine).
pub fn signal_group(pgid: Pid, signal: Signal) {
    match killpg(pgid, signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(error) => {
            tracing::warn!(pgid = pgid.as_raw(), error = %error_chain(&error), "could not signal the job's process group")
        }
    }
}
