//! Artifacts: the files a job leaves in `$SPARKY_ARTIFACTS` are stored, after it ends,
//! under the build's prefix (`projects/{p}/builds/{id}/artifacts/{path}`), streamed from
//! disk. Only what is really inside the folder is taken: a symbolic link pointing
//! outside it (`/etc/passwd`, `../../sparky.db`) is refused, as are names that can't
//! be keys and things that are not files; each refusal is a `[sparky]` line in the log.
//! A link to a file inside the folder is stored as that file.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use futures_util::{StreamExt, stream};
use sparky_core::{
    Ctx,
    error::error_chain,
    model::Build,
    reports::{Key, ReportStore, log::LogWriter, report::ArtifactEntry, retry},
};
use tokio::time::Instant;

/// At most this many files are stored per build.
pub const MAX_FILES: usize = 10_000;
/// Uploads at once.
const CONCURRENT_UPLOADS: usize = 4;

/// What storing the artifacts came to.
#[derive(Debug, Default)]
pub struct Stored {
    pub artifacts: Vec<ArtifactEntry>,
    /// Files that could not be stored (storage failed past the deadline).
    pub failed: Vec<String>,
}

/// An artifact's key and size, or why it could not be stored.
type Uploaded = Result<(Key, u64), String>;

/// A file found in the artifacts folder: its path below it and where to read it.
#[derive(Debug, PartialEq, Eq)]
struct Found {
    path: String,
    source: PathBuf,
}

/// Stores the files in `dir` as `build`'s artifacts, noting refusals in `log`.
pub async fn store(ctx: &Ctx, build: &Build, dir: &Path, log: &mut LogWriter, deadline: Instant) -> Stored {
    let root = dir.to_path_buf();
    let (found, refused) = match tokio::task::spawn_blocking(move || scan(&root)).await {
        Ok(scanned) => scanned,
        Err(error) => {
            tracing::error!(build_id = build.id, error = %error_chain(&error), "scanning the artifacts failed");
            return Stored::default();
        }
    };
    for note in &refused {
        log.append(format!("[sparky] artifact {note}\n").as_bytes());
    }
    if found.is_empty() {
        return Stored::default();
    }
    let prefix = Key::artifacts_prefix(&build.project, build.id);
    let results: Vec<(Found, Uploaded)> = stream::iter(found)
        .map(|file| {
            let store: Arc<dyn ReportStore> = ctx.reports.clone();
            let prefix = prefix.clone();
            async move {
                let result = async {
                    let key = Key::new(format!("{prefix}{}", file.path)).map_err(|e| e.to_string())?;
                    let size =
                        retry::until(deadline, &key.to_string(), || store.put_file(&key, &file.source))
                            .await
                            .map_err(|e| error_chain(&e))?;
                    Ok((key, size))
                }
                .await;
                (file, result)
            }
        })
        .buffer_unordered(CONCURRENT_UPLOADS)
        .collect()
        .await;
    let mut stored = Stored::default();
    let mut total = 0;
    for (file, result) in results {
        match result {
            Ok((key, size)) => {
                total += size;
                stored.artifacts.push(ArtifactEntry {
                    url: sparky_core::api::artifact_url(build.id, &file.path),
                    path: file.path,
                    size,
                    key: key.to_string(),
                });
            }
            Err(error) => {
                log.append(
                    format!("[sparky] artifact {} could not be stored: {error}\n", file.path).as_bytes(),
                );
                stored.failed.push(file.path);
            }
        }
    }
    stored.artifacts.sort_by(|a, b| a.path.cmp(&b.path));
    let count = stored.artifacts.len();
    log.append(
        format!("[sparky] {count} artifact{} stored ({total} bytes)\n", if count == 1 { "" } else { "s" })
            .as_bytes(),
    );
    stored
}

/// Walks `root` (not following links to folders); returns the files to store, in
/// path order, and a note for each thing refused.
fn scan(root: &Path) -> (Vec<Found>, Vec<String>) {
    let mut found = Vec::new();
    let mut refused = Vec::new();
    let Ok(real_root) = root.canonicalize() else {
        return (found, refused);
    };
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                refused.push(format!("{rel}{} refused: its name is not UTF-8", name.to_string_lossy()));
                continue;
            };
            let path = format!("{rel}{name}");
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                pending.push((entry.path(), format!("{path}/")));
                continue;
            }
            let source = if kind.is_symlink() {
                match entry.path().canonicalize() {
                    Ok(target) if !target.starts_with(&real_root) => {
                        refused.push(format!("{path} refused: a link pointing outside $SPARKY_ARTIFACTS"));
                        continue;
                    }
                    Ok(target) if target.is_file() => target,
                    Ok(_) => continue, // a link to a folder inside: its files are stored from there
                    Err(_) => {
                        refused.push(format!("{path} refused: a link to nothing"));
                        continue;
                    }
                }
            } else if kind.is_file() {
                entry.path()
            } else {
                refused.push(format!("{path} refused: not a file"));
                continue;
            };
            if let Err(e) = Key::new(format!("a/{path}")) {
                refused.push(format!("{path} refused: {e}"));
                continue;
            }
            if found.len() == MAX_FILES {
                refused.push(format!("{path} and any others refused: at most {MAX_FILES} files are stored"));
                return (found, refused);
            }
            found.push(Found { path, source });
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    (found, refused)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn takes_files_inside_and_refuses_links_outside() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("artifacts");
        std::fs::create_dir_all(root.join("reports/deep")).expect("mkdir");
        std::fs::write(root.join("app.tar.gz"), "tar").expect("write");
        std::fs::write(root.join("reports/deep/junit.xml"), "<x/>").expect("write");
        std::fs::write(dir.path().join("secret"), "outside").expect("write");
        symlink(dir.path().join("secret"), root.join("escape")).expect("link");
        symlink("../../secret", root.join("reports/relative-escape")).expect("link");
        symlink("/etc/passwd", root.join("passwd")).expect("link");
        symlink("reports/deep/junit.xml", root.join("latest.xml")).expect("link");
        symlink("reports", root.join("folder-link")).expect("link");
        symlink("missing", root.join("dangling")).expect("link");
        let (found, refused) = scan(&root);
        let paths: Vec<&str> = found.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["app.tar.gz", "latest.xml", "reports/deep/junit.xml"]);
        assert_eq!(std::fs::read_to_string(&found[1].source).expect("read"), "<x/>");
        let mut refused = refused;
        refused.sort();
        assert_eq!(
            refused,
            [
                "dangling refused: a link to nothing",
                "escape refused: a link pointing outside $SPARKY_ARTIFACTS",
                "passwd refused: a link pointing outside $SPARKY_ARTIFACTS",
                "reports/relative-escape refused: a link pointing outside $SPARKY_ARTIFACTS",
            ]
        );
    }
}
