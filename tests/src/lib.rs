//! sparky-tests: helpers for end-to-end tests and benchmarks that start the real
//! `sparky` binary as separate processes and talk to them over HTTP.
//!
//! # Layout
//! - this file: finding (and building) the binary, starting it, HTTP helpers.
//! - [`manifests`]: the rendered `knative/` bundle, and starting functions as it says.
//! - [`knative`]: the four functions started from that bundle, with a Broker and
//!   PingSources standing in for Knative Eventing's.
//! - [`lambda_runtime`]: a local AWS Lambda Runtime API endpoint.
//! - [`biglog`]: a job that prints a lot, and checking its stored log.
//! - [`githost`]: GitHub's, GitLab's and Gitea's commit-status APIs, checked.
//! - [`moto`]: a real S3-compatible server process (`moto_server`) for the S3 tests.
//! - [`prometheus`]: a real Prometheus server scraping Sparky, and PromQL queries.
//! - [`strict_s3`]: a proxy in front of it that rejects the SDK's newer checksums.
//! - [`scale`]: what Sparky costs as history grows (`sparky-bench scale`).
//! - `tests/e2e/`: the end-to-end tests, one module per area.
//! - `src/bin/sparky-bench.rs`: benchmarks that print figures.

pub mod biglog;
pub mod faults;
pub mod git;
pub mod githost;
pub mod knative;
pub mod lambda_runtime;
pub mod manifests;
pub mod moto;
pub mod prometheus;
pub mod scale;
pub mod smtp;
pub mod strict_s3;
pub mod webdriver;

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::Value;

/// The `sparky` binary beside this executable (target/<profile>/sparky), built first
/// so that a test never runs a stale one.
pub fn sparky_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(path) = std::env::var("SPARKY_BIN") {
            return PathBuf::from(path);
        }
        let exe = std::env::current_exe().expect("own path");
        // target/<profile>/deps/e2e-hash or target/<profile>/sparky-bench
        let mut dir = exe.parent().expect("exe dir").to_path_buf();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let release = dir.ends_with("release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-q", "-p", "sparky"]);
        if release {
            build.arg("--release");
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
        let status = build.current_dir(workspace).status().expect("run cargo build");
        assert!(status.success(), "building sparky failed");
        dir.join("sparky")
    })
    .clone()
}

/// A free port on 127.0.0.1 (for processes that must know each other's address
/// before they start). Taken below the kernel's ephemeral range (32768 and up), from
/// which outgoing connections get their local ports: a port from there, free when
/// looked at, may be some test's connection by the time its server binds it. Each call
/// in this process gives another port (and other processes start elsewhere).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id().wrapping_mul(97);
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + offset.wrapping_add(n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + SPAN)
}

/// A running `sparky` process; killed when dropped.
pub struct Sparky {
    child: Child,
    pub url: String,
    stderr_tail: std::sync::Arc<Mutex<Vec<String>>>,
}

impl Sparky {
    /// `sparky up --listen 127.0.0.1:0 --root ROOT` with `envs` added.
    pub fn up(root: &Path, envs: &[(&str, &str)]) -> Sparky {
        Self::start(&["up", "--listen", "127.0.0.1:0", "--root", &root.to_string_lossy()], envs)
    }

    /// `sparky serve FUNCTION --listen 127.0.0.1:PORT --root ROOT`.
    pub fn serve(function: &str, port: u16, root: &Path, envs: &[(&str, &str)]) -> Sparky {
        let listen = format!("127.0.0.1:{port}");
        Self::start(&["serve", function, "--listen", &listen, "--root", &root.to_string_lossy()], envs)
    }

    /// Starts `sparky ARGS` and waits for it to print the address it serves on.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Sparky {
        let mut command = Command::new(sparky_bin());
        command
            .args(args)
            .env_remove("SPARKY_API_TOKEN")
            .env_remove("SPARKY_ROOT")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            command.env(k, v);
        }
        Self::spawn(command)
    }

    /// `sparky ARGS --root ROOT` as the user `uid` (through `setpriv`, so the caller
    /// must be root), with only `PATH`, `HOME` (`root`) and `RUST_LOG` in its
    /// environment, ready for [`Sparky::spawn`].
    pub fn command_as(uid: u32, args: &[&str], root: &Path) -> Command {
        let mut command = Command::new("setpriv");
        command
            .args([&format!("--reuid={uid}"), &format!("--regid={uid}"), "--clear-groups", "--"])
            .arg(sparky_bin())
            .args(args)
            .arg("--root")
            .arg(root)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", root)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Starts a prepared `sparky` command (stdout and stderr piped) and waits for it to
    /// print the address it serves on.
    pub fn spawn(mut command: Command) -> Sparky {
        let args: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let mut child = command.spawn().expect("start sparky");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let tail = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = tail.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut lines) = sink.lock() {
                    lines.push(line);
                    if lines.len() > 400 {
                        lines.remove(0);
                    }
                }
            }
        });
        let mut first = String::new();
        BufReader::new(stdout).read_line(&mut first).expect("read stdout");
        let Some(start) = first.find("http://") else {
            let _ = child.kill();
            let _ = child.wait();
            let log = tail.lock().map(|l| l.join("\n")).unwrap_or_default();
            panic!("sparky {args:?} did not start: {first:?}\n{log}");
        };
        let url = first[start..].split_whitespace().next().unwrap_or_default().to_string();
        Sparky { child, url, stderr_tail: tail }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal sparky");
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("sparky did not exit within {limit:?}\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines sparky wrote to stderr.
    pub fn log(&self) -> String {
        self.stderr_tail.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

impl Drop for Sparky {
    fn drop(&mut self) {
        // Jobs run in process groups of their own, so killing sparky alone would leave
        // them running (a checkout, a script) and writing into the state folder the
        // test removes next, which then fails to go. They are stopped with it.
        // (Only while it runs: once reaped, its pid may be someone else's.)
        let running = matches!(self.child.try_wait(), Ok(None));
        let jobs: Vec<i32> = if running {
            descendants(self.child.id() as i32).into_iter().map(|(pid, _, _)| pid).collect()
        } else {
            Vec::new()
        };
        let _ = self.child.kill();
        kill_groups(&jobs);
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(2);
        while jobs.iter().any(|pid| alive(*pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Writes `projects/NAME/sparky.yaml` under `root`.
pub fn write_project(root: &Path, name: &str, yaml: &str) {
    let dir = root.join("projects").join(name);
    std::fs::create_dir_all(&dir).expect("project dir");
    std::fs::write(dir.join("sparky.yaml"), yaml).expect("sparky.yaml");
}

/// A small HTTP client for one server.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

/// A response's status and JSON body (`Null` when it has none).
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Api { base: base.trim_end_matches('/').to_string(), http: sparky_core::tls::client() }
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Reply {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }

    pub async fn post(&self, path: &str) -> Reply {
        self.send(self.http.post(self.url(path))).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self.http.get(self.url(path)).send().await.expect("GET");
        (response.status().as_u16(), response.text().await.expect("text body"))
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, headers, json }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Triggers a build of `project` with `params`; returns its id.
    pub async fn trigger(&self, project: &str, params: Value) -> i64 {
        let reply = self
            .post_json(&format!("/api/v1/projects/{project}/builds"), serde_json::json!({ "params": params }))
            .await;
        assert_eq!(reply.status, 201, "trigger {project}: {}", reply.json);
        reply.json["id"].as_i64().expect("build id")
    }

    pub async fn build(&self, id: i64) -> Value {
        let reply = self.get(&format!("/api/v1/builds/{id}")).await;
        assert_eq!(reply.status, 200, "build {id}: {}", reply.json);
        reply.json
    }

    /// Waits until build `id` has status `status` (or any terminal one if `None`).
    pub async fn wait_for(&self, id: i64, status: Option<&str>, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let build = self.build(id).await;
            let now = build["status"].as_str().unwrap_or_default();
            let done = match status {
                Some(wanted) => now == wanted,
                None => is_terminal(now),
            };
            if done {
                return build;
            }
            assert!(
                Instant::now() < deadline,
                "build {id} is still {now} after {limit:?}, wanted {status:?}: {build}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn log(&self, id: i64) -> String {
        let (status, text) = self.get_text(&format!("/builds/{id}/log")).await;
        assert_eq!(status, 200, "log of {id}");
        text
    }
}

pub fn is_terminal(status: &str) -> bool {
    matches!(status, "succeeded" | "failed" | "canceled" | "timed_out" | "lost")
}

/// `(pid, parent pid, state)` of every process under `ancestor`, from /proc.
pub fn descendants(ancestor: i32) -> Vec<(i32, i32, char)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let mut rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default().split_whitespace();
        let state = rest.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        all.push((pid, ppid, state));
    }
    let mut found = vec![ancestor];
    let mut result = Vec::new();
    while let Some(parent) = found.pop() {
        for &(pid, ppid, state) in all.iter().filter(|p| p.1 == parent) {
            found.push(pid);
            result.push((pid, ppid, state));
        }
    }
    result
}

/// Whether a process is still alive (and not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Reads the pids a job wrote, one per line.
pub fn read_pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Kills what a test's jobs may have left behind (their process groups).
pub fn kill_groups(pids: &[i32]) {
    for pid in pids {
        let _ = nix::sys::signal::killpg(Pid::from_raw(*pid), Signal::SIGKILL);
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
}

/// The largest number of intervals open at once. Each line of `path` is
/// `<key> start|end <nanoseconds>`; returns the peak overall and per key.
pub fn peak_overlap(path: &Path) -> anyhow::Result<(usize, std::collections::HashMap<String, usize>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut events: Vec<(u128, i32, String)> = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [key, kind, at] = parts[..] else { bail!("bad line {line:?}") };
        let at: u128 = at.parse()?;
        // Ends sort before starts at the same instant: touching intervals don't overlap.
        let delta = if kind == "start" { 1 } else { -1 };
        events.push((at, delta, key.to_string()));
    }
    events.sort_by_key(|(at, delta, _)| (*at, *delta));
    let mut total = 0i32;
    let mut peak = 0usize;
    let mut per: std::collections::HashMap<String, i32> = Default::default();
    let mut per_peak: std::collections::HashMap<String, usize> = Default::default();
    for (_, delta, key) in events {
        total += delta;
        peak = peak.max(total.max(0) as usize);
        let n = per.entry(key.clone()).or_default();
        *n += delta;
        let p = per_peak.entry(key).or_default();
        *p = (*p).max((*n).max(0) as usize);
    }
    Ok((peak, per_peak))
}

/// The text of an HTML fragment's escaped characters, as a reader sees them.
pub fn unescape_html(html: &str) -> String {
    html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Build `id`'s row in a history page (`<tr id="build-ID">` to its `</tr>`), its
/// escaped characters as a reader sees them; empty when the page has no such row.
pub fn history_row(html: &str, id: i64) -> String {
    let start = format!(r#"<tr id="build-{id}">"#);
    let row = html.split_once(&start).and_then(|(_, rest)| rest.split_once("</tr>")).map(|(row, _)| row);
    unescape_html(row.unwrap_or_default())
}

/// Hex HMAC-SHA256 of `body` with `secret`, as GitHub and Gitea sign webhooks.
pub fn hmac_hex(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// A GitHub push event carrying `body`, signed with `secret`.
pub fn github_push_request(api: &Api, secret: &str, body: String) -> reqwest::RequestBuilder {
    github_request(api, secret, "push", body)
}

/// A GitHub webhook delivery of `event` (`push`, `pull_request`...) carrying `body`,
/// signed with `secret`.
pub fn github_request(api: &Api, secret: &str, event: &str, body: String) -> reqwest::RequestBuilder {
    api.http
        .post(api.url("/hooks/github"))
        .header("content-type", "application/json")
        .header("X-GitHub-Event", event)
        .header("X-Hub-Signature-256", format!("sha256={}", hmac_hex(secret, body.as_bytes())))
        .body(body)
}

/// A GitHub push of `sha` to `main` of `acme/app` (cloned from `clone_url`), signed with
/// `secret`, as delivery `delivery`: the builds it queued.
pub async fn github_push_to_main(
    api: &Api,
    secret: &str,
    clone_url: &str,
    sha: &str,
    delivery: &str,
) -> Vec<i64> {
    let body = serde_json::json!({
        "ref": "refs/heads/main", "before": "0".repeat(40), "after": sha, "deleted": false,
        "repository": { "full_name": "acme/app", "clone_url": clone_url },
        "head_commit": { "id": sha },
    })
    .to_string();
    let request = github_push_request(api, secret, body).header("X-GitHub-Delivery", delivery);
    let reply = api.send(request).await;
    assert_eq!(reply.status, 202, "{}", reply.json);
    reply.json["queued"].as_array().into_iter().flatten().filter_map(|q| q["build_id"].as_i64()).collect()
}

/// GitHub's (and Gitea's) `pull_request` payload: request `number` of `acme/app`
/// (cloned from `clone_url`) from branch `feature` of `head_repo` into `main`, its head
/// at `sha`.
pub fn github_pull_payload(clone_url: &str, action: &str, number: u64, sha: &str, head_repo: &str) -> Value {
    serde_json::json!({
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "html_url": format!("https://git.example.test/acme/app/pull/{number}"),
            "head": { "ref": "feature", "sha": sha, "repo": { "full_name": head_repo, "clone_url": format!("https://git.example.test/{head_repo}.git") } },
            "base": { "ref": "main", "sha": "0".repeat(40), "repo": { "full_name": "acme/app", "clone_url": clone_url } },
        },
        "repository": { "full_name": "acme/app", "clone_url": clone_url },
    })
}

/// Serves `app` on a port of its own, as another site or service a test needs: its URL
/// (`http://127.0.0.1:PORT`), and the task to abort when done.
pub async fn serve_site(app: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

/// What a Knative PingSource sends in binary mode, for the minute `time` (RFC 3339).
pub fn ping_request(api: &Api, path: &str, time: &str, id: &str) -> reqwest::RequestBuilder {
    api.http
        .post(api.url(path))
        .header("ce-specversion", "1.0")
        .header("ce-type", "dev.knative.sources.ping")
        .header("ce-source", "/apis/v1/namespaces/sparky/pingsources/tick")
        .header("ce-id", id)
        .header("ce-time", time)
}
