//! Polling a real Git server: a bare repository that a working clone pushes to,
//! force-pushes to and deletes branches on, as a developer would.

use std::path::{Path, PathBuf};

use sparky_core::{project::ScmConfig, testing::TempCtx};

use super::poll;

fn git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
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

/// A bare repository (the server) and a clone of it with `main` checked out.
struct Server {
    bare: PathBuf,
    work: PathBuf,
}

impl Server {
    fn new(root: &Path) -> Server {
        let (bare, work) = (root.join("server.git"), root.join("work"));
        std::fs::create_dir_all(&bare).expect("server folder");
        git(&bare, &["init", "-q", "--bare", "-b", "main"]);
        // Let `main` be deleted although it is the server's HEAD, as hosts allow for
        // branches other than the default one.
        git(&bare, &["config", "receive.denyDeleteCurrent", "ignore"]);
        git(root, &["clone", "-q", bare.to_str().expect("UTF-8 path"), "work"]);
        git(&work, &["switch", "-q", "-c", "main"]);
        Server { bare, work }
    }

    /// Commits a change and pushes `main`; returns the new commit.
    fn push_commit(&self, text: &str) -> String {
        std::fs::write(self.work.join("README"), text).expect("write README");
        git(&self.work, &["add", "README"]);
        git(&self.work, &["commit", "-q", "-m", text]);
        git(&self.work, &["push", "-q", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Makes the server's `main` point at `sha`, whatever it pointed at before.
    fn force_push(&self, sha: &str) {
        git(&self.work, &["push", "-q", "--force", "origin", &format!("{sha}:refs/heads/main")]);
    }

    fn delete_main(&self) {
        git(&self.work, &["push", "-q", "origin", "--delete", "main"]);
    }
}

/// The commits of the project's builds, oldest first.
async fn built(temp: &TempCtx) -> Vec<String> {
    let page = temp.ctx.store.project_builds("app", 100, None).await.expect("builds");
    page.builds.iter().rev().map(|b| b.scm.sha.clone().expect("an scm build has its commit")).collect()
}

#[tokio::test]
async fn a_head_is_new_when_it_differs_from_the_last_one_seen() {
    let temp = TempCtx::new(|_| {}).await;
    let server = Server::new(&temp.ctx.config.root);
    let scm = ScmConfig {
        url: server.bare.display().to_string(),
        branch: Some("main".into()),
        poll: true,
        ..ScmConfig::default()
    };
    let defaults = Default::default();
    let poll = || poll(&temp.ctx, "app", &scm, &defaults);

    let a = &server.push_commit("a")[..];
    poll().await;
    assert_eq!(built(&temp).await, [a], "the first sight of a branch builds its head");
    poll().await;
    assert_eq!(built(&temp).await, [a], "nothing new, nothing built");

    let b = &server.push_commit("b")[..];
    poll().await;
    assert_eq!(built(&temp).await, [a, b]);

    // A force-push back to a commit built before moves the head: it builds again.
    server.force_push(a);
    poll().await;
    assert_eq!(built(&temp).await, [a, b, a]);

    // Deleted, then pushed again at the same commit: the branch is new again.
    server.delete_main();
    poll().await;
    assert_eq!(built(&temp).await.len(), 3, "a deleted branch builds nothing");
    server.force_push(a);
    poll().await;
    assert_eq!(built(&temp).await, [a, b, a, a]);
}
