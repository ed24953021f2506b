//! Jobs are untrusted code: what a job's environment holds, what its token may do, and
//! that nothing of Sparky's own configuration or a granted secret shows in any view of
//! its log.

use std::time::Duration;

use serde_json::json;
use sparky_tests::{Api, Sparky, sparky_bin, write_project};

/// Server credentials a job must never see, as `sparky up` is given them.
const ADMIN: &str = "admin-token-5ae7c1";
const CREDENTIALS: [(&str, &str); 5] = [
    ("SPARKY_API_TOKEN", ADMIN),
    ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEYID9"),
    ("AWS_SECRET_ACCESS_KEY", "aws-secret-access-key-value-0"),
    ("AWS_SESSION_TOKEN", "aws-session-token-value-1"),
    ("SPARKY_WEBHOOK_SECRET", "webhook-secret-value-2"),
];
const SECRET: &str = "d3pl0y-t0k3n-granted-to-app";

fn authed(api: &Api, token: &str, path: &str) -> reqwest::RequestBuilder {
    api.http.post(api.url(path)).bearer_auth(token)
}

#[tokio::test]
async fn a_job_sees_no_server_credential_and_its_secrets_never_show() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("secrets")).expect("secrets");
    std::fs::write(dir.path().join("secrets/DEPLOY_TOKEN"), format!("{SECRET}\n")).expect("secret");
    write_project(
        dir.path(),
        "app",
        "secrets: [DEPLOY_TOKEN]\nscript: |\n  env\n  for v in $(env | cut -d= -f1); do printf '%s\\n' \"${!v}\"; done\n  \
         env | fold -w3\n  echo \"$DEPLOY_TOKEN\" > artifact-free.txt\n  printf 'half %s' \"${DEPLOY_TOKEN:0:9}\"; sleep 0.4; printf '%s end\\n' \"${DEPLOY_TOKEN:9}\"\n",
    );
    let mut envs: Vec<(&str, &str)> = CREDENTIALS.to_vec();
    envs.push(("SPARKY_WEBHOOK_SECRET_APP", "project-webhook-secret-3"));
    let sparky = Sparky::up(dir.path(), &envs);
    let api = Api::new(&sparky.url);
    let reply = api.send(authed(&api, ADMIN, "/api/v1/projects/app/builds").json(&json!({}))).await;
    assert_eq!(reply.status, 201, "{}", reply.json);
    let id = reply.json["id"].as_i64().expect("id");

    // The live stream, read while the job runs.
    let events = api.http.get(api.url(&format!("/builds/{id}/events"))).send().await.expect("events");
    let stream = String::from_utf8_lossy(&events.bytes().await.expect("stream")).into_owned();
    let build = api.wait_for(id, None, Duration::from_secs(20)).await;
    assert_eq!(build["status"], "succeeded", "{build}");
    let log = api.log(id).await;
    assert!(log.contains("half *** end") || log.contains("half ***"), "the split value is masked: {log}");
    let page = api.get_text(&format!("/builds/{id}")).await.1;
    let raw = api.get_text(&format!("/builds/{id}/log?download=1")).await.1;
    let report = api.get_text(&format!("/builds/{id}/report.json")).await.1;
    let json = api.get_text(&format!("/api/v1/builds/{id}")).await.1;
    let project = api.get_text("/api/v1/projects/app").await.1;
    let mut values: Vec<&str> = CREDENTIALS.iter().map(|(_, v)| *v).collect();
    values.extend(["project-webhook-secret-3", SECRET]);
    for (view, text) in [
        ("log", &log),
        ("page", &page),
        ("raw", &raw),
        ("stream", &stream),
        ("report", &report),
        ("api", &json),
        ("project", &project),
    ] {
        // `fold -w3` splits values across lines; the stream escapes them in JSON.
        let joined = text.replace("\\n", "").replace(['\n', '\r'], "");
        for value in &values {
            assert!(!joined.contains(value), "{value} shows in the {view}:\n{text}");
        }
    }
    for name in [
        "SPARKY_API_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "SPARKY_WEBHOOK_SECRET",
        "SPARKY_ROOT",
    ] {
        assert!(!log.lines().any(|l| l.starts_with(&format!("{name}="))), "{name} reached the job:\n{log}");
    }
    assert!(log.contains("DEPLOY_TOKEN=***"), "{log}");
}

#[tokio::test]
async fn a_job_token_triggers_children_while_its_build_runs_and_nothing_else() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("token");
    write_project(
        dir.path(),
        "parent",
        &format!(
            "env: {{ SPARKY_BIN: '{bin}', TOKEN_FILE: '{file}' }}\nscript: |\n  echo \"$SPARKY_TOKEN\" > \"$TOKEN_FILE\"\n  \
             \"$SPARKY_BIN\" build child -p N=7 --follow\n  \"$SPARKY_BIN\" build parent || echo refused to loop\n  \
             curl -s -o /dev/null -w 'cancel %{{http_code}}\\n' -X POST -H \"Authorization: Bearer $SPARKY_TOKEN\" \"$SPARKY_API/api/v1/builds/$SPARKY_BUILD_ID/cancel\"\n",
            bin = sparky_bin().display(),
            file = token_file.display()
        ),
    );
    write_project(
        dir.path(),
        "child",
        "vars: [{ name: N }]\nscript: echo \"child of $SPARKY_PARENT_BUILD with N=$N\"\n",
    );
    let sparky = Sparky::up(dir.path(), &[("SPARKY_API_TOKEN", ADMIN)]);
    let api = Api::new(&sparky.url);
    let anonymous = api.post_json("/api/v1/projects/parent/builds", json!({})).await;
    assert_eq!(anonymous.status, 401, "the API is guarded: {}", anonymous.json);
    let reply = api.send(authed(&api, ADMIN, "/api/v1/projects/parent/builds").json(&json!({}))).await;
    let parent = reply.json["id"].as_i64().expect("id");
    let done = api.wait_for(parent, None, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "succeeded", "{done}\n{}", api.log(parent).await);
    let log = api.log(parent).await;
    assert!(log.contains(&format!("child of {parent} with N=7")), "{log}");
    assert!(log.contains("refused to loop"), "{log}");
    assert!(log.contains("cancel 403"), "a job token may not cancel: {log}");

    let children = api.get("/api/v1/projects/child/builds").await.json;
    let child = &children["builds"][0];
    assert_eq!((child["parent_build"].as_i64(), child["trigger"].as_str()), (Some(parent), Some("api")));

    // Once its build ended, the token is worth nothing.
    let token = std::fs::read_to_string(&token_file).expect("token").trim().to_string();
    assert!(token.starts_with("sparky-job-"), "{token}");
    let late = api.send(authed(&api, &token, "/api/v1/projects/child/builds").json(&json!({}))).await;
    assert_eq!(late.status, 401, "{}", late.json);
    assert!(late.json["error"].as_str().unwrap_or_default().contains("not running"), "{}", late.json);
    let forged =
        api.send(authed(&api, "sparky-job-0000", "/api/v1/projects/child/builds").json(&json!({}))).await;
    assert_eq!(forged.status, 401);
}

/// The tags of `html` that carry script or style inline (a `<script>` without `src`, a
/// `<style>`, a `style=` or `on...=` attribute), which the pages' policy would block.
/// User text is escaped, so every `<` starts a real tag.
fn inline_code(html: &str) -> Vec<String> {
    html.split('<')
        .skip(1)
        .filter_map(|rest| rest.split_once('>').map(|(tag, _)| tag))
        .filter(|tag| {
            let lower = tag.to_ascii_lowercase();
            let attributes: Vec<&str> = lower.split_whitespace().skip(1).collect();
            (lower.starts_with("script") && !attributes.iter().any(|a| a.starts_with("src=")))
                || lower.starts_with("style")
                || attributes.iter().any(|a| a.starts_with("style=") || a.starts_with("on"))
        })
        .map(|tag| format!("<{tag}>"))
        .collect()
}

#[tokio::test]
async fn every_page_carries_the_security_headers_and_no_inline_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gate = dir.path().join("gate");
    write_project(
        dir.path(),
        "app",
        &format!("script: |\n  echo started\n  while [ ! -e {} ]; do sleep 0.05; done\n", gate.display()),
    );
    let sparky = Sparky::up(dir.path(), &[("SPARKY_API_TOKEN", ADMIN)]);
    let api = Api::new(&sparky.url);
    let reply = api.send(authed(&api, ADMIN, "/api/v1/projects/app/builds").json(&json!({}))).await;
    let running = reply.json["id"].as_i64().expect("id");
    api.wait_for(running, Some("running"), Duration::from_secs(20)).await;
    let reply = api.send(authed(&api, ADMIN, "/api/v1/projects/app/builds").json(&json!({}))).await;
    let queued = reply.json["id"].as_i64().expect("id");

    let pages = [
        ("/", 200),
        ("/queue", 200),
        ("/builds", 200),
        ("/builds?status=running", 200),
        ("/projects/app", 200),
        (&format!("/builds/{running}") as &str, 200),
        (&format!("/builds/{queued}"), 200),
        (&format!("/builds/{running}?from=0"), 200),
        ("/login", 200),
        ("/login?next=/queue", 200),
        ("/builds/999999", 404),
        ("/projects/nowhere", 404),
        (&format!("/builds/{running}?from=x"), 400),
        ("/builds?status=nope", 400),
        ("/projects/app?q=ab", 400),
    ];
    let mut problems = Vec::new();
    for (path, status) in pages {
        let response = api.http.get(api.url(path)).send().await.expect("GET");
        let headers = response.headers().clone();
        let header =
            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        if response.status().as_u16() != status {
            problems.push(format!("{path}: {} instead of {status}", response.status()));
        }
        if !header("content-type").starts_with("text/html") {
            problems.push(format!("{path}: content-type {:?}, not a page", header("content-type")));
        }
        let policy = header("content-security-policy");
        let directive = |name: &str| {
            policy
                .split(';')
                .map(str::trim)
                .find_map(|d| d.strip_prefix(name).filter(|rest| rest.starts_with(' ')))
                .map(str::trim)
                .unwrap_or("(missing)")
                .to_string()
        };
        if policy.contains("unsafe-") {
            problems.push(format!("{path}: the policy lets unsafe code in: {policy:?}"));
        }
        for (name, wanted) in
            [("script-src", "'self'"), ("style-src", "'self'"), ("frame-ancestors", "'none'")]
        {
            if directive(name) != wanted {
                problems
                    .push(format!("{path}: {name} is {:?}, wanted {wanted:?}: {policy:?}", directive(name)));
            }
        }
        for (name, wanted) in [
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "same-origin"),
            ("x-frame-options", "DENY"),
        ] {
            if header(name) != wanted {
                problems.push(format!("{path}: {name} is {:?}, wanted {wanted:?}", header(name)));
            }
        }
        let body = response.text().await.expect("body");
        for tag in inline_code(&body) {
            problems.push(format!("{path}: inline code the policy blocks: {tag}"));
        }
    }
    std::fs::write(&gate, "").expect("open the gate");
    assert!(problems.is_empty(), "{problems:#?}");
}
