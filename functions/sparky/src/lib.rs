//! The one Sparky binary.
//!
//! # Layout
//! - [`cli`]: the command line (`up`, `serve`, and the client commands), and exit codes.
//! - [`local`]: `sparky up`: all four functions in one process, a dispatch loop in
//!   place of Knative Eventing, direct calls in place of HTTP between them.
//! - [`service`]: `sparky serve <function>`: one function on `$PORT`, as on Knative.
//! - [`client`]: `sparky build`, `rebuild`, `cancel`, `status`, `list` and `logs`:
//!   the HTTP API from the command line.
//! - [`init`]: as a container's PID 1, a minimal init in front of all that.

pub mod cli;
pub mod client;
pub mod init;
pub mod local;
pub mod service;
