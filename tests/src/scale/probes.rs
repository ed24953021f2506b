//! What the scale bench measures against a running `sparky`: each probe drives it over
//! HTTP (or reads `/proc`) and returns its figures.

use std::{
    path::Path,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use serde_json::json;

use crate::{
    Api, Sparky,
    faults::{client, percentile},
    is_terminal,
};

/// A process's resident memory in bytes (`VmRSS`).
pub fn rss(pid: i32) -> anyhow::Result<u64> {
    Ok(crate::biglog::memory(pid)?.0)
}

/// A process's open file descriptors.
pub fn fds(pid: i32) -> anyhow::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd")).context("reading /proc/<pid>/fd")?.count())
}

/// Starts `sparky` with `start` and returns it with the time from the start to
/// `/healthz` answering `200`.
pub async fn start_timed(start: impl FnOnce() -> Sparky) -> anyhow::Result<(Sparky, Duration)> {
    // The client is made first: its set-up (TLS roots) is not Sparky's start.
    let http = client::http_client(Duration::from_secs(2));
    let started = Instant::now();
    let sparky = start();
    loop {
        if let Ok(response) = http.get(format!("{}/healthz", sparky.url)).send().await
            && response.status() == 200
        {
            return Ok((sparky, started.elapsed()));
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("/healthz did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Starts `sparky` with `start` `times` times (each stopped but the last) and returns
/// the last with the median time from start to `/healthz`: one start varies too much
/// (5 to 15 ms here) to be a figure.
pub async fn start_median(times: usize, start: impl Fn() -> Sparky) -> anyhow::Result<(Sparky, Duration)> {
    let mut samples = Vec::with_capacity(times);
    let mut last = None;
    for _ in 0..times.max(1) {
        drop(last.take());
        let (sparky, started) = start_timed(&start).await?;
        samples.push(started);
        last = Some(sparky);
    }
    samples.sort();
    let sparky = last.context("no start")?;
    Ok((sparky, samples[samples.len() / 2]))
}

/// The p50 of `count` GETs of `path` (each read whole; after one not counted).
pub async fn get_p50(api: &Api, path: &str, count: usize) -> anyhow::Result<Duration> {
    let mut samples = Vec::with_capacity(count);
    for i in 0..=count {
        let started = Instant::now();
        let response = api.http.get(api.url(path)).send().await?;
        let status = response.status();
        response.bytes().await?;
        if !status.is_success() {
            bail!("GET {path}: {status}");
        }
        if i > 0 {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    Ok(percentile(&samples, 0.50))
}

/// Trigger sent → the job's first command (it writes `$EPOCHREALTIME` into
/// `stamps/<build id>`), over `count` builds of `project` one after another after
/// `warmup` not counted: (p50, p99).
pub async fn latency(
    api: &Api,
    project: &str,
    stamps: &Path,
    count: usize,
    warmup: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let mut samples = Vec::with_capacity(count);
    for i in 0..count + warmup {
        let sent = SystemTime::now().duration_since(UNIX_EPOCH)?;
        let id = api.trigger(project, json!({})).await;
        let first_command = wait_for_stamp(&stamps.join(id.to_string())).await?;
        api.wait_for(id, Some("succeeded"), Duration::from_secs(10)).await;
        if i >= warmup {
            samples.push(first_command.saturating_sub(sent));
        }
    }
    samples.sort();
    Ok((percentile(&samples, 0.50), percentile(&samples, 0.99)))
}

/// Waits for a job's stamp file and returns the time it holds.
pub async fn wait_for_stamp(path: &Path) -> anyhow::Result<Duration> {
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

/// Triggers `count` builds of `project` as fast as one client can, then waits for all
/// of them to end: builds per second from the first request to the last end.
pub async fn throughput(api: &Api, project: &str, count: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        ids.push(api.trigger(project, json!({})).await);
    }
    for id in ids {
        let build = api.wait_for(id, None, Duration::from_secs(120)).await;
        if build["status"] != "succeeded" {
            bail!("build {id} ended {}", build["status"]);
        }
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// What `connections` clients posting `each` builds at once saw.
pub struct Posting {
    pub p50: Duration,
    pub p99: Duration,
    /// Requests with no answer within 10 s, or answered `503`.
    pub timeouts: usize,
    pub requests: usize,
}

/// `connections` clients, each on its own connection, post `each` builds of `project`
/// one after another, all at once.
pub async fn posting(base: &str, project: &str, connections: usize, each: usize) -> Posting {
    // Clients first: making one (its TLS set-up) takes milliseconds of this process's
    // CPU, which would delay the requests of clients already posting.
    let clients: Vec<_> = (0..connections).map(|_| client::http_client(Duration::from_secs(10))).collect();
    let mut tasks = Vec::new();
    for (c, http) in clients.into_iter().enumerate() {
        let (base, project) = (base.to_string(), project.to_string());
        tasks.push(tokio::spawn(async move {
            let mut attempts = Vec::with_capacity(each);
            for n in 0..each {
                let key = format!("scale-{c}-{n}-{}", std::process::id());
                attempts.push(client::post_build(&http, &base, &project, &key).await);
            }
            attempts
        }));
    }
    let mut latencies = Vec::new();
    let mut timeouts = 0;
    for task in tasks {
        for attempt in task.await.unwrap_or_default() {
            if !matches!(attempt.status, Some(200 | 201)) {
                timeouts += 1;
            }
            latencies.push(attempt.latency);
        }
    }
    latencies.sort();
    Posting {
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        timeouts,
        requests: latencies.len(),
    }
}

/// What `viewers` followers of one running build's live log cost `sparky`.
pub struct Viewers {
    pub viewers: usize,
    pub fds_each: f64,
    pub bytes_each: f64,
    /// The build's page, p50, while they watch.
    pub page_p50: Duration,
}

/// Starts a build of `project` (a job that prints a line every 100 ms), opens
/// `viewers` streams of `/builds/{id}/events` and reads them as they come; counts
/// `sparky`'s descriptors and memory before and after, and times the build's page.
pub async fn viewers(api: &Api, sparky: &Sparky, project: &str, viewers: usize) -> anyhow::Result<Viewers> {
    let pid = sparky.pid().as_raw();
    let id = api.trigger(project, json!({})).await;
    api.wait_for(id, Some("running"), Duration::from_secs(10)).await;
    // Let the stream path warm up (one viewer) before the baseline.
    let warm = open_stream(api, id).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (fds_before, rss_before) = (fds(pid)?, rss(pid)?);
    let mut streams = Vec::with_capacity(viewers);
    for _ in 0..viewers {
        streams.push(open_stream(api, id).await?);
    }
    // Every viewer has had its backlog and a few live lines.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (fds_after, rss_after) = (fds(pid)?, rss(pid)?);
    let page_p50 = get_p50(api, &format!("/builds/{id}"), 20).await?;
    let still = streams.iter().filter(|s| !s.is_finished()).count();
    for stream in streams.into_iter().chain([warm]) {
        stream.abort();
    }
    api.post(&format!("/api/v1/builds/{id}/cancel")).await;
    let build = api.wait_for(id, None, Duration::from_secs(20)).await;
    if still < viewers {
        bail!("{} of {viewers} streams ended early (the build {})", viewers - still, build["status"]);
    }
    let per = |after: f64, before: f64| (after - before).max(0.0) / viewers as f64;
    Ok(Viewers {
        viewers,
        fds_each: per(fds_after as f64, fds_before as f64),
        bytes_each: per(rss_after as f64, rss_before as f64),
        page_p50,
    })
}

/// Opens one live stream of build `id` and drains it on a task of its own.
async fn open_stream(api: &Api, id: i64) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let response = api.http.get(api.url(&format!("/builds/{id}/events"))).send().await?;
    if !response.status().is_success() {
        bail!("/builds/{id}/events: {}", response.status());
    }
    Ok(tokio::spawn(async move {
        let mut body = response.bytes_stream();
        while let Some(Ok(_)) = body.next().await {}
    }))
}

/// Runs trivial builds of `project` until `sparky` has run `total` jobs since it
/// started (`done` already), `batch` queued at a time.
pub async fn run_jobs(
    api: &Api,
    project: &str,
    done: usize,
    total: usize,
    batch: usize,
) -> anyhow::Result<()> {
    let mut ran = done;
    while ran < total {
        let n = batch.min(total - ran);
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(api.trigger(project, json!({})).await);
        }
        for id in ids {
            let build = api.wait_for(id, None, Duration::from_secs(120)).await;
            if !is_terminal(build["status"].as_str().unwrap_or_default()) {
                bail!("build {id} did not end");
            }
        }
        ran += n;
    }
    Ok(())
}
