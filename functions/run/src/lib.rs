//! sparky-run: executes one build and stores its report.
//!
//! # Layout
//! - [`handler`]: `POST /events/run`, the CloudEvent dispatch (or a Knative Broker)
//!   sends; the build runs inside that request, which streams heartbeats until the end.
//! - [`execute`]: one build from start to end.
//! - [`job`]: starting the job in its own process group, its environment.
//! - [`supervise`]: log streaming, lease renewal, timeout, cancel, shutdown.

pub mod execute;
pub mod handler;
pub mod job;
pub mod supervise;

pub use execute::execute;
pub use handler::router;

#[cfg(test)]
mod tests;
