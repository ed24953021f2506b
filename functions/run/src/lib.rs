//! sparky-run: executes one build and stores its report.
//!
//! # Layout
//! - [`handler`]: `POST /events/run`, the CloudEvent dispatch (or a Knative Broker)
//!   sends; the build runs inside that request, which streams heartbeats until the end.
//! - [`execute`]: one build from start to end.
//! - [`checkout`]: the build's commit in its workspace before the script runs.
//! - [`job`]: starting the job in its own process group, its environment.
//! - [`ready`]: working folders made ahead of time, taken by a rename.
//! - [`harden`]: making the process that runs jobs non-dumpable.
//! - [`backend`]: Sparky's state as a runner sees it: this process's store, or
//!   ([`remote`]) dispatch's runner API.
//! - [`supervise`]: log streaming, lease renewal, timeout, cancel, shutdown.
//! - [`artifacts`]: storing the files a job leaves in `$SPARKY_ARTIFACTS`.
//! - [`record`]: storing a build's reports (artifacts, log, `report.json`) and its end.

pub mod artifacts;
pub mod backend;
pub mod checkout;
pub mod execute;
pub mod handler;
pub mod harden;
pub mod job;
pub mod ready;
pub mod record;
pub mod remote;
pub mod supervise;

pub use backend::{Backend, BackendError, LocalBackend};
pub use execute::{execute, run_assigned};
pub use handler::{Runner, router};
pub use harden::harden;
pub use remote::RemoteBackend;

#[cfg(test)]
mod tests;
