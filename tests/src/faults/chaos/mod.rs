//! Chaos: the four functions as separate processes on one root (two runs behind a
//! round-robin [`Forwarder`]), builds posted by concurrent clients while a random
//! function process is SIGKILLed and started again on its port every 200 ms. Then the
//! killing stops, the system drains on its own (`SPARKY_SELF_TICK`: no outside clock),
//! everything stops, and the database file is read to count what was lost.
//!
//! Every job appends its build id to `marks/<id>` as its first command, so the marker
//! file holds one line per run of the build.

mod figures;

use std::{
    collections::{BTreeMap, HashMap},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::Context as _;
pub use figures::ChaosFigures;

use super::{
    Rng, audit,
    client::{Outcome, http_client, post_until_accepted},
    drain,
    forward::Forwarder,
    procs::{Function, kill_leftover_jobs},
    write_projects,
};
use crate::free_port;

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// The posting window, during which a process is killed every `kill_every`.
    pub window: Duration,
    /// Builds posted over the window, spread evenly.
    pub builds: usize,
    /// Concurrent clients posting them.
    pub clients: usize,
    pub kill_every: Duration,
    /// How long the system may take, after the window, to end every build.
    pub drain: Duration,
    /// How long after the window a client keeps retrying a build it was not yet given.
    pub client_patience: Duration,
    /// `SPARKY_LEASE`.
    pub lease: String,
    /// `SPARKY_MAX_RUNNING`.
    pub max_running: usize,
    /// How long each job sleeps after recording its start.
    pub job: Duration,
}

impl Default for ChaosOptions {
    fn default() -> Self {
        ChaosOptions {
            window: Duration::from_secs(45),
            builds: 1000,
            clients: 8,
            kill_every: Duration::from_millis(200),
            drain: Duration::from_secs(180),
            client_patience: Duration::from_secs(60),
            lease: "3s".into(),
            max_running: 8,
            job: Duration::from_millis(50),
        }
    }
}

/// One project of the run.
struct Spec {
    name: String,
    retries: usize,
    concurrency: usize,
}

/// Eight projects: half with `retries: 2`, half with `concurrency: 2`, crossed.
fn specs() -> Vec<Spec> {
    (0..8)
        .map(|i| Spec {
            name: format!("p{i}"),
            retries: if i % 2 == 0 { 2 } else { 0 },
            concurrency: if i % 4 < 2 { 2 } else { 1 },
        })
        .collect()
}

/// The functions, in the order they start (runs first, so dispatch finds them).
const FUNCTIONS: [(&str, &str); 5] = [
    ("run-a", "run"),
    ("run-b", "run"),
    ("dispatch", "dispatch"),
    ("trigger", "trigger"),
    ("render-ui", "render-ui"),
];

/// Runs the chaos benchmark on a fresh temp root.
pub async fn run(options: ChaosOptions) -> anyhow::Result<ChaosFigures> {
    // Built (if it has to be) before anything is timed.
    crate::sparky_bin();
    let began = Instant::now();
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let marks = dir.path().join("marks");
    std::fs::create_dir_all(&marks)?;
    let specs = specs();
    let job_sleep = options.job.as_secs_f64();
    let projects: Vec<(String, String)> = specs
        .iter()
        .map(|s| {
            let yaml = format!(
                "retries: {}\nconcurrency: {}\nscript: |\n  echo \"$SPARKY_BUILD_ID\" >> {}/$SPARKY_BUILD_ID\n  sleep {job_sleep}\n",
                s.retries,
                s.concurrency,
                marks.display()
            );
            (s.name.clone(), yaml)
        })
        .collect();
    write_projects(&root, &projects);

    let ports: Vec<u16> = FUNCTIONS.iter().map(|_| free_port()).collect();
    let port = |label: &str| ports[FUNCTIONS.iter().position(|(l, _)| *l == label).unwrap_or(0)];
    let local = |port: u16| format!("http://127.0.0.1:{port}");
    let forwarder = Forwarder::start(vec![local(port("run-a")), local(port("run-b"))]).await?;
    let envs: Vec<(String, String)> = [
        ("RUST_LOG", "warn".to_string()),
        ("SPARKY_SQLITE_JOURNAL", "delete".into()),
        ("SPARKY_DISPATCH_URL", local(port("dispatch"))),
        ("SPARKY_RUN_URL", forwarder.url.clone()),
        ("SPARKY_API_URL", local(port("trigger"))),
        ("SPARKY_SELF_TICK", "true".into()),
        ("SPARKY_LEASE", options.lease.clone()),
        ("SPARKY_MAX_RUNNING", options.max_running.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let start_root = root.clone();
    let start_ports = ports.clone();
    let functions = tokio::task::spawn_blocking(move || {
        FUNCTIONS
            .iter()
            .zip(start_ports)
            .map(|((label, function), port)| Function::start(label, function, port, &start_root, &envs))
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await??;

    let started = Instant::now();
    let window = options.window;
    let every = options.kill_every;
    let monkey = std::thread::spawn(move || kill_at_random(functions, started, window, every));

    let trigger = local(port("trigger"));
    let give_up_at = started + window + options.client_patience;
    let mut clients = Vec::new();
    for c in 0..options.clients {
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let (trigger, options) = (trigger.clone(), options.clone());
        clients.push(tokio::spawn(
            async move { post(c, &options, &trigger, &names, started, give_up_at).await },
        ));
    }
    let mut tally = Tally::default();
    for client in clients {
        tally.add(client.await.context("a client task failed")?);
    }
    let monkey = tokio::task::spawn_blocking(move || monkey.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the killing thread panicked"))?;
    let mut functions = monkey.functions;

    let db = root.join("sparky.db");
    let (drain_took, drained) = drain(&db, options.drain).await;

    let leftover_root = root.clone();
    let (leftover_jobs, logs) = tokio::task::spawn_blocking(move || {
        for function in functions.iter_mut().rev() {
            function.stop(Duration::from_secs(10));
        }
        let logs = functions.iter().map(|f| (f.label.clone(), f.digest.clone())).collect::<Vec<_>>();
        (kill_leftover_jobs(&leftover_root), logs)
    })
    .await?;
    let snapshot = tokio::task::spawn_blocking(move || audit::read(&db)).await??;

    let mut figures = figures::judge(&snapshot, &tally, &specs, &marks);
    figures.options_line = format!(
        "{} s window, {} builds from {} clients, a random function SIGKILLed every {} ms, lease {}, max running {}",
        window.as_secs_f64(),
        options.builds,
        options.clients,
        every.as_millis(),
        options.lease,
        options.max_running
    );
    figures.kills = monkey.kills;
    figures.restart_failures = monkey.restart_failures;
    figures.restart_errors = monkey.errors;
    figures.forwarded = forwarder.stats.forwarded.load(Ordering::Relaxed);
    figures.failovers = forwarder.stats.failovers.load(Ordering::Relaxed);
    figures.unreachable = forwarder.stats.unreachable.load(Ordering::Relaxed);
    figures.drained = drained;
    figures.drain_took = drain_took;
    figures.leftover_jobs = leftover_jobs;
    figures.logs = logs;
    figures.took = began.elapsed();
    Ok(figures)
}

/// What the killing thread did, and the functions it hands back (all running).
struct Monkey {
    functions: Vec<Function>,
    kills: BTreeMap<String, usize>,
    restart_failures: usize,
    errors: Vec<String>,
}

/// Until `window` has passed since `started`: every `every`, SIGKILL a random function
/// and start it again at once on its port. Then makes sure every function runs.
fn kill_at_random(
    mut functions: Vec<Function>,
    started: Instant,
    window: Duration,
    every: Duration,
) -> Monkey {
    let mut rng = Rng::from_clock();
    let mut kills: BTreeMap<String, usize> = functions.iter().map(|f| (f.label.clone(), 0)).collect();
    let (mut restart_failures, mut errors) = (0, Vec::new());
    let mut next = started + every;
    loop {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        if started.elapsed() >= window {
            break;
        }
        let at = rng.below(functions.len());
        let victim = &mut functions[at];
        victim.kill();
        *kills.entry(victim.label.clone()).or_default() += 1;
        match victim.launch() {
            Ok(failed) => restart_failures += failed,
            Err(error) => errors.push(format!("{error:#}")),
        }
        // Late (a slow start): the next kill is `every` from now, not a burst.
        next = (next + every).max(Instant::now());
    }
    for function in functions.iter_mut().filter(|f| !f.is_up()) {
        if let Err(error) = function.launch() {
            errors.push(format!("after the window: {error:#}"));
        }
    }
    Monkey { functions, kills, restart_failures, errors }
}

/// What one client did.
#[derive(Default)]
struct Tally {
    /// Key -> the id its first answer gave.
    accepted: HashMap<String, i64>,
    posted: usize,
    refused: BTreeMap<u16, usize>,
    gave_up: usize,
    duplicates: usize,
    requests: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.accepted.extend(other.accepted);
        self.posted += other.posted;
        for (status, n) in other.refused {
            *self.refused.entry(status).or_default() += n;
        }
        self.gave_up += other.gave_up;
        self.duplicates += other.duplicates;
        self.requests += other.requests;
    }
}

/// Client `c` posts builds `c, c + clients, ...`, each at its slot in the window (or at
/// once when late), retried with the same key until accepted; then sends the same
/// request once more, which must be answered with the same build.
async fn post(
    c: usize,
    options: &ChaosOptions,
    trigger: &str,
    projects: &[String],
    started: Instant,
    give_up_at: Instant,
) -> Tally {
    let http = http_client(Duration::from_secs(10));
    let mut tally = Tally::default();
    for n in (c..options.builds).step_by(options.clients.max(1)) {
        let slot = started + options.window.mul_f64(n as f64 / options.builds as f64);
        tokio::time::sleep_until(slot.into()).await;
        let key = format!("chaos-{n}");
        let project = &projects[n % projects.len()];
        tally.posted += 1;
        let (outcome, attempts) = post_until_accepted(&http, trigger, project, &key, give_up_at).await;
        tally.requests += attempts;
        match outcome {
            Outcome::Accepted(id) => {
                tally.accepted.insert(key.clone(), id);
                let (again, attempts) = post_until_accepted(&http, trigger, project, &key, give_up_at).await;
                tally.requests += attempts;
                if matches!(again, Outcome::Accepted(other) if other != id) {
                    tally.duplicates += 1;
                }
            }
            Outcome::Refused(status) => *tally.refused.entry(status).or_default() += 1,
            Outcome::GaveUp => tally.gave_up += 1,
        }
    }
    tally
}
