//! A round-robin HTTP forwarder in front of several runs, since dispatch has one
//! `SPARKY_RUN_URL`. Each request goes to the next target; its response is streamed
//! back as it comes (run's heartbeat lines while a build runs), and when a run dies
//! mid-build the connection to dispatch breaks too. A target that cannot be connected
//! to (killed, not started again yet) is skipped for the next one, for a few seconds at
//! most; a request that reached a target is never sent to another.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderName, StatusCode, header},
    response::{IntoResponse, Response},
};

/// What the forwarder did.
#[derive(Debug, Default)]
pub struct ForwardStats {
    /// Requests answered by a target (the answer streamed back).
    pub forwarded: AtomicU64,
    /// Connection attempts refused, each followed by a try on another target.
    pub failovers: AtomicU64,
    /// Requests no target took within the time allowed: answered `502`.
    pub unreachable: AtomicU64,
}

/// The forwarder, serving on a local port until dropped.
pub struct Forwarder {
    pub url: String,
    pub stats: Arc<ForwardStats>,
    server: tokio::task::JoinHandle<()>,
}

struct Shared {
    targets: Vec<String>,
    next: AtomicUsize,
    http: reqwest::Client,
    stats: Arc<ForwardStats>,
}

/// How long a request may look for a target that takes connections.
const FIND_TARGET: Duration = Duration::from_secs(5);

impl Forwarder {
    /// Serves on `127.0.0.1:0`, forwarding to `targets` (base URLs).
    pub async fn start(targets: Vec<String>) -> anyhow::Result<Forwarder> {
        let http = sparky_core::tls::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(1))
            // A fresh connection per request, as a Broker's delivery makes: a pooled one
            // to a run that was killed would only fail later.
            .pool_max_idle_per_host(0)
            .build()?;
        let stats = Arc::new(ForwardStats::default());
        let shared = Arc::new(Shared { targets, next: AtomicUsize::new(0), http, stats: stats.clone() });
        let app = axum::Router::new().fallback(forward).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Forwarder { url, stats, server })
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return (StatusCode::BAD_REQUEST, "request body unreadable or over 1 MiB").into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let first = shared.next.fetch_add(1, Ordering::Relaxed);
    let deadline = Instant::now() + FIND_TARGET;
    let mut tries = 0;
    loop {
        let target = &shared.targets[(first + tries) % shared.targets.len()];
        let mut outgoing =
            shared.http.request(parts.method.clone(), format!("{target}{path}")).body(body.clone());
        for (name, value) in &parts.headers {
            if !hop_by_hop(name) {
                outgoing = outgoing.header(name, value);
            }
        }
        match outgoing.send().await {
            Ok(response) => {
                shared.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                return stream_back(response);
            }
            Err(error) if error.is_connect() && Instant::now() < deadline => {
                shared.stats.failovers.fetch_add(1, Ordering::Relaxed);
                tries += 1;
                if tries % shared.targets.len() == 0 {
                    // Every target refused: wait for one to be started again.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Err(error) => {
                shared.stats.unreachable.fetch_add(1, Ordering::Relaxed);
                return (StatusCode::BAD_GATEWAY, format!("forwarding to {target}: {error}")).into_response();
            }
        }
    }
}

/// The target's answer, its body streamed through as it arrives.
fn stream_back(response: reqwest::Response) -> Response {
    let mut back = Response::builder().status(response.status());
    for (name, value) in response.headers() {
        if !hop_by_hop(name) {
            back = back.header(name, value);
        }
    }
    back.body(Body::from_stream(response.bytes_stream()))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

/// Headers about one connection, which a forwarder does not pass on (and the length,
/// which the client sets again).
fn hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::TE
        || name == header::TRAILER
        || name == header::UPGRADE
        || name == header::HOST
        || name == header::CONTENT_LENGTH
        || name.as_str() == "keep-alive"
        || name.as_str().starts_with("proxy-")
}
