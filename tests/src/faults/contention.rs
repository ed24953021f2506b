//! Contention: eight `serve trigger` processes, one dispatch and one run on one root
//! (rollback journal), and clients triggering trivial builds at full speed over many
//! connections spread across the triggers. A busy database must be a `503` with
//! `Retry-After` (which the clients honour, retrying with the same key), never a `500`
//! or a lost build; after the clients stop, every accepted build must end.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{
    audit,
    client::{http_client, post_build},
    drain, log_lines, ms, percentile,
    procs::{Function, LogDigest, kill_leftover_jobs},
    write_projects,
};
use crate::{free_port, is_terminal};

/// What to run.
#[derive(Debug, Clone)]
pub struct ContentionOptions {
    /// How long clients send new builds (a `503` already answered is still retried after).
    pub window: Duration,
    pub triggers: usize,
    /// Client connections, spread over the triggers.
    pub connections: usize,
    /// How long the system may take, after the window, to end every accepted build.
    pub drain: Duration,
    /// How long after the window a `503` is still retried.
    pub patience: Duration,
    /// `SPARKY_MAX_RUNNING`.
    pub max_running: usize,
    /// `SPARKY_LEASE`: short, so that a build whose lease ran out is dealt with within
    /// the drain.
    pub lease: String,
}

impl Default for ContentionOptions {
    fn default() -> Self {
        ContentionOptions {
            window: Duration::from_secs(30),
            triggers: 8,
            connections: 32,
            drain: Duration::from_secs(180),
            patience: Duration::from_secs(30),
            max_running: 8,
            lease: "5s".into(),
        }
    }
}

/// The figures of one contention run. The target: no `lost` build, no `500`, a
/// `Retry-After` on every `503`, every accepted build terminal after the drain, and the
/// database intact ([`ContentionFigures::problems`]).
#[derive(Debug, Clone, Default)]
pub struct ContentionFigures {
    pub options_line: String,
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Distinct build ids the clients were given.
    pub accepted: usize,
    /// Responses by status code; `error` for no response (a transport error).
    pub by_status: BTreeMap<String, u64>,
    pub errors_500: u64,
    pub responses_503: u64,
    pub without_retry_after: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Builds with status `lost`.
    pub lost: usize,
    /// Accepted builds not terminal after the drain (including any without a row).
    pub not_terminal: usize,
    /// Accepted ids with no row at all.
    pub missing: usize,
    pub rows: usize,
    pub statuses: BTreeMap<String, usize>,
    pub integrity: String,
    pub rolled_back_journal: bool,
    pub drained: bool,
    pub drain_took: Duration,
    pub leftover_jobs: usize,
    /// What each function logged at WARN and ERROR.
    pub logs: Vec<(String, LogDigest)>,
    pub took: Duration,
}

impl ContentionFigures {
    /// How the figures miss the target; empty when they meet it.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut zero = |what: &str, n: u64| {
            if n > 0 {
                problems.push(format!("{what}: {n}"));
            }
        };
        zero("lost", self.lost as u64);
        zero("responses 500", self.errors_500);
        zero("503 without Retry-After", self.without_retry_after);
        zero("accepted but not terminal after the drain", self.not_terminal as u64);
        if self.accepted == 0 {
            problems.push("no build was accepted at all".into());
        }
        if self.integrity != "ok" {
            problems.push(format!("integrity_check: {}", self.integrity));
        }
        problems
    }
}

impl fmt::Display for ContentionFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes = self.by_status.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ");
        let statuses = self.statuses.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        writeln!(f, "contention: {}", self.options_line)?;
        writeln!(f, "  requests {}; accepted {}; responses {codes}", self.requests, self.accepted)?;
        writeln!(f, "  request latency: p50 {}, p99 {}, max {}", ms(self.p50), ms(self.p99), ms(self.max))?;
        let drained =
            if self.drained { "every build terminal after" } else { "NOT every build terminal after" };
        writeln!(
            f,
            "  drain: {drained} {:.1} s; whole run {:.1} s",
            self.drain_took.as_secs_f64(),
            self.took.as_secs_f64()
        )?;
        writeln!(
            f,
            "  rows {}; statuses: {statuses}; leftover job processes: {}",
            self.rows, self.leftover_jobs
        )?;
        writeln!(f, "  responses 500                         {}", self.errors_500)?;
        writeln!(f, "  responses 503                         {}", self.responses_503)?;
        writeln!(f, "  503 without Retry-After               {}", self.without_retry_after)?;
        writeln!(f, "  lost                                  {}", self.lost)?;
        writeln!(
            f,
            "  accepted, not terminal after drain    {}   (of which without a row: {})",
            self.not_terminal, self.missing
        )?;
        let note = if self.rolled_back_journal { " (after rolling back a hot journal)" } else { "" };
        write!(f, "  integrity_check                       {}{note}", self.integrity)?;
        let logs = log_lines(&self.logs);
        if logs.is_empty() {
            return Ok(());
        }
        write!(f, "\n  what the functions logged at WARN and ERROR:")?;
        for line in logs {
            write!(f, "\n    {line}")?;
        }
        Ok(())
    }
}

/// What one connection saw.
#[derive(Default)]
struct Seen {
    accepted: Vec<i64>,
    by_status: BTreeMap<String, u64>,
    without_retry_after: u64,
    latencies: Vec<Duration>,
}

/// Runs the contention benchmark on a fresh temp root.
pub async fn run(options: ContentionOptions) -> anyhow::Result<ContentionFigures> {
    // Built (if it has to be) before anything is timed.
    crate::sparky_bin();
    let began = Instant::now();
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    let projects: Vec<(String, String)> =
        (0..8).map(|i| (format!("c{i}"), "concurrency: 2\nscript: \"true\"\n".to_string())).collect();
    write_projects(&root, &projects);

    let local = |port: u16| format!("http://127.0.0.1:{port}");
    let (dispatch_port, run_port) = (free_port(), free_port());
    let trigger_ports: Vec<u16> = (0..options.triggers.max(1)).map(|_| free_port()).collect();
    let envs: Vec<(String, String)> = [
        ("RUST_LOG", "warn".to_string()),
        ("SPARKY_SQLITE_JOURNAL", "delete".into()),
        ("SPARKY_DISPATCH_URL", local(dispatch_port)),
        ("SPARKY_RUN_URL", local(run_port)),
        ("SPARKY_API_URL", local(trigger_ports[0])),
        ("SPARKY_SELF_TICK", "true".into()),
        ("SPARKY_MAX_RUNNING", options.max_running.to_string()),
        ("SPARKY_LEASE", options.lease.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let start_root = root.clone();
    let ports = trigger_ports.clone();
    let mut functions = tokio::task::spawn_blocking(move || {
        let mut functions = vec![
            Function::start("run", "run", run_port, &start_root, &envs)?,
            Function::start("dispatch", "dispatch", dispatch_port, &start_root, &envs)?,
        ];
        for (i, port) in ports.into_iter().enumerate() {
            functions.push(Function::start(&format!("trigger-{i}"), "trigger", port, &start_root, &envs)?);
        }
        anyhow::Ok(functions)
    })
    .await??;

    let started = Instant::now();
    let stop_at = started + options.window;
    let give_up_at = stop_at + options.patience;
    let names: Vec<String> = projects.iter().map(|(name, _)| name.clone()).collect();
    let mut connections = Vec::new();
    for c in 0..options.connections {
        let trigger = local(trigger_ports[c % trigger_ports.len()]);
        let names = names.clone();
        connections
            .push(tokio::spawn(async move { connection(c, &trigger, &names, stop_at, give_up_at).await }));
    }
    let mut accepted = HashSet::new();
    let mut figures = ContentionFigures::default();
    let mut latencies = Vec::new();
    for connection in connections {
        let seen = connection.await.context("a client task failed")?;
        accepted.extend(seen.accepted);
        for (status, n) in seen.by_status {
            *figures.by_status.entry(status).or_default() += n;
        }
        figures.without_retry_after += seen.without_retry_after;
        latencies.extend(seen.latencies);
    }
    let clients_took = started.elapsed();

    let db = root.join("sparky.db");
    let (drain_took, drained) = drain(&db, options.drain).await;
    let leftover_root = root.clone();
    (figures.leftover_jobs, figures.logs) = tokio::task::spawn_blocking(move || {
        for function in functions.iter_mut().rev() {
            function.stop(Duration::from_secs(10));
        }
        let logs = functions.iter().map(|f| (f.label.clone(), f.digest.clone())).collect::<Vec<_>>();
        (kill_leftover_jobs(&leftover_root), logs)
    })
    .await?;
    let snapshot = tokio::task::spawn_blocking(move || audit::read(&db)).await??;

    latencies.sort();
    figures.options_line = format!(
        "{} trigger processes + dispatch + run, {} connections, {:.0} s of triggers at full speed ({:.1} s with the last retries), lease {}, max running {}",
        trigger_ports.len(),
        options.connections,
        options.window.as_secs_f64(),
        clients_took.as_secs_f64(),
        options.lease,
        options.max_running
    );
    figures.requests = latencies.len() as u64;
    figures.accepted = accepted.len();
    figures.errors_500 = figures.by_status.get("500").copied().unwrap_or(0);
    figures.responses_503 = figures.by_status.get("503").copied().unwrap_or(0);
    figures.p50 = percentile(&latencies, 0.50);
    figures.p99 = percentile(&latencies, 0.99);
    figures.max = latencies.last().copied().unwrap_or_default();
    figures.rows = snapshot.builds.len();
    let mut terminal = HashSet::new();
    let mut rows = HashSet::new();
    for row in &snapshot.builds {
        *figures.statuses.entry(row.status.clone()).or_default() += 1;
        figures.lost += usize::from(row.status == "lost");
        rows.insert(row.id);
        if is_terminal(&row.status) {
            terminal.insert(row.id);
        }
    }
    figures.not_terminal = accepted.iter().filter(|id| !terminal.contains(id)).count();
    figures.missing = accepted.iter().filter(|id| !rows.contains(id)).count();
    figures.integrity = snapshot.integrity;
    figures.rolled_back_journal = snapshot.rolled_back_journal;
    figures.drained = drained;
    figures.drain_took = drain_took;
    figures.took = began.elapsed();
    Ok(figures)
}

/// One client connection: new builds back to back until `stop_at`, each retried with
/// its key after a `503`'s `Retry-After` (until `give_up_at`); anything else is
/// recorded and the next build follows.
async fn connection(
    c: usize,
    trigger: &str,
    projects: &[String],
    stop_at: Instant,
    give_up_at: Instant,
) -> Seen {
    let http = http_client(Duration::from_secs(30));
    let mut seen = Seen::default();
    let mut n = 0;
    while Instant::now() < stop_at {
        let key = format!("contention-{c}-{n}");
        let project = &projects[(c + n) % projects.len()];
        n += 1;
        loop {
            let attempt = post_build(&http, trigger, project, &key).await;
            seen.latencies.push(attempt.latency);
            let status = attempt.status.map_or_else(|| "error".to_string(), |s| s.to_string());
            *seen.by_status.entry(status).or_default() += 1;
            if let Some(id) = attempt.id {
                seen.accepted.push(id);
            }
            if attempt.status != Some(503) {
                break;
            }
            if !attempt.has_retry_after {
                seen.without_retry_after += 1;
            }
            let wait = attempt.retry_after.unwrap_or(Duration::from_millis(100));
            if Instant::now() + wait > give_up_at {
                break;
            }
            tokio::time::sleep(wait).await;
        }
    }
    seen
}
