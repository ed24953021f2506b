//! The state every function receives ([`Ctx`]), and how a function tells dispatch
//! that the queue changed ([`Poke`]): a direct call in `sparky up`, a fire-and-forget
//! CloudEvent to `SPARKY_DISPATCH_URL` when the functions run as separate services.

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    Config,
    error::error_chain,
    events::{CloudEvent, DISPATCH_POKE},
    hub::Hub,
    metrics::Metrics,
    project::Projects,
    reports::{self, ReportStore},
    secrets::SecretsDir,
    store::JournalMode,
    store::{Store, StoreError},
    tls::LazyClient,
};

/// Tells dispatch to look at the queue now. A lost poke only delays builds until the
/// next sweep, so implementations never block or fail the caller.
pub trait Poke: Send + Sync + 'static {
    fn poke(&self);
}

/// In one process: wakes the local dispatch loop.
impl Poke for Notify {
    fn poke(&self) {
        self.notify_one();
    }
}

/// Across processes: a `dev.sparky.dispatch.poke` CloudEvent to dispatch, sent in the
/// background with a short timeout.
pub struct HttpPoke {
    url: String,
    client: LazyClient,
    source: String,
}

impl HttpPoke {
    pub fn new(dispatch_url: &str, client: LazyClient, source: &str) -> Self {
        HttpPoke { url: format!("{dispatch_url}/events/dispatch"), client, source: source.into() }
    }
}

impl Poke for HttpPoke {
    fn poke(&self) {
        let event = CloudEvent::new(DISPATCH_POKE, &self.source, serde_json::Value::Null);
        let request = self.client.post(&self.url).headers(event.headers()).timeout(Duration::from_secs(2));
        let url = self.url.clone();
        tokio::spawn(async move {
            if let Err(error) = request.send().await {
                tracing::warn!(%url, error = %error_chain(&error), "could not poke dispatch; the next sweep will pick the build up");
            }
        });
    }
}

/// No dispatch to tell (a function started without `SPARKY_DISPATCH_URL`): builds
/// start on dispatch's next sweep.
pub struct NoPoke;

impl Poke for NoPoke {
    fn poke(&self) {}
}

/// What every function works with.
#[derive(Clone)]
pub struct Ctx {
    pub config: Arc<Config>,
    pub store: Store,
    pub reports: Arc<dyn ReportStore>,
    pub projects: Projects,
    pub hub: Hub,
    /// This process's counters and histograms (`/metrics`).
    pub metrics: Arc<Metrics>,
    pub dispatch: Arc<dyn Poke>,
    pub http: LazyClient,
    /// Fires when the process is shutting down.
    pub shutdown: CancellationToken,
    /// Fires when a shutting-down process stops waiting for the builds it runs: they are
    /// stopped and handed back to the queue (`SPARKY_RUN_GRACE` after the signal).
    pub hand_back: CancellationToken,
    /// The builds this process is running; shutting down waits for them, even for those
    /// whose caller hung up.
    pub builds: TaskTracker,
}

/// Why the shared state could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("could not create {path}")]
    CreateDir {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Ctx {
    /// Opens the state under `config.root` (creating folders and the database as
    /// needed). `default_journal` applies when the config does not say.
    pub async fn open(
        config: Config,
        default_journal: JournalMode,
        dispatch: Arc<dyn Poke>,
        shutdown: CancellationToken,
    ) -> Result<Ctx, OpenError> {
        let config = with_absolute_paths(config);
        let mut dirs = vec![config.root.clone()];
        if config.s3.is_none() {
            dirs.push(config.reports_dir());
        }
        create_dirs(&config, dirs).await?;
        let store = Store::open(config.db_path(), config.journal.unwrap_or(default_journal)).await?;
        Ok(Ctx::with_store(config, store, dispatch, shutdown))
    }

    /// State for a runner that must not touch the state folder (a run pod reaching
    /// Sparky's state through dispatch's runner API): no database (its store fails
    /// every call), only its working directories and report storage.
    pub async fn open_detached(
        config: Config,
        dispatch: Arc<dyn Poke>,
        shutdown: CancellationToken,
    ) -> Result<Ctx, OpenError> {
        let config = with_absolute_paths(config);
        let dirs = if config.s3.is_none() { vec![config.reports_dir()] } else { Vec::new() };
        create_dirs(&config, dirs).await?;
        Ok(Ctx::with_store(config, Store::detached(), dispatch, shutdown))
    }

    fn with_store(config: Config, store: Store, dispatch: Arc<dyn Poke>, shutdown: CancellationToken) -> Ctx {
        let reports = reports::open(config.s3.as_ref(), &config.reports_dir());
        tracing::info!(reports = %reports.describe(), "report storage");
        Ctx {
            metrics: Arc::new(Metrics::new(config.max_running)),
            projects: Projects::new(config.projects_dir())
                .with_secrets(SecretsDir::new(config.secrets_dir())),
            config: Arc::new(config),
            store,
            reports,
            hub: Hub::default(),
            dispatch,
            http: LazyClient::default(),
            shutdown,
            hand_back: CancellationToken::new(),
            builds: TaskTracker::new(),
        }
    }
}

/// Jobs run in their own working directories: every path they are given, and every
/// path Sparky uses while they run, must not depend on the current one.
fn with_absolute_paths(mut config: Config) -> Config {
    config.root = absolute(config.root);
    config.reports = config.reports.map(absolute);
    config.work = config.work.map(absolute);
    config.secrets = config.secrets.map(absolute);
    config
}

/// Creates the work folder and `dirs`.
async fn create_dirs(config: &Config, mut dirs: Vec<std::path::PathBuf>) -> Result<(), OpenError> {
    dirs.push(config.work_dir());
    for dir in dirs {
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|source| OpenError::CreateDir { path: dir.clone(), source })?;
    }
    Ok(())
}

fn absolute(path: std::path::PathBuf) -> std::path::PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

impl Ctx {
    /// State for in-process tests and tools: the config's journal mode (else WAL),
    /// no dispatch to poke, a fresh shutdown token.
    pub async fn open_standalone(config: Config) -> Result<Ctx, OpenError> {
        Ctx::open(config, JournalMode::Wal, Arc::new(NoPoke), CancellationToken::new()).await
    }
}
