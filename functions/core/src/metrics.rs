//! Prometheus metrics, as `GET /metrics` serves them (OpenMetrics text, through the
//! `prometheus-client` crate).
//!
//! Counters and histograms live in memory, one set per process, and count what this
//! process did: the lifecycle counts the status changes it records ([`Metrics::queued`],
//! [`Metrics::changed`]), the HTTP edge every request ([`track`]), the outbox every
//! delivery it tries, a runner's writes every retry on a busy database. A restart or a
//! scale to zero starts them again from 0, which Prometheus's `rate()` and `increase()`
//! expect. Nothing here reads history: the only numbers read from the store at a scrape
//! are the live builds by status, counted from an index that holds live builds only
//! ([`crate::store::Store::live_counts`]), so every process sharing the store reports
//! the same truth.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `sparky_builds_queued_total` | counter | `project`, `trigger` |
//! | `sparky_builds_started_total` | counter | `project`, `trigger` |
//! | `sparky_builds_finished_total` | counter | `project`, `trigger`, `status` |
//! | `sparky_build_queue_wait_seconds` | histogram | `project` |
//! | `sparky_build_duration_seconds` | histogram | `project`, `status` |
//! | `sparky_builds` | gauge (scrape) | `status` (`queued`, `dispatched`, `running`) |
//! | `sparky_project_builds` | gauge (scrape) | `project`, `status` |
//! | `sparky_max_running` | gauge | |
//! | `sparky_http_requests_total` | counter | `route`, `method`, `status` |
//! | `sparky_http_request_duration_seconds` | histogram | `route`, `method` |
//! | `sparky_deliveries_total` | counter | `kind`, `host`, `outcome` |
//! | `sparky_store_busy_retries_total` | counter | `write` |
//!
//! Label values are bounded: projects and delivery targets come from configuration,
//! routes are the router's patterns (`/builds/{id}`), never the requested path.
//! Labels known up front ([`RUNNER_WRITES`]) start at 0, so that a query or an alert
//! finds the series before the first increment, and `increase()` counts that one.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use prometheus_client::{
    encoding::{
        EncodeLabelSet,
        text::{encode_eof, encode_registry},
    },
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

use crate::{
    model::{BuildStatus, Event, TriggerKind},
    store::Settle,
};

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    project: String,
    trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    project: String,
    trigger: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProjectLabels {
    project: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProjectStatusLabels {
    project: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    kind: String,
    host: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    write: &'static str,
}

/// Seconds a build waits in the queue: from a few milliseconds to an hour.
fn queue_wait_buckets() -> Histogram {
    Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0])
}

/// Seconds a build runs: from a trivial job to the longest timeouts.
fn duration_buckets() -> Histogram {
    Histogram::new([0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0])
}

/// Seconds until an answer's headers (a live log or a build's run streams on after).
fn latency_buckets() -> Histogram {
    Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
}

/// The writes of a runner that retry on a busy database ([`Metrics::busy_retry`]).
pub const RUNNER_WRITES: [&str; 3] = ["start", "finish", "hand back"];

/// One process's metrics; [`crate::Ctx`] holds them.
pub struct Metrics {
    registry: Registry,
    queued: Family<BuildLabels, Counter>,
    started: Family<BuildLabels, Counter>,
    finished: Family<EndLabels, Counter>,
    queue_wait: Histograms<ProjectLabels>,
    duration: Histograms<ProjectStatusLabels>,
    requests: Family<RequestLabels, Counter>,
    latency: Histograms<RouteLabels>,
    deliveries: Family<DeliveryLabels, Counter>,
    busy_retries: Family<WriteLabels, Counter>,
}

/// Live builds by project and status, as the store counted them at a scrape.
pub type LiveCounts = Vec<(String, BuildStatus, u64)>;

impl Metrics {
    /// Empty metrics; `max_running` is the configured global cap.
    pub fn new(max_running: usize) -> Metrics {
        let mut registry = Registry::with_prefix("sparky");
        let metrics = Metrics {
            queued: Family::default(),
            started: Family::default(),
            finished: Family::default(),
            queue_wait: Family::new_with_constructor(queue_wait_buckets),
            duration: Family::new_with_constructor(duration_buckets),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_buckets),
            deliveries: Family::default(),
            busy_retries: Family::default(),
            registry: Registry::default(),
        };
        registry.register("builds_queued", "Builds this process queued", metrics.queued.clone());
        registry.register("builds_started", "Builds this process started running", metrics.started.clone());
        registry.register(
            "builds_finished",
            "Builds this process recorded as ended, by how they ended",
            metrics.finished.clone(),
        );
        registry.register_with_unit(
            "build_queue_wait",
            "How long builds waited from being queued (or queued again after a run) to starting",
            Unit::Seconds,
            metrics.queue_wait.clone(),
        );
        registry.register_with_unit(
            "build_duration",
            "How long builds ran, from starting to ending",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        let cap = Gauge::<i64>::default();
        cap.set(max_running as i64);
        registry.register("max_running", "Builds allowed to run at once", cap);
        registry.register(
            "http_requests",
            "HTTP requests this process answered, by route pattern and status",
            metrics.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from an HTTP request to its answer's headers, by route pattern",
            Unit::Seconds,
            metrics.latency.clone(),
        );
        registry.register(
            "deliveries",
            "Commit statuses and notifications this process tried to deliver, by outcome",
            metrics.deliveries.clone(),
        );
        registry.register(
            "store_busy_retries",
            "A runner's writes tried again because the database was busy",
            metrics.busy_retries.clone(),
        );
        for write in RUNNER_WRITES {
            metrics.busy_retries.get_or_create(&WriteLabels { write }).inc_by(0);
        }
        Metrics { registry, ..metrics }
    }

    /// A build this process queued.
    pub fn queued(&self, project: &str, trigger: TriggerKind) {
        let labels = BuildLabels { project: project.into(), trigger: trigger.as_str() };
        self.queued.get_or_create(&labels).inc();
    }

    /// Status changes this process just recorded: starts (and how long they waited),
    /// ends (and how long they ran).
    pub fn changed(&self, events: &[Event]) {
        for event in events {
            let Some(facts) = event.facts else { continue };
            let trigger = facts.trigger.as_str();
            if event.to == BuildStatus::Running {
                self.started.get_or_create(&BuildLabels { project: event.project.clone(), trigger }).inc();
                self.queue_wait
                    .get_or_create(&ProjectLabels { project: event.project.clone() })
                    .observe(seconds(event.at - facts.queued_at));
            } else if event.to.is_terminal() {
                let status = event.to.as_str();
                self.finished
                    .get_or_create(&EndLabels { project: event.project.clone(), trigger, status })
                    .inc();
                if event.from == Some(BuildStatus::Running)
                    && let Some(started_at) = facts.started_at
                {
                    self.duration
                        .get_or_create(&ProjectStatusLabels { project: event.project.clone(), status })
                        .observe(seconds(event.at - started_at));
                }
            }
        }
    }

    /// One HTTP request answered.
    fn request(&self, route: String, method: &'static str, status: u16, took: Duration) {
        self.latency.get_or_create(&RouteLabels { route: route.clone(), method }).observe(took.as_secs_f64());
        self.requests.get_or_create(&RequestLabels { route, method, status }).inc();
    }

    /// One delivery tried: `kind` (`github`, `webhook`, `slack`, `email`...) to `host`.
    pub fn delivered(&self, kind: &str, host: &str, settle: &Settle) {
        let outcome = match settle {
            Settle::Sent(_) => "sent",
            Settle::Retry { .. } => "retry",
            Settle::Held { .. } => "held",
            Settle::Failed(_) => "failed",
        };
        let labels = DeliveryLabels { kind: kind.into(), host: host.into(), outcome };
        self.deliveries.get_or_create(&labels).inc();
    }

    /// A runner's write (`start`, `finish`, `hand back`) retried on a busy database.
    pub fn busy_retry(&self, write: &'static str) {
        self.busy_retries.get_or_create(&WriteLabels { write }).inc();
    }

    /// The OpenMetrics text of this process's metrics, with the live builds' gauges
    /// when this process has a store (`live`).
    pub fn encode(&self, live: Option<&LiveCounts>) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        encode_registry(&mut text, &self.registry)?;
        if let Some(live) = live {
            let mut scrape = Registry::with_prefix("sparky");
            let totals = Family::<StatusLabels, Gauge>::default();
            let projects = Family::<ProjectStatusLabels, Gauge>::default();
            for status in BuildStatus::ALL.into_iter().filter(|s| !s.is_terminal()) {
                totals.get_or_create(&StatusLabels { status: status.as_str() }).set(0);
            }
            for (project, status, count) in live {
                let count = *count as i64;
                totals.get_or_create(&StatusLabels { status: status.as_str() }).inc_by(count);
                projects
                    .get_or_create(&ProjectStatusLabels { project: project.clone(), status: status.as_str() })
                    .set(count);
            }
            scrape.register("builds", "Builds not yet finished, by status (all processes)", totals);
            scrape.register(
                "project_builds",
                "Builds not yet finished, by project and status (all processes)",
                projects,
            );
            encode_registry(&mut text, &scrape)?;
        }
        encode_eof(&mut text)?;
        Ok(text)
    }
}

/// Milliseconds between two store times, in seconds (never negative: clocks of
/// several pods may disagree a little).
fn seconds(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

/// The answer's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Middleware: counts and times every request by its route's pattern (`unmatched` for
/// a path no route has), method and status.
pub async fn track(
    State(metrics): State<std::sync::Arc<Metrics>>,
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let method = method_label(request.method());
    let start = Instant::now();
    let response = next.run(request).await;
    metrics.request(route, method, response.status().as_u16(), start.elapsed());
    response
}

/// The method as a label: the standard ones, anything else as `other`.
fn method_label(method: &http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests;
