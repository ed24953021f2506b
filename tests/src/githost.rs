//! A local server that plays the commit-status REST APIs of GitHub, GitLab and Gitea
//! (under `/github`, `/gitlab`, `/gitea`: point `scm.statuses.api` at
//! `http://127.0.0.1:PORT/<host>`), and checks every request against what each host
//! documents:
//!
//! - GitHub, "Create a commit status": `POST /repos/{owner}/{repo}/statuses/{sha}`,
//!   `Authorization: Bearer <token>` (or `token <token>`), a `User-Agent`; JSON with
//!   `state` one of `error`, `failure`, `pending`, `success`, and optional string (or
//!   null) `target_url`, `description`, `context`; nothing else.
//! - GitLab, "Set the pipeline status of a commit": `POST /projects/:id/statuses/:sha`
//!   (`:id` a number or the URL-encoded path), `PRIVATE-TOKEN` (or `Authorization:
//!   Bearer`); `state` one of `pending`, `running`, `success`, `failed`, `canceled`,
//!   `skipped`, and optional `ref`, `name`, `context`, `target_url`, `description`,
//!   `coverage`, `pipeline_id`.
//! - Gitea, "Create a commit status": `POST /repos/{owner}/{repo}/statuses/{sha}`,
//!   `Authorization: token <token>` (or `Bearer`); `state` one of `pending`, `success`,
//!   `error`, `failure`, `warning`, and optional `target_url`, `description`, `context`.
//!
//! A request with a wrong token gets `401` as from the host; a malformed one `422` and
//! a violation on record. Tests may script the next answers (a 503, a 429 with
//! `Retry-After`, a `201` held back past the client's timeout...), and see every request
//! and every status it accepted.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// A status a host accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posted {
    pub host: String,
    pub repo: String,
    pub sha: String,
    pub state: String,
    pub context: String,
    pub target_url: Option<String>,
    pub description: String,
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// How long the answer is held back; what it accepts is on record at once, as a host
    /// that took the status and was slow to say so.
    pub hold: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer { status, headers: Vec::new(), hold: Duration::ZERO }
    }
    pub fn with(mut self, name: &'static str, value: &str) -> Answer {
        self.headers.push((name, value.to_string()));
        self
    }
    pub fn held(mut self, hold: Duration) -> Answer {
        self.hold = hold;
        self
    }
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, String>,
    script: HashMap<String, VecDeque<Answer>>,
    requests: Vec<(String, u16, std::time::Instant)>,
    posted: Vec<Posted>,
    violations: Vec<String>,
}

/// The fake hosts, serving until dropped.
pub struct GitHosts {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for GitHosts {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl GitHosts {
    /// Serves on `port` (0: any), accepting `tokens` by host (`github`, `gitlab`, `gitea`).
    pub async fn start(port: u16, tokens: &[(&str, &str)]) -> GitHosts {
        let inner = Arc::new(Mutex::new(Inner {
            tokens: tokens.iter().map(|(h, t)| (h.to_string(), t.to_string())).collect(),
            ..Inner::default()
        }));
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = Router::new().fallback(answer).with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        GitHosts { url, inner, server }
    }

    /// The API base URL of `host` on this server.
    pub fn api(&self, host: &str) -> String {
        format!("{}/{host}", self.url)
    }

    /// Answers the next requests to `host` so, in order (then `201` again).
    pub fn script(&self, host: &str, answers: Vec<Answer>) {
        self.lock().script.entry(host.into()).or_default().extend(answers);
    }

    /// Every request to `host` and the status it got.
    pub fn requests(&self, host: &str) -> Vec<u16> {
        self.lock().requests.iter().filter(|(h, _, _)| h == host).map(|(_, s, _)| *s).collect()
    }

    /// When each request to `host` arrived.
    pub fn request_times(&self, host: &str) -> Vec<std::time::Instant> {
        self.lock().requests.iter().filter(|(h, _, _)| h == host).map(|(_, _, t)| *t).collect()
    }

    pub fn posted(&self) -> Vec<Posted> {
        self.lock().posted.clone()
    }

    /// Requests that broke the host's API description.
    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("lock")
    }
}

async fn answer(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let (host, rest) = path.trim_start_matches('/').split_once('/').unwrap_or(("", ""));
    let host = host.to_string();
    let (status, extra, hold) = {
        let mut inner = inner.lock().expect("lock");
        let token = inner.tokens.get(&host).map(String::as_str);
        let (status, extra, hold) = match check(&host, &method, rest, &headers, &body, token) {
            Err(Refusal::Unauthorized) => (401, Vec::new(), Duration::ZERO),
            Err(Refusal::Invalid(why)) => {
                inner.violations.push(format!("{host} {method} {path}: {why}"));
                (422, Vec::new(), Duration::ZERO)
            }
            Ok(posted) => {
                let scripted = inner.script.get_mut(&host).and_then(VecDeque::pop_front);
                let answer = scripted.unwrap_or_else(|| Answer::status(201));
                if answer.status == 201 {
                    inner.posted.push(posted);
                }
                (answer.status, answer.headers, answer.hold)
            }
        };
        inner.requests.push((host, status, std::time::Instant::now()));
        (status, extra, hold)
    };
    tokio::time::sleep(hold).await;
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(json!({ "message": if status == 401 { "Bad credentials" } else { "see status" } })),
    )
        .into_response();
    for (name, value) in extra {
        if let Ok(value) = value.parse() {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

enum Refusal {
    Unauthorized,
    Invalid(String),
}

fn check(
    host: &str,
    method: &Method,
    rest: &str,
    headers: &HeaderMap,
    body: &[u8],
    token: Option<&str>,
) -> Result<Posted, Refusal> {
    let invalid = |why: &str| Refusal::Invalid(why.to_string());
    if method != Method::POST {
        return Err(invalid("statuses are created with POST"));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let authorization = header("authorization");
    let presented = match host {
        "github" => authorization.strip_prefix("Bearer ").or_else(|| authorization.strip_prefix("token ")),
        "gitlab" => {
            let private = header("private-token");
            return finish(
                host,
                rest,
                body,
                token,
                (!private.is_empty()).then_some(private.as_str()).or(authorization.strip_prefix("Bearer ")),
            );
        }
        "gitea" => authorization.strip_prefix("token ").or_else(|| authorization.strip_prefix("Bearer ")),
        _ => return Err(invalid("no such host on this server")),
    };
    if host == "github" && header("user-agent").is_empty() {
        return Err(invalid("GitHub requires a User-Agent"));
    }
    finish(host, rest, body, token, presented)
}

fn finish(
    host: &str,
    rest: &str,
    body: &[u8],
    token: Option<&str>,
    presented: Option<&str>,
) -> Result<Posted, Refusal> {
    let invalid = |why: String| Refusal::Invalid(why);
    if token.is_none() || presented != token {
        return Err(Refusal::Unauthorized);
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let (repo, sha) = match (host, segments.as_slice()) {
        ("github" | "gitea", ["repos", owner, name, "statuses", sha]) => (format!("{owner}/{name}"), *sha),
        ("gitlab", ["projects", id, "statuses", sha]) => (id.replace("%2F", "/").replace("%2f", "/"), *sha),
        _ => return Err(invalid(format!("not the statuses route: /{rest}"))),
    };
    if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(format!("{sha} is not a commit SHA")));
    }
    let doc: Value = serde_json::from_slice(body).map_err(|e| invalid(format!("body is not JSON: {e}")))?;
    let fields = doc.as_object().ok_or_else(|| invalid("body is not a JSON object".into()))?;
    let (states, allowed): (&[&str], &[&str]) = match host {
        "github" => {
            (&["error", "failure", "pending", "success"], &["state", "target_url", "description", "context"])
        }
        "gitlab" => (
            &["pending", "running", "success", "failed", "canceled", "skipped"],
            &["state", "ref", "name", "context", "target_url", "description", "coverage", "pipeline_id"],
        ),
        _ => (
            &["pending", "success", "error", "failure", "warning"],
            &["state", "target_url", "description", "context"],
        ),
    };
    for key in fields.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(invalid(format!("unknown field {key}")));
        }
    }
    for key in ["target_url", "description", "context", "name", "ref"] {
        if fields.get(key).is_some_and(|v| !(v.is_string() || v.is_null())) {
            return Err(invalid(format!("{key} must be a string")));
        }
    }
    let state = fields.get("state").and_then(Value::as_str).ok_or_else(|| invalid("no state".into()))?;
    if !states.contains(&state) {
        return Err(invalid(format!("state {state} is not one of {states:?}")));
    }
    let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_string);
    Ok(Posted {
        host: host.into(),
        repo,
        sha: sha.into(),
        state: state.into(),
        context: text("context").or_else(|| text("name")).unwrap_or_else(|| "default".into()),
        target_url: text("target_url"),
        description: text("description").unwrap_or_default(),
    })
}
