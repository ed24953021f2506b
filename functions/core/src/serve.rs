//! Serving: a function's router on a listener with graceful shutdown, the routes every
//! function serves (`/healthz`, `/metrics`), the shutdown signal and the tracing setup.

use std::fmt::Write as _;

use axum::{Router, extract::State, response::IntoResponse, routing::get};
use http::{StatusCode, header};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::{Ctx, api::ApiError, config::LogFormat, model::BuildStatus};

/// Serves `router` on `listener` until `shutdown` fires, then stops accepting and
/// waits for requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

/// A process's whole router: its functions' `routes`, plus `GET /healthz` and
/// `GET /metrics`, and JSON errors for unknown routes (404) and methods (405).
pub fn app(routes: Router, ctx: Ctx) -> Router {
    routes
        .route("/healthz", get(healthz))
        .merge(Router::new().route("/metrics", get(metrics)).with_state(ctx))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
}

async fn no_route(method: http::Method, uri: http::Uri) -> ApiError {
    ApiError::NotFound(format!("there is nothing at {method} {}", uri.path()))
}

async fn no_method(method: http::Method, uri: http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not take {method}", uri.path()))
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok\n")
}

/// Prometheus text format: builds by status and the configured limits.
async fn metrics(State(ctx): State<Ctx>) -> Result<impl IntoResponse, ApiError> {
    let counts = ctx.store.status_counts().await?;
    let mut body =
        String::from("# HELP sparky_builds Builds in the store, by status.\n# TYPE sparky_builds gauge\n");
    for status in BuildStatus::ALL {
        let n = counts.get(&status).copied().unwrap_or(0);
        let _ = writeln!(body, "sparky_builds{{status=\"{status}\"}} {n}");
    }
    let _ = writeln!(
        body,
        "# HELP sparky_max_running Builds allowed to run at once.\n# TYPE sparky_max_running gauge\nsparky_max_running {}",
        ctx.config.max_running
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}

/// A token that fires on SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> std::io::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let fire = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!(signal = name, "shutting down");
        fire.cancel();
    });
    Ok(token)
}

/// Installs the tracing subscriber: `RUST_LOG` filter (default `info`), text or JSON.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry.with(fmt::layer().json().with_writer(std::io::stderr)).try_init(),
        // Colours only for a terminal: a log redirected to a file stays plain text.
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            registry.with(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr)).try_init()
        }
    };
}
