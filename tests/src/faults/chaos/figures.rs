//! The figures of a chaos run: what the clients were given, held against the
//! database file and the jobs' marker files.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    path::Path,
    time::Duration,
};

use super::{Spec, Tally};
use crate::{
    faults::{audit, log_lines, procs::LogDigest},
    is_terminal,
};

/// The figures of one chaos run. The target: every posted build accepted, and zero
/// missing, stuck, lost-that-never-started, beyond-retries and duplicates, with the
/// database intact ([`ChaosFigures::problems`]).
#[derive(Debug, Clone, Default)]
pub struct ChaosFigures {
    pub options_line: String,
    /// Builds the clients set out to post.
    pub posted: usize,
    /// Distinct build ids the clients were given (`201`/`200`).
    pub accepted: usize,
    /// Requests the server refused outright (a `4xx`), by status.
    pub refused: BTreeMap<u16, usize>,
    /// Builds a client stopped retrying without an answer.
    pub gave_up: usize,
    /// HTTP attempts made, retries and the confirming replays included.
    pub requests: u64,
    /// Rows in `builds`.
    pub rows: usize,
    /// Rows whose id no client was given (a retry that queued a second build).
    pub unclaimed_rows: usize,
    /// Accepted ids with no row.
    pub missing: usize,
    /// Rows not terminal after the drain.
    pub stuck: usize,
    /// `lost` builds that never reached `running`.
    pub lost_never_started: usize,
    /// The other `lost` builds.
    pub lost_that_ran: usize,
    /// What "reached running" was judged by: the `events` table, or marker files.
    pub started_judged_by: &'static str,
    /// Builds whose job ran more often than the project's `retries` + 1.
    pub beyond_retries: usize,
    /// Keys whose replay was answered with another build id than the first answer.
    pub duplicates: usize,
    /// `PRAGMA integrity_check`.
    pub integrity: String,
    pub rolled_back_journal: bool,
    /// Kills by function.
    pub kills: BTreeMap<String, usize>,
    /// Starts that failed (and were tried again) after a kill.
    pub restart_failures: usize,
    /// Why a function could not be started again at all.
    pub restart_errors: Vec<String>,
    pub statuses: BTreeMap<String, usize>,
    /// Lines in all marker files (job runs), and builds with at least one.
    pub job_runs: usize,
    pub builds_that_ran: usize,
    /// The forwarder in front of the runs.
    pub forwarded: u64,
    pub failovers: u64,
    pub unreachable: u64,
    pub drained: bool,
    pub drain_took: Duration,
    /// Job processes still there at the end (killed then).
    pub leftover_jobs: usize,
    /// What each function logged at WARN and ERROR.
    pub logs: Vec<(String, LogDigest)>,
    pub took: Duration,
}

impl ChaosFigures {
    /// How the figures miss the target; empty when they meet it.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut zero = |what: &str, n: usize| {
            if n > 0 {
                problems.push(format!("{what}: {n}"));
            }
        };
        zero("posted but never accepted", self.posted - self.accepted.min(self.posted));
        zero("missing", self.missing);
        zero("stuck", self.stuck);
        zero("lost that never started", self.lost_never_started);
        zero("ran more often than retries allow", self.beyond_retries);
        zero("duplicates", self.duplicates);
        if self.integrity != "ok" {
            problems.push(format!("integrity_check: {}", self.integrity));
        }
        problems
    }
}

impl fmt::Display for ChaosFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |map: &BTreeMap<String, usize>| {
            map.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
        };
        writeln!(f, "chaos: {}", self.options_line)?;
        writeln!(
            f,
            "  kills: {} ({} in all); failed starts retried: {}",
            list(&self.kills),
            self.kills.values().sum::<usize>(),
            self.restart_failures
        )?;
        for error in &self.restart_errors {
            writeln!(f, "  could not start again: {error}")?;
        }
        writeln!(
            f,
            "  clients: {} HTTP requests; accepted {} of {} posted; refused {:?}; gave up {}",
            self.requests, self.accepted, self.posted, self.refused, self.gave_up
        )?;
        writeln!(
            f,
            "  forwarder to the runs: {} forwarded, {} failovers, {} unreachable",
            self.forwarded, self.failovers, self.unreachable
        )?;
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
            "  rows {} (no client was given {}); statuses: {}",
            self.rows,
            self.unclaimed_rows,
            list(&self.statuses)
        )?;
        writeln!(
            f,
            "  job runs: {} marker lines for {} builds; leftover job processes killed at the end: {}",
            self.job_runs, self.builds_that_ran, self.leftover_jobs
        )?;
        writeln!(f, "  missing (accepted, no row)            {}", self.missing)?;
        writeln!(f, "  stuck (not terminal after the drain)  {}", self.stuck)?;
        writeln!(
            f,
            "  lost that never started              {}   (judged by {})",
            self.lost_never_started, self.started_judged_by
        )?;
        writeln!(f, "  lost that ran                        {}", self.lost_that_ran)?;
        writeln!(f, "  ran more often than retries allow    {}", self.beyond_retries)?;
        writeln!(f, "  duplicates (one key, two ids)        {}", self.duplicates)?;
        let note = if self.rolled_back_journal { " (after rolling back a hot journal)" } else { "" };
        write!(f, "  integrity_check                      {}{note}", self.integrity)?;
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

/// Counts, from the database and the marker files, what the target is about.
pub(super) fn judge(snapshot: &audit::Snapshot, tally: &Tally, specs: &[Spec], marks: &Path) -> ChaosFigures {
    let accepted: HashSet<i64> = tally.accepted.values().copied().collect();
    let rows: HashSet<i64> = snapshot.builds.iter().map(|r| r.id).collect();
    let retries: HashMap<&str, usize> = specs.iter().map(|s| (s.name.as_str(), s.retries)).collect();
    let runs = |id: i64| {
        std::fs::read_to_string(marks.join(id.to_string())).map(|text| text.lines().count()).unwrap_or(0)
    };
    let mut figures = ChaosFigures {
        posted: tally.posted,
        accepted: accepted.len(),
        refused: tally.refused.clone(),
        gave_up: tally.gave_up,
        requests: tally.requests,
        duplicates: tally.duplicates,
        rows: snapshot.builds.len(),
        missing: accepted.iter().filter(|id| !rows.contains(id)).count(),
        unclaimed_rows: rows.iter().filter(|id| !accepted.contains(id)).count(),
        integrity: snapshot.integrity.clone(),
        rolled_back_journal: snapshot.rolled_back_journal,
        started_judged_by: if snapshot.reached_running.is_some() {
            "the events table"
        } else {
            "marker files (no events table)"
        },
        ..ChaosFigures::default()
    };
    for row in &snapshot.builds {
        *figures.statuses.entry(row.status.clone()).or_default() += 1;
        let ran = runs(row.id);
        figures.job_runs += ran;
        figures.builds_that_ran += usize::from(ran > 0);
        if !is_terminal(&row.status) {
            figures.stuck += 1;
        }
        if ran > retries.get(row.project.as_str()).copied().unwrap_or(0) + 1 {
            figures.beyond_retries += 1;
        }
        if row.status == "lost" {
            let started = match &snapshot.reached_running {
                Some(ids) => ids.contains(&row.id),
                None => ran > 0,
            };
            if started {
                figures.lost_that_ran += 1;
            } else {
                figures.lost_never_started += 1;
            }
        }
    }
    figures
}
