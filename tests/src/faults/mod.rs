//! Fault benchmarks: programs that prove "nothing accepted is lost". Each starts the
//! functions as separate `sparky serve` processes on one temp root, drives them over
//! HTTP, then stops everything and reads the SQLite file directly to count what went
//! wrong. Each returns a struct of figures that `sparky-bench` prints and the
//! `faults` end-to-end tests assert on.
//!
//! - [`chaos`]: builds posted while a random function process is SIGKILLed and started
//!   again every 200 ms; two runs behind a [`forward::Forwarder`].
//! - [`contention`]: eight trigger processes writing one database at full speed.
//! - [`procs`]: function processes that can be killed and started again on their port,
//!   and sweeping up the jobs a killed runner left behind.
//! - [`forward`]: a round-robin HTTP forwarder in front of several runs.
//! - [`client`]: posting a build with an `Idempotency-Key`, retried with the same key.
//! - [`audit`]: reading the database file after everything stopped.

pub mod audit;
pub mod chaos;
pub mod client;
pub mod contention;
pub mod forward;
pub mod procs;

use std::{
    path::Path,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// A small xorshift generator: the benchmarks need "a random function", not crypto.
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock.
    pub fn from_clock() -> Rng {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        Rng(nanos | 1)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The `p` quantile (0..=1) of sorted samples, nearest rank; zero when there are none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (sorted.len() as f64 * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Waits, up to `limit`, until no build in the database at `db` is queued, dispatched or
/// running. Returns how long it took, and whether it got there.
pub async fn drain(db: &Path, limit: Duration) -> (Duration, bool) {
    let started = Instant::now();
    loop {
        let path = db.to_path_buf();
        let live = tokio::task::spawn_blocking(move || audit::live_count(&path)).await;
        if matches!(live, Ok(Ok(0))) {
            return (started.elapsed(), true);
        }
        if started.elapsed() > limit {
            return (started.elapsed(), false);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `projects/NAME/sparky.yaml` files with `keep_builds` high enough that nothing is
/// pruned while it is counted.
pub fn write_projects(root: &Path, projects: &[(String, String)]) {
    for (name, yaml) in projects {
        crate::write_project(root, name, &format!("keep_builds: 1000000\n{yaml}"));
    }
}

/// Lines for the figures: each function's count of WARN and ERROR lines, and its last.
pub fn log_lines(digests: &[(String, procs::LogDigest)]) -> Vec<String> {
    let mut lines = Vec::new();
    for (label, digest) in digests.iter().filter(|(_, d)| d.warnings + d.errors > 0) {
        lines.push(format!("{label}: {} WARN, {} ERROR lines; the last:", digest.warnings, digest.errors));
        let last = digest.last_errors.iter().chain(&digest.last_warning);
        lines.extend(last.map(|line| format!("    {line}")));
    }
    lines
}

/// Milliseconds with two decimals, for printing.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
