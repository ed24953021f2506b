//! The file triggering protocol: a file in `projects/NAME/.triggers/` asks for one build
//! of NAME. The file is JSON or YAML with optional `description` and `params`.
//!
//! Rules (also in docs/configuration.md):
//! - Write the file under a name starting with `.` or ending in `.tmp`, then rename it:
//!   such names are never read, so a half-written file is never taken.
//! - Each file becomes exactly one build (trigger `file`), even when several processes
//!   read the inbox at once: the build carries an idempotency key made of the file's
//!   name, inode, modification time and size; the file is removed once it is queued.
//! - A file that can't be used moves to `.triggers/rejected/`, beside `NAME.error`
//!   saying why. A file waits while its project's sparky.yaml is broken.

use std::{collections::BTreeMap, os::unix::fs::MetadataExt, path::Path};

use serde::{Deserialize, Serialize};
use sparky_core::{
    Ctx,
    error::error_chain,
    model::{NewBuild, TriggerKind},
    project::{Project, params},
};

/// The inbox folder of a project.
pub const INBOX: &str = ".triggers";
/// Where unusable files go, inside the inbox.
pub const REJECTED: &str = "rejected";
/// Larger files are rejected unread.
const MAX_FILE: u64 = 1024 * 1024;

/// What became of one file.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct FileOutcome {
    pub project: String,
    pub file: String,
    pub build_id: Option<i64>,
    pub rejected: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerFile {
    description: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, params::ParamValue>,
}

/// Reads every project's inbox once.
pub async fn scan(ctx: &Ctx, projects: &[Project]) -> Vec<FileOutcome> {
    let mut outcomes = Vec::new();
    // A project in error can't build (and its folder may be a symlink not to follow):
    // its files wait until it is fixed.
    for project in projects.iter().filter(|p| p.config.is_ok()) {
        let inbox = project.dir.join(INBOX);
        let Ok(mut entries) = tokio::fs::read_dir(&inbox).await else { continue };
        let mut names = Vec::new();
        while let Ok(Some(entry)) = entries.next_entry().await {
            let Ok(name) = entry.file_name().into_string() else { continue };
            let is_file = entry.file_type().await.is_ok_and(|t| t.is_file());
            if is_file && !name.starts_with('.') && !name.ends_with(".tmp") && !name.ends_with(".error") {
                names.push(name);
            }
        }
        names.sort();
        for name in names {
            if let Some(outcome) = take(ctx, project, &inbox, &name).await {
                outcomes.push(outcome);
            }
        }
    }
    outcomes
}

/// Turns one file into a build, or rejects it. `None` when there is nothing to do
/// (another process took it meanwhile, or the project can't build right now).
async fn take(ctx: &Ctx, project: &Project, inbox: &Path, name: &str) -> Option<FileOutcome> {
    let path = inbox.join(name);
    let meta = tokio::fs::metadata(&path).await.ok()?;
    let config = project.config.as_ref().ok()?;
    let outcome = |build_id, rejected| FileOutcome {
        project: project.name.clone(),
        file: name.into(),
        build_id,
        rejected,
    };
    let parsed = if meta.len() > MAX_FILE {
        Err(format!("larger than {MAX_FILE} bytes"))
    } else {
        let text = tokio::fs::read_to_string(&path).await.ok()?;
        let text = if text.trim().is_empty() { "{}" } else { text.as_str() };
        serde_yaml_ng::from_str::<TriggerFile>(text).map_err(|e| format!("not a trigger file: {e}"))
    };
    let request = parsed.and_then(|request| {
        if config.disabled { Err(format!("project {} is disabled", project.name)) } else { Ok(request) }
    });
    let build = request.and_then(|request| {
        let params = params::resolve(&config.vars, request.params).map_err(|e| e.to_string())?;
        Ok(NewBuild {
            project: project.name.clone(),
            trigger: Some(TriggerKind::File),
            params,
            description: request.description.or_else(|| Some(format!("trigger file {name}"))),
            triggered_by: Some(format!("file .triggers/{name}")),
            idempotency_key: Some(format!(
                "file:{}:{name}:{}:{}:{}",
                project.name,
                meta.ino(),
                meta.mtime_nsec() + meta.mtime() * 1_000_000_000,
                meta.len()
            )),
            ..NewBuild::default()
        })
    });
    match build {
        Ok(new) => match ctx.queue_build(new).await {
            Ok(inserted) => {
                if let Err(error) = tokio::fs::remove_file(&path).await
                    && error.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::error!(file = %path.display(), error = %error_chain(&error), "could not remove a trigger file after queueing it");
                }
                inserted.created.then(|| outcome(Some(inserted.build.id), None))
            }
            Err(error) => {
                tracing::warn!(file = %path.display(), error = %error_chain(&error), "could not queue a trigger file; will retry");
                None
            }
        },
        Err(why) => reject(inbox, name, &why).await.then(|| outcome(None, Some(why))),
    }
}

/// Moves a file to `rejected/` with a `.error` beside it. `false` if another process
/// moved it first.
async fn reject(inbox: &Path, name: &str, why: &str) -> bool {
    let rejected = inbox.join(REJECTED);
    if let Err(error) = tokio::fs::create_dir_all(&rejected).await {
        tracing::error!(dir = %rejected.display(), error = %error_chain(&error), "could not create the rejected folder");
        return false;
    }
    let mut target = rejected.join(name);
    if tokio::fs::try_exists(&target).await.unwrap_or(false) {
        target = rejected.join(format!("{name}.{}", sparky_core::time::now_ms()));
    }
    if tokio::fs::rename(inbox.join(name), &target).await.is_err() {
        return false;
    }
    let error_file = target.with_file_name(format!(
        "{}.error",
        target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    if let Err(error) = tokio::fs::write(&error_file, format!("{why}\n")).await {
        tracing::error!(file = %error_file.display(), error = %error_chain(&error), "could not write why a trigger file was rejected");
    }
    tracing::warn!(file = name, reason = why, "trigger file rejected");
    true
}
