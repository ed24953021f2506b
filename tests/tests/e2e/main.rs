//! End-to-end tests: the real `sparky` binary, started as separate processes on
//! temp roots, driven over HTTP as a user would.

mod api;
mod cli;
mod cron;
mod execution;
mod hooks;
mod lifecycle;
mod multiprocess;
mod projects;
mod ui;
