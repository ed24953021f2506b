//! Commit statuses on GitHub, GitLab and Gitea, as played by a local server that checks
//! every request against the hosts' API descriptions (`sparky_tests::githost`), for
//! builds of pushes to a real local repository.

use std::{path::Path, time::Duration};

use serde_json::Value;
use sparky_tests::{
    Api, Sparky, free_port,
    git::Repo,
    githost::{Answer, GitHosts, Posted},
    github_push_to_main, write_project,
};

const HOOK_SECRET: &str = "status-hook-secret";
const PUBLIC: &str = "https://ci.example.test";
/// The tokens the hosts accept; each is a secret of Sparky's.
const TOKENS: [(&str, &str, &str); 3] = [
    ("github", "GH_STATUS_TOKEN", "ghp-status-token-1"),
    ("gitlab", "GL_STATUS_TOKEN", "glpat-status-token-2"),
    ("gitea", "GT_STATUS_TOKEN", "gitea-status-token-3"),
];

/// A root whose projects `on-<host>` build `repo` and post statuses to `api_base/<host>`;
/// the secrets hold `tokens` (secret name, value). A commit's `OUTCOME` file may make
/// its build fail (`fail`) or hang (`hang...`).
fn root(dir: &Path, repo: &Repo, api_base: &str, tokens: &[(&str, &str)]) {
    std::fs::create_dir_all(dir.join("secrets")).expect("secrets");
    for (name, value) in tokens {
        std::fs::write(dir.join("secrets").join(name), value).expect("secret");
    }
    for (host, secret, _) in TOKENS {
        let repo_path = if host == "gitlab" { "group/sub/app" } else { "acme/app" };
        write_project(
            dir,
            &format!("on-{host}"),
            &format!(
                "scm:\n  url: '{url}'\n  branch: main\n  statuses: {{ host: {host}, token: {secret}, api: '{api_base}/{host}', repo: {repo_path} }}\n\
                 script: |\n  case \"$(cat OUTCOME 2>/dev/null)\" in fail) exit 3;; hang*) sleep 300;; esac\n  echo built\n",
                url = repo.path.display()
            ),
        );
    }
}

/// Pushes `sha` to main as GitHub says it; returns the builds queued.
async fn push(api: &Api, repo: &Repo, sha: &str, delivery: &str) -> Vec<i64> {
    github_push_to_main(api, HOOK_SECRET, &repo.path.display().to_string(), sha, delivery).await
}

/// Waits until `done` holds for the build's deliveries (from the API), or panics.
async fn deliveries(api: &Api, id: i64, limit: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let build = api.build(id).await;
        let list = build["deliveries"].as_array().cloned().unwrap_or_default();
        if done(&list) {
            return list;
        }
        assert!(std::time::Instant::now() < deadline, "build {id}'s deliveries never got there: {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Both the queued and the running status are settled: none waits to be sent.
fn settled(list: &[Value]) -> bool {
    list.len() >= 2 && list.iter().all(|d| d["state"] != "pending")
}

async fn last_delivery(api: &Api, id: i64) -> Value {
    api.build(id).await["deliveries"].as_array().and_then(|list| list.last().cloned()).unwrap_or_default()
}

fn final_sent(list: &[Value]) -> bool {
    list.last().is_some_and(|d| d["state"] == "sent" && d["says"] != "pending" && d["says"] != "running")
}

fn on(posted: &[Posted], host: &str) -> Vec<String> {
    posted.iter().filter(|p| p.host == host).map(|p| p.state.clone()).collect()
}

fn envs() -> Vec<(&'static str, &'static str)> {
    vec![("SPARKY_WEBHOOK_SECRET", HOOK_SECRET), ("SPARKY_PUBLIC_URL", PUBLIC)]
}

/// A state folder whose projects build a fresh repository and post to the three hosts,
/// each with its valid token.
async fn site() -> (tempfile::TempDir, Repo, GitHosts) {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repo::init(&dir.path().join("app"));
    let hosts = GitHosts::start(0, &TOKENS.map(|(host, _, token)| (host, token))).await;
    let secrets: Vec<(&str, &str)> = TOKENS.iter().map(|(_, name, value)| (*name, *value)).collect();
    root(dir.path(), &repo, &hosts.url, &secrets);
    (dir, repo, hosts)
}

#[tokio::test]
async fn every_build_of_a_pushed_commit_posts_its_statuses_on_github_gitlab_and_gitea() {
    let (dir, repo, hosts) = site().await;
    let sparky = Sparky::up(dir.path(), &envs());
    let api = Api::new(&sparky.url);
    let sha = repo.commit("README", "second\n");
    let ids = push(&api, &repo, &sha, "d-1").await;
    assert_eq!(ids.len(), 3, "one build per project");
    for id in &ids {
        let build = api.wait_for(*id, None, Duration::from_secs(30)).await;
        assert_eq!(build["status"], "succeeded", "{build}");
        deliveries(&api, *id, Duration::from_secs(15), final_sent).await;
    }
    assert_eq!(hosts.violations(), Vec::<String>::new(), "every request as the hosts document");
    let posted = hosts.posted();
    for (host, last) in [("github", "success"), ("gitlab", "success"), ("gitea", "success")] {
        let states = on(&posted, host);
        assert_eq!(states.last().map(String::as_str), Some(last), "{host}: {states:?}");
        assert!(states.iter().all(|s| ["pending", "running", "success"].contains(&s.as_str())), "{states:?}");
        // Each change once (GitHub and Gitea say "running" as pending, described so).
        let said: Vec<(String, String)> = posted
            .iter()
            .filter(|p| p.host == host)
            .map(|p| (p.state.clone(), p.description.clone()))
            .collect();
        let mut once = said.clone();
        once.sort();
        once.dedup();
        assert_eq!(once.len(), said.len(), "{host}: each change posted once: {said:?}");
    }
    for p in &posted {
        let project = format!("on-{}", p.host);
        let id = ids.iter().find(|id| p.target_url.as_deref() == Some(&format!("{PUBLIC}/builds/{id}")));
        assert!(id.is_some(), "links the build's page: {p:?}");
        assert_eq!(
            (p.sha.as_str(), p.context.as_str()),
            (sha.as_str(), format!("sparky/{project}").as_str())
        );
        let repo = if p.host == "gitlab" { "group/sub/app" } else { "acme/app" };
        assert_eq!(p.repo, repo);
    }
    let page = api.get_text(&format!("/builds/{}", ids[0])).await.1;
    assert!(page.contains("Statuses and notifications") && page.contains("posted (201 Created)"), "{page}");
}

#[tokio::test]
async fn a_host_down_then_back_gets_the_latest_status_once_and_a_restart_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repo::init(&dir.path().join("app"));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let secrets: Vec<(&str, &str)> = TOKENS.iter().map(|(_, name, value)| (*name, *value)).collect();
    root(dir.path(), &repo, &base, &secrets);
    let sparky = Sparky::up(dir.path(), &envs());
    let api = Api::new(&sparky.url);
    let sha = repo.commit("README", "second\n");
    let ids = push(&api, &repo, &sha, "d-1").await;
    for id in &ids {
        assert_eq!(api.wait_for(*id, None, Duration::from_secs(30)).await["status"], "succeeded");
    }
    // Nobody answers: each delivery is tried, and waits to be tried again.
    let tried = |list: &[Value]| {
        list.iter().any(|d| {
            d["state"] == "pending" && d["outcome"].as_str().is_some_and(|o| o.contains("could not reach"))
        })
    };
    let list = deliveries(&api, ids[0], Duration::from_secs(15), tried).await;
    assert!(list.iter().all(|d| d["state"] != "sent"), "{list:?}");

    // Sparky stops meanwhile (killed) and comes back; then the hosts do.
    drop(sparky);
    let sparky = Sparky::up(dir.path(), &envs());
    let api = Api::new(&sparky.url);
    let hosts = GitHosts::start(port, &TOKENS.map(|(host, _, token)| (host, token))).await;
    // A delivery the killed process had claimed waits out its claim first.
    for id in &ids {
        let limit = sparky_core::outbox::CLAIM + Duration::from_secs(20);
        let list = deliveries(&api, *id, limit, final_sent).await;
        assert!(list.iter().all(|d| d["state"] != "pending"), "the older ones are moot: {list:?}");
    }
    assert_eq!(hosts.violations(), Vec::<String>::new());
    for (host, _, _) in TOKENS {
        assert_eq!(on(&hosts.posted(), host), ["success"], "{host}: the latest state, once");
    }
}

#[tokio::test]
async fn a_refused_token_is_shown_and_not_retried_and_a_rate_limit_is_waited_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repo::init(&dir.path().join("app"));
    let hosts = GitHosts::start(0, &TOKENS.map(|(host, _, token)| (host, token))).await;
    // GitLab's secret holds a stale token; GitHub rate-limits the first request.
    let secrets = [
        ("GH_STATUS_TOKEN", TOKENS[0].2),
        ("GL_STATUS_TOKEN", "revoked-token"),
        ("GT_STATUS_TOKEN", TOKENS[2].2),
    ];
    root(dir.path(), &repo, &hosts.url, &secrets);
    hosts.script("github", vec![Answer::status(429).with("retry-after", "2")]);
    let sparky = Sparky::up(dir.path(), &envs());
    let api = Api::new(&sparky.url);
    let sha = repo.commit("README", "second\n");
    let ids = push(&api, &repo, &sha, "d-1").await;
    let mut of = std::collections::HashMap::new();
    for id in &ids {
        let build = api.wait_for(*id, None, Duration::from_secs(30)).await;
        assert_eq!(build["status"], "succeeded");
        of.insert(build["project"].as_str().unwrap_or_default().to_string(), *id);
    }
    let gitlab = of["on-gitlab"];
    let refused = |list: &[Value]| list.iter().any(|d| d["state"] == "failed");
    let list = deliveries(&api, gitlab, Duration::from_secs(15), refused).await;
    let failed = list.iter().find(|d| d["state"] == "failed").expect("failed");
    assert!(failed["outcome"].as_str().unwrap_or_default().contains("401"), "{failed}");
    assert_eq!(failed["attempts"], 1, "a refusal is not retried: {failed}");
    let page = api.get_text(&format!("/builds/{gitlab}")).await.1;
    assert!(page.contains("gitlab refused the status: 401 Unauthorized"), "{page}");

    deliveries(&api, of["on-github"], Duration::from_secs(20), final_sent).await;
    let answers = hosts.requests("github");
    assert_eq!(answers.first(), Some(&429), "{answers:?}");
    let times = hosts.request_times("github");
    let waited = times[1].duration_since(times[0]);
    assert!(waited >= Duration::from_millis(1900), "Retry-After: 2 was waited out, not {waited:?}");
    let gitlab_requests = hosts.requests("gitlab");
    assert!(gitlab_requests.iter().all(|s| *s == 401), "{gitlab_requests:?}");
    let count = gitlab_requests.len();
    assert!(count <= 3, "one try per delivery, none again: {gitlab_requests:?}");
    // Longer than the first backoff (1 s) and two of the outbox's polls.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hosts.requests("gitlab").len(), count, "nothing retried later");
    // The metrics count each try by kind, host and outcome.
    let metrics = api.get_text("/metrics").await.1;
    let tries = |kind: &str, outcome: &str| {
        let series =
            format!(r#"sparky_deliveries_total{{kind="{kind}",host="127.0.0.1",outcome="{outcome}"}} "#);
        metrics.lines().find_map(|l| l.strip_prefix(series.as_str())).and_then(|n| n.parse::<usize>().ok())
    };
    assert_eq!(tries("gitlab", "failed"), Some(count), "{metrics}");
    assert_eq!(tries("github", "held"), Some(1), "{metrics}");
    assert!(tries("github", "sent").is_some_and(|n| n >= 1), "{metrics}");
}

#[tokio::test]
async fn two_dispatch_processes_post_each_status_once() {
    let (dir, repo, hosts) = site().await;
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let mut shared = envs();
    let (dispatch_url, run_url) = (url(1), url(3));
    shared.extend([
        ("SPARKY_SQLITE_JOURNAL", "delete"),
        ("SPARKY_SELF_TICK", "true"),
        ("SPARKY_DISPATCH_URL", dispatch_url.as_str()),
        ("SPARKY_RUN_URL", run_url.as_str()),
    ]);
    let trigger = Sparky::serve("trigger", ports[0], dir.path(), &shared);
    let _first = Sparky::serve("dispatch", ports[1], dir.path(), &shared);
    let _second = Sparky::serve("dispatch", ports[2], dir.path(), &shared);
    let _run = Sparky::serve("run", ports[3], dir.path(), &shared);
    let api = Api::new(&trigger.url);
    let mut ids = Vec::new();
    let mut shas = Vec::new();
    for n in 0..3 {
        let sha = repo.commit("README", &format!("change {n}\n"));
        ids.extend(push(&api, &repo, &sha, &format!("d-{n}")).await);
        shas.push(sha);
    }
    assert_eq!(ids.len(), 9);
    let reader = Sparky::serve("render-ui", free_port(), dir.path(), &shared);
    let ui = Api::new(&reader.url);
    for id in &ids {
        ui.wait_for(*id, None, Duration::from_secs(60)).await;
        deliveries(&ui, *id, Duration::from_secs(30), final_sent).await;
    }
    assert_eq!(hosts.violations(), Vec::<String>::new());
    let posted = hosts.posted();
    let mut seen = std::collections::BTreeSet::new();
    for p in &posted {
        let key = (p.host.clone(), p.sha.clone(), p.context.clone(), p.state.clone(), p.description.clone());
        assert!(seen.insert(key), "posted twice: {p:?}\nall: {posted:#?}");
    }
    for sha in &shas {
        for (host, _, _) in TOKENS {
            let last = posted.iter().rfind(|p| p.host == host && &p.sha == sha);
            assert_eq!(last.map(|p| p.state.as_str()), Some("success"), "{host} {sha}");
        }
    }
}

#[tokio::test]
async fn failed_canceled_and_lost_builds_post_the_state_each_host_documents() {
    let (dir, repo, hosts) = site().await;
    // A short lease: a build whose process was killed is found lost soon after. Three
    // builds hang at once, whatever the machine's CPUs.
    let mut envs = envs();
    envs.extend([("SPARKY_LEASE", "2s"), ("SPARKY_MAX_RUNNING", "3")]);
    let sparky = Sparky::up(dir.path(), &envs);
    let api = Api::new(&sparky.url);

    let failing = repo.commit("OUTCOME", "fail\n");
    for id in push(&api, &repo, &failing, "d-1").await {
        assert_eq!(api.wait_for(id, None, Duration::from_secs(30)).await["status"], "failed");
        deliveries(&api, id, Duration::from_secs(15), final_sent).await;
    }

    let hanging = repo.commit("OUTCOME", "hang\n");
    for id in push(&api, &repo, &hanging, "d-2").await {
        api.wait_for(id, Some("running"), Duration::from_secs(30)).await;
        let reply = api.post(&format!("/api/v1/builds/{id}/cancel")).await;
        assert_eq!(reply.status, 202, "{}", reply.json);
        assert_eq!(api.wait_for(id, None, Duration::from_secs(15)).await["status"], "canceled");
        deliveries(&api, id, Duration::from_secs(15), final_sent).await;
    }

    // Sparky is killed while these run; the next Sparky finds their runner gone.
    let doomed = repo.commit("OUTCOME", "hang again\n");
    let ids = push(&api, &repo, &doomed, "d-3").await;
    for id in &ids {
        api.wait_for(*id, Some("running"), Duration::from_secs(30)).await;
    }
    let said_running = |host: &str| {
        hosts.posted().iter().any(|p| p.host == host && p.sha == doomed && p.description.ends_with("running"))
    };
    for id in &ids {
        // Nothing in flight when it dies: what it posted is on record as posted.
        deliveries(&api, *id, Duration::from_secs(15), settled).await;
    }
    assert!(TOKENS.iter().all(|(host, _, _)| said_running(host)), "{:#?}", hosts.posted());
    drop(sparky);
    let sparky = Sparky::up(dir.path(), &envs);
    let api = Api::new(&sparky.url);
    for id in &ids {
        assert_eq!(api.wait_for(*id, None, Duration::from_secs(20)).await["status"], "lost");
        deliveries(&api, *id, Duration::from_secs(15), final_sent).await;
    }

    assert_eq!(hosts.violations(), Vec::<String>::new(), "every state one the host documents");
    let posted = hosts.posted();
    let last = |host: &str, sha: &str| {
        let found = posted.iter().rfind(|p| p.host == host && p.sha == sha);
        found.map(|p| (p.state.clone(), p.description.clone())).unwrap_or_default()
    };
    for (host, failed, canceled, lost) in [
        ("github", "failure", "error", "error"),
        ("gitlab", "failed", "canceled", "failed"),
        ("gitea", "failure", "error", "error"),
    ] {
        let (state, words) = last(host, &failing);
        assert_eq!(state, failed, "{host}: {words}");
        assert!(words.ends_with("failed"), "{host}: {words}");
        let (state, words) = last(host, &hanging);
        assert_eq!(state, canceled, "{host}: {words}");
        assert!(words.ends_with("canceled"), "{host}: {words}");
        let (state, words) = last(host, &doomed);
        assert_eq!(state, lost, "{host}: {words}");
        assert!(words.ends_with("its runner vanished"), "{host}: {words}");
    }
}

#[tokio::test]
async fn a_status_that_fails_on_the_way_or_times_out_is_sent_again_after_a_backoff() {
    let (dir, repo, hosts) = site().await;
    let mut envs = envs();
    envs.push(("SPARKY_MAX_RUNNING", "3"));
    let sparky = Sparky::up(dir.path(), &envs);
    let api = Api::new(&sparky.url);
    let sha = repo.commit("OUTCOME", "hang\n");
    let ids = push(&api, &repo, &sha, "d-1").await;
    for id in &ids {
        api.wait_for(*id, Some("running"), Duration::from_secs(30)).await;
        deliveries(&api, *id, Duration::from_secs(15), settled).await;
    }

    // The last status: Gitea fails twice (503); GitHub takes it but answers only after
    // Sparky stopped waiting.
    let timeout = sparky_core::outbox::send::TIMEOUT;
    hosts.script("gitea", vec![Answer::status(503), Answer::status(503)]);
    hosts.script("github", vec![Answer::status(201).held(timeout + Duration::from_secs(5))]);
    let before = |host: &str| hosts.requests(host).len();
    let (gitea_before, github_before) = (before("gitea"), before("github"));
    let mut of = std::collections::HashMap::new();
    for id in &ids {
        let reply = api.post(&format!("/api/v1/builds/{id}/cancel")).await;
        assert_eq!(reply.status, 202, "{}", reply.json);
        let build = api.wait_for(*id, None, Duration::from_secs(15)).await;
        of.insert(build["project"].as_str().unwrap_or_default().to_string(), *id);
    }
    for id in &ids {
        deliveries(&api, *id, timeout + Duration::from_secs(20), final_sent).await;
    }
    assert_eq!(hosts.violations(), Vec::<String>::new());
    let posted = hosts.posted();
    let canceled = |host: &str| -> Vec<&Posted> {
        posted
            .iter()
            .filter(|p| p.host == host && p.sha == sha && p.description.ends_with("canceled"))
            .collect()
    };

    // Gitea: tried again after 1 s, then 2 s; the status arrives once.
    assert_eq!(hosts.requests("gitea")[gitea_before..], [503, 503, 201]);
    let times = &hosts.request_times("gitea")[gitea_before..];
    let (first, second) = (times[1] - times[0], times[2] - times[1]);
    assert!(first >= Duration::from_millis(900), "the first backoff is 1 s, not {first:?}");
    assert!(second >= Duration::from_millis(1900), "then 2 s, not {second:?}");
    let sent = last_delivery(&api, of["on-gitea"]).await;
    assert_eq!((sent["says"].as_str(), sent["attempts"].as_u64()), (Some("error"), Some(3)), "{sent}");
    assert_eq!(canceled("gitea").len(), 1, "{:#?}", canceled("gitea"));

    // GitHub: the host had it, Sparky could not know and sent it again once the timeout
    // passed; the same status twice, so the host's latest is still the build's.
    assert_eq!(hosts.requests("github")[github_before..], [201, 201]);
    let times = &hosts.request_times("github")[github_before..];
    assert!(times[1] - times[0] >= timeout, "sent again only after the timeout: {:?}", times[1] - times[0]);
    let sent = last_delivery(&api, of["on-github"]).await;
    assert_eq!((sent["says"].as_str(), sent["attempts"].as_u64()), (Some("error"), Some(2)), "{sent}");
    let twice = canceled("github");
    assert_eq!(twice.len(), 2, "{twice:#?}");
    assert_eq!(twice[0], twice[1], "the same status both times");
    assert_eq!(twice[1].state, "error");

    // GitLab, which answered at once, got it once.
    assert_eq!(canceled("gitlab").iter().map(|p| p.state.as_str()).collect::<Vec<_>>(), ["canceled"]);
}
