//! The pages a team reads, in headless Chromium: history with commits, branches and
//! who pushed, filters; times in the viewer's zone; the queue saying why builds wait;
//! rebuilding with changes; trends; the live log's numbers and search; dark mode and
//! phones (no page scrolls sideways at 390 px). Every page (the login and error pages
//! too) passes axe-core (from npm, `tests/node`) with no serious or critical violation
//! and runs its scripts with no Content-Security-Policy violation in the console, and
//! the tests save screenshots at 1280 and 390 px, light and dark, into
//! `docs/screenshots/` for the README.

use std::{path::PathBuf, time::Duration};

use serde_json::{Value, json};
use sparky_tests::{
    Api, Sparky,
    git::Repo,
    github_push_request,
    webdriver::{Browser, Driver},
    write_project,
};

const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "tour-s3cret";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// axe-core's script, installed by `scripts/test` (`npm ci --prefix tests/node`).
fn axe_source() -> String {
    let path = workspace().join("tests/node/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{}: {e}; run `npm ci --prefix tests/node` (scripts/test does)", path.display())
    })
}

/// A GitHub push of `sha` to `branch` by `who`, signed.
async fn push(api: &Api, repo: &Repo, branch: &str, sha: &str, who: &str, message: &str) -> i64 {
    let body = json!({
        "ref": format!("refs/heads/{branch}"),
        "after": sha,
        "repository": { "clone_url": repo.path.display().to_string() },
        "pusher": { "name": who },
        "head_commit": { "id": sha, "message": message },
    })
    .to_string();
    let reply = api.send(github_push_request(api, SECRET, body)).await;
    assert_eq!(reply.status, 202, "{}", reply.json);
    reply.json["queued"][0]["build_id"].as_i64().expect("a build queued")
}

/// Sets the viewport (a phone is a mobile device of 390 px) and the colour scheme.
async fn emulate(browser: &Browser, width: u32, dark: bool) {
    let (height, mobile) = if width < 600 { (844, true) } else { (900, false) };
    browser
        .cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await
        .expect("viewport");
    let scheme = if dark { "dark" } else { "light" };
    browser
        .cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
        )
        .await
        .expect("colour scheme");
}

/// axe-core's serious and critical violations on the current page.
async fn violations(browser: &Browser, axe: &str) -> Vec<String> {
    browser.execute(axe).await.expect("inject axe-core");
    let found = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, { resultTypes: ['violations'] })\
               .then(r => done(r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')\
                 .map(v => v.id + ' (' + v.impact + '): ' + v.nodes.map(n => n.target.join(' ')).join(', '))))\
               .catch(e => done(['axe failed: ' + e]));",
        )
        .await
        .expect("axe-core ran");
    found
        .as_array()
        .map(|v| v.iter().map(|s| s.as_str().unwrap_or_default().to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_page_reads_well_light_and_dark_on_a_desktop_and_a_phone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repo::init(&dir.path().join("app.git"));
    let url = repo.path.display().to_string();
    write_project(
        dir.path(),
        "app",
        &format!(
            "description: Build and test the app\nscm: {{ url: '{url}', branch: '*' }}\nconcurrency: 1\n\
             vars:\n  - {{ name: target, type: select, values: [staging, prod] }}\n\
             script: |\n  echo \"building $SCM_BRANCH for $target\"\n  for i in 1 2 3; do echo \"step $i ok\"; done\n  \
             [ \"$target\" != broken ] && [ \"$SCM_BRANCH\" != feature/flaky ]\n"
        ),
    );
    write_project(dir.path(), "docs", "description: Publish the handbook\nscript: |\n  echo publishing\n");
    let gate = dir.path().join("gate");
    write_project(
        dir.path(),
        "slow",
        &format!(
            "description: Waits for a gate\nscript: |\n  echo waiting\n  while [ ! -e {} ]; do sleep 0.05; done\n",
            gate.display()
        ),
    );
    let sparky = Sparky::up(dir.path(), &[("SPARKY_WEBHOOK_SECRET", SECRET)]);
    let api = Api::new(&sparky.url);

    // History: pushes by people, builds by hand, one failure.
    let first = repo.commit("README", "one");
    let main1 = push(&api, &repo, "main", &first, "ada", "Fix the flux capacitor").await;
    let pushed = api.wait_for(main1, None, WAIT).await;
    // A push names no parameters: the build gets the project's defaults.
    assert_eq!(pushed["params"]["target"], "staging", "{pushed}");
    assert!(api.log(main1).await.contains("building main for staging"));
    repo.switch("feature/flaky");
    let second = repo.commit("README", "two");
    let flaky = push(&api, &repo, "feature/flaky", &second, "grace", "Try a flaky speed-up").await;
    let docs = api.trigger("docs", json!({})).await;
    for id in [flaky, docs] {
        api.wait_for(id, None, WAIT).await;
    }
    assert_eq!(api.build(flaky).await["status"], "failed");
    // Two builds of `slow` (concurrency 1): one runs, one waits for it.
    let running = api.trigger("slow", json!({})).await;
    api.wait_for(running, Some("running"), WAIT).await;
    let waiting = api.trigger("slow", json!({})).await;

    let driver = Driver::start().await.expect("chromedriver");
    let browser = driver.browser(true).await.expect("browser");
    let axe = axe_source();
    let shots = workspace().join("docs/screenshots");
    std::fs::create_dir_all(&shots).expect("docs/screenshots");
    // The login form shows only where there is a token to log in with.
    let guarded_root = tempfile::tempdir().expect("temp dir");
    let guarded = Sparky::up(guarded_root.path(), &[("SPARKY_API_TOKEN", "tour-t0ken")]);
    // Pages with a name get screenshots; the others are only checked.
    let pages = [
        (Some("projects"), &sparky, "/".to_string()),
        (Some("project"), &sparky, "/projects/app".to_string()),
        (Some("builds"), &sparky, "/builds".to_string()),
        (Some("build"), &sparky, format!("/builds/{main1}")),
        (Some("queue"), &sparky, "/queue".to_string()),
        (None, &sparky, format!("/builds/{running}")),
        (None, &guarded, "/login".to_string()),
        (None, &sparky, "/builds/999999".to_string()),
        (None, &sparky, "/builds?status=nope".to_string()),
    ];
    let mut problems = Vec::new();
    for (width, dark) in [(1280, false), (1280, true), (390, false), (390, true)] {
        emulate(&browser, width, dark).await;
        for (name, server, path) in &pages {
            browser.goto(&format!("{}{path}", server.url)).await.expect("page");
            let wide = browser
                .execute(
                    "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                )
                .await
                .expect("widths");
            if wide.as_i64().unwrap_or(0) > 0 {
                problems.push(format!("{path} at {width} px scrolls sideways by {wide} px"));
            }
            for violation in violations(&browser, &axe).await {
                problems
                    .push(format!("{path} at {width} px{}: {violation}", if dark { " dark" } else { "" }));
            }
            // The page's policy blocked nothing of its own and its scripts ran cleanly.
            for message in browser.console().await.expect("console") {
                if message.contains("Content Security Policy") || message.contains("Uncaught") {
                    problems.push(format!("{path}: {message}"));
                }
            }
            if let Some(name) = name {
                let file = format!("{name}-{width}-{}.png", if dark { "dark" } else { "light" });
                std::fs::write(shots.join(file), browser.screenshot().await.expect("screenshot"))
                    .expect("save");
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // Dark mode really is dark.
    emulate(&browser, 1280, true).await;
    browser.goto(&format!("{}/", sparky.url)).await.expect("home");
    let background =
        browser.execute("return getComputedStyle(document.body).backgroundColor;").await.expect("bg");
    assert_eq!(background, json!("rgb(13, 17, 23)"));
    emulate(&browser, 1280, false).await;

    // The queue says why `waiting` waits and what runs.
    browser.goto(&format!("{}/queue", sparky.url)).await.expect("queue");
    let why = browser
        .find(&format!("#build-{waiting} .waiting-for"))
        .await
        .expect("reason")
        .text()
        .await
        .expect("text");
    assert_eq!(why, format!("project's concurrency 1 reached: #{running} running"));
    browser.find(&format!("#running #build-{running}")).await.expect("what runs now");
    std::fs::write(&gate, "").expect("open the gate");

    // History filters, and pages that keep them.
    browser.goto(&format!("{}/builds", sparky.url)).await.expect("feed");
    let row = browser.find(&format!("#build-{flaky}")).await.expect("row").text().await.expect("text");
    for part in ["feature/flaky", &second[..10], "webhook grace", "Try a flaky speed-up", "failed"] {
        assert!(row.contains(part), "{part:?} in {row:?}");
    }
    browser.find("#filter-status option[value=failed]").await.expect("option").click().await.expect("choose");
    browser.find("#filter").await.expect("Filter").click().await.expect("filter");
    browser.wait_for_text("#history", WAIT, |t| !t.contains(&format!("#{main1}"))).await.expect("filtered");
    assert!(browser.current_url().await.expect("url").contains("status=failed"));
    let search = browser.find("#filter-q").await.expect("search");
    search.type_text("flux").await.expect("type");
    browser.find("#filter-status option[value='']").await.expect("any").click().await.expect("any");
    browser.find("#filter").await.expect("Filter").click().await.expect("search");
    let found =
        browser.wait_for_text("#history", WAIT, |t| t.contains(&format!("#{main1}"))).await.expect("found");
    assert!(!found.contains(&format!("#{flaky}")), "{found}");

    // Times: UTC from the server, the viewer's zone in the browser.
    browser.cdp("Emulation.setTimezoneOverride", json!({ "timezoneId": "Asia/Tokyo" })).await.expect("zone");
    browser.goto(&format!("{}/builds/{main1}", sparky.url)).await.expect("build page");
    let local = browser.find("time.local").await.expect("a time").text().await.expect("text");
    assert!(local.contains("GMT+9") && !local.contains("UTC"), "{local}");
    let ago = browser.wait_for_text("time.ago", WAIT, |t| t.ends_with(" ago")).await.expect("ago");
    assert!(!ago.contains("UTC"), "{ago}");

    // The log: numbered lines that link to themselves, and search.
    let log = browser.wait_for_text("#log", WAIT, |t| t.contains("step 3 ok")).await.expect("log");
    assert!(log.lines().any(|l| l == "4step 1 ok"), "numbered lines: {log}");
    browser.goto(&format!("{}/builds/{main1}#L3", sparky.url)).await.expect("a line");
    let target = browser.execute("return document.querySelector(':target').id;").await.expect("target");
    assert_eq!(target, json!("L3"));
    browser.find("#log-find").await.expect("search box").type_text("STEP ").await.expect("type");
    browser.find("#log-next").await.expect("Next").click().await.expect("find");
    browser.wait_for_text("#log-matches", WAIT, |t| t == "1 of 3").await.expect("matches");
    browser.find("#log-next").await.expect("Next").click().await.expect("next");
    browser.wait_for_text("#log-matches", WAIT, |t| t == "2 of 3").await.expect("next match");

    // Rebuild with changes: the Run form starts from the build, prefilled.
    browser.find("#rebuild-with-changes").await.expect("link").click().await.expect("follow");
    browser.wait_for_text("#run-from", WAIT, |t| t.contains(&format!("#{main1}"))).await.expect("from");
    browser.find("#var-target option[value=prod]").await.expect("option").click().await.expect("choose");
    browser.find("#run").await.expect("Run").click().await.expect("submit");
    let deadline = std::time::Instant::now() + WAIT;
    let rebuilt = loop {
        let url = browser.current_url().await.expect("url");
        if let Some(id) = url.rsplit_once("/builds/").and_then(|(_, id)| id.parse::<i64>().ok()) {
            break id;
        }
        assert!(std::time::Instant::now() < deadline, "never left the form: {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let build: Value = api.wait_for(rebuilt, None, WAIT).await;
    assert_eq!(
        (build["trigger"].as_str(), build["params"]["target"].as_str()),
        (Some("rebuild"), Some("prod"))
    );
    assert_eq!(build["scm_sha"], json!(first), "the same commit");
    assert!(api.log(rebuilt).await.contains("building main for prod"));
    // Started from that build, the form shows its prod, not the project's default.
    let chosen = "return document.getElementById('var-target').value;";
    browser.open(&format!("{}/projects/app", sparky.url)).await.expect("project");
    assert_eq!(browser.execute(chosen).await.expect("value"), json!("staging"), "the default");
    browser.goto(&format!("{}/builds/{rebuilt}", sparky.url)).await.expect("rebuilt");
    browser.find("#rebuild-with-changes").await.expect("link").click().await.expect("follow");
    browser.wait_for_text("#run-from", WAIT, |t| t.contains(&format!("#{rebuilt}"))).await.expect("from");
    assert_eq!(browser.execute(chosen).await.expect("value"), json!("prod"), "started from #{rebuilt}");

    // Trends on the project's page.
    browser.goto(&format!("{}/projects/app", sparky.url)).await.expect("project");
    let rate = browser.find("#success-rate").await.expect("rate").text().await.expect("text");
    assert!(rate.starts_with("66%"), "{rate}");
    let bars =
        browser.execute("return document.querySelectorAll('#trend-chart rect').length;").await.expect("bars");
    assert_eq!(bars, json!(3));
    browser.close().await;
}

#[tokio::test]
async fn history_reads_are_private_when_sparky_is() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_project(dir.path(), "app", "script: echo\n");
    let sparky = Sparky::up(dir.path(), &[("SPARKY_API_TOKEN", "t0ken"), ("SPARKY_PRIVATE", "true")]);
    let api = Api::new(&sparky.url);
    for path in ["/api/v1/builds", "/api/v1/builds?status=failed", "/builds"] {
        assert_eq!(api.get(path).await.status, 401, "{path} without a token");
        let with = api.http.get(api.url(path)).bearer_auth("t0ken");
        assert_eq!(api.send(with).await.status, 200, "{path} with the token");
    }
    let bad = api.http.get(api.url("/api/v1/builds?status=nope")).bearer_auth("t0ken");
    let reply = api.send(bad).await;
    assert_eq!(reply.status, 400);
    assert!(reply.json["error"].as_str().is_some_and(|e| e.contains("expected one of")), "{}", reply.json);
}
