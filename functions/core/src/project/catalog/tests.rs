use std::{
    fs,
    os::unix::{
        fs::{PermissionsExt, symlink},
        net::UnixListener,
    },
    path::Path,
    process::Command,
    time::Instant,
};

use super::*;
use crate::project::{MAX_CONFIG_BYTES, MAX_NESTING, Script};

const OK: &str = "script: echo ok\n";

fn write(path: &Path, text: impl AsRef<[u8]>) {
    fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    fs::write(path, text).expect("write");
}

fn mkfifo(path: &Path) {
    fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    let status = Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Projects whose parses are kept even for files written a moment ago, so that a
/// test can tell what the cache does without waiting out [`RACY_WINDOW`].
fn projects_in(root: &Path) -> Projects {
    Projects { racy_window: Duration::ZERO, ..Projects::new(root.join("projects")) }
}

fn error_of(list: &[Project], name: &str) -> String {
    let project = list.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("{name} is listed"));
    match &project.config {
        Ok(_) => panic!("{name} should be in error"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn lists_projects_keeping_broken_ones_with_their_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let projects = Projects::new(dir.path().join("projects"));
    assert!(projects.create_example_if_empty().await.expect("example"));
    assert!(!projects.create_example_if_empty().await.expect("example"), "only once");
    write(&dir.path().join("projects/broken/sparky.yaml"), "script: echo\nconcurrency: many\n");
    fs::create_dir_all(dir.path().join("projects/.hidden")).expect("mkdir");
    fs::create_dir_all(dir.path().join("projects/empty")).expect("mkdir");
    write(&dir.path().join("projects/README"), "not a project");
    let list = projects.list().await.expect("list");
    let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["broken", "hello"]);
    let err = error_of(&list, "broken");
    assert!(err.starts_with("projects/broken/sparky.yaml, line 2:"), "{err}");
    assert!(list[1].config.is_ok());
    assert!(projects.get("../etc").await.expect("get").is_none());
    assert!(projects.get("README").await.expect("get").is_none());
}

/// Everything the issue found, and more, side by side with healthy projects: each is
/// an error of its own project, with a message naming the file and the problem.
#[tokio::test]
async fn anything_in_projects_is_an_error_of_that_project_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let p = root.join("projects");
    let secret = root.join("secret.txt");
    write(&secret, "TOP-SECRET: [unclosed\n");
    write(&p.join("a/sparky.yaml"), OK);
    write(&p.join("z/sparky.yaml"), OK);

    fs::create_dir_all(p.join("folder/sparky.yaml")).expect("mkdir");
    fs::create_dir_all(p.join("loop")).expect("mkdir");
    symlink("sparky.yaml", p.join("loop/sparky.yaml")).expect("symlink");
    fs::create_dir_all(p.join("loop2")).expect("mkdir");
    symlink("other", p.join("loop2/sparky.yaml")).expect("symlink");
    symlink("sparky.yaml", p.join("loop2/other")).expect("symlink");
    fs::create_dir_all(p.join("dangling")).expect("mkdir");
    symlink("nowhere.yaml", p.join("dangling/sparky.yaml")).expect("symlink");
    fs::create_dir_all(p.join("outside")).expect("mkdir");
    symlink(&secret, p.join("outside/sparky.yaml")).expect("symlink");
    fs::create_dir_all(p.join("relative")).expect("mkdir");
    symlink("../../secret.txt", p.join("relative/sparky.yaml")).expect("symlink");
    fs::create_dir_all(p.join("sibling")).expect("mkdir");
    symlink("../a/sparky.yaml", p.join("sibling/sparky.yaml")).expect("symlink");
    write(&p.join("inside/ci/config.yaml"), OK);
    symlink("ci/config.yaml", p.join("inside/sparky.yaml")).expect("symlink");
    write(&p.join("tofolder/ci/.keep"), "");
    symlink("ci", p.join("tofolder/sparky.yaml")).expect("symlink");
    mkfifo(&p.join("fifo/sparky.yaml"));
    fs::create_dir_all(p.join("socket")).expect("mkdir");
    let _socket = UnixListener::bind(p.join("socket/sparky.yaml")).expect("socket");
    write(&p.join("binary/sparky.yaml"), b"script: echo\ndescription: \xff\xfe\n");
    write(
        &p.join("large/sparky.yaml"),
        format!("script: echo\n{}", "# padding\n".repeat(MAX_CONFIG_BYTES / 10)),
    );
    write(&p.join("deep/sparky.yaml"), format!("script: echo\nenv: {}", "[".repeat(156 * 1024)));
    symlink("a", p.join("alias")).expect("symlink");
    symlink(root, p.join("escape")).expect("symlink");
    symlink("nowhere", p.join("gone")).expect("symlink");

    let projects = projects_in(root);
    let start = Instant::now();
    let list = tokio::time::timeout(Duration::from_secs(10), projects.list())
        .await
        .expect("listing returns promptly")
        .expect("listing works");
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());

    let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "a", "alias", "binary", "dangling", "deep", "escape", "fifo", "folder", "gone", "inside",
            "large", "loop", "loop2", "outside", "relative", "sibling", "socket", "tofolder", "z"
        ]
    );
    for healthy in ["a", "z", "inside"] {
        let project = list.iter().find(|p| p.name == healthy).expect("listed");
        assert!(project.config.is_ok(), "{healthy}: {:?}", project.config);
    }
    let not_a_folder = "a symlink; a project must be a folder inside projects/ (symlinks are not followed)";
    let expected = [
        ("alias", format!("projects/alias: {not_a_folder}")),
        ("escape", format!("projects/escape: {not_a_folder}")),
        ("gone", format!("projects/gone: {not_a_folder}")),
        ("folder", "projects/folder/sparky.yaml: not a regular file but a folder".into()),
        ("loop", "projects/loop/sparky.yaml: a symlink that loops".into()),
        ("loop2", "projects/loop2/sparky.yaml: a symlink that loops".into()),
        ("dangling", "projects/dangling/sparky.yaml: a symlink to nothing (its target doesn't exist)".into()),
        (
            "outside",
            "projects/outside/sparky.yaml: a symlink leading outside projects/outside (not followed)".into(),
        ),
        (
            "relative",
            "projects/relative/sparky.yaml: a symlink leading outside projects/relative (not followed)"
                .into(),
        ),
        (
            "sibling",
            "projects/sibling/sparky.yaml: a symlink leading outside projects/sibling (not followed)".into(),
        ),
        ("tofolder", "projects/tofolder/sparky.yaml: not a regular file but a symlink to a folder".into()),
        ("fifo", "projects/fifo/sparky.yaml: not a regular file but a FIFO (named pipe)".into()),
        ("socket", "projects/socket/sparky.yaml: not a regular file but a socket".into()),
        ("binary", "projects/binary/sparky.yaml, line 2: not UTF-8 text".into()),
        ("large", "projects/large/sparky.yaml: larger than the 256 KiB limit".into()),
        ("deep", format!("projects/deep/sparky.yaml, line 2: nested deeper than {MAX_NESTING} levels")),
    ];
    for (name, message) in &expected {
        assert_eq!(&error_of(&list, name), message);
        let got = projects.get(name).await.expect("get works").expect("a project");
        assert_eq!(got.config.expect_err("in error").to_string(), *message, "get({name})");
    }
    for project in &list {
        if let Err(e) = &project.config {
            assert!(!e.to_string().contains("TOP-SECRET"), "{e}");
        }
    }
}

#[tokio::test]
async fn the_job_file_is_looked_at_without_trusting_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().join("projects");
    let no_script = "description: runs its job\n";
    for name in ["fifo", "folder", "outside", "inside", "plain", "dangling"] {
        write(&p.join(name).join("sparky.yaml"), no_script);
    }
    mkfifo(&p.join("fifo/job"));
    fs::create_dir_all(p.join("folder/job")).expect("mkdir");
    symlink("/bin/sh", p.join("outside/job")).expect("symlink");
    write(&p.join("inside/bin/run.sh"), "#!/bin/sh\necho hi\n");
    fs::set_permissions(p.join("inside/bin/run.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
    symlink("bin/run.sh", p.join("inside/job")).expect("symlink");
    write(&p.join("plain/job"), "#!/bin/sh\n");
    symlink("missing", p.join("dangling/job")).expect("symlink");
    // A script makes the job irrelevant, whatever it is.
    write(&p.join("scripted/sparky.yaml"), OK);
    mkfifo(&p.join("scripted/job"));

    let projects = projects_in(dir.path());
    let list = tokio::time::timeout(Duration::from_secs(10), projects.list())
        .await
        .expect("listing returns promptly")
        .expect("listing works");
    let nothing = "nothing to run: the `job` beside sparky.yaml is";
    assert_eq!(
        error_of(&list, "fifo"),
        format!("projects/fifo/sparky.yaml: {nothing} not a regular file but a FIFO (named pipe)")
    );
    assert_eq!(
        error_of(&list, "folder"),
        format!("projects/folder/sparky.yaml: {nothing} not a regular file but a folder")
    );
    assert_eq!(
        error_of(&list, "outside"),
        format!(
            "projects/outside/sparky.yaml: {nothing} a symlink leading outside projects/outside (not followed)"
        )
    );
    assert_eq!(
        error_of(&list, "dangling"),
        format!("projects/dangling/sparky.yaml: {nothing} a symlink to nothing (its target doesn't exist)")
    );
    let err = error_of(&list, "plain");
    assert!(err.ends_with("the `job` file beside sparky.yaml is not executable (chmod +x it)"), "{err}");
    let config = |name: &str| list.iter().find(|p| p.name == name).expect("listed").config.clone();
    assert_eq!(config("inside").expect("usable").script, Script::JobFile);
    assert!(matches!(config("scripted").expect("usable").script, Script::Inline(_)));
}

#[tokio::test]
async fn unchanged_projects_are_not_parsed_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().join("projects");
    for i in 0..1000 {
        write(
            &p.join(format!("p{i:04}/sparky.yaml")),
            format!("description: project {i}\nscript: echo {i}\n"),
        );
    }
    // One runs its executable `job` file instead of a script.
    write(&p.join("p0004/sparky.yaml"), "description: project 4\n");
    write(&p.join("p0004/job"), "#!/bin/sh\n");
    fs::set_permissions(p.join("p0004/job"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let projects = projects_in(dir.path());
    assert_eq!(projects.list().await.expect("list").len(), 1000);
    assert_eq!(projects.parses(), 1000);
    let start = Instant::now();
    let list = projects.list().await.expect("list");
    let unchanged = start.elapsed();
    assert_eq!(list.len(), 1000);
    assert_eq!(projects.parses(), 1000, "nothing parsed again");
    assert!(list.iter().all(|p| p.config.is_ok()));
    // Clones share the cache: `Ctx` hands them to every task.
    let clone = projects.clone();
    clone.list().await.expect("list");
    assert_eq!(clone.parses(), 1000);
    eprintln!("listing 1,000 unchanged projects took {unchanged:?}");

    // A longer file.
    write(&p.join("p0001/sparky.yaml"), "description: changed\nscript: echo 1\n");
    // A new file of the same size renamed into place (how editors and `git` save).
    let renamed = p.join("p0002/sparky.yaml.new");
    write(&renamed, "description: project X\nscript: echo 2\n");
    fs::rename(&renamed, p.join("p0002/sparky.yaml")).expect("rename");
    // Rewritten in place with the same size, its modification time then set back:
    // the inode's change time still tells.
    let file = p.join("p0003/sparky.yaml");
    let modified = fs::metadata(&file).and_then(|m| m.modified()).expect("mtime");
    write(&file, "description: project Y\nscript: echo 3\n");
    fs::File::options().write(true).open(&file).and_then(|f| f.set_modified(modified)).expect("set mtime");
    // The job file of a project without a script stops being executable (what it is
    // is part of the key)...
    fs::set_permissions(p.join("p0004/job"), fs::Permissions::from_mode(0o644)).expect("chmod");
    // ...while one beside a script is not even looked at: it runs its script still.
    write(&p.join("p0007/job"), "#!/bin/sh\n");

    let list = projects.list().await.expect("list");
    assert_eq!(projects.parses(), 1004);
    let job_error = list[4].config.as_ref().expect_err("job no longer executable").problem.clone();
    assert!(job_error.contains("not executable"), "{job_error}");
    assert!(matches!(list[7].config.as_ref().expect("usable").script, Script::Inline(_)));
    let description = |i: usize| list[i].config.as_ref().expect("usable").description.clone();
    assert_eq!(description(1).as_deref(), Some("changed"));
    assert_eq!(description(2).as_deref(), Some("project X"));
    assert_eq!(description(3).as_deref(), Some("project Y"));
    projects.list().await.expect("list");
    assert_eq!(projects.parses(), 1004, "and then they are cached again");

    // Vanished projects leave the cache.
    fs::remove_dir_all(p.join("p0005")).expect("rm");
    assert_eq!(projects.list().await.expect("list").len(), 999);
    assert_eq!(projects.entries().len(), 999);
    fs::remove_dir_all(p.join("p0006")).expect("rm");
    assert!(projects.get("p0006").await.expect("get").is_none());
    assert!(!projects.entries().contains_key("p0006"));
}

#[tokio::test]
async fn a_file_changed_just_now_is_read_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(&dir.path().join("projects/app/sparky.yaml"), OK);
    let projects = Projects::new(dir.path().join("projects"));
    projects.get("app").await.expect("get").expect("a project");
    projects.get("app").await.expect("get").expect("a project");
    // Within RACY_WINDOW of the change another write could keep size and timestamps.
    assert_eq!(projects.parses(), 2);
}

#[tokio::test]
async fn a_project_granted_a_secret_sparky_lacks_is_in_error_naming_it() {
    let root = tempfile::tempdir().expect("temp dir");
    let secrets = root.path().join("secrets");
    write(&secrets.join("DEPLOY_TOKEN"), "t0k3n\n");
    write(&root.path().join("projects/ok/sparky.yaml"), "script: echo\nsecrets: [DEPLOY_TOKEN]\n");
    write(
        &root.path().join("projects/typo/sparky.yaml"),
        "script: echo\nsecrets:\n  - DEPLOY_TOKEN\n  - { name: NPM_TOKEN, forks: true }\n",
    );
    write(&root.path().join("projects/bad/sparky.yaml"), "script: echo\nsecrets: [\"no-such name\"]\n");
    let projects = projects_in(root.path()).with_secrets(SecretsDir::new(&secrets));
    let list = projects.list().await.expect("list");
    let ok = list.iter().find(|p| p.name == "ok").expect("ok");
    let grants = &ok.config.as_ref().expect("valid").secrets;
    assert_eq!((grants[0].name.as_str(), grants[0].forks), ("DEPLOY_TOKEN", false));
    assert_eq!(
        error_of(&list, "typo"),
        "projects/typo/sparky.yaml, line 2: secrets: NPM_TOKEN is not a secret Sparky has (no file NPM_TOKEN in its secrets folder)"
    );
    assert!(error_of(&list, "bad").contains("is not a secret name"), "{}", error_of(&list, "bad"));
    // A secret added later counts at once, although sparky.yaml did not change.
    write(&secrets.join("NPM_TOKEN"), "n");
    let typo = projects.get("typo").await.expect("get").expect("a project");
    let grants = typo.config.expect("valid now").secrets;
    assert_eq!(
        grants.iter().map(|g| (g.name.as_str(), g.forks)).collect::<Vec<_>>(),
        [("DEPLOY_TOKEN", false), ("NPM_TOKEN", true)]
    );
}
