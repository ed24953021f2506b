//! Watching a running job until it ends: its output goes to the log (cut into chunks
//! at least every 200 ms while it flows, and stored in the background, so the UI can
//! follow it and reading the pipe never waits on storage), its lease is renewed, and it
//! is stopped — the whole process group — on timeout, cancel or shutdown.
//!
//! A `serve run` process lets its builds finish when it is told to stop; if it is still
//! waiting when [`Ctx::hand_back`] fires, it stops the job, stores the log, and hands
//! the build back at once: it is queued again while the project's `retries` allow,
//! else ends `lost` — instead of a SIGKILL leaving it `running` until the lease runs
//! out.
//!
//! Cancel requests arrive through the hub in the same process; from another process
//! they can only be seen in the store (a pod running a build can't be addressed), so a
//! cheap read every [`WATCH_EVERY`] catches those.

use std::{process::ExitStatus, time::Duration};

use nix::sys::signal::Signal;
use sparky_core::{Ctx, error::error_chain, hub::HubEvent, reports::log::LogWriter};
use tokio::{
    io::AsyncReadExt,
    time::{Instant, MissedTickBehavior, interval, sleep_until, timeout},
};

use crate::{
    backend::Backend,
    job::{Job, signal_group},
};

/// Output is handed to storage as soon as this much is buffered (and there is room).
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// Buffered output is handed to storage at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// How often the store is asked whether the build was canceled.
const WATCH_EVERY: Duration = Duration::from_millis(500);
/// Between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_millis(1000);
/// After the job exits, how long leftover output may take to arrive.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// Handing a build back: how long its log may take to be stored before the lease goes.
const HAND_BACK_STORE_LIMIT: Duration = Duration::from_secs(10);

/// Why Sparky stopped a job before it ended by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    TimedOut,
    Canceled,
    /// The process is shutting down.
    Shutdown,
    /// The build is no longer ours: its lease expired and the sweep took it.
    LeaseLost,
    /// The process is going away before the build ended: the build goes back to dispatch.
    HandedBack,
}

/// How a job ended.
#[derive(Debug)]
pub struct Ending {
    pub status: Option<ExitStatus>,
    pub stop: Option<Stop>,
}

/// What a supervisor needs to know about the build.
pub struct Watch<'a> {
    pub ctx: &'a Ctx,
    /// Sparky's state, where leases are renewed and cancels heard of.
    pub state: &'a dyn Backend,
    pub build_id: i64,
    pub owner: &'a str,
    pub timeout: Duration,
    /// The project's `retries`, for a build handed back.
    pub retries: u32,
    /// Stop the job when the process shuts down (`sparky up`); otherwise let it finish
    /// (a `serve run` pod drains its requests).
    pub stop_on_shutdown: bool,
}

/// Runs until the job has exited and its output is stored (or abandoned after the
/// drain limit).
pub async fn supervise(watch: Watch<'_>, mut job: Job, log: &mut LogWriter) -> Ending {
    let ctx = watch.ctx;
    let lease = ctx.config.lease;
    let mut buf = vec![0u8; 64 * 1024];
    let mut hub = ctx.hub.subscribe();
    let mut flush_tick = interval(FLUSH_EVERY);
    flush_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut watch_tick = interval(WATCH_EVERY);
    watch_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let deadline = Instant::now() + watch.timeout;
    let mut next_renewal = Instant::now() + lease / 3;
    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let mut kill_at = far;
    let mut drain_until = far;
    let mut pipe_open = true;
    let mut status: Option<ExitStatus> = None;
    let mut stop: Option<Stop> = None;

    let begin_stop = |why: Stop, stop: &mut Option<Stop>, kill_at: &mut Instant| {
        if stop.is_none() {
            tracing::info!(build_id = watch.build_id, reason = ?why, "stopping the job");
            *stop = Some(why);
            signal_group(job.pgid, Signal::SIGTERM);
            *kill_at = Instant::now() + TERM_GRACE;
        }
    };

    while status.is_none() || pipe_open {
        tokio::select! {
            // A full buffer (storage slower than the job) pauses reading, which slows
            // the job down; storage failing makes the writer drop output instead.
            read = job.output.read(&mut buf), if pipe_open && !log.full() => match read {
                Ok(0) => pipe_open = false,
                Ok(n) => log.append(&buf[..n]),
                Err(error) => {
                    tracing::warn!(build_id = watch.build_id, error = %error_chain(&error), "reading the job's output failed");
                    pipe_open = false;
                }
            },
            exited = job.child.wait(), if status.is_none() => {
                status = Some(exited.unwrap_or_else(|error| {
                    tracing::error!(build_id = watch.build_id, error = %error_chain(&error), "waiting for the job failed");
                    std::os::unix::process::ExitStatusExt::from_raw(255 << 8)
                }));
                // Whatever the job left running in its group goes with it.
                signal_group(job.pgid, Signal::SIGKILL);
                drain_until = Instant::now() + DRAIN_LIMIT;
            }
            _ = sleep_until(deadline), if stop.is_none() && status.is_none() => {
                begin_stop(Stop::TimedOut, &mut stop, &mut kill_at);
            }
            _ = sleep_until(kill_at), if status.is_none() => {
                signal_group(job.pgid, Signal::SIGKILL);
                kill_at = far;
            }
            _ = sleep_until(drain_until), if pipe_open => {
                tracing::warn!(build_id = watch.build_id, "output still open after the job exited; stopped reading");
                pipe_open = false;
            }
            _ = log.cut_when_room(), if log.buffered() >= CHUNK_BYTES => {}
            _ = flush_tick.tick() => log.try_cut(),
            _ = watch_tick.tick(), if status.is_none() && stop.is_none() => {
                if Instant::now() >= next_renewal {
                    next_renewal = Instant::now() + lease / 3;
                    match watch.state.renew(watch.build_id, watch.owner).await {
                        Ok(r) if !r.still_ours => begin_stop(Stop::LeaseLost, &mut stop, &mut kill_at),
                        Ok(r) if r.cancel_requested => begin_stop(Stop::Canceled, &mut stop, &mut kill_at),
                        Ok(_) => {}
                        Err(error) => {
                            // Try again soon: the lease outlasts several tries.
                            next_renewal = Instant::now() + WATCH_EVERY;
                            tracing::warn!(build_id = watch.build_id, error = %error_chain(&error), "lease renewal failed");
                        }
                    }
                } else if let Ok(true) = watch.state.cancel_requested(watch.build_id).await {
                    begin_stop(Stop::Canceled, &mut stop, &mut kill_at);
                }
            }
            event = hub.recv() => {
                if let Ok(HubEvent::CancelRequested(id)) = event && id == watch.build_id {
                    begin_stop(Stop::Canceled, &mut stop, &mut kill_at);
                }
            }
            _ = ctx.shutdown.cancelled(), if watch.stop_on_shutdown && stop.is_none() && status.is_none() => {
                begin_stop(Stop::Shutdown, &mut stop, &mut kill_at);
            }
            _ = ctx.hand_back.cancelled(), if stop.is_none() && status.is_none() => {
                begin_stop(Stop::HandedBack, &mut stop, &mut kill_at);
            }
        }
    }
    if stop == Some(Stop::HandedBack) {
        hand_back(&watch, log).await;
    }
    Ending { status, stop }
}

/// Stores the log, then hands the build back (to the queue while `retries` allow, else
/// `lost`). In that order: a new attempt may start as soon as it is handed back.
async fn hand_back(watch: &Watch<'_>, log: &mut LogWriter) {
    log.append(b"\n[sparky] the runner shut down before the build ended: handed back\n");
    match timeout(HAND_BACK_STORE_LIMIT, log.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(build_id = watch.build_id, error = %error_chain(&error),
            "the log of a build handed back may be incomplete"),
        Err(_) => {
            tracing::warn!(build_id = watch.build_id, "storing the log of a build handed back took too long")
        }
    }
    if let Err(error) = watch.state.hand_back(watch.build_id, watch.owner, watch.retries).await {
        tracing::error!(build_id = watch.build_id, error = %error_chain(&error),
            "could not hand the build back; it is recovered when its lease runs out");
    }
}
