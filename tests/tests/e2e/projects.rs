//! Project folders: broken configs are reported precisely, edits apply at once.

use std::{
    fs::Permissions,
    os::unix::fs::{MetadataExt, PermissionsExt, symlink},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use sparky_core::project::MAX_NESTING;
use sparky_tests::{Api, Sparky, unescape_html, write_project};

#[tokio::test]
async fn a_broken_config_is_reported_and_others_keep_working_and_edits_apply() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), "good", "script: echo v1\n");
    write_project(dir.path(), "bad", "script: echo\ntimeout: [nope\n");
    let sparky = Sparky::up(dir.path(), &[]);
    let api = Api::new(&sparky.url);

    let list = api.get("/api/v1/projects").await;
    let bad = list.json["projects"]
        .as_array()
        .expect("projects")
        .iter()
        .find(|p| p["name"] == "bad")
        .cloned()
        .expect("bad listed");
    let error = bad["error"].as_str().unwrap_or_default();
    assert!(error.contains("projects/bad/sparky.yaml") && error.contains("line"), "{error}");
    let (status, page) = api.get_text("/projects/bad").await;
    assert_eq!(status, 200);
    let page = unescape_html(&page);
    assert!(
        page.contains("projects/bad/sparky.yaml") && page.contains("line 3"),
        "the UI shows the error: {page}"
    );
    let refused = api.post("/api/v1/projects/bad/builds").await;
    assert_eq!(refused.status, 409);
    assert!(
        refused.json["error"].as_str().unwrap_or_default().contains("projects/bad/sparky.yaml, line 3"),
        "{}",
        refused.json
    );

    let id = api.trigger("good", json!({})).await;
    api.wait_for(id, Some("succeeded"), Duration::from_secs(10)).await;
    assert_eq!(api.log(id).await, "v1\n");

    // Edits apply without a restart: the fixed project builds, the edited one runs v2.
    write_project(dir.path(), "bad", "script: echo fixed\n");
    write_project(dir.path(), "good", "script: echo v2\n");
    let fixed = api.trigger("bad", json!({})).await;
    let again = api.trigger("good", json!({})).await;
    api.wait_for(fixed, Some("succeeded"), Duration::from_secs(10)).await;
    api.wait_for(again, Some("succeeded"), Duration::from_secs(10)).await;
    assert_eq!((api.log(fixed).await, api.log(again).await), ("fixed\n".into(), "v2\n".into()));
    // A project added while running appears at once.
    write_project(dir.path(), "new", "script: echo new\n");
    assert_eq!(api.get("/api/v1/projects/new").await.status, 200);
}

/// `nobody`: the user `sparky up` runs as below, so that a file of root's is one it
/// can't read (root reads anything, whatever its mode).
const OTHER_UID: u32 = 65534;

/// What the catalog test finds at the catalog level, seen by a user of a running
/// `sparky up`: whatever sits where a sparky.yaml should be, the pages and the API
/// answer at once, each broken project says what is wrong with which file, nothing of
/// a file outside the state folder is shown, and the good project builds.
#[tokio::test]
async fn anything_in_projects_leaves_pages_api_and_other_projects_working() {
    assert!(
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0),
        "this test makes a device node and starts sparky as another user: it must run as root"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    // Readable by sparky's user: only the code keeps it off the pages, not permissions.
    let elsewhere = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(elsewhere.path(), Permissions::from_mode(0o755)).expect("chmod");
    let secret = elsewhere.path().join("secret.yaml");
    std::fs::write(&secret, "TOP-SECRET: [unclosed\n").expect("write");
    std::fs::set_permissions(&secret, Permissions::from_mode(0o644)).expect("chmod");

    write_project(root, "good", "script: echo good\n");
    let p = root.join("projects");
    let folder = |name: &str| {
        let dir = p.join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir.join("sparky.yaml")
    };
    std::fs::create_dir_all(folder("folder")).expect("mkdir");
    symlink("sparky.yaml", folder("loop")).expect("symlink");
    run(Command::new("mkfifo").arg(folder("fifo")));
    // /dev/zero: read to its end, it never ends.
    run(Command::new("mknod").arg(folder("device")).args(["c", "1", "5"]));
    symlink(&secret, folder("outside")).expect("symlink");
    // 1 GiB, sparse.
    let huge = std::fs::File::create(folder("huge")).expect("create");
    huge.set_len(1 << 30).expect("grow");
    std::fs::write(folder("deep"), format!("script: echo\nenv: {}", "[".repeat(156 * 1024))).expect("write");
    // sparky's user owns its state folder, all but this file.
    std::fs::write(folder("unreadable"), "script: echo\n").expect("write");
    run(Command::new("chown").args(["-R", "-h", &format!("{OTHER_UID}:{OTHER_UID}")]).arg(root));
    std::os::unix::fs::chown(folder("unreadable"), Some(0), Some(0)).expect("chown");
    std::fs::set_permissions(folder("unreadable"), Permissions::from_mode(0o600)).expect("chmod");

    let command = Sparky::command_as(OTHER_UID, &["up", "--listen", "127.0.0.1:0"], root);
    let sparky = Sparky::spawn(command);
    let api = Api::new(&sparky.url);

    let expected = [
        ("folder", "projects/folder/sparky.yaml: not a regular file but a folder".to_string()),
        ("loop", "projects/loop/sparky.yaml: a symlink that loops".into()),
        ("fifo", "projects/fifo/sparky.yaml: not a regular file but a FIFO (named pipe)".into()),
        ("device", "projects/device/sparky.yaml: not a regular file but a device".into()),
        (
            "unreadable",
            "projects/unreadable/sparky.yaml: unreadable (Permission denied (os error 13))".into(),
        ),
        (
            "outside",
            "projects/outside/sparky.yaml: a symlink leading outside projects/outside (not followed)".into(),
        ),
        ("huge", "projects/huge/sparky.yaml: larger than the 256 KiB limit".into()),
        ("deep", format!("projects/deep/sparky.yaml, line 2: nested deeper than {MAX_NESTING} levels")),
    ];
    let mut answers = Vec::new();
    for path in ["/", "/api/v1/projects"] {
        let start = Instant::now();
        let (status, body) = api.get_text(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(start.elapsed() < Duration::from_secs(2), "{path} took {:?}", start.elapsed());
        answers.push((path.to_string(), body));
    }
    let home = visible_text(&answers[0].1);
    let list: Value = serde_json::from_str(&answers[1].1).expect("JSON");
    let listed = list["projects"].as_array().expect("projects");
    let mut names: Vec<&str> = listed.iter().filter_map(|p| p["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["deep", "device", "fifo", "folder", "good", "huge", "loop", "outside", "unreadable"]);
    for (name, message) in &expected {
        let entry = listed.iter().find(|p| p["name"] == *name).expect("listed");
        assert_eq!(entry["error"], *message, "{name} in the list");
        assert!(home.contains(message.as_str()), "{name}'s error on /: {home}");
        let page = format!("/projects/{name}");
        let (status, html) = api.get_text(&page).await;
        assert_eq!(status, 200, "{page}");
        assert!(visible_text(&html).contains(message.as_str()), "{name}'s error on {page}: {html}");
        let detail = format!("/api/v1/projects/{name}");
        let (status, json) = api.get_text(&detail).await;
        assert_eq!(status, 200, "{detail}");
        assert!(json.contains(&serde_json::to_string(message).expect("JSON")), "{detail}: {json}");
        let refused = api.post(&format!("/api/v1/projects/{name}/builds")).await;
        assert_eq!(refused.status, 409, "{name} can't build: {}", refused.json);
        answers.extend([(page, html), (detail, json), (format!("POST {name}"), refused.json.to_string())]);
    }
    assert!(listed.iter().find(|p| p["name"] == "good").expect("listed")["error"].is_null());
    for (path, body) in &answers {
        assert!(!body.contains("TOP-SECRET"), "{path} shows the file outside: {body}");
    }

    let reply = api.post("/api/v1/projects/good/builds").await;
    assert_eq!(reply.status, 201, "{}", reply.json);
    let id = reply.json["id"].as_i64().expect("build id");
    api.wait_for(id, Some("succeeded"), Duration::from_secs(20)).await;
    assert_eq!(api.log(id).await, "good\n");
}

/// The text a reader of `html` sees: tags dropped, entities read, spaces collapsed.
fn visible_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    unescape_html(&text).split_whitespace().collect::<Vec<_>>().join(" ")
}

fn run(command: &mut Command) {
    let status = command.status().expect("start the command");
    assert!(status.success(), "{command:?}");
}
