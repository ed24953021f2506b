//! A real Prometheus server (Debian package `prometheus`, installed by `./scripts/test`)
//! that scrapes Sparky's processes every second, and PromQL queries over its HTTP API.
//!
//! It runs under a small bash guard in its own process group, as moto does: the guard
//! ends Prometheus when the test process is gone, and dropping the handle kills both.
//! Its database lives in a temp folder removed with the handle.

use std::{
    collections::BTreeMap,
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use serde_json::Value;

use crate::free_port;

/// One scrape job: its name and its targets, each `host:port` with labels of its own.
pub struct Job {
    pub name: String,
    pub targets: Vec<(String, Vec<(String, String)>)>,
}

/// One series of a query's answer: its labels and its value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A running Prometheus; killed when dropped.
pub struct Prometheus {
    guard: Child,
    pub url: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `jobs` every second and waits until it is ready.
    pub fn start(jobs: &[Job]) -> Prometheus {
        let found = Command::new("bash").args(["-c", "command -v prometheus"]).output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "prometheus is not installed: run ./scripts/test, or `apt-get install prometheus`"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml(jobs)).expect("write prometheus.yml");
        std::fs::create_dir_all(dir.path().join("data")).expect("data folder");
        let port = free_port();
        let guard = Command::new("bash")
            .args([
                "-c",
                r#"prometheus --config.file="$1" --storage.tsdb.path="$2" --web.listen-address="127.0.0.1:$3" \
                     --log.level=warn >"$2/log" 2>&1 & p=$!
                   while kill -0 "$4" 2>/dev/null && kill -0 "$p" 2>/dev/null; do sleep 0.2; done
                   kill "$p" 2>/dev/null"#,
                "prometheus-guard",
                &config.to_string_lossy(),
                &dir.path().join("data").to_string_lossy(),
                &port.to_string(),
                &std::process::id().to_string(),
            ])
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start prometheus");
        Prometheus { guard, url: format!("http://127.0.0.1:{port}"), dir }
    }

    /// Waits until Prometheus says it is ready.
    pub async fn ready(&self) {
        let client = sparky_core::tls::client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client.get(format!("{}/-/ready", self.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "prometheus was not ready within 30 s:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The answer to an instant PromQL query (a vector, or a scalar as one sample).
    pub async fn query(&self, promql: &str) -> Vec<Sample> {
        let mut url = reqwest::Url::parse(&format!("{}/api/v1/query", self.url)).expect("query URL");
        url.query_pairs_mut().append_pair("query", promql);
        let reply: Value = sparky_core::tls::client()
            .get(url)
            .send()
            .await
            .expect("query prometheus")
            .json()
            .await
            .expect("prometheus's JSON");
        assert_eq!(reply["status"], "success", "{promql}: {reply}");
        let value = |pair: &Value| pair[1].as_str().and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
        match reply["data"]["resultType"].as_str() {
            Some("scalar") => {
                vec![Sample { labels: BTreeMap::new(), value: value(&reply["data"]["result"]) }]
            }
            _ => reply["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|series| Sample {
                    labels: series["metric"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect(),
                    value: value(&series["value"]),
                })
                .collect(),
        }
    }

    /// Queries `promql` until `expect` holds for its answer (scrapes come every second),
    /// for up to `limit`; returns that answer, or fails with the last one.
    pub async fn until(
        &self,
        promql: &str,
        limit: Duration,
        expect: impl Fn(&[Sample]) -> bool,
    ) -> Vec<Sample> {
        let deadline = Instant::now() + limit;
        loop {
            let samples = self.query(promql).await;
            if expect(&samples) {
                return samples;
            }
            assert!(Instant::now() < deadline, "{promql}: still {samples:?} after {limit:?}\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Queries `promql` until its one value is `want`.
    pub async fn until_value(&self, promql: &str, want: f64) -> Vec<Sample> {
        self.until(promql, Duration::from_secs(20), |s| s.len() == 1 && s[0].value == want).await
    }

    /// What Prometheus logged (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data/log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.guard.id() as i32), Signal::SIGKILL);
        let _ = self.guard.wait();
    }
}

/// `prometheus.yml`: every job scraped every second.
fn config_yaml(jobs: &[Job]) -> String {
    let mut yaml = String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
    for job in jobs {
        yaml.push_str(&format!("  - job_name: {:?}\n    static_configs:\n", job.name));
        for (target, labels) in &job.targets {
            yaml.push_str(&format!("      - targets: [{target:?}]\n"));
            if !labels.is_empty() {
                yaml.push_str("        labels:\n");
                for (k, v) in labels {
                    yaml.push_str(&format!("          {k}: {v:?}\n"));
                }
            }
        }
    }
    yaml
}
