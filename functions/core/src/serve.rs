//! Serving: a function's router on a listener with graceful shutdown, the routes every
//! function serves (`/healthz`, `/metrics`), the shutdown signal and the tracing setup.

use axum::{Router, extract::State, response::IntoResponse, routing::get};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::{
    Ctx,
    api::{
        ApiError,
        auth::{Caller, same_site},
    },
    config::LogFormat,
    error::error_chain,
    metrics,
    store::StoreError,
};

/// Serves `router` on `listener` until `shutdown` fires, then stops accepting and
/// waits for requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // `into_make_service` prepares the router once; given the router itself, axum
    // rebuilds it for every connection (a route table and a clone of every route's
    // middleware: ~38 KiB per connection, held as long as it stays open).
    axum::serve(listener, router.into_make_service()).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

/// A process's whole router: its functions' `routes`, plus `GET /healthz` and
/// `GET /metrics`, JSON errors for unknown routes (404) and methods (405), the
/// security headers on every answer, and every request counted and timed by route
/// ([`metrics::track`]).
pub fn app(routes: Router, ctx: Ctx) -> Router {
    routes
        .merge(
            Router::new()
                .route("/healthz", get(healthz))
                .route("/metrics", get(metrics))
                .with_state(ctx.clone()),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(axum::middleware::from_fn_with_state(ctx.clone(), refuse_cross_site))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn_with_state(ctx.metrics.clone(), metrics::track))
}

/// Every request that may change something (any method but `GET` and `HEAD`) that a
/// browser says another site made is refused with `403` before any handler sees it
/// (see [`same_site`]): the forms of a page on another site can't run, cancel or
/// rebuild anything, log anyone in or out, whatever cookies the browser adds.
async fn refuse_cross_site(
    State(ctx): State<Ctx>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let reads = matches!(*request.method(), http::Method::GET | http::Method::HEAD);
    if !reads && let Err(refused) = same_site(ctx.config.public_url.as_deref(), request.headers()) {
        tracing::warn!(path = %request.uri().path(), "cross-site request refused");
        return refused.into_response();
    }
    next.run(request).await
}

/// What HTML pages may load and do: only Sparky's own scripts, styles and images (no
/// inline script or style), no framing, no plugins, forms only to Sparky.
pub const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Every answer: no MIME sniffing, no framing, the referrer only to Sparky itself; an
/// HTML page (or SVG) also gets [`PAGE_POLICY`] unless it set a policy of its own (as
/// artifacts do: `sandbox`).
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    let document = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html") || t.starts_with("image/svg+xml"));
    if document && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY));
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

async fn no_route(method: http::Method, uri: http::Uri) -> ApiError {
    ApiError::NotFound(format!("there is nothing at {method} {}", uri.path()))
}

async fn no_method(method: http::Method, uri: http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not take {method}", uri.path()))
}

/// Liveness: `200 ok` while the database can be read (or while another process
/// holds its lock: busy is not down), `503` with the reason when it can't; a process
/// without the state folder has no database to fail.
async fn healthz(State(ctx): State<Ctx>) -> axum::response::Response {
    let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    match ctx.store.check().await {
        Ok(()) | Err(StoreError::Busy) => (StatusCode::OK, text, "ok\n".to_string()).into_response(),
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "health check: the database can't be read");
            let reason = match &error {
                StoreError::Sqlite(e) | StoreError::Open { source: e, .. } => e.to_string(),
                other => other.to_string(),
            };
            let body = format!("the database can't be read: {reason}\n");
            (StatusCode::SERVICE_UNAVAILABLE, text, body).into_response()
        }
    }
}

/// Prometheus metrics ([`crate::metrics`]): this process's counters and histograms,
/// and the live builds by status from the store. Anyone may read them, but for a
/// private Sparky, whose project names they show: then a reader's token or session.
async fn metrics(State(ctx): State<Ctx>, headers: HeaderMap) -> Result<impl IntoResponse, ApiError> {
    if ctx.config.private {
        Caller::of(&ctx, &headers, None).await?.may_read(&ctx)?;
    }
    // A run pod without the state folder has no builds to count: dispatch's and the
    // others' metrics do.
    let live = match ctx.store.live_counts().await {
        Ok(counts) => Some(counts),
        Err(StoreError::Detached) => None,
        Err(error) => return Err(error.into()),
    };
    let body = ctx.metrics.encode(live.as_ref()).map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body))
}

#[cfg(test)]
mod tests;

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
