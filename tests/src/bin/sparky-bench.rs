//! Benchmarks that print figures (not timed tests).
//!
//! `sparky-bench latency [N]`: starts `sparky up` on a temp root and triggers N builds
//! (default 200) one after another; each job's first command writes bash's
//! `$EPOCHREALTIME`. Prints percentiles of the time from sending the trigger request
//! to that first command.

use std::{
    path::Path,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use serde_json::json;
use sparky_tests::{Api, Sparky, write_project};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match args.first().map(String::as_str) {
        Some("latency") => {
            let count =
                args.get(1).map(|n| n.parse()).transpose().context("N must be a number")?.unwrap_or(200);
            runtime.block_on(latency(count))
        }
        _ => bail!("usage: sparky-bench latency [N]"),
    }
}

async fn latency(count: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let stamps = dir.path().join("stamps");
    std::fs::create_dir_all(&stamps)?;
    write_project(
        dir.path(),
        "bench",
        &format!(
            "keep_builds: 100000\nscript: |\n  echo $EPOCHREALTIME > {}/$SPARKY_BUILD_ID\n",
            stamps.display()
        ),
    );
    let sparky = Sparky::up(dir.path(), &[("RUST_LOG", "warn")]);
    let api = Api::new(&sparky.url);
    println!("sparky up at {}; triggering {count} builds one after another (plus 10 warm-up)", sparky.url);

    let mut samples = Vec::with_capacity(count);
    for i in 0..count + 10 {
        let sent = SystemTime::now().duration_since(UNIX_EPOCH)?;
        let id = api.trigger("bench", json!({})).await;
        let first_command = wait_for_stamp(&stamps.join(id.to_string())).await?;
        api.wait_for(id, Some("succeeded"), Duration::from_secs(10)).await;
        if i >= 10 {
            samples.push(first_command.saturating_sub(sent));
        }
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "trigger -> first command over {} builds: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, mean {:.2} ms",
        samples.len(),
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(pct(1.0)),
        ms(mean)
    );
    Ok(())
}

/// Waits for the job's stamp file and returns the time it holds.
async fn wait_for_stamp(path: &Path) -> anyhow::Result<Duration> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            let secs: f64 = text.trim().parse().with_context(|| format!("stamp {text:?}"))?;
            return Ok(Duration::from_secs_f64(secs));
        }
        if Instant::now() > deadline {
            bail!("no stamp at {} after 10 s", path.display());
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}
