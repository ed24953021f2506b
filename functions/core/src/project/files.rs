//! Looking at a project's files without trusting them: `projects/` is written by
//! people (and by whatever syncs it), so any name there may be a folder, a FIFO, a
//! device, a symlink loop or a symlink to a file elsewhere on the machine.
//!
//! - Types are checked with `lstat` before anything is opened; only regular files are
//!   opened, and then non-blocking, so that a FIFO swapped in meanwhile can't block.
//! - A symlink is followed only if it resolves to a regular file inside its own
//!   project folder; nothing elsewhere is opened (YAML errors quote the text they
//!   stumble on, and those errors are shown on public pages).
//! - The opened file must be the one that was looked at (same device and inode),
//!   and at most [`MAX_CONFIG_BYTES`] + 1 bytes of it are read.

use std::{
    fs::{self, File, Metadata, OpenOptions},
    io::{self, Read},
    os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use super::{JobFile, ProjectError, config::MAX_CONFIG_BYTES};

/// What was found at a name inside a project folder.
#[derive(Debug)]
pub(super) enum Found {
    /// Nothing there.
    Missing,
    /// A regular file, perhaps through a symlink inside the folder: `path` is where it
    /// really is, `meta` its `lstat` from just now.
    File { path: PathBuf, meta: Metadata },
    /// Something that can't be used, and why, phrased to follow "is" or a colon:
    /// "not a regular file but a FIFO (named pipe)".
    Unusable(String),
}

/// Looks at `project_dir/name` without opening it. `shown_dir` names the project
/// folder in messages (`projects/NAME`).
pub(super) fn find(project_dir: &Path, shown_dir: &str, name: &str) -> Found {
    let path = project_dir.join(name);
    let meta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
            return Found::Missing;
        }
        Err(e) => return Found::Unusable(unreadable(&e)),
    };
    if meta.is_file() {
        return Found::File { path, meta };
    }
    if !meta.file_type().is_symlink() {
        return Found::Unusable(format!("not a regular file but {}", kind(&meta)));
    }
    let target = match fs::canonicalize(&path) {
        Ok(target) => target,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Found::Unusable("a symlink to nothing (its target doesn't exist)".into());
        }
        Err(_) if loops(&path) => return Found::Unusable("a symlink that loops".into()),
        Err(e) => return Found::Unusable(format!("a symlink that can't be followed ({e})")),
    };
    let home = match fs::canonicalize(project_dir) {
        Ok(home) => home,
        Err(e) => return Found::Unusable(unreadable(&e)),
    };
    if !target.starts_with(&home) {
        return Found::Unusable(format!("a symlink leading outside {shown_dir} (not followed)"));
    }
    match fs::symlink_metadata(&target) {
        Ok(meta) if meta.is_file() => Found::File { path: target, meta },
        Ok(meta) => Found::Unusable(format!("not a regular file but a symlink to {}", kind(&meta))),
        Err(e) => Found::Unusable(unreadable(&e)),
    }
}

/// The `job` beside sparky.yaml, looked at without opening it.
pub(super) fn job(project_dir: &Path, shown_dir: &str) -> JobFile {
    match find(project_dir, shown_dir, "job") {
        Found::Missing => JobFile::Missing,
        Found::File { meta, .. } if meta.permissions().mode() & 0o111 != 0 => JobFile::Executable,
        Found::File { .. } => JobFile::NotExecutable,
        Found::Unusable(why) => JobFile::Unusable(why),
    }
}

/// Why reading a config failed.
#[derive(Debug)]
pub(super) enum ReadError {
    /// Something about the file's content, which stays true until the file changes.
    Content(ProjectError),
    /// Opening or reading failed, or the file changed under us: worth trying again.
    Io(ProjectError),
}

/// Reads the config at `path`, which `find` saw as the regular file `meta`. `shown`
/// names it in errors.
pub(super) fn read_config(path: &Path, meta: &Metadata, shown: &str) -> Result<String, ReadError> {
    let io_error = |problem: String| ReadError::Io(ProjectError { file: shown.into(), line: None, problem });
    if meta.len() > MAX_CONFIG_BYTES as u64 {
        return Err(ReadError::Content(ProjectError::too_large(shown)));
    }
    let file = open_checked(path, meta).map_err(|e| match e.kind() {
        io::ErrorKind::Other => io_error(e.to_string()),
        _ => io_error(unreadable(&e)),
    })?;
    let mut bytes = Vec::with_capacity((meta.len() as usize).min(MAX_CONFIG_BYTES) + 1);
    file.take(MAX_CONFIG_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(|e| io_error(unreadable(&e)))?;
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(ReadError::Content(ProjectError::too_large(shown)));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        ReadError::Content(ProjectError::not_utf8(shown, e.as_bytes(), valid))
    })
}

/// Opens the regular file `find` saw at `path` as `meta`, non-blocking, and makes
/// sure it is still that file.
fn open_checked(path: &Path, meta: &Metadata) -> io::Result<File> {
    let file = open_nonblocking(path)?;
    let opened = file.metadata()?;
    if !opened.is_file() || opened.dev() != meta.dev() || opened.ino() != meta.ino() {
        return Err(io::Error::other("replaced while being read"));
    }
    Ok(file)
}

/// The bytes of the regular file `find` saw at `path` as `meta`: at most `limit`,
/// else an error saying so.
pub(super) fn read_bytes(path: &Path, meta: &Metadata, limit: u64) -> io::Result<Vec<u8>> {
    let too_large = || io::Error::other(format!("larger than {limit} bytes"));
    if meta.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    open_checked(path, meta)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// "unreadable (Permission denied (os error 13))": the OS's words, never content.
fn unreadable(e: &io::Error) -> String {
    format!("unreadable ({e})")
}

/// "a folder", "a FIFO (named pipe)", ...: what a non-regular file is.
fn kind(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else if kind.is_symlink() {
        "a symlink"
    } else {
        "something else"
    }
}

/// Whether following `path` link by link goes round in circles (the kernel's limit
/// is 40 links), told apart from other reasons a symlink can't be followed.
fn loops(path: &Path) -> bool {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        let Ok(target) = fs::read_link(&path) else { return false };
        path = match path.parent() {
            Some(parent) => parent.join(target),
            None => target,
        };
    }
    true
}

/// Opens `path` for reading with `O_NONBLOCK`: open(2) on a FIFO otherwise waits for
/// a writer, forever. (The type was checked before, but the file may be swapped.)
fn open_nonblocking(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)
}

#[cfg(test)]
mod tests {
    use std::{process::Command, sync::mpsc, thread, time::Duration};

    use super::*;

    fn mkfifo(path: &Path) {
        let status = Command::new("mkfifo").arg(path).status().expect("run mkfifo");
        assert!(status.success(), "mkfifo {}", path.display());
    }

    /// Runs `f` on a thread and fails if it takes more than a few seconds (a blocked
    /// open(2) would take forever).
    fn promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || tx.send(f()));
        rx.recv_timeout(Duration::from_secs(5)).expect("returns promptly")
    }

    #[test]
    fn a_fifo_swapped_in_after_the_look_is_not_waited_on() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sparky.yaml");
        fs::write(&path, "script: echo\n").expect("write");
        let Found::File { path, meta } = find(dir.path(), "projects/app", "sparky.yaml") else {
            panic!("a regular file")
        };
        fs::remove_file(&path).expect("rm");
        mkfifo(&path);
        let fifo = path.clone();
        assert!(promptly(move || open_nonblocking(&fifo)).is_ok(), "O_NONBLOCK is right for this platform");
        let result = promptly(move || read_config(&path, &meta, "projects/app/sparky.yaml"));
        let Err(ReadError::Io(e)) = result else { panic!("{result:?}") };
        assert_eq!(e.to_string(), "projects/app/sparky.yaml: replaced while being read");
    }

    #[test]
    fn reads_no_more_than_the_limit_of_a_file_that_grew() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sparky.yaml");
        fs::write(&path, "script: echo\n").expect("write");
        let Found::File { path, meta } = find(dir.path(), "projects/app", "sparky.yaml") else {
            panic!("a regular file")
        };
        // 1 GiB more, without writing it: sparse.
        let file = fs::OpenOptions::new().write(true).open(&path).expect("open");
        file.set_len(1 << 30).expect("grow");
        let result = read_config(&path, &meta, "projects/app/sparky.yaml");
        let Err(ReadError::Content(e)) = result else { panic!("{result:?}") };
        assert_eq!(e.to_string(), "projects/app/sparky.yaml: larger than the 256 KiB limit");
    }

    #[test]
    fn names_what_a_file_is() {
        let meta = |path: &str| fs::symlink_metadata(path).expect("exists");
        assert_eq!(kind(&meta("/dev/null")), "a device");
        assert_eq!(kind(&meta("/")), "a folder");
    }
}
