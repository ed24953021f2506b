//! Benchmarks that print figures (not timed tests).
//!
//! `sparky-bench latency [N]`: starts `sparky up` on a temp root and triggers N builds
//! (default 200) one after another; each job's first command writes bash's
//! `$EPOCHREALTIME`. Prints percentiles of the time from sending the trigger request
//! to that first command.
//!
//! `sparky-bench jobs [N]`: starts `sparky up` on a temp root with two executors and
//! triggers N trivial builds (default 200) as fast as one client can, as `scale` does.
//! Prints the jobs per second from the first request to the last build's end.
//!
//! `sparky-bench log [MIB] [--s3]`: starts `sparky up` (reports in a folder, or with
//! `--s3` in a bucket of a `moto_server` it starts) and runs one job that prints MIB
//! MiB (default 1024) of log lines. Prints the throughput from trigger to the build's
//! end (the log stored), Sparky's peak resident memory (`VmHWM`), and checks that the
//! stored log is complete and in order by reading it back over HTTP.
//!
//! `sparky-bench chaos [--seconds 45] [--builds 1000] [--drain 180]`: the four functions
//! as separate processes (two runs behind a round-robin forwarder); 8 clients post the
//! builds over the window while a random function process is SIGKILLed and started
//! again every 200 ms; then a drain, and the database read directly. Prints what was
//! accepted, missing, stuck, lost (never started / ran), run beyond `retries`,
//! duplicated, the integrity check, kills per function and statuses
//! (`sparky_tests::faults::chaos`).
//!
//! `sparky-bench contention [--seconds 30] [--drain 180]`: 8 trigger processes, one
//! dispatch and one run on one database; 32 connections trigger trivial builds at full
//! speed. Prints responses by status (500s, 503s without `Retry-After`), request latency
//! percentiles, lost builds and accepted builds not terminal after the drain
//! (`sparky_tests::faults::contention`).
//!
//! `sparky-bench scale [--sizes 0,100k,1M] [--quick]`: at each size of history (filled
//! by direct SQLite inserts), start to `/healthz`, idle and loaded memory, trigger →
//! first command, jobs/s, page timings, 32 connections posting (WAL and DELETE), 1,000
//! live viewers of one log, each function's idle memory, and pruning's cost
//! (`sparky_tests::scale`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde_json::json;
use sparky_tests::{
    Api, Sparky, biglog,
    faults::{chaos, contention},
    moto::Moto,
    scale, write_project,
};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match args.first().map(String::as_str) {
        Some("latency") => {
            let count =
                args.get(1).map(|n| n.parse()).transpose().context("N must be a number")?.unwrap_or(200);
            runtime.block_on(latency(count))
        }
        Some("jobs") => {
            let count =
                args.get(1).map(|n| n.parse()).transpose().context("N must be a number")?.unwrap_or(200);
            multi_thread()?.block_on(jobs(count))
        }
        Some("log") => {
            let s3 = args.iter().any(|a| a == "--s3");
            let mib = args[1..]
                .iter()
                .find(|a| !a.starts_with("--"))
                .map(|n| n.parse::<u64>())
                .transpose()
                .context("MIB must be a number")?
                .unwrap_or(1024);
            runtime.block_on(log(mib, s3))
        }
        Some("chaos") => {
            let defaults = chaos::ChaosOptions::default();
            let options = chaos::ChaosOptions {
                window: flag(&args, "--seconds")?.map_or(defaults.window, Duration::from_secs),
                builds: flag(&args, "--builds")?.map_or(defaults.builds, |n| n as usize),
                drain: flag(&args, "--drain")?.map_or(defaults.drain, Duration::from_secs),
                ..defaults
            };
            let figures = multi_thread()?.block_on(chaos::run(options))?;
            println!("{figures}");
            report_problems(figures.problems());
            Ok(())
        }
        Some("contention") => {
            let defaults = contention::ContentionOptions::default();
            let options = contention::ContentionOptions {
                window: flag(&args, "--seconds")?.map_or(defaults.window, Duration::from_secs),
                drain: flag(&args, "--drain")?.map_or(defaults.drain, Duration::from_secs),
                ..defaults
            };
            let figures = multi_thread()?.block_on(contention::run(options))?;
            println!("{figures}");
            report_problems(figures.problems());
            Ok(())
        }
        Some("scale") => {
            let mut options =
                scale::ScaleOptions { quick: args.iter().any(|a| a == "--quick"), ..Default::default() };
            if let Some(at) = args.iter().position(|a| a == "--sizes") {
                let list = args.get(at + 1).context("--sizes needs a list like 0,100k,1M")?;
                options.sizes = list.split(',').map(scale::parse_size).collect::<anyhow::Result<_>>()?;
            }
            multi_thread()?.block_on(scale::run(options))
        }
        _ => bail!(
            "usage: sparky-bench latency [N] | jobs [N] | log [MIB] [--s3] \
             | chaos [--seconds 45] [--builds 1000] [--drain 180] | contention [--seconds 30] [--drain 180] \
             | scale [--sizes 0,100k,1M] [--quick]"
        ),
    }
}

/// The number after `name` in `args`, if `name` is there.
fn flag(args: &[String], name: &str) -> anyhow::Result<Option<u64>> {
    let Some(at) = args.iter().position(|a| a == name) else { return Ok(None) };
    let value = args.get(at + 1).with_context(|| format!("{name} needs a number"))?;
    Ok(Some(value.parse().with_context(|| format!("{name} {value}: not a number"))?))
}

/// The fault benchmarks run clients, a forwarder and a killing thread side by side.
fn multi_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

/// The target's misses, after the figures (they are figures too: the exit code stays 0).
fn report_problems(problems: Vec<String>) {
    if problems.is_empty() {
        println!("target met: nothing accepted was lost");
    } else {
        println!("target missed: {}", problems.join("; "));
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
        let first_command = scale::probes::wait_for_stamp(&stamps.join(id.to_string())).await?;
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

async fn jobs(count: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    write_project(dir.path(), "jobs", "keep_builds: 100000\nconcurrency: 2\nscript: \"true\"\n");
    let sparky = Sparky::up(dir.path(), &[("RUST_LOG", "warn"), ("SPARKY_MAX_RUNNING", "2")]);
    let api = Api::new(&sparky.url);
    scale::probes::throughput(&api, "jobs", 20).await?;
    let rate = scale::probes::throughput(&api, "jobs", count).await?;
    println!("{count} trivial jobs, 2 executors: {rate:.0} jobs/s (after 20 not counted)");
    Ok(())
}

async fn log(mib: u64, s3: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bytes = mib * 1024 * 1024;
    write_project(
        dir.path(),
        "big",
        &format!("keep_builds: 10\ntimeout: 1h\nscript: |\n  {}", biglog::script(bytes)),
    );
    let moto = if s3 { Some(Moto::start()) } else { None };
    let mut envs: Vec<(String, String)> = vec![("RUST_LOG".into(), "warn".into())];
    if let Some(moto) = &moto {
        moto.create_bucket("bench").await;
        envs.extend(moto.sparky_env("bench", "sparky"));
    }
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let sparky = Sparky::up(dir.path(), &envs);
    let api = Api::new(&sparky.url);
    let backend = if s3 { "S3 (moto_server)" } else { "folder" };
    println!("sparky up at {}, reports in a {backend}; one job printing {mib} MiB", sparky.url);

    let pid = sparky.pid().as_raw();
    let started = Instant::now();
    let id = api.trigger("big", json!({})).await;
    let mut highest_rss = 0;
    let build = loop {
        let build = api.build(id).await;
        highest_rss = highest_rss.max(biglog::memory(pid)?.0);
        if sparky_tests::is_terminal(build["status"].as_str().unwrap_or_default()) {
            break build;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = started.elapsed();
    let (_, peak) = biglog::memory(pid)?;
    if build["status"] != "succeeded" {
        bail!("the build ended {}: {build}", build["status"]);
    }
    let stored = build["log_size"].as_u64().unwrap_or_default();
    let mb = |b: u64, d: Duration| b as f64 / 1e6 / d.as_secs_f64();
    println!(
        "stored {stored} bytes of log in {:.2} s: {:.0} MB/s ({:.0} MiB/s), trigger to end",
        took.as_secs_f64(),
        mb(stored, took),
        stored as f64 / 1048576.0 / took.as_secs_f64()
    );
    println!(
        "sparky's memory: peak {:.1} MiB (VmHWM), highest seen while running {:.1} MiB (VmRSS)",
        peak as f64 / 1048576.0,
        highest_rss as f64 / 1048576.0
    );
    let read = biglog::verify(&api, id, bytes).await?;
    println!(
        "read back over HTTP in {:.2} s ({:.0} MB/s): complete and in order",
        read.as_secs_f64(),
        mb(bytes, read)
    );
    let (_, peak) = biglog::memory(pid)?;
    println!("sparky's peak memory after serving the log: {:.1} MiB", peak as f64 / 1048576.0);
    Ok(())
}
