//! The web UI in headless Chromium (through chromedriver): the Run form, a build page
//! following its log live (keeping a reader who scrolled up in place), and pages read
//! with JavaScript off (a running build's page refreshing to the end of its log); "ago"
//! labels and a running build's duration that keep moving.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::json;
use sparky_tests::{
    Api, Sparky, serve_site,
    webdriver::{Browser, Driver},
    write_project,
};

const WAIT: Duration = Duration::from_secs(15);

fn gated_project(root: &Path, name: &str, vars: &str) {
    let gate = |n: u32| root.join(format!("gate{n}")).display().to_string();
    write_project(
        root,
        name,
        &format!(
            "{vars}script: |\n  echo \"target=$target note=$note fast=$fast\"\n  \
             while [ ! -e {g1} ]; do sleep 0.05; done\n  echo second line\n  \
             while [ ! -e {g2} ]; do sleep 0.05; done\n  echo done\n",
            g1 = gate(1),
            g2 = gate(2)
        ),
    );
}

#[tokio::test]
async fn the_run_form_lands_on_the_build_page_which_follows_the_log_live() {
    let dir = tempfile::tempdir().expect("temp dir");
    gated_project(
        dir.path(),
        "app",
        "vars:\n  - { name: target, type: select, values: [staging, prod] }\n  - { name: note, type: text }\n  \
         - { name: fast, type: checkbox, default: true }\n",
    );
    let sparky = Sparky::up(dir.path(), &[]);
    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.browser(true).await.expect("browser");

    browser.goto(&format!("{}/projects/app", sparky.url)).await.expect("project page");
    browser
        .find("#var-target option[value=prod]")
        .await
        .expect("select option")
        .click()
        .await
        .expect("choose");
    let note = browser.find("#var-note").await.expect("text field");
    note.clear().await.expect("clear");
    note.type_text("hi <b>there</b>").await.expect("type");
    browser.find("#var-fast").await.expect("checkbox").click().await.expect("untick");
    browser.find("#run").await.expect("Run button").click().await.expect("submit");

    let deadline = std::time::Instant::now() + WAIT;
    let url = loop {
        let url = browser.current_url().await.expect("url");
        if url.contains("/builds/") {
            break url;
        }
        assert!(std::time::Instant::now() < deadline, "never left the form: {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let id: i64 = url.rsplit('/').next().and_then(|s| s.parse().ok()).expect("build id in URL");
    browser
        .wait_for_text("#log", WAIT, |t| t.contains("target=prod note=hi <b>there</b> fast=false"))
        .await
        .expect("first line with the form's values");

    // New lines appear without a reload: a marker set on the page survives.
    browser.execute("window.sparkyMarker = 42;").await.expect("marker");
    std::fs::write(dir.path().join("gate1"), "").expect("gate 1");
    let started = std::time::Instant::now();
    browser.wait_for_text("#log", WAIT, |t| t.contains("second line")).await.expect("live line");
    let shown_after = started.elapsed();
    assert_eq!(
        browser.execute("return window.sparkyMarker;").await.expect("marker"),
        json!(42),
        "page reloaded"
    );
    assert!(shown_after < Duration::from_secs(2), "a new line took {shown_after:?} to show");
    assert_eq!(browser.find("#status").await.expect("status").text().await.expect("text"), "running");

    std::fs::write(dir.path().join("gate2"), "").expect("gate 2");
    browser.wait_for_text("#status", WAIT, |t| t == "succeeded").await.expect("final status");
    let log = browser.wait_for_text("#log", WAIT, |t| t.contains("done")).await.expect("whole log");
    // Each line numbered, those that came live too.
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        ["1target=prod note=hi <b>there</b> fast=false", "2second line", "3done"]
    );
    let api = Api::new(&sparky.url);
    assert_eq!(api.build(id).await["status"], "succeeded");
    browser.close().await;
}

#[tokio::test]
async fn pages_work_without_javascript_and_escape_what_users_wrote() {
    let dir = tempfile::tempdir().expect("temp dir");
    gated_project(
        dir.path(),
        "plain",
        "description: 'Ships <script>alert(1)</script> & more'\nvars: [{ name: note }]\n",
    );
    write_project(dir.path(), "broken", "script: echo\nconcurrency: [\n");
    let sparky = Sparky::up(dir.path(), &[]);
    let api = Api::new(&sparky.url);
    let id = api.trigger("plain", json!({ "note": "<img src=x onerror=alert(2)>" })).await;
    api.wait_for(id, Some("running"), WAIT).await;

    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.browser(false).await.expect("browser without JavaScript");
    browser.goto(&format!("{}/", sparky.url)).await.expect("home");
    let projects = browser.find("#projects").await.expect("projects table").text().await.expect("text");
    assert!(projects.contains("Ships <script>alert(1)</script> & more"), "{projects}");
    assert!(projects.contains("projects/broken/sparky.yaml"), "broken config shown: {projects}");

    browser.goto(&format!("{}/builds/{id}", sparky.url)).await.expect("build page");
    browser
        .wait_for_text("#log", WAIT, |t| t.contains("note=<img src=x onerror=alert(2)>"))
        .await
        .expect("log");
    std::fs::write(dir.path().join("gate1"), "").expect("gate 1");
    std::fs::write(dir.path().join("gate2"), "").expect("gate 2");
    // Without scripts the page refreshes itself while the build is live.
    browser.wait_for_text("#status", WAIT, |t| t == "succeeded").await.expect("refreshed to the end");
    let log = browser.find("#log").await.expect("log").text().await.expect("text");
    assert!(log.ends_with("done"), "{log}");
    let source = browser.source().await.expect("source");
    assert!(!source.contains("<img src=x"), "user input reached the page unescaped");
    browser.close().await;
}

/// Waits until the browser's URL satisfies `done`; returns it.
async fn wait_for_url(browser: &sparky_tests::webdriver::Browser, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let url = browser.current_url().await.expect("url");
        if done(&url) {
            return url;
        }
        assert!(std::time::Instant::now() < deadline, "still at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_refused_run_form_comes_back_to_its_page_saying_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), "app", "script: echo ran\n");
    let sparky = Sparky::up(dir.path(), &[]);
    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.browser(false).await.expect("browser");

    // The project is disabled after the page showed its form.
    browser.goto(&format!("{}/projects/app", sparky.url)).await.expect("project page");
    write_project(dir.path(), "app", "script: echo ran\ndisabled: true\n");
    browser.find("#run").await.expect("Run button").click().await.expect("submit");
    wait_for_url(&browser, |u| u.contains("/projects/app?refused=")).await;
    let refused = browser.find("#refused").await.expect("the reason").text().await.expect("text");
    assert!(refused.starts_with("Not run:") && refused.contains("disabled"), "{refused}");
    let api = Api::new(&sparky.url);
    let builds = api.get("/api/v1/projects/app/builds").await.json;
    assert_eq!(builds["builds"].as_array().map(Vec::len), Some(0), "nothing queued");

    write_project(dir.path(), "app", "script: echo ran\n");
    browser.goto(&format!("{}/projects/app", sparky.url)).await.expect("project page");
    browser.find("#run").await.expect("Run button").click().await.expect("submit");
    let url = wait_for_url(&browser, |u| u.contains("/builds/")).await;
    let id: i64 = url.rsplit('/').next().and_then(|s| s.parse().ok()).expect("build id in URL");
    api.wait_for(id, Some("succeeded"), WAIT).await;

    // Rebuild a build of a project disabled since: back on the build's page, saying why.
    write_project(dir.path(), "app", "script: echo ran\ndisabled: true\n");
    browser.goto(&format!("{}/builds/{id}", sparky.url)).await.expect("build page");
    browser.find("#rebuild").await.expect("Rebuild button").click().await.expect("submit");
    wait_for_url(&browser, |u| u.contains(&format!("/builds/{id}?refused="))).await;
    let refused = browser.find("#refused").await.expect("the reason").text().await.expect("text");
    assert!(refused.starts_with("Not done:") && refused.contains("disabled"), "{refused}");
    // An API client posting a form still gets the JSON error.
    let form = api.http.post(api.url("/api/v1/projects/app/builds"));
    let form = form.header("content-type", "application/x-www-form-urlencoded").body("_token=wrong");
    let reply = api.send(form).await;
    assert_eq!(reply.status, 401, "{}", reply.json);
    browser.close().await;
}

/// A page of another site whose form posts to `action` as soon as it loads.
async fn attack_page(action: String) -> (String, tokio::task::JoinHandle<()>) {
    let page = format!(
        "<!doctype html><form id=f method=post action=\"{action}\"><input name=description value=pwned>\
         <input name=_csrf value=guess></form><script>document.getElementById('f').submit()</script>"
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    another_site(app).await
}

/// Serves `app` as another site: its URL (`http://127.0.0.1:PORT/`, as a browser shows
/// it), and the task to abort when done.
async fn another_site(app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let (url, task) = serve_site(app).await;
    (format!("{url}/"), task)
}

#[tokio::test]
async fn people_log_in_run_a_build_log_out_and_another_site_can_do_none_of_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), "app", "script: echo \"hello from $SPARKY_TRIGGER\"\n");
    let sparky = Sparky::up(dir.path(), &[("SPARKY_API_TOKEN", "browser-t0ken")]);
    let api = Api::new(&sparky.url);
    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.browser(true).await.expect("browser");

    // Not logged in: the project page offers a login instead of the Run form.
    browser.goto(&format!("{}/projects/app", sparky.url)).await.expect("project page");
    browser.find("#log-in-to-run a").await.expect("log in link").click().await.expect("follow");
    wait_for_url(&browser, |u| u.contains("/login?next=")).await;
    browser.find("#login-token").await.expect("token field").type_text("wrong").await.expect("type");
    browser.find("#login").await.expect("button").click().await.expect("submit");
    browser.wait_for_text("#refused", WAIT, |t| t.contains("not the API token")).await.expect("refused");
    browser.find("#login-token").await.expect("token field").type_text("browser-t0ken").await.expect("type");
    browser.find("#login").await.expect("button").click().await.expect("submit");
    wait_for_url(&browser, |u| u.ends_with("/projects/app")).await;

    // Logged in: the Run form, with no token field, starts a build.
    let source = browser.source().await.expect("source");
    assert!(
        !source.contains("_token") && source.contains("_csrf"),
        "the form carries the session's form token"
    );
    browser.find("#run").await.expect("Run").click().await.expect("run");
    let url = wait_for_url(&browser, |u| u.contains("/builds/")).await;
    let id: i64 = url.rsplit('/').next().and_then(|s| s.parse().ok()).expect("build id");
    let build = api.wait_for(id, None, WAIT).await;
    assert_eq!(build["status"], "succeeded", "{build}");

    // A session cookie that is no session (forged, or ended on the server): the form
    // the page showed leads to the login page, and logging in brings the person back.
    // (The build's page reloads as its build ends; open waits that out.)
    browser.open(&format!("{}/projects/app", sparky.url)).await.expect("project page");
    let cookie = json!({"name": "sparky_session", "value": "f".repeat(64), "url": sparky.url});
    browser.cdp("Network.setCookie", cookie).await.expect("forge the cookie");
    browser.find("#run").await.expect("Run").click().await.expect("run");
    wait_for_url(&browser, |u| u.contains("/login?next=%2Fprojects%2Fapp")).await;
    browser.find("#login-token").await.expect("token field").type_text("browser-t0ken").await.expect("type");
    browser.find("#login").await.expect("button").click().await.expect("submit");
    wait_for_url(&browser, |u| u.ends_with("/projects/app")).await;
    let history = api.get("/api/v1/projects/app/builds").await.json;
    assert_eq!(history["builds"].as_array().map(Vec::len), Some(1), "the forged form ran nothing");

    // Another site's page posts a form to Sparky as it loads: the browser adds the
    // session cookie where it may, and Sparky refuses anyway.
    // Each wait is for the form's target, not any Sparky URL: the page before it is
    // one too, and the browser may still show it when goto returns.
    let target = format!("{}/api/v1/projects/app/builds", sparky.url);
    let (attack, server) = attack_page(target.clone()).await;
    browser.goto(&attack).await.expect("attack page");
    let refused = wait_for_url(&browser, |u| u == target).await;
    browser
        .wait_for_text("body", WAIT, |t| t.contains("another site"))
        .await
        .unwrap_or_else(|e| panic!("{refused}: {e}"));
    let history = api.get("/api/v1/projects/app/builds").await.json;
    let builds = history["builds"].as_array().cloned().unwrap_or_default();
    assert_eq!(builds.len(), 1, "the attack queued nothing: {history}");
    assert!(builds.iter().all(|b| b["description"] != "pwned"));
    // The same against logging out.
    server.abort();
    let target = format!("{}/logout", sparky.url);
    let (attack, server) = attack_page(target.clone()).await;
    browser.goto(&attack).await.expect("attack page");
    wait_for_url(&browser, |u| u == target).await;
    browser.goto(&format!("{}/projects/app", sparky.url)).await.expect("project page");
    browser.find("#logout").await.expect("still logged in");
    server.abort();

    // Logging out ends it: the page offers a login again.
    browser.find("#logout").await.expect("logout").click().await.expect("log out");
    wait_for_url(&browser, |u| u.ends_with("/login")).await;
    browser.goto(&format!("{}/projects/app", sparky.url)).await.expect("project page");
    browser.find("#log-in-to-run").await.expect("logged out");
    browser.close().await;
}

/// `name` prints 200 lines, then a batch of lines as each of the gates `gate1`..`gate3`
/// under `root` appears ("batch N done" last), then ends.
fn batched_project(root: &Path, name: &str) {
    let mut script = String::from("script: |\n  for i in $(seq 1 200); do echo \"line $i\"; done\n");
    for n in 1..=3 {
        let gate = root.join(format!("gate{n}"));
        script.push_str(&format!(
            "  while [ ! -e {gate} ]; do sleep 0.05; done\n  \
             for i in $(seq 1 30); do echo \"batch {n} line $i\"; done\n  echo \"batch {n} done\"\n",
            gate = gate.display()
        ));
    }
    write_project(root, name, &script);
}

/// The page's vertical scroll: how far down it is, and how far down it can go.
async fn scroll(browser: &Browser) -> (i64, i64) {
    let at = browser
        .execute("return [Math.round(window.scrollY), document.documentElement.scrollHeight - window.innerHeight];")
        .await
        .expect("scroll");
    (at[0].as_i64().unwrap_or(-1), at[1].as_i64().unwrap_or(-1))
}

/// Waits (a little) for a page just loaded to be scrolled to its end; returns where it is.
async fn at_the_end(browser: &Browser) -> (i64, i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let (at, bottom) = scroll(browser).await;
        if at == bottom || std::time::Instant::now() > deadline {
            return (at, bottom);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A build of `app` (written under the state folder by `project`) running in
/// `sparky up`, its page open in Chromium with JavaScript on or off.
struct OpenBuild {
    id: i64,
    api: Api,
    browser: Browser,
    _driver: Driver,
    _sparky: Sparky,
    /// The state folder; last, so it goes after the processes.
    dir: tempfile::TempDir,
}

impl OpenBuild {
    async fn start(project: impl FnOnce(&Path), javascript: bool) -> OpenBuild {
        let dir = tempfile::tempdir().expect("temp dir");
        project(dir.path());
        let sparky = Sparky::up(dir.path(), &[]);
        let api = Api::new(&sparky.url);
        let id = api.trigger("app", json!({})).await;
        api.wait_for(id, Some("running"), WAIT).await;
        let driver = Driver::start().await.expect("chromedriver");
        let browser = driver.browser(javascript).await.expect("browser");
        browser.goto(&format!("{}/builds/{id}", sparky.url)).await.expect("build page");
        OpenBuild { id, api, browser, _driver: driver, _sparky: sparky, dir }
    }

    /// Gate `n` of the project's script: the file whose appearance lets it go on.
    fn gate(&self, n: u32) -> PathBuf {
        self.dir.path().join(format!("gate{n}"))
    }

    /// Opens gate `n` of the project's script.
    fn open_gate(&self, n: u32) {
        std::fs::write(self.gate(n), "").expect("gate");
    }
}

#[tokio::test]
async fn the_live_log_keeps_a_reader_who_scrolled_up_in_place_and_follows_one_at_the_bottom() {
    let b = OpenBuild::start(|root| batched_project(root, "app"), true).await;
    let browser = &b.browser;
    browser.wait_for_text("#log", WAIT, |t| t.contains("line 200")).await.expect("the first lines");

    // Scrolled up to read: lines arrive below, the reader stays where they were.
    browser.execute("window.scrollTo(0, 400);").await.expect("scroll up");
    b.open_gate(1);
    browser.wait_for_text("#log", WAIT, |t| t.contains("batch 1 done")).await.expect("batch 1");
    let (at, bottom) = scroll(browser).await;
    assert_eq!(at, 400, "the reader was moved (the page can go down to {bottom})");
    assert!(bottom > 1000, "the page is long enough to tell: {bottom}");

    // At the bottom: the page follows the new lines.
    browser.execute("window.scrollTo(0, document.documentElement.scrollHeight);").await.expect("to the end");
    let (at, before) = scroll(browser).await;
    assert_eq!(at, before, "at the bottom");
    b.open_gate(2);
    browser.wait_for_text("#log", WAIT, |t| t.contains("batch 2 done")).await.expect("batch 2");
    let (at, bottom) = scroll(browser).await;
    assert!(bottom > before, "the log grew: {before} -> {bottom}");
    assert_eq!(at, bottom, "the reader at the bottom stays at the bottom");
    assert_eq!(b.api.build(b.id).await["status"], "running", "all of it live");
    b.open_gate(3);
    b.browser.close().await;
}

#[tokio::test]
async fn without_javascript_a_running_builds_page_refreshes_to_the_end_of_its_log() {
    let b = OpenBuild::start(|root| batched_project(root, "app"), false).await;
    let browser = &b.browser;
    browser.wait_for_text("#log", WAIT, |t| t.contains("line 200")).await.expect("the first lines");
    let (at, bottom) = scroll(browser).await;
    if !browser.current_url().await.expect("url").contains('#') {
        assert_eq!(at, 0, "opened without a fragment, the page starts at its top ({bottom} to go)");
    }

    // The first refresh brings the reader to the log's end.
    wait_for_url(browser, |u| u.ends_with("#end-of-log")).await;
    let (at, bottom) = at_the_end(browser).await;
    assert!(bottom > 1000 && at == bottom, "at {at} of {bottom}");
    // New lines come with a later refresh, and the reader is at the end again: refreshes
    // keep coming (a browser sent to the URL it shows, plus a fragment, would only scroll).
    for n in 1..=2 {
        b.open_gate(n);
        let done = format!("batch {n} done");
        browser.wait_for_text("#log", WAIT, |t| t.contains(&done)).await.expect("refreshed with new lines");
        let (at, bottom) = at_the_end(browser).await;
        assert_eq!(at, bottom, "after batch {n}: at the end");
    }
    assert_eq!(b.api.build(b.id).await["status"], "running");
    b.open_gate(3);
    b.browser.close().await;
}

/// Seconds in a label time.js writes ("850ms", "4s", "2m 5s", "1h 3m", with " ago" or
/// not).
fn seconds(label: &str) -> f64 {
    label.trim_end_matches(" ago").split_whitespace().fold(0.0, |total, part| {
        let (number, unit) = part.split_at(part.find(|c: char| !c.is_ascii_digit()).unwrap_or(part.len()));
        let n: f64 = number.parse().unwrap_or_else(|_| panic!("not a time: {label:?}"));
        total
            + match unit {
                "ms" => n / 1000.0,
                "s" => n,
                "m" => n * 60.0,
                "h" => n * 3600.0,
                _ => panic!("not a time: {label:?}"),
            }
    })
}

#[tokio::test]
async fn ago_labels_keep_moving_and_a_running_builds_duration_counts_up() {
    let b = OpenBuild::start(|root| gated_project(root, "app", ""), true).await;
    let browser = &b.browser;
    let read = || async {
        let labels = browser
            .execute(
                "window.sparkyMarker = window.sparkyMarker || Date.now();\
                 return [window.sparkyMarker, document.querySelector('#duration .running-for').textContent,\
                   Array.from(document.querySelectorAll('#facts time.ago')).map(t => t.textContent)];",
            )
            .await
            .expect("labels");
        let agos: Vec<String> = labels[2]
            .as_array()
            .expect("ago labels")
            .iter()
            .map(|l| l.as_str().unwrap_or_default().to_string())
            .collect();
        (labels[0].clone(), labels[1].as_str().unwrap_or_default().to_string(), agos)
    };
    let (marker, duration, agos) = read().await;
    assert_eq!(agos.len(), 2, "queued and started: {agos:?}");
    assert!(agos.iter().all(|a| a.ends_with(" ago")), "{agos:?}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (later_marker, later_duration, later_agos) = read().await;
    assert_eq!(marker, later_marker, "the page did not reload");
    let counted = seconds(&later_duration) - seconds(&duration);
    assert!((1.0..=4.0).contains(&counted), "the duration went from {duration:?} to {later_duration:?}");
    for (before, after) in agos.iter().zip(&later_agos) {
        let moved = seconds(after) - seconds(before);
        assert!((1.0..=4.0).contains(&moved), "{before:?} became {after:?}");
    }
    assert_eq!(b.api.build(b.id).await["status"], "running");
    b.open_gate(1);
    b.open_gate(2);
    b.browser.close().await;
}

#[tokio::test]
async fn a_reader_who_leaves_a_live_build_page_as_its_build_ends_gets_where_they_were_going() {
    let b = OpenBuild::start(|root| batched_project(root, "app"), true).await;
    b.browser.wait_for_text("#log", WAIT, |t| t.contains("line 200")).await.expect("the first lines");

    // A page elsewhere that answers only once the build has ended, so the build's end
    // reaches the page the reader is leaving while their navigation is under way.
    let (ended, mut answer) = tokio::sync::watch::channel(false);
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move {
            let _ = answer.wait_for(|ended| *ended).await;
            axum::response::Html("<!doctype html><title>elsewhere</title><p id=elsewhere>elsewhere")
        }),
    );
    let (elsewhere, server) = another_site(app).await;
    let (api, id, gates) = (b.api.clone(), b.id, [1, 2, 3].map(|n| b.gate(n)));
    let ender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for gate in gates {
            std::fs::write(gate, "").expect("gate");
        }
        api.wait_for(id, Some("succeeded"), WAIT).await;
        // The page's event stream brings the end a moment later.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = ended.send(true);
    });

    b.browser.execute(&format!("window.location.href = {elsewhere:?};")).await.expect("follow a link");
    wait_for_url(&b.browser, |u| u == elsewhere).await;
    b.browser.wait_for_text("#elsewhere", WAIT, |t| t == "elsewhere").await.expect("the page elsewhere");
    ender.await.expect("the build ended");
    server.abort();
    b.browser.close().await;
}
