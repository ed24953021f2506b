//! sparky-core: what Sparky's four functions (trigger, dispatch, run, render-ui) share.
//!
//! # Layout
//! - [`config`]: every environment variable Sparky reads, read in one place.
//! - [`error`], [`secrets`]: error chains for logs; values that never print, job
//!   secrets, job tokens (leaves).
//! - [`model`]: builds, statuses and trigger kinds.
//! - [`store`]: the SQLite build store; all SQL lives here.
//! - [`repo`]: comparing repository URLs, branch globs.
//! - [`cron`]: crontab lines in a time zone, DST included.
//! - [`reports`]: report storage by object-style key (folder backend), chunked logs.
//! - [`project`]: `projects/NAME/sparky.yaml`, its validation and build parameters.
//! - [`ctx`]: the state every function receives, and the links between functions
//!   (poking dispatch, delivering a build to run).
//! - [`lifecycle`]: every change of a build's status, and what must follow each one.
//! - [`memory`]: few allocator arenas, freed memory back to the OS when builds end.
//! - [`metrics`]: the process's Prometheus metrics, and the HTTP edge's counting.
//! - [`outbox`]: commit statuses on Git hosts, driven by the lifecycle's events.
//! - [`runner`]: what a runner takes with a build, and dispatch's runner API's shapes.
//! - [`events`]: CloudEvents as Knative delivers them.
//! - [`hub`]: in-process notifications (log grew, status changed, cancel asked).
//! - [`api`]: JSON shapes of the HTTP API and the error type of the HTTP edge.
//! - [`retention`]: `keep_builds`, pruning old builds with their reports.
//! - `testing` (feature `testing`, and core's own tests): a state on a temp root and
//!   builds in a given state for in-process tests.
//! - [`serve`]: serving a router on a listener, health and metrics routes, telemetry.
//! - [`tls`]: the HTTP clients Sparky makes, HTTPS included.
//! - [`lambda`]: serving a router through the AWS Lambda Runtime API instead.

pub mod api;
pub mod config;
pub mod cron;
pub mod ctx;
pub mod error;
pub mod events;
pub mod hub;
pub mod lambda;
pub mod lifecycle;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod outbox;
pub mod project;
pub mod repo;
pub mod reports;
pub mod retention;
pub mod runner;
pub mod secrets;
pub mod serve;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod tls;

pub use config::Config;
pub use ctx::Ctx;
