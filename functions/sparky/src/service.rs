//! `sparky serve <function>`: one function on its own port, as a Knative service runs
//! it, or through the AWS Lambda Runtime API when `AWS_LAMBDA_RUNTIME_API` is set.
//! Functions find each other through `SPARKY_DISPATCH_URL` and `SPARKY_RUN_URL`; the
//! store uses the rollback journal unless told otherwise, because the state folder is
//! a volume shared by several pods. `serve run` with `SPARKY_INTERNAL_TOKEN` opens no
//! state folder: it reaches Sparky's state through dispatch's runner API.
//!
//! Shutdown (SIGTERM, as Kubernetes sends it): stop accepting, finish the requests in
//! flight, and wait for the builds this process runs, even those whose caller hung up.
//! With `SPARKY_RUN_GRACE`, builds still running that long after the signal are stopped
//! and handed back to dispatch (queued again while `retries` allow, else `lost`), so
//! that the SIGKILL at the end of Kubernetes' grace period
//! (`terminationGracePeriodSeconds`, which Knative sets to `timeoutSeconds`) never
//! lands in the middle of recording one.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::Router;
use sparky_core::{
    Config, Ctx,
    ctx::{HttpPoke, NoPoke, Poke},
    serve,
    store::JournalMode,
    tls::LazyClient,
};
use sparky_dispatch::{Dispatcher, Handoff, HttpDeliver, Passes, passes};
use sparky_trigger::{Ticker, tick};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use clap::ValueEnum;

/// The four functions.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Function {
    Trigger,
    Dispatch,
    Run,
    #[value(name = "render-ui")]
    RenderUi,
}

/// Binds `listen` and serves `function` until `shutdown` fires, or serves it through
/// the Lambda Runtime API if one is configured.
pub async fn serve(
    function: Function,
    config: Config,
    listen: &str,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if let Some(runtime_api) = config.lambda_runtime_api.clone() {
        let (_ctx, router) = open(function, config, shutdown).await?;
        println!(
            "Sparky {} is serving through the Lambda Runtime API at http://{runtime_api}",
            source(function)
        );
        tracing::info!(%runtime_api, function = ?function, "serving through AWS Lambda");
        return sparky_core::lambda::serve(router).await.context("serving through AWS Lambda");
    }
    let listener =
        TcpListener::bind(listen).await.with_context(|| format!("could not listen on {listen}"))?;
    run(function, config, listener, shutdown).await
}

/// Serves `function` on a bound listener until `shutdown` fires, then waits for the
/// requests in flight and the builds this process runs (see the module's doc).
pub async fn run(
    function: Function,
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (ctx, router) = open(function, config, shutdown.clone()).await?;
    let addr = listener.local_addr().context("reading the listen address")?;
    println!("Sparky {} is serving on http://{addr}", source(function));
    tracing::info!(%addr, function = ?function, "serving");
    if let Some(grace) = ctx.config.run_grace {
        tokio::spawn(hand_back_after(grace, ctx.shutdown.clone(), ctx.hand_back.clone()));
    }
    let served = serve::serve(listener, router, shutdown).await;
    ctx.builds.close();
    if !ctx.builds.is_empty() {
        tracing::info!(builds = ctx.builds.len(), "waiting for the builds still running");
    }
    ctx.builds.wait().await;
    served.context("serving HTTP")
}

/// Fires `hand_back` once `grace` has passed since `shutdown` fired.
async fn hand_back_after(
    grace: std::time::Duration,
    shutdown: CancellationToken,
    hand_back: CancellationToken,
) {
    shutdown.cancelled().await;
    tokio::time::sleep(grace).await;
    tracing::warn!(grace = ?grace, "builds still running at the end of SPARKY_RUN_GRACE: handing them back");
    hand_back.cancel();
}

fn source(function: Function) -> String {
    format!("/sparky/{function:?}").to_lowercase()
}

/// Opens the shared state and builds `function`'s router, with `/healthz` and `/metrics`,
/// and starts what runs beside it: dispatch's pass loop and outbox (commit statuses,
/// notifications); with `SPARKY_SELF_TICK`,
/// trigger's minute ticker and inbox reader.
async fn open(
    function: Function,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<(Ctx, Router)> {
    let source = source(function);
    // dispatch wakes its own pass loop; the others poke dispatch over HTTP.
    let passes = Arc::new(Passes::default());
    let poke: Arc<dyn Poke> = match (&config.dispatch_url, function) {
        (_, Function::Dispatch) => passes.clone(),
        (Some(url), _) => Arc::new(HttpPoke::new(url, LazyClient::default(), &source)),
        (None, _) => {
            if matches!(function, Function::Trigger | Function::Run) {
                tracing::warn!("SPARKY_DISPATCH_URL is not set: builds wait for dispatch's next sweep");
            }
            Arc::new(NoPoke)
        }
    };
    let run_url = config.run_url.clone();
    let root = config.root.clone();
    // A run pod with the internal token reaches the state through dispatch: it never
    // opens the state folder (on Kubernetes it has none).
    let remote = match (function, &config.internal_token, &config.dispatch_url) {
        (Function::Run, Some(token), Some(url)) => Some((url.clone(), token.clone())),
        _ => None,
    };
    let ctx = match remote {
        Some(_) => Ctx::open_detached(config, poke, shutdown.clone()).await,
        None => Ctx::open(config, JournalMode::Delete, poke, shutdown.clone()).await,
    }
    .with_context(|| format!("could not open the state folder {}", root.display()))?;
    let self_tick = ctx.config.self_tick;
    let router = match function {
        Function::Trigger => {
            let ticker = Ticker::new(ctx.clone());
            if self_tick {
                tokio::spawn(tick::run_minute_ticker(ticker.clone()));
                tokio::spawn(tick::run_inbox_scanner(ctx.clone()));
            }
            sparky_trigger::router(ticker)
        }
        Function::Dispatch => {
            let Some(run_url) = run_url else {
                bail!(
                    "dispatch needs SPARKY_RUN_URL: where to send builds (run's URL, or a Knative Broker's)"
                );
            };
            let handoff = Handoff::Deliver(Arc::new(HttpDeliver::new(ctx.clone(), &run_url)));
            let tick = self_tick.then(|| passes::tick_for(ctx.config.lease));
            tokio::spawn(passes::run_loop(ctx.clone(), handoff, passes.clone(), tick, shutdown.clone()));
            tokio::spawn(sparky_core::outbox::run_loop(ctx.clone(), shutdown));
            sparky_dispatch::router(Dispatcher { ctx: ctx.clone(), passes })
        }
        Function::Run => {
            sparky_run::harden();
            let state: Arc<dyn sparky_run::Backend> = match remote {
                Some((url, token)) => {
                    tracing::info!(dispatch = %url, "reaching Sparky's state through dispatch's runner API");
                    Arc::new(sparky_run::RemoteBackend::new(ctx.clone(), &url, token))
                }
                None => Arc::new(sparky_run::LocalBackend { ctx: ctx.clone() }),
            };
            sparky_run::router(sparky_run::Runner { ctx: ctx.clone(), state })
        }
        Function::RenderUi => sparky_render_ui::router(ctx.clone()),
    };
    Ok((ctx.clone(), serve::app(router, ctx)))
}
