//! `sparky-bench scale`: what Sparky costs as history grows. For each size of history
//! (0, 100k and 1M builds by default; 1M spread over 100 projects, half of it in one
//! project) it fills a fresh root through a path of its own ([`fill`]: rows inserted
//! straight into the `sparky.db` the binary created) and prints, against the real
//! binary: start to `/healthz`, idle memory, trigger → first command, trivial jobs per
//! second with 2 executors, page and API timings, 32 connections posting builds (WAL
//! in `sparky up`, and the rollback journal), 1,000 live viewers of one log, memory
//! after 2,000 jobs, each function's idle memory, and pruning's cost (store level)
//! against the builds it removes. `--quick` shrinks every count, for the test suite.
//!
//! - [`fill`]: the history fill.
//! - [`probes`]: each measurement.

pub mod fill;
pub mod probes;

use std::{path::Path, time::Duration};

use anyhow::{Context as _, bail};
use sparky_core::store::{JournalMode, Store};

use crate::{Api, Sparky, faults::ms, write_project};
use fill::BIG;

/// Starts timed for each start-to-`/healthz` figure (their median is printed).
const STARTS: usize = 5;

/// What to run.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// Builds in history, one run of every probe each.
    pub sizes: Vec<u64>,
    /// Small counts everywhere (seconds, not minutes): checks the paths run.
    pub quick: bool,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        ScaleOptions { sizes: vec![0, 100_000, 1_000_000], quick: false }
    }
}

/// The counts of one run.
struct Counts {
    page_samples: usize,
    latency: usize,
    warmup: usize,
    jobs: usize,
    jobs_total: usize,
    connections: usize,
    posts_each: usize,
    viewers: usize,
}

impl Counts {
    fn new(quick: bool) -> Counts {
        if quick {
            Counts {
                page_samples: 3,
                latency: 3,
                warmup: 1,
                jobs: 10,
                jobs_total: 30,
                connections: 32,
                posts_each: 1,
                viewers: 20,
            }
        } else {
            Counts {
                page_samples: 50,
                latency: 100,
                warmup: 10,
                jobs: 200,
                jobs_total: 2000,
                connections: 32,
                posts_each: 10,
                viewers: 1000,
            }
        }
    }
}

/// `100k`, `1M`, `2500` → builds.
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let (digits, unit) = match lower.strip_suffix('k') {
        Some(d) => (d, 1_000),
        None => match lower.strip_suffix('m') {
            Some(d) => (d, 1_000_000),
            None => (lower.as_str(), 1),
        },
    };
    Ok(digits.parse::<u64>().with_context(|| format!("{text}: not a size like 0, 100k or 1M"))? * unit)
}

fn size_name(size: u64) -> String {
    match size {
        s if s >= 1_000_000 && s % 1_000_000 == 0 => format!("{}M", s / 1_000_000),
        s if s >= 1_000 && s % 1_000 == 0 => format!("{}k", s / 1_000),
        s => s.to_string(),
    }
}

/// Runs every probe at each size, printing figures as they come.
pub async fn run(options: ScaleOptions) -> anyhow::Result<()> {
    let counts = Counts::new(options.quick);
    println!(
        "scale: history is filled by direct SQLite inserts into the root's sparky.db (the schema \
         the sparky binary created on a first start): finished builds' rows only, no events, no \
         reports; half in project `{BIG}`, the rest over 99 others{}",
        if options.quick { "; --quick: small counts, figures not comparable" } else { "" }
    );
    for &size in &options.sizes {
        one_size(size, &counts).await.with_context(|| format!("at {} builds", size_name(size)))?;
    }
    Ok(())
}

/// The projects of a bench root: history's, and one for each probe.
fn write_projects(root: &Path, stamps: &Path) {
    let keep_all = "keep_builds: 100000000\n";
    write_project(
        root,
        BIG,
        &format!("{keep_all}script: |\n  echo $EPOCHREALTIME > {}/$SPARKY_BUILD_ID\n", stamps.display()),
    );
    for name in fill::small_projects() {
        write_project(root, &name, &format!("{keep_all}script: \"true\"\n"));
    }
    write_project(root, "jobs", &format!("{keep_all}concurrency: 2\nscript: \"true\"\n"));
    write_project(root, "posts", &format!("{keep_all}script: \"true\"\n"));
    write_project(
        root,
        "live",
        "keep_builds: 10\nscript: |\n  for i in $(seq 1 600); do echo \"line $i of a live log\"; sleep 0.1; done\n",
    );
}

async fn one_size(size: u64, counts: &Counts) -> anyhow::Result<()> {
    let name = size_name(size);
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let stamps = root.join("stamps");
    std::fs::create_dir_all(&stamps)?;
    write_projects(root, &stamps);
    let db = root.join("sparky.db");
    let envs = [("RUST_LOG", "warn"), ("SPARKY_MAX_RUNNING", "2")];

    // The binary makes the schema; the fill adds history to it.
    drop(probes::start_timed(|| Sparky::up(root, &envs)).await?);
    let filled = tokio::task::spawn_blocking({
        let db = db.clone();
        move || fill::fill(&db, size)
    })
    .await??;
    println!("\n== {name} builds in history (filled in {:.1} s)", filled.as_secs_f64());

    let (sparky, started) = probes::start_median(STARTS, || Sparky::up(root, &envs)).await?;
    let pid = sparky.pid().as_raw();
    let api = Api::new(&sparky.url);
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "[{name}] sparky up: start to /healthz {} (median of {STARTS}); idle RSS {}",
        ms(started),
        mib(probes::rss(pid)?)
    );

    for (what, path) in [
        ("/projects/big HTML", "/projects/big".to_string()),
        ("history JSON", "/api/v1/projects/big/builds".to_string()),
        ("/ with 100+ projects", "/".to_string()),
        ("/metrics", "/metrics".to_string()),
    ] {
        let p50 = probes::get_p50(&api, &path, counts.page_samples).await?;
        println!("[{name}] {what}: p50 {}", ms(p50));
    }

    let (p50, p99) = probes::latency(&api, BIG, &stamps, counts.latency, counts.warmup).await?;
    println!(
        "[{name}] trigger sent -> first command over {} builds: p50 {}, p99 {}",
        counts.latency,
        ms(p50),
        ms(p99)
    );

    let rate = probes::throughput(&api, "jobs", counts.jobs).await?;
    println!("[{name}] {} trivial jobs, 2 executors: {rate:.0} jobs/s", counts.jobs);

    post_builds(&name, "WAL", &sparky, counts).await;

    // Jobs run so far: the latency probe's, the throughput's and the posts'.
    let done = counts.latency + counts.warmup + counts.jobs + counts.connections * counts.posts_each;
    probes::run_jobs(&api, "jobs", done, counts.jobs_total, 100).await?;
    println!("[{name}] RSS after {} jobs: {}", counts.jobs_total.max(done), mib(probes::rss(pid)?));
    let watched = probes::viewers(&api, &sparky, "live", counts.viewers).await?;
    println!(
        "[{name}] {} live viewers of one log: {:.2} fds and {:.1} KiB each; the build's page p50 {} meanwhile",
        watched.viewers,
        watched.fds_each,
        watched.bytes_each / 1024.0,
        ms(watched.page_p50)
    );

    drop(sparky);

    let delete_envs =
        [("RUST_LOG", "warn"), ("SPARKY_MAX_RUNNING", "2"), ("SPARKY_SQLITE_JOURNAL", "delete")];
    let (sparky, _) = probes::start_timed(|| Sparky::up(root, &delete_envs)).await?;
    post_builds(&name, "DELETE journal", &sparky, counts).await;
    drop(sparky);

    // Each function alone, idle: where they would send work goes nowhere.
    let nowhere = format!("http://127.0.0.1:{}", crate::free_port());
    let serve_envs = [
        ("RUST_LOG", "warn"),
        ("SPARKY_RUN_URL", nowhere.as_str()),
        ("SPARKY_DISPATCH_URL", nowhere.as_str()),
    ];
    for function in ["trigger", "dispatch", "run", "render-ui"] {
        let port = crate::free_port();
        let (process, started) =
            probes::start_median(STARTS, || Sparky::serve(function, port, root, &serve_envs)).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!(
            "[{name}] serve {function}: start to /healthz {} (median of {STARTS}); idle RSS {}",
            ms(started),
            mib(probes::rss(process.pid().as_raw())?)
        );
    }

    prune_costs(&name, &db).await
}

/// 32 connections posting builds at once, in `sparky` whose journal is `journal`.
async fn post_builds(name: &str, journal: &str, sparky: &Sparky, counts: &Counts) {
    let posted = probes::posting(&sparky.url, "posts", counts.connections, counts.posts_each).await;
    println!(
        "[{name}] {} connections posting {} builds each (sparky up, {journal}): p50 {}, p99 {}, timeouts {} of {}",
        counts.connections,
        counts.posts_each,
        ms(posted.p50),
        ms(posted.p99),
        posted.timeouts,
        posted.requests
    );
}

/// Pruning, at the store level (the rows; a pruned build's reports go too, which costs
/// what they are): `builds_to_prune` and `delete_builds` for `big`, removing 0, 1, 100
/// and 1,000 builds.
async fn prune_costs(name: &str, db: &Path) -> anyhow::Result<()> {
    let store = Store::open(db, JournalMode::Wal).await?;
    let mut figures = Vec::new();
    for removed in [0u32, 1, 100, 1000] {
        // How many `big` has now: everything older is what keep_builds would drop.
        let all = store.builds_to_prune(BIG, 0).await?.len() as u32;
        if removed > all {
            figures.push(format!("({all} left: no more)"));
            break;
        }
        let started = std::time::Instant::now();
        let ids = store.builds_to_prune(BIG, all - removed).await?;
        let found = ids.len();
        store.delete_builds(ids).await?;
        figures.push(format!("{found} removed {}", ms(started.elapsed())));
        if found != removed as usize {
            bail!("pruning to {} kept found {found} builds, not {removed}", all - removed);
        }
    }
    println!("[{name}] pruning `{BIG}` (store level, rows only): {}", figures.join(", "));
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}
