//! A job that prints a lot, for the log benchmark and the big-log tests: its script,
//! a streaming check that the stored log is exactly what it printed, and the memory
//! figures of the `sparky` process (from `/proc/<pid>/status`).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::StreamExt;

use crate::Api;

/// The line the job repeats (64 bytes with its newline).
pub const LINE: &str = "sparky log benchmark line 0123456789 abcdefghijklmnopqrstuvwxyz\n";

/// A script printing `bytes` bytes of [`LINE`]s (the last one cut short). `yes` ends
/// by SIGPIPE, so it is not part of a pipeline that `pipefail` would fail.
pub fn script(bytes: u64) -> String {
    format!("head -c {bytes} < <(yes '{}')\n", LINE.trim_end())
}

/// Reads build `id`'s whole log over HTTP as a stream and checks that it is exactly
/// `bytes` bytes of [`LINE`]s; returns how long reading took.
pub async fn verify(api: &Api, id: i64, bytes: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = api.http.get(api.url(&format!("/builds/{id}/log"))).send().await?.error_for_status()?;
    let mut body = response.bytes_stream();
    let line = LINE.as_bytes();
    let mut at = 0u64;
    while let Some(piece) = body.next().await {
        let piece = piece.context("reading the log")?;
        for (i, byte) in piece.iter().enumerate() {
            let offset = at + i as u64;
            if *byte != line[(offset % line.len() as u64) as usize] {
                bail!("the log differs from what the job printed at byte {offset}");
            }
        }
        at += piece.len() as u64;
    }
    if at != bytes {
        bail!("the log has {at} bytes; the job printed {bytes}");
    }
    Ok(started.elapsed())
}

/// A process's resident memory now and at its peak (`VmRSS`, `VmHWM`), in bytes.
pub fn memory(pid: i32) -> anyhow::Result<(u64, u64)> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading /proc/<pid>/status")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status.lines().find_map(|l| l.strip_prefix(name)).with_context(|| format!("no {name}"))?;
        Ok(line.trim().trim_end_matches("kB").trim().parse::<u64>()? * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}
