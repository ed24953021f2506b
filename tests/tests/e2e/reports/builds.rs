//! A build's reports as a user meets them, on each backend: artifacts listed, sized
//! and downloadable (and escapes refused), `report.json`, ANSI colours on the page,
//! retention and deleting a history removing the objects; the live log within a
//! second, resumed after a reconnect, complete and in order; and a big log stored
//! whole while Sparky's memory stays small.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use serde_json::json;
use sparky_tests::{Api, biglog, unescape_html};

use super::setup::{Backend, Events, Site};

const WAIT: Duration = Duration::from_secs(30);

const ARTIFACTS_JOB: &str = r#"keep_builds: 2
vars: [{ name: target }]
script: |
  printf '\033[32mgreen ok\033[0m and \033[1;31mbold red\033[0m\n'
  mkdir -p "$SPARKY_ARTIFACTS/reports/deep"
  printf 'hello' > "$SPARKY_ARTIFACTS/my notes é.txt"
  echo '<h1>report</h1><script>alert(1)</script>' > "$SPARKY_ARTIFACTS/reports/index.html"
  head -c 3000000 /dev/urandom > "$SPARKY_ARTIFACTS/reports/deep/blob.bin"
  ln -s /etc/passwd "$SPARKY_ARTIFACTS/passwd"
  ln -s ../../../sparky.db "$SPARKY_ARTIFACTS/db"
  ln -s "reports/index.html" "$SPARKY_ARTIFACTS/latest.html"
"#;

/// A raw HTTP/1.1 GET (so that `..` reaches the server as written); returns the status.
fn raw_get(api: &Api, path: &str) -> u16 {
    let host = api.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

pub async fn artifacts_report_json_and_history(backend: Backend) {
    let site = Site::up(backend, None, &[]).await;
    site.project("app", ARTIFACTS_JOB);
    let id = site.api.trigger("app", json!({ "target": "prod" })).await;
    let build = site.api.wait_for(id, Some("succeeded"), WAIT).await;

    // The page lists the artifacts with sizes, not the links pointing outside.
    let (status, page) = site.ui.get_text(&format!("/builds/{id}")).await;
    assert_eq!(status, 200);
    let page = unescape_html(&page);
    let table = &page[page.find(r#"id="artifacts""#).expect("artifacts table")..];
    let table = &table[..table.find("</table>").expect("table end")];
    for (path, size) in [
        ("latest.html", "41 B"),
        ("my notes é.txt", "5 B"),
        ("reports/deep/blob.bin", "2.9 MiB"),
        ("reports/index.html", "41 B"),
    ] {
        assert!(table.contains(&format!(">{path}</a></td><td title=")), "{path} listed: {table}");
        assert!(table.contains(&format!(">{size}</td>")), "{path} is {size}: {table}");
    }
    assert!(!table.contains("passwd") && !table.contains(">db<"), "{table}");
    assert!(page.contains(
        r#"<span class="ansi-fg-2">green ok</span> and <span class="ansi-fg-1 ansi-bold">bold red</span>"#
    ));
    assert!(!page.contains("[32m") && !page.contains('\u{1b}'), "no raw escape codes on the page");
    let log = site.api.log(id).await;
    assert!(
        log.contains("[sparky] artifact passwd refused: a link pointing outside $SPARKY_ARTIFACTS"),
        "{log}"
    );
    assert!(log.contains("[sparky] artifact db refused: a link pointing outside $SPARKY_ARTIFACTS"), "{log}");
    assert!(log.contains("[sparky] 4 artifacts stored (3000087 bytes)"), "{log}");

    // Downloads: the bytes, a type from the name, sandboxed.
    let get = |path: &str| site.ui.http.get(site.ui.url(&format!("/builds/{id}/artifacts/{path}"))).send();
    let notes = get("my%20notes%20%C3%A9.txt").await.expect("GET");
    assert_eq!(notes.status(), 200);
    assert_eq!(notes.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(notes.headers()["content-length"], "5");
    assert_eq!(notes.text().await.expect("body"), "hello");
    let html = get("reports/index.html").await.expect("GET");
    assert_eq!(html.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(html.headers()["content-security-policy"], "sandbox", "job-made HTML can't script the UI");
    let blob = get("reports/deep/blob.bin").await.expect("GET");
    assert_eq!(blob.headers()["content-type"], "application/octet-stream");
    let original = std::fs::read(site.dir.path().join(format!("work/{id}/artifacts/reports/deep/blob.bin")))
        .expect("blob");
    assert_eq!(blob.bytes().await.expect("body").as_ref(), original.as_slice());
    assert_eq!(get("passwd").await.expect("GET").status(), 404, "a refused link was not stored");
    let folder = get("reports/deep").await.expect("GET");
    assert_eq!(folder.status(), 404, "a folder of artifacts is not one");
    assert!(folder.text().await.expect("body").contains("no artifact"));
    for escape in ["..%2F..%2F..%2Fsparky.db", "%2Fetc%2Fpasswd", "a%2F%2Fb"] {
        assert_eq!(get(escape).await.expect("GET").status(), 400, "{escape}");
    }
    for raw in ["/builds/1/artifacts/../../../sparky.db", "/builds/1/artifacts/reports/../../x"] {
        assert!(matches!(raw_get(&site.ui, raw), 400 | 404), "{raw} must not be served");
    }

    // report.json: for other tools, with what the build was.
    let report = site.ui.get(&format!("/builds/{id}/report.json")).await;
    assert_eq!(report.status, 200);
    let r = report.json;
    assert_eq!((r["version"].as_i64(), r["id"].as_i64(), &r["project"]), (Some(2), Some(id), &json!("app")));
    assert_eq!((r["attempt"].as_i64(), r["retries_used"].as_i64()), (Some(1), Some(0)));
    assert_eq!(r["attempts"][0]["outcome"], "succeeded");
    assert_eq!(
        (&r["status"], &r["trigger"], &r["exit_code"]),
        (&json!("succeeded"), &json!("api"), &json!(0))
    );
    assert_eq!(r["params"], json!({ "target": "prod" }));
    assert_eq!((&r["started_at"], &r["finished_at"]), (&build["started_at"], &build["finished_at"]));
    assert_eq!(
        (&r["log"]["size"], &r["log"]["complete"], &r["complete"]),
        (&build["log_size"], &json!(true), &json!(true))
    );
    let paths: Vec<&str> =
        r["artifacts"].as_array().expect("artifacts").iter().filter_map(|a| a["path"].as_str()).collect();
    assert_eq!(paths, ["latest.html", "my notes é.txt", "reports/deep/blob.bin", "reports/index.html"]);
    assert_eq!(r["artifacts"][2]["size"], 3_000_000);
    assert_eq!(r["artifacts"][1]["url"], format!("/builds/{id}/artifacts/my%20notes%20%C3%A9.txt"));
    let prefix = format!("projects/app/builds/{id}/");
    let stored = site.keys(&prefix).await;
    assert!(stored.contains(&format!("{prefix}report.json")), "{stored:?}");
    assert!(stored.contains(&format!("{prefix}artifacts/my notes é.txt")), "{stored:?}");
    assert!(stored.iter().any(|k| k.starts_with(&format!("{prefix}log/"))), "{stored:?}");

    // keep_builds: 2 — the first build's objects go when the third ends.
    for _ in 0..2 {
        let next = site.api.trigger("app", json!({})).await;
        site.api.wait_for(next, Some("succeeded"), WAIT).await;
    }
    // Pruning runs after the third build is recorded: reports first, then the row.
    let deadline = Instant::now() + WAIT;
    while !site.keys(&prefix).await.is_empty()
        || site.api.get(&format!("/api/v1/builds/{id}")).await.status != 404
    {
        assert!(Instant::now() < deadline, "build {id} (row or reports) outlived keep_builds");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        site.keys("projects/app/builds/").await.iter().filter(|k| k.ends_with("report.json")).count(),
        2
    );

    // Deleting the history: every build's objects and rows.
    let deleted = site.api.send(site.api.http.delete(site.api.url("/api/v1/projects/app/builds"))).await;
    assert_eq!(deleted.status, 200, "{}", deleted.json);
    assert_eq!(deleted.json, json!({ "project": "app", "deleted": 2, "kept_live": 0 }));
    assert!(site.keys("projects/app/").await.is_empty(), "{:?}", site.keys("projects/app/").await);
    assert_eq!(site.api.get("/api/v1/projects/app/builds").await.json["builds"], json!([]));
    let unknown = site.api.send(site.api.http.delete(site.api.url("/api/v1/projects/nope/builds"))).await;
    assert_eq!(unknown.status, 404);
}

const LIVE_JOB: &str = r#"script: |
  echo first
  while [ ! -e "$GATES/1" ]; do sleep 0.02; done
  echo second
  while [ ! -e "$GATES/2" ]; do sleep 0.02; done
  for i in $(seq 1 3000); do echo "line $i"; done
  echo last
"#;

/// Reads events until the text received so far satisfies `done`.
async fn read_until(
    events: &mut Events,
    text: &mut String,
    last_id: &mut String,
    done: impl Fn(&str) -> bool,
) {
    while !done(text) {
        let event = events.next().await.expect("the stream goes on");
        if event.event == "log" {
            text.push_str(event.data["text"].as_str().expect("text"));
            *last_id = event.id.expect("log events carry an id");
        }
    }
}

pub async fn live_log_within_a_second_resumed_and_complete(backend: Backend) {
    // Folder: `sparky up`. S3: four processes, so render-ui reads what run stored.
    let site = match backend {
        Backend::Folder => Site::up(backend, None, &[]).await,
        Backend::S3 => Site::four(backend, None).await,
    };
    let gates = site.dir.path().join("gates");
    std::fs::create_dir_all(&gates).expect("gates");
    site.project("live", &format!("env: {{ GATES: {} }}\n{LIVE_JOB}", gates.display()));
    let id = site.api.trigger("live", json!({})).await;

    let mut events = Events::open(&site.ui, id, None).await;
    let (mut text, mut last_id) = (String::new(), String::new());
    read_until(&mut events, &mut text, &mut last_id, |t| t.contains("first\n")).await;
    std::fs::write(gates.join("1"), "").expect("gate 1");
    let printed = Instant::now();
    read_until(&mut events, &mut text, &mut last_id, |t| t.contains("second\n")).await;
    let latency = printed.elapsed();
    println!("live log ({backend:?}): a new line arrived {latency:?} after it was printed");
    assert!(latency < Duration::from_secs(1), "a new line took {latency:?} to arrive ({backend:?})");

    // A reload: the stream resumes exactly where the last event it got ended.
    drop(events);
    let mut events = Events::open(&site.ui, id, Some(&last_id)).await;
    std::fs::write(gates.join("2"), "").expect("gate 2");
    let mut first_after = None;
    let mut ended = false;
    while let Some(event) = events.next().await {
        match event.event.as_str() {
            "log" => {
                first_after.get_or_insert(event.data["offset"].to_string());
                text.push_str(event.data["text"].as_str().expect("text"));
            }
            "end" => {
                assert_eq!(event.data["status"], "succeeded");
                ended = true;
                break;
            }
            _ => {}
        }
    }
    assert!(ended, "the stream ends with `end`");
    assert_eq!(first_after.as_deref(), Some(last_id.as_str()), "resumed at Last-Event-ID");
    let expected: String = ["first\n", "second\n"].concat()
        + &(1..=3000).map(|i| format!("line {i}\n")).collect::<String>()
        + "last\n";
    assert_eq!(text, expected, "followed live across a reconnect: complete and in order");
    assert_eq!(site.ui.log(id).await, expected, "the stored log");
}

pub async fn a_big_log_is_stored_whole_and_sparky_stays_small(backend: Backend) {
    const MIB: u64 = 64;
    let site = Site::up(backend, None, &[]).await;
    site.project("big", &format!("script: |\n  {}", biglog::script(MIB << 20)));
    let id = site.api.trigger("big", json!({})).await;
    let build = site.api.wait_for(id, Some("succeeded"), Duration::from_secs(120)).await;
    assert_eq!(build["log_size"], MIB << 20);
    biglog::verify(&site.ui, id, MIB << 20).await.expect("the stored log is what the job printed");
    let (_, peak) = biglog::memory(site.runner).expect("memory");
    assert!(peak < 100 << 20, "sparky's memory peaked at {} MiB ({backend:?})", peak >> 20);
}

/// Each test, once per backend.
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod folder {
            $(#[tokio::test]
            async fn $test() { super::$test(super::Backend::Folder).await }
            )*
        }
        mod s3 {
            $(#[tokio::test]
            async fn $test() { super::$test(super::Backend::S3).await }
            )*
        }
    };
}

on_both_backends!(
    artifacts_report_json_and_history,
    live_log_within_a_second_resumed_and_complete,
    a_big_log_is_stored_whole_and_sparky_stays_small,
);
