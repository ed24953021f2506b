//! The four functions started from the rendered `knative/` bundle, with stand-ins for
//! what Knative itself would do around them, each following the bundle's own objects:
//! - the PersistentVolumeClaim and emptyDir volumes are local temp folders; a Secret
//!   volume is a folder holding the Secret's keys as files, shared by the functions
//!   that mount it;
//! - the S3-compatible report storage is a `moto_server` ([`crate::moto`]), with a
//!   bucket of the cluster's own (the bundle's name with a suffix, so that test
//!   clusters sharing the server never share reports);
//! - each Knative Service's cluster-local URL is a local port;
//! - [`Broker`]: the Broker and its Triggers. It answers dispatch `202 Accepted` at once,
//!   then POSTs the event to each matching Trigger's subscriber and holds that request
//!   open up to the Trigger's `delivery.timeout`, retrying `delivery.retry` times when
//!   the subscriber cannot be reached or fails;
//! - [`KnativeCluster::ping`]: a PingSource's event, on a clock the test sets.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use axum::{body::Bytes, extract::State, http::HeaderMap, routing::post};
use serde_json::Value;

use crate::{
    Api, Sparky, free_port,
    manifests::{Bundle, Launch, workspace},
    moto::Moto,
};

/// The functions of the bundle, by Knative Service name.
pub const FUNCTIONS: [&str; 4] = ["trigger", "dispatch", "run", "render-ui"];

/// The bundle's functions running as local processes.
pub struct KnativeCluster {
    pub bundle: Bundle,
    /// The PersistentVolumeClaim's folder.
    pub state: PathBuf,
    pub ports: HashMap<String, u16>,
    pub launches: HashMap<String, Launch>,
    pub processes: HashMap<String, Sparky>,
    pub broker: Broker,
}

impl KnativeCluster {
    /// Renders `knative/` and starts the four functions as their Services say, with the
    /// PVC at `dir/state` and each emptyDir at `dir/<service>-<volume>`. `adjust` may
    /// change a launch before it starts (a test shortening a timer says so).
    pub async fn start(dir: &Path, adjust: impl Fn(&mut Launch)) -> anyhow::Result<KnativeCluster> {
        let bundle = Bundle::render(&workspace().join("knative"))?;
        let namespace =
            bundle.all("Namespace").next().and_then(|n| n["metadata"]["name"].as_str()).unwrap_or("default");
        let namespace = namespace.to_string();
        let state = dir.join("state");
        std::fs::create_dir_all(&state)?;
        let ports: HashMap<String, u16> = FUNCTIONS.iter().map(|f| (f.to_string(), free_port())).collect();
        let broker = Broker::start(&bundle, &namespace, &ports).await?;

        let moto = Moto::shared();
        let suffix = free_port();
        let mut buckets = std::collections::BTreeSet::new();
        let mut launches = HashMap::new();
        for name in FUNCTIONS {
            let mut launch = Launch::from_bundle(&bundle, name, ports[name])?;
            let pod = &bundle.get("Service", name).context("service")?["spec"]["template"]["spec"];
            for mount in pod["containers"][0]["volumeMounts"].as_array().into_iter().flatten() {
                let volume_name = mount["name"].as_str().unwrap_or_default();
                let volume = pod["volumes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|v| v["name"] == volume_name)
                    .with_context(|| format!("{name}: volume {volume_name} is mounted but not declared"))?;
                let local = if volume["persistentVolumeClaim"].is_object() {
                    state.clone()
                } else if let Some(secret) = volume["secret"]["secretName"].as_str() {
                    secret_folder(&bundle, secret, dir)?
                } else {
                    let own = dir.join(format!("{name}-{volume_name}"));
                    std::fs::create_dir_all(&own)?;
                    own
                };
                launch.map_prefix(mount["mountPath"].as_str().unwrap_or_default(), &local.to_string_lossy());
            }
            for (other, port) in &ports {
                launch.map_prefix(
                    &format!("http://{other}.{namespace}.svc.cluster.local"),
                    &format!("http://127.0.0.1:{port}"),
                );
            }
            launch.map_prefix("http://broker-ingress.knative-eventing.svc.cluster.local", &broker.url);
            if let Some(endpoint) = launch.get("SPARKY_S3_ENDPOINT").map(str::to_string) {
                launch.map_prefix(&endpoint, &moto.endpoint());
            }
            if let Some(bucket) = launch.get("SPARKY_REPORTS").and_then(bucket_of) {
                launch.map_prefix(&format!("s3://{bucket}"), &format!("s3://{bucket}-{suffix}"));
                buckets.insert(format!("{bucket}-{suffix}"));
            }
            adjust(&mut launch);
            launches.insert(name.to_string(), launch);
        }
        for bucket in &buckets {
            moto.create_bucket(bucket).await;
        }
        let mut cluster =
            KnativeCluster { bundle, state, ports, launches, processes: HashMap::new(), broker };
        for name in FUNCTIONS {
            cluster.start_function(name);
        }
        Ok(cluster)
    }

    /// Starts (or starts again) one function from its launch.
    pub fn start_function(&mut self, name: &str) {
        let launch = &self.launches[name];
        self.processes.insert(name.to_string(), Sparky::spawn(launch.command()));
    }

    /// The local base URL of Knative Service `name`.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}", self.ports[name])
    }

    pub fn api(&self, name: &str) -> Api {
        Api::new(&self.url(name))
    }

    /// What PingSource `name` sends at `time` (RFC 3339): a binary-mode CloudEvent with
    /// its data, to its sink (the Service it names, at its `uri`). Returns the reply.
    pub async fn ping(&self, name: &str, time: &str) -> anyhow::Result<(u16, Value)> {
        let source = self.bundle.get("PingSource", name).with_context(|| format!("no PingSource {name}"))?;
        let sink = &source["spec"]["sink"];
        let service = sink["ref"]["name"].as_str().unwrap_or_default();
        let port = self
            .ports
            .get(service)
            .with_context(|| format!("PingSource {name} sinks to unknown {service}"))?;
        let url = format!("http://127.0.0.1:{port}{}", sink["uri"].as_str().unwrap_or(""));
        let namespace = source["metadata"]["namespace"].as_str().unwrap_or_default();
        let reply = sparky_core::tls::client()
            .post(url)
            .header("ce-specversion", "1.0")
            .header("ce-type", "dev.knative.sources.ping")
            .header("ce-source", format!("/apis/v1/namespaces/{namespace}/pingsources/{name}"))
            .header("ce-id", format!("{name}-{time}"))
            .header("ce-time", time)
            .header("content-type", source["spec"]["contentType"].as_str().unwrap_or("application/json"))
            .body(source["spec"]["data"].as_str().unwrap_or("").to_string())
            .send()
            .await?;
        let status = reply.status().as_u16();
        let body = reply.bytes().await?;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }
}

/// The folder standing for Secret `name` mounted as a volume: its keys as files,
/// written once and shared by every function that mounts it.
fn secret_folder(bundle: &Bundle, name: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let folder = dir.join(format!("secret-{name}"));
    if !folder.exists() {
        std::fs::create_dir_all(&folder)?;
        let secret = bundle.get("Secret", name).with_context(|| format!("no Secret {name}"))?;
        for key in secret["stringData"].as_object().into_iter().flat_map(|m| m.keys()) {
            std::fs::write(folder.join(key), bundle.lookup("Secret", name, key)?)?;
        }
    }
    Ok(folder)
}

/// The bucket of an `s3://bucket/prefix` URL.
fn bucket_of(url: &str) -> Option<String> {
    url.strip_prefix("s3://").map(|rest| rest.split('/').next().unwrap_or_default().to_string())
}

/// One delivery the Broker made to a Trigger's subscriber.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub trigger: String,
    pub status: Option<u16>,
    /// The response body, read to its end (run's heartbeat lines and result).
    pub body: String,
    pub attempts: u32,
}

/// The Broker of the bundle and its Triggers.
pub struct Broker {
    pub url: String,
    pub deliveries: Arc<Mutex<Vec<Delivery>>>,
    in_flight: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Route {
    trigger: String,
    kind: String,
    subscriber: String,
    timeout: Duration,
    retry: u32,
}

#[derive(Clone)]
struct BrokerState {
    routes: Arc<Vec<Route>>,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    in_flight: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Broker {
    /// Serves the bundle's Broker at `/{namespace}/{broker}` on a local port, as the
    /// broker ingress does, delivering to the Triggers' subscribers among `ports`.
    async fn start(bundle: &Bundle, namespace: &str, ports: &HashMap<String, u16>) -> anyhow::Result<Broker> {
        let broker = bundle.all("Broker").next().context("the bundle has no Broker")?;
        let broker_name = broker["metadata"]["name"].as_str().unwrap_or_default();
        let mut routes = Vec::new();
        for trigger in bundle.all("Trigger").filter(|t| t["spec"]["broker"] == broker_name) {
            let spec = &trigger["spec"];
            let service = spec["subscriber"]["ref"]["name"].as_str().unwrap_or_default();
            let port = ports
                .get(service)
                .with_context(|| format!("Trigger subscriber {service} is not a function"))?;
            routes.push(Route {
                trigger: trigger["metadata"]["name"].as_str().unwrap_or_default().into(),
                kind: spec["filter"]["attributes"]["type"].as_str().unwrap_or_default().into(),
                subscriber: format!(
                    "http://127.0.0.1:{port}{}",
                    spec["subscriber"]["uri"].as_str().unwrap_or("")
                ),
                timeout: iso8601_seconds(spec["delivery"]["timeout"].as_str().unwrap_or("PT60S"))?,
                retry: spec["delivery"]["retry"].as_u64().unwrap_or(0) as u32,
            });
        }
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(Mutex::new(Vec::new()));
        let state = BrokerState {
            routes: Arc::new(routes),
            deliveries: deliveries.clone(),
            in_flight: in_flight.clone(),
        };
        let app = axum::Router::new()
            .route(&format!("/{namespace}/{broker_name}"), post(ingress))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Broker { url: format!("http://{addr}"), deliveries, in_flight, server })
    }

    /// Drops every delivery still in flight, closing its connection to the subscriber,
    /// as when the Broker's dispatcher restarts.
    pub fn hang_up(&self) {
        if let Ok(mut all) = self.in_flight.lock() {
            for delivery in all.drain(..) {
                delivery.abort();
            }
        }
    }

    /// The deliveries made so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The broker ingress: accept, then deliver in the background.
async fn ingress(
    State(state): State<BrokerState>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::http::StatusCode {
    let kind = headers.get("ce-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    for route in state.routes.iter().filter(|r| r.kind.is_empty() || r.kind == kind) {
        let (route, headers, body, deliveries) =
            (route.clone(), headers.clone(), body.clone(), state.deliveries.clone());
        let task = tokio::spawn(async move {
            let delivery = deliver(&route, &headers, body).await;
            if let Ok(mut all) = deliveries.lock() {
                all.push(delivery);
            }
        });
        if let Ok(mut all) = state.in_flight.lock() {
            all.push(task.abort_handle());
        }
    }
    axum::http::StatusCode::ACCEPTED
}

async fn deliver(route: &Route, headers: &HeaderMap, body: Bytes) -> Delivery {
    let client = sparky_core::tls::client();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut request = client.post(&route.subscriber).timeout(route.timeout).body(body.clone());
        for (name, value) in headers {
            if name.as_str().starts_with("ce-") || name == "content-type" {
                request = request.header(name.as_str(), value.as_bytes());
            }
        }
        let result = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                Some((status, text))
            }
            Err(_) => None,
        };
        let done = matches!(&result, Some((status, _)) if *status < 500);
        if done || attempts > route.retry {
            let (status, body) = result.map_or((None, String::new()), |(s, b)| (Some(s), b));
            return Delivery { trigger: route.trigger.clone(), status, body, attempts };
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempts))).await;
    }
}

/// `PT3600S`, `PT1H`, `PT30M` as a duration (the forms delivery timeouts use).
pub fn iso8601_seconds(text: &str) -> anyhow::Result<Duration> {
    let rest = text.strip_prefix("PT").with_context(|| format!("{text}: not an ISO 8601 time duration"))?;
    let mut total = 0u64;
    let mut number = String::new();
    for c in rest.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().with_context(|| format!("{text}: bad number"))?;
        number.clear();
        total += n * match c {
            'H' => 3600,
            'M' => 60,
            'S' => 1,
            _ => anyhow::bail!("{text}: unknown unit {c}"),
        };
    }
    Ok(Duration::from_secs(total))
}
