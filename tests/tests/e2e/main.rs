//! End-to-end tests: the real `sparky` binary, started as separate processes on
//! temp roots, driven over HTTP as a user would.

mod api;
mod cli;
mod cron;
mod downstream;
mod execution;
mod faults;
mod hooks;
mod inbox;
mod isolation;
mod knative;
mod lambda;
mod lifecycle;
mod metrics;
mod multiprocess;
mod notify;
mod polling;
mod projects;
mod pulls;
mod reports;
mod scale;
mod security;
mod statuses;
mod tour;
mod ui;
