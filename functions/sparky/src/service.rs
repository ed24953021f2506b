//! `sparky serve <function>`: one function on its own port, as a Knative service runs
//! it. Functions find each other through `SPARKY_DISPATCH_URL` and `SPARKY_RUN_URL`;
//! the store uses the rollback journal unless told otherwise, because the state folder
//! is a volume shared by several pods.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use sparky_core::{
    Config, Ctx,
    config::JournalMode,
    ctx::{HttpPoke, NoPoke, Poke},
    serve,
};
use sparky_dispatch::{Dispatcher, HttpDeliver};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::Function;

/// Binds `listen` and serves `function` until `shutdown` fires. A `run` service
/// finishes the builds it is running before it exits (its requests stay open until
/// then); Knative gives it `timeoutSeconds` to do so.
pub async fn serve(
    function: Function,
    config: Config,
    listen: &str,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(listen).await.with_context(|| format!("could not listen on {listen}"))?;
    run(function, config, listener, shutdown).await
}

/// Serves `function` on a bound listener.
pub async fn run(
    function: Function,
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let source = format!("/sparky/{function:?}").to_lowercase();
    let poke: Arc<dyn Poke> = match &config.dispatch_url {
        Some(url) => Arc::new(HttpPoke::new(url, reqwest::Client::new(), &source)),
        None => {
            if matches!(function, Function::Trigger | Function::Run) {
                tracing::warn!("SPARKY_DISPATCH_URL is not set: builds wait for dispatch's next sweep");
            }
            Arc::new(NoPoke)
        }
    };
    let run_url = config.run_url.clone();
    let root = config.root.clone();
    let ctx = Ctx::open(config, JournalMode::Delete, poke, shutdown.clone())
        .await
        .with_context(|| format!("could not open the state folder {}", root.display()))?;
    let router = match function {
        Function::Trigger => sparky_trigger::router(sparky_trigger::Ticker::new(ctx.clone())),
        Function::Dispatch => {
            let Some(run_url) = run_url else {
                bail!(
                    "dispatch needs SPARKY_RUN_URL: where to send builds (run's URL, or a Knative Broker's)"
                );
            };
            let deliver = Arc::new(HttpDeliver::new(ctx.clone(), &run_url));
            sparky_dispatch::router(Dispatcher { ctx: ctx.clone(), deliver })
        }
        Function::Run => sparky_run::router(ctx.clone()),
        Function::RenderUi => sparky_render_ui::router(ctx.clone()),
    };
    let addr = listener.local_addr().context("reading the listen address")?;
    println!("Sparky {source} is serving on http://{addr}");
    tracing::info!(%addr, function = ?function, "serving");
    serve::serve(listener, router.merge(serve::common_routes(ctx)), shutdown).await.context("serving HTTP")
}
