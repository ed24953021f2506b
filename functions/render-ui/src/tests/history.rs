//! History: the feed of every project's builds, filters, pages that keep them, and
//! the columns that say what each build was.

use http::StatusCode;
use serde_json::Value;
use sparky_core::model::{BuildStatus, NewBuild, ScmRef, TriggerKind};

use super::{Harness, harness};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// Queues a build as a push to `branch` would, with a commit message.
async fn pushed(h: &Harness, project: &str, branch: &str, message: &str) -> i64 {
    let new = NewBuild {
        project: project.into(),
        trigger: Some(TriggerKind::Webhook),
        description: Some(format!("github push to {branch}")),
        scm: ScmRef {
            url: Some("https://github.com/acme/app.git".into()),
            branch: Some(branch.into()),
            sha: Some(SHA.into()),
        },
        triggered_by: Some("ada".into()),
        commit_message: Some(format!("{message}\n\nA longer body.")),
        ..NewBuild::default()
    };
    h.ctx.queue_build(new).await.expect("queue").build.id
}

fn ids(body: &Value) -> Vec<i64> {
    body["builds"].as_array().expect("builds array").iter().map(|b| b["id"].as_i64().expect("id")).collect()
}

/// Two projects: `app` with pushes to main and a feature branch (one failed), `docs`
/// with builds by hand.
async fn history() -> (Harness, [i64; 5]) {
    let h = harness(|_| {}).await;
    h.project("app", "script: echo\nconcurrency: 5\n");
    h.project("docs", "script: echo\n");
    let main1 = pushed(&h, "app", "main", "Fix the flux capacitor").await;
    let feature = pushed(&h, "app", "feature/speed", "Go faster").await;
    let manual = h.queue("docs", &[], Some("Publish the handbook")).await;
    let main2 = pushed(&h, "app", "main", "Tune the flux capacitor").await;
    let manual2 = h.queue("docs", &[], None).await;
    h.start("app", feature).await;
    h.finish(feature, BuildStatus::Failed, Some(1), 0).await;
    (h, [main1, feature, manual, main2, manual2])
}

#[tokio::test]
async fn the_feed_filters_by_project_status_branch_trigger_and_text() {
    let (h, [main1, feature, manual, main2, manual2]) = history().await;
    let get = |q: &'static str| {
        let h = &h;
        async move {
            let answer = h.get(&format!("/api/v1/builds{q}")).await;
            assert_eq!(answer.status, StatusCode::OK, "{q}: {}", answer.body);
            ids(&answer.json())
        }
    };
    assert_eq!(get("").await, [manual2, main2, manual, feature, main1], "every project, newest first");
    assert_eq!(get("?project=docs").await, [manual2, manual]);
    assert_eq!(get("?status=failed").await, [feature]);
    assert_eq!(get("?branch=main").await, [main2, main1]);
    assert_eq!(get("?trigger=webhook&branch=feature%2Fspeed").await, [feature]);
    assert_eq!(get("?trigger=api").await, [manual2, manual]);
    assert_eq!(get("?q=flux+cap").await, [main2, main1], "commit messages are searched");
    assert_eq!(get("?q=HANDBOOK").await, [manual], "descriptions too, any case");
    assert_eq!(get("?q=flux&trigger=webhook&project=app").await, [main2, main1]);
    assert_eq!(get("?q=faster&status=failed&project=app").await, [feature]);
    assert_eq!(get("?q=flux&status=failed").await, Vec::<i64>::new());
    assert_eq!(get("?q=nothing+like+it").await, Vec::<i64>::new());

    // A project's own history takes the same filters.
    let own = h.get("/api/v1/projects/app/builds?branch=main&limit=1").await.json();
    assert_eq!(ids(&own), [main2]);
    assert_eq!(own["next_before"], main2);
    let next = h.get(&format!("/api/v1/projects/app/builds?branch=main&limit=1&before={main2}")).await.json();
    assert_eq!(ids(&next), [main1]);
    assert_eq!(next["next_before"], Value::Null);

    let build = &h.get("/api/v1/builds?status=failed").await.json()["builds"][0];
    assert_eq!(build["triggered_by"], "ada");
    assert_eq!(build["commit_message"], "Go faster\n\nA longer body.");
    assert_eq!(build["scm_branch"], "feature/speed");
}

#[tokio::test]
async fn bad_filters_are_refused_with_what_would_do() {
    let (h, _) = history().await;
    for (query, says) in [
        ("/api/v1/builds?status=broken", "status=\\\"broken\\\": expected one of queued"),
        ("/api/v1/builds?trigger=push", "expected one of api, cron, webhook"),
        ("/api/v1/builds?q=ab", "search for 3 to 200 characters"),
        ("/api/v1/builds?project=..", "not a project name"),
        ("/api/v1/builds?sort=asc", "unknown field `sort`"),
        ("/api/v1/projects/app/builds?project=docs", "this is project"),
        ("/builds?status=broken", "expected one of queued"),
        ("/projects/app?trigger=push", "expected one of api"),
    ] {
        let answer = h.get(query).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            answer.body.contains(says) || answer.body.contains(&says.replace("\\\"", "&quot;")),
            "{query}: {}",
            answer.body
        );
    }
}

#[tokio::test]
async fn the_builds_page_shows_what_each_build_was_and_keeps_filters_across_pages() {
    let (h, [main1, feature, manual, main2, _]) = history().await;
    let page = h.get("/builds").await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    // Commit, linked to the host; branch; trigger and who; the project.
    assert!(body.contains(&format!(
        r#"<a class="sha" href="https:&#x2f;&#x2f;github.com&#x2f;acme&#x2f;app&#x2f;commit&#x2f;{SHA}" rel="noreferrer" title="{SHA}">0123456789</a>"#
    )), "{body}");
    assert!(body.contains(r#"<span class="branch">feature&#x2f;speed</span>"#));
    assert!(body.contains(r#"<span class="trigger">webhook</span> <span class="who">ada</span>"#));
    assert!(body.contains(r#"<span class="message">Fix the flux capacitor</span>"#), "the first line only");
    assert!(!body.contains("A longer body"));
    assert!(body.contains(r#"<a href="/projects/docs">docs</a>"#));
    assert!(body.contains(&format!(r#"id="build-{manual}""#)));

    let failed = h.get("/builds?status=failed").await.body;
    assert!(
        failed.contains(&format!(r#"id="build-{feature}""#))
            && !failed.contains(&format!(r#"id="build-{main1}""#))
    );
    assert!(
        failed.contains(r#"<option value="failed" selected>failed</option>"#),
        "the form shows the filter"
    );
    assert!(failed.contains(r#"id="clear-filters""#));

    let first = h.get("/builds?branch=main&q=flux&limit=1").await.body;
    assert!(first.contains(&format!(r#"id="build-{main2}""#)));
    let older = format!("&#x2f;builds?branch=main&amp;q=flux&amp;limit=1&amp;before={main2}");
    assert!(first.contains(&format!(r#"<a href="{older}" id="older">"#)), "{first}");
    let second = h.get(&format!("/builds?branch=main&q=flux&limit=1&before={main2}")).await.body;
    assert!(second.contains(&format!(r#"id="build-{main1}""#)));
    assert!(second.contains(r#"<a href="&#x2f;builds?branch=main&amp;q=flux&amp;limit=1" id="newest">"#));

    let none = h.get("/builds?q=zzzz").await.body;
    assert!(none.contains("No builds match."));
    // A project's page filters its own history.
    let app = h.get("/projects/app?status=failed").await.body;
    assert!(
        app.contains(&format!(r#"id="build-{feature}""#)) && !app.contains(&format!(r#"id="build-{main2}""#))
    );
    assert!(!app.contains(r#"id="filter-project""#), "a project's page has no project filter");
    // Its trends: the one finished build, drawn, and the rate.
    assert!(
        app.contains(&format!(r##"<a href="/builds/{feature}" aria-label="#{feature} failed in "##))
            && app.contains(r#"<rect class="bar status-failed""#),
        "{app}"
    );
    assert!(app.contains("<strong>0%</strong> succeeded (0 of the last 1 builds"));
    let api = h.get("/api/v1/projects/app").await.json();
    assert_eq!(api["trends"]["success_rate"], 0);
    assert_eq!(api["trends"]["builds"][0]["id"], feature);
    assert_eq!(api["trends"]["builds"][0]["status"], "failed");
    let docs = h.get("/projects/docs").await.body;
    assert!(!docs.contains(r#"id="trends""#), "nothing finished, nothing drawn");
}

#[tokio::test]
async fn the_run_form_starts_from_an_earlier_build() {
    let h = harness(|_| {}).await;
    h.project(
        "app",
        "script: echo\nvars:\n\
         \x20 - { name: target, type: select, values: [staging, prod], default: staging }\n\
         \x20 - { name: note, type: text, default: plain }\n",
    );
    h.project("docs", "script: echo\n");
    let earlier = h.queue("app", &[("target", "prod"), ("note", "from #1")], Some("Ship it")).await;
    let other = h.queue("docs", &[], None).await;

    let body = h.get(&format!("/projects/app?from={earlier}")).await.body;
    assert!(
        body.contains(&format!(r#"action="&#x2f;api&#x2f;v1&#x2f;builds&#x2f;{earlier}&#x2f;rebuild""#)),
        "{body}"
    );
    assert!(body.contains(r#"<option value="prod" selected>prod</option>"#));
    assert!(body.contains(r#"id="var-note" name="note" value="from #1""#));
    assert!(body.contains(r#"value="Ship it""#), "the description too");
    assert!(body.contains(r#"id="run-from""#));
    // Without ?from the form is the plain one.
    let plain = h.get("/projects/app").await.body;
    assert!(
        plain.contains(r#"<option value="staging" selected>staging</option>"#) && !plain.contains("run-from")
    );
    // The build's page links to it.
    let build = h.get(&format!("/builds/{earlier}")).await.body;
    assert!(
        build.contains(&format!(r#"href="/projects/app?from={earlier}#run-form" id="rebuild-with-changes""#)),
        "{build}"
    );

    for (from, says) in [
        (other.to_string(), "is of project docs, not app"),
        ("999".to_string(), "there is no build 999"),
        ("x".to_string(), "expected the id of a build"),
    ] {
        let answer = h.get(&format!("/projects/app?from={from}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{from}");
        assert!(answer.body.contains(says), "{from}: {}", answer.body);
    }
}
