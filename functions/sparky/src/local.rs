//! `sparky up`: all four functions in one process on one port, sharing one state
//! folder (SQLite in WAL mode, reports in a folder). A dispatch loop woken by pokes (and
//! sweeping on its own) and a minute ticker stand in for the PingSources, builds run as tasks of this process in
//! place of Knative Eventing's deliveries, and `.triggers/` inboxes are read twice a
//! second. SIGINT/SIGTERM stop accepting requests, cancel the
//! running builds (recording them as `canceled`) and wait for them to be recorded.

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use sparky_core::{Config, Ctx, error::error_chain, lifecycle::Started, serve, store::JournalMode};
use sparky_dispatch::{Dispatcher, Handoff, Passes, RunHere, passes};
use sparky_run::{Backend, LocalBackend, Runner};
use sparky_trigger::{Ticker, tick};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Runs builds as tasks of this process, taken already running: dispatch claims and
/// starts them in one commit. (A pass begun after shutdown was asked starts none.)
struct LocalRunner {
    ctx: Ctx,
    state: Arc<dyn Backend>,
    builds: TaskTracker,
}

impl RunHere for LocalRunner {
    fn run(&self, started: Started) {
        let ctx = self.ctx.clone();
        let state = self.state.clone();
        self.builds.spawn(async move {
            let id = started.build.id;
            let assignment = ctx.gather(started).await;
            if let Err(error) = sparky_run::run_assigned(&ctx, &state, assignment, true).await {
                tracing::error!(build_id = id, error = %error_chain(&error), "running the build failed");
            }
        });
    }
}

/// All four routers in one, plus `/healthz` and `/metrics`.
pub fn app(ctx: Ctx, passes: Arc<Passes>, state: Arc<dyn Backend>) -> Router {
    let functions = Router::new()
        .merge(sparky_trigger::router(Ticker::new(ctx.clone())))
        .merge(sparky_dispatch::router(Dispatcher { ctx: ctx.clone(), passes }))
        .merge(sparky_run::router(Runner { ctx: ctx.clone(), state }))
        .merge(sparky_render_ui::router(ctx.clone()));
    serve::app(functions, ctx)
}

/// Binds `config.listen` and runs until `shutdown` fires.
pub async fn up(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("could not listen on {}", config.listen))?;
    run(config, listener, shutdown).await
}

/// Runs `sparky up` on a bound listener until `shutdown` fires.
pub async fn run(
    mut config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let addr = listener.local_addr().context("reading the listen address")?;
    config.api_url.get_or_insert_with(|| format!("http://{addr}"));
    config.public_url.get_or_insert_with(|| format!("http://{addr}"));
    let root = config.root.clone();
    // This process runs the jobs.
    sparky_run::harden();
    let passes = Arc::new(Passes::default());
    let ctx = Ctx::open(config, JournalMode::Wal, passes.clone(), shutdown.clone())
        .await
        .with_context(|| format!("could not open the state folder {}", root.display()))?;
    if ctx.projects.create_example_if_empty().await.context("creating the example project")? {
        tracing::info!("created the example project `hello` in {}", ctx.projects.dir().display());
    }
    let builds = TaskTracker::new();
    let state: Arc<dyn Backend> = Arc::new(LocalBackend { ctx: ctx.clone() });
    let handoff = Handoff::RunHere(Arc::new(LocalRunner {
        ctx: ctx.clone(),
        state: state.clone(),
        builds: builds.clone(),
    }));
    let tick = Some(passes::tick_for(ctx.config.lease));
    let dispatcher =
        tokio::spawn(passes::run_loop(ctx.clone(), handoff, passes.clone(), tick, shutdown.clone()));

    let ticker = tokio::spawn(tick::run_minute_ticker(Ticker::new(ctx.clone())));
    let inbox = tokio::spawn(tick::run_inbox_scanner(ctx.clone()));
    let outbox = tokio::spawn(sparky_core::outbox::run_loop(ctx.clone(), shutdown.clone()));

    println!("Sparky is up on http://{addr} (state in {})", root.display());
    tracing::info!(%addr, root = %root.display(), "sparky up");
    let served = serve::serve(listener, app(ctx, passes, state), shutdown.clone()).await;
    shutdown.cancel();
    dispatcher.await.context("the dispatch loop panicked")?;
    ticker.await.context("the minute ticker panicked")?;
    inbox.await.context("the inbox scanner panicked")?;
    outbox.await.context("the outbox panicked")?;
    builds.close();
    builds.wait().await;
    tracing::info!("stopped");
    served.context("serving HTTP")
}
