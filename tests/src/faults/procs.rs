//! Function processes that a benchmark kills and starts again on the same port, and
//! the sweep for jobs left behind.
//!
//! A job runs in a process group of its own, so SIGKILLing `serve run` leaves it running
//! (documented behaviour): a killed runner's job finishes on its own, and what is still
//! there at the end is found by its working directory (under the state folder) and
//! killed with its group.

use std::{
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::bail;
use nix::{
    sys::signal::{Signal, kill, killpg},
    unistd::{Pid, getpgrp},
};

use crate::Sparky;

/// One `sparky serve FUNCTION` on a fixed port.
pub struct Function {
    /// How the figures name it (`run-a`, `trigger-3`).
    pub label: String,
    function: &'static str,
    pub port: u16,
    root: PathBuf,
    envs: Vec<(String, String)>,
    process: Option<Sparky>,
    /// What its processes logged at WARN and ERROR, gathered as each one ends.
    pub digest: LogDigest,
}

/// The WARN and ERROR lines a function's processes wrote (of each process's last 400
/// lines of stderr), for the figures: why something went wrong.
#[derive(Debug, Clone, Default)]
pub struct LogDigest {
    pub warnings: usize,
    pub errors: usize,
    /// The last two ERROR lines and the last WARN line, without colour codes.
    pub last_errors: Vec<String>,
    pub last_warning: Option<String>,
}

impl LogDigest {
    fn add(&mut self, log: &str) {
        for line in log.lines() {
            let line: String = strip_ansi(line).chars().take(300).collect();
            if line.contains(" ERROR ") {
                self.errors += 1;
                self.last_errors.push(line);
                if self.last_errors.len() > 2 {
                    self.last_errors.remove(0);
                }
            } else if line.contains(" WARN ") {
                self.warnings += 1;
                self.last_warning = Some(line);
            }
        }
    }
}

/// `text` without ANSI colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Function {
    /// Starts `sparky serve FUNCTION` on `port` with `envs`.
    pub fn start(
        label: &str,
        function: &'static str,
        port: u16,
        root: &Path,
        envs: &[(String, String)],
    ) -> anyhow::Result<Function> {
        let mut f = Function {
            label: label.to_string(),
            function,
            port,
            root: root.to_path_buf(),
            envs: envs.to_vec(),
            process: None,
            digest: LogDigest::default(),
        };
        f.launch()?;
        Ok(f)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn is_up(&self) -> bool {
        self.process.is_some()
    }

    /// Starts the process (again), trying a few times: under load a start can fail
    /// (the database busy while it opens), which the figures count as restart failures.
    /// Returns how many attempts failed before it came up.
    pub fn launch(&mut self) -> anyhow::Result<usize> {
        let envs: Vec<(&str, &str)> = self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut failed = 0;
        loop {
            let started = std::panic::catch_unwind(AssertUnwindSafe(|| {
                Sparky::serve(self.function, self.port, &self.root, &envs)
            }));
            match started {
                Ok(process) => {
                    self.process = Some(process);
                    return Ok(failed);
                }
                Err(_) if failed < 10 => {
                    failed += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(_) => bail!("{} did not start on port {} after {failed} attempts", self.label, self.port),
            }
        }
    }

    /// SIGKILLs the process and waits for it to be gone (reaped, so that dropping it
    /// does not touch the jobs it left), leaving the function down.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.signal(Signal::SIGKILL);
            let _ = process.wait_exit(Duration::from_secs(5));
            self.digest.add(&process.log());
        }
    }

    /// SIGTERM, a graceful stop; SIGKILL after `limit`.
    pub fn stop(&mut self, limit: Duration) {
        if let Some(mut process) = self.process.take() {
            process.signal(Signal::SIGTERM);
            let _ = process.wait_exit(limit);
            self.digest.add(&process.log());
        }
    }
}

/// Kills every process whose working directory is under `root` (jobs, and what they
/// started, which a killed runner left behind), with its process group. Returns how many
/// processes it found.
pub fn kill_leftover_jobs(root: &Path) -> usize {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    let own_group = getpgrp().as_raw();
    let mut found = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let strays = processes_under(&root);
        if strays.is_empty() || Instant::now() > deadline {
            return found;
        }
        found += strays.len();
        for (pid, group) in strays {
            if group > 1 && group != own_group {
                let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
            }
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `(pid, process group)` of every live process working under `root`.
fn processes_under(root: &Path) -> Vec<(i32, i32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else { continue };
        if !cwd.starts_with(root) || !crate::alive(pid) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
        let group = rest.split_whitespace().nth(2).and_then(|g| g.parse().ok()).unwrap_or(0);
        found.push((pid, group));
    }
    found
}
