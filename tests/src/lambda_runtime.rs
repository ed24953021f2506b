//! A local AWS Lambda Runtime API endpoint (version 2018-06-01), as the Lambda service
//! offers it to a function's runtime: the runtime long-polls
//! `GET /2018-06-01/runtime/invocation/next` and gets an event with its
//! `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
//! `Lambda-Runtime-Invoked-Function-Arn` and `Lambda-Runtime-Trace-Id` headers, then
//! answers with `POST /2018-06-01/runtime/invocation/{id}/response` (or `/error`).
//! [`RuntimeApi::invoke`] plays the caller: it queues an event and waits for the answer.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, bail};
use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};

/// How an invocation ended.
#[derive(Debug)]
pub enum Answer {
    /// `.../response`: the function's result.
    Response(Value),
    /// `.../error`: the runtime reported an error.
    Error(Value),
}

struct Pending {
    id: String,
    event: Value,
}

#[derive(Clone)]
struct ApiState {
    queue: Arc<AsyncMutex<mpsc::UnboundedReceiver<Pending>>>,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>,
    init_errors: Arc<Mutex<Vec<Value>>>,
}

/// The endpoint; stops when dropped.
pub struct RuntimeApi {
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    queue: mpsc::UnboundedSender<Pending>,
    state: ApiState,
    server: tokio::task::JoinHandle<()>,
    next_id: std::sync::atomic::AtomicU64,
}

impl RuntimeApi {
    pub async fn start() -> anyhow::Result<RuntimeApi> {
        let (queue, receiver) = mpsc::unbounded_channel();
        let state = ApiState {
            queue: Arc::new(AsyncMutex::new(receiver)),
            waiting: Arc::default(),
            init_errors: Arc::default(),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(respond))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi {
            address: addr.to_string(),
            queue,
            state,
            server,
            next_id: std::sync::atomic::AtomicU64::new(1),
        })
    }

    /// Invokes the function with `event` and waits up to `limit` for its answer.
    pub async fn invoke(&self, event: Value, limit: Duration) -> anyhow::Result<Answer> {
        let n = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("8476a536-e9f4-11e8-9739-{n:012x}");
        let (tx, rx) = oneshot::channel();
        self.state.waiting.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.insert(id.clone(), tx);
        self.queue.send(Pending { id, event }).context("the endpoint stopped")?;
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => bail!("the endpoint dropped the invocation"),
            Err(_) => {
                let init = self.state.init_errors.lock().map(|e| e.clone()).unwrap_or_default();
                bail!("no answer within {limit:?}; init errors reported: {init:?}")
            }
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(state): State<ApiState>) -> Response {
    let Some(pending) = state.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() + 30_000)
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", pending.id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:eu-west-1:123456789012:function:sparky".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1".into(),
    );
    set("content-type", "application/json".into());
    (headers, pending.event.to_string()).into_response()
}

fn answer(state: &ApiState, id: &str, answer: Answer) -> StatusCode {
    let waiter = state.waiting.lock().ok().and_then(|mut w| w.remove(id));
    match waiter {
        Some(tx) => {
            let _ = tx.send(answer);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn respond(State(state): State<ApiState>, Path(id): Path<String>, body: Bytes) -> impl IntoResponse {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    (answer(&state, &id, Answer::Response(value)), axum::Json(json!({"status": "OK"})))
}

async fn fail(State(state): State<ApiState>, Path(id): Path<String>, body: Bytes) -> impl IntoResponse {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (answer(&state, &id, Answer::Error(value)), axum::Json(json!({"status": "OK"})))
}

async fn init_error(State(state): State<ApiState>, body: Bytes) -> StatusCode {
    if let Ok(mut errors) = state.init_errors.lock() {
        errors.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
    }
    StatusCode::ACCEPTED
}

/// An API Gateway HTTP API (payload format 2.0) event for `method path?query` with
/// `headers` and an optional text body.
pub fn http_api_event(
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Value {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut all: serde_json::Map<String, Value> =
        headers.iter().map(|(k, v)| (k.to_lowercase(), json!(v))).collect();
    all.insert("host".into(), json!("r3pmxmplak.execute-api.eu-west-1.amazonaws.com"));
    all.insert("user-agent".into(), json!("curl/8.5.0"));
    all.insert("x-forwarded-proto".into(), json!("https"));
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": all,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "r3pmxmplak",
            "domainName": "r3pmxmplak.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "r3pmxmplak",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.17", "userAgent": "curl/8.5.0"},
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Nov/2026:08:00:00 +0000",
            "timeEpoch": 1_795_680_000_000u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}
