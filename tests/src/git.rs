//! Real Git repositories for tests: created with the `git` command line in temp
//! folders, committed to and pushed to as a developer would.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A repository with a working tree.
pub struct Repo {
    pub path: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .expect("run git");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

impl Repo {
    /// `git init` with `main` checked out and one commit.
    pub fn init(path: &Path) -> Repo {
        std::fs::create_dir_all(path).expect("repo dir");
        git(path, &["init", "-q", "-b", "main"]);
        let repo = Repo { path: path.to_path_buf() };
        repo.commit("README", "first\n");
        repo
    }

    /// Writes `file` and commits it; returns the new commit.
    pub fn commit(&self, file: &str, text: &str) -> String {
        std::fs::write(self.path.join(file), text).expect("write file");
        git(&self.path, &["add", file]);
        git(&self.path, &["commit", "-q", "-m", &format!("change {file}")]);
        self.head()
    }

    pub fn head(&self) -> String {
        git(&self.path, &["rev-parse", "HEAD"])
    }

    /// Switches to `branch`, creating it from the current commit if needed.
    pub fn switch(&self, branch: &str) {
        if git(&self.path, &["branch", "--list", branch]).is_empty() {
            git(&self.path, &["switch", "-q", "-c", branch]);
        } else {
            git(&self.path, &["switch", "-q", branch]);
        }
    }

    pub fn tag(&self, name: &str) {
        git(&self.path, &["tag", name]);
    }

    /// `git init --bare` at `path`: a repository to push to, as a Git host keeps one.
    pub fn bare(path: &Path) -> Repo {
        std::fs::create_dir_all(path).expect("bare dir");
        git(path, &["init", "-q", "--bare", "-b", "main"]);
        Repo { path: path.to_path_buf() }
    }

    /// Pushes `rev` of this repository to `remote_ref` of the repository at `remote`
    /// (forced), as a host does when it publishes a pull request's head.
    pub fn push_to(&self, remote: &Path, rev: &str, remote_ref: &str) {
        let remote = remote.display().to_string();
        git(&self.path, &["push", "-q", "-f", &remote, &format!("{rev}:{remote_ref}")]);
    }
}
