//! Working folders made ahead of time. Each new folder or file costs the file system an
//! inode, and on some file systems that is slow: on ext4 without a journal, after many
//! files were deleted, one costs about half a millisecond (this machine's measure),
//! and a build needs four (its folder, `workspace`, `artifacts`, `script.sh`) before its
//! first command. So they are made while no build waits for them, as a set named
//! `.ready-N` in the work folder, and a starting build takes a set by renaming it to
//! its own folder's name, which makes no inode.
//!
//! Several processes may share the work folder: a set is taken by one atomic rename
//! (the loser finds none and makes its folders itself), and a set is made under a name
//! of this process's own, then renamed into its slot only if the slot is empty.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
};

/// Ready sets kept at most.
pub const MOST: usize = 4;

/// This process makes one batch of sets at a time.
static MAKING: AtomicBool = AtomicBool::new(false);

fn slot(work: &Path, n: usize) -> PathBuf {
    work.join(format!(".ready-{n}"))
}

/// Moves a ready set to `build_dir` (which must not exist yet, or be empty); `false`
/// when there was none to take.
pub fn take(work: &Path, slots: usize, build_dir: &Path) -> bool {
    (0..slots).any(|n| fs::rename(slot(work, n), build_dir).is_ok())
}

/// Makes sets for the empty ones of `slots` slots, in the background, unless this
/// process is already making some.
pub fn refill(work: PathBuf, slots: usize) {
    if MAKING.swap(true, Ordering::SeqCst) {
        return;
    }
    tokio::task::spawn_blocking(move || {
        for n in 0..slots {
            let ready = slot(&work, n);
            if ready.exists() {
                continue;
            }
            if let Err(error) = make(&work, &ready, n) {
                tracing::debug!(%error, "could not make a working folder ahead of time");
                break;
            }
        }
        MAKING.store(false, Ordering::SeqCst);
    });
}

/// Makes one set and renames it to `ready`; another process's set already there wins
/// (this one is removed).
fn make(work: &Path, ready: &Path, n: usize) -> io::Result<()> {
    let making = work.join(format!(".making-{n}-{}", std::process::id()));
    match fs::remove_dir_all(&making) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::create_dir_all(making.join("workspace"))?;
    fs::create_dir(making.join("artifacts"))?;
    fs::File::create(making.join("script.sh"))?;
    if fs::rename(&making, ready).is_err() {
        fs::remove_dir_all(&making)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_build_takes_a_ready_set_and_two_never_take_the_same() {
        let work = tempfile::tempdir().expect("temp dir");
        let work = work.path();
        assert!(!take(work, 2, &work.join("1")), "nothing is ready before a refill");

        refill(work.to_path_buf(), 2);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !(slot(work, 0).exists() && slot(work, 1).exists()) {
            assert!(std::time::Instant::now() < deadline, "the sets were never made");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(take(work, 2, &work.join("1")));
        assert!(take(work, 2, &work.join("2")));
        assert!(!take(work, 2, &work.join("3")), "two sets, two builds");
        for build in ["1", "2"] {
            let dir = work.join(build);
            assert!(dir.join("workspace").is_dir() && dir.join("artifacts").is_dir());
            assert_eq!(fs::read(dir.join("script.sh")).expect("script file"), b"");
        }

        // A build folder that a previous attempt left with files in it is not replaced.
        fs::write(work.join("2/workspace/left"), "x").expect("write");
        while !slot(work, 0).exists() {
            // (Again until one runs: the last refill may not have marked itself done yet.)
            refill(work.to_path_buf(), 1);
            assert!(std::time::Instant::now() < deadline, "the set was never made");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(!take(work, 1, &work.join("2")));
        assert!(work.join("2/workspace/left").exists());
    }
}
