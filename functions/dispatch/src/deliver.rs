//! Handing a claimed build to run.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use sparky_core::{
    Ctx,
    error::error_chain,
    events::{BUILD_RUN, CloudEvent},
    lifecycle::Started,
    model::Reason,
    store::Claim,
};

/// Sends a claimed build to run. Never blocks: delivery happens in the background,
/// and a build that never starts is put back in the queue by the lease sweep.
pub trait Deliver: Send + Sync + 'static {
    fn deliver(&self, claim: Claim);
}

/// Runs builds that this process claimed and started in one commit (`sparky up`,
/// where dispatch and run share a process). Never blocks: the build runs in the
/// background.
pub trait RunHere: Send + Sync + 'static {
    fn run(&self, started: Started);
}

/// Where a dispatch pass hands what it claims.
#[derive(Clone)]
pub enum Handoff {
    /// Claims (`dispatched`) are delivered to run elsewhere.
    Deliver(Arc<dyn Deliver>),
    /// Builds are claimed and started at once, and run in this process.
    RunHere(Arc<dyn RunHere>),
}

/// Delivers a `dev.sparky.build.run` CloudEvent to `SPARKY_RUN_URL` — run itself, or a
/// Knative Broker — and holds the request open until the receiver answers: run answers
/// when the build ends; a Broker at once, and then holds its own request to run open.
pub struct HttpDeliver {
    ctx: Ctx,
    url: String,
}

impl HttpDeliver {
    pub fn new(ctx: Ctx, run_url: &str) -> Self {
        HttpDeliver { ctx, url: event_url(run_url) }
    }
}

/// Puts a build run never took back in the queue at once (no retry used); if that
/// fails, the lease sweep does it later.
async fn requeue(ctx: &Ctx, build_id: i64) {
    if let Err(error) = ctx.requeue_dispatched(build_id, Reason::DeliveryFailed).await {
        tracing::error!(build_id, error = %error_chain(&error), "could not requeue; the lease sweep will");
    }
}

/// Where build events go: run's `/events/run` when `run_url` is a bare origin (run
/// itself), else `run_url` as it is (a Broker's address, which has a path:
/// `/{namespace}/{broker}`).
fn event_url(run_url: &str) -> String {
    let base = run_url.trim_end_matches('/');
    let after_scheme = base.split_once("://").map_or(base, |(_, rest)| rest);
    if after_scheme.contains('/') { base.to_string() } else { format!("{base}/events/run") }
}

impl Deliver for HttpDeliver {
    fn deliver(&self, claim: Claim) {
        let data = serde_json::json!({ "build_id": claim.build_id, "attempt": claim.attempt });
        let event = CloudEvent::new(BUILD_RUN, "/sparky/dispatch", data);
        let request = self
            .ctx
            .http
            .post(&self.url)
            .headers(event.headers())
            .body(event.data.to_string())
            .timeout(Duration::from_secs(7 * 24 * 3600));
        let ctx = self.ctx.clone();
        let url = self.url.clone();
        tokio::spawn(async move {
            let build_id = claim.build_id;
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    // Run streams heartbeats while the build runs; read to the end.
                    let mut body = response.bytes_stream();
                    while let Some(piece) = body.next().await {
                        if piece.is_err() {
                            break;
                        }
                    }
                }
                Ok(response) => {
                    // An error answer means run did not take it: back to the queue now.
                    tracing::warn!(build_id, %url, status = %response.status(), "run refused the build");
                    requeue(&ctx, build_id).await;
                }
                Err(error) if error.is_connect() => {
                    // Run never saw it: hand it back now rather than wait for the lease.
                    tracing::warn!(build_id, %url, error = %error_chain(&error), "could not reach run");
                    requeue(&ctx, build_id).await;
                }
                Err(error) => {
                    tracing::warn!(build_id, %url, error = %error_chain(&error), "delivery to run failed; the lease decides");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::event_url;

    #[test]
    fn run_itself_gets_its_route_and_a_broker_its_own_address() {
        assert_eq!(
            event_url("http://run.sparky.svc.cluster.local"),
            "http://run.sparky.svc.cluster.local/events/run"
        );
        assert_eq!(event_url("http://127.0.0.1:8083/"), "http://127.0.0.1:8083/events/run");
        assert_eq!(
            event_url("http://broker-ingress.knative-eventing.svc.cluster.local/sparky/sparky-builds"),
            "http://broker-ingress.knative-eventing.svc.cluster.local/sparky/sparky-builds"
        );
    }
}
