//! Dispatch passes, one at a time per process, each in a task of its own: the request
//! or poke that asked for a pass may go away (a caller's timeout), and the pass still
//! runs to its end, so a claim it committed is always handed to run. A dispatch
//! process that dies between a claim and its delivery leaves the build `dispatched`;
//! its lease runs out and the next sweep puts it back at the front of the queue.
//!
//! Requests for passes coalesce: however many pokes arrive while a pass runs, one more
//! pass follows it. With a tick (`sparky up`, or `serve dispatch` with
//! `SPARKY_SELF_TICK`), a pass also runs that often without being asked, which sweeps
//! expired leases; every [`FOLLOW_UP_EVERY`] a pass also follows up ended builds that a
//! dead process left pending.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use sparky_core::{Ctx, ctx::Poke, error::error_chain};
use tokio::{
    sync::{Notify, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::{Handoff, PassError, PassReport, dispatch_once};

/// How often follow-ups of ended builds are looked for.
pub const FOLLOW_UP_EVERY: Duration = Duration::from_secs(10);

/// How often a ticking dispatch sweeps: often enough that a vanished runner's build is
/// recovered soon after its lease runs out.
pub fn tick_for(lease: Duration) -> Duration {
    (lease / 3).clamp(Duration::from_millis(200), Duration::from_secs(10))
}

/// The outcome of a finished pass: its number and report (or why it failed).
#[derive(Clone)]
struct Done {
    number: u64,
    result: Result<PassReport, String>,
}

/// Asks this process's pass loop for passes. It is the process's [`Poke`] (trigger
/// and run code in the same process wake dispatch through it) and what
/// `POST /events/dispatch` waits on.
pub struct Passes {
    asked: AtomicU64,
    wake: Notify,
    done: watch::Sender<Done>,
}

impl Default for Passes {
    fn default() -> Self {
        Passes {
            asked: AtomicU64::new(0),
            wake: Notify::new(),
            done: watch::Sender::new(Done { number: 0, result: Ok(PassReport::default()) }),
        }
    }
}

impl Poke for Passes {
    fn poke(&self) {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

impl Passes {
    /// Asks for a pass and waits for one that began after this call; its report.
    pub async fn pass(&self) -> Result<PassReport, PassError> {
        let mut done = self.done.subscribe();
        let mine = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        let finished = done.wait_for(|d| d.number >= mine).await.map_err(|_| PassError::ShuttingDown)?;
        finished.result.clone().map_err(PassError::Failed)
    }
}

/// Runs passes as they are asked for (and every `tick`, if given) until `shutdown`.
pub async fn run_loop(
    ctx: Ctx,
    handoff: Handoff,
    passes: Arc<Passes>,
    tick: Option<Duration>,
    shutdown: CancellationToken,
) {
    let mut begun = 0;
    let mut last_follow_up: Option<Instant> = None;
    loop {
        let asked = passes.asked.load(Ordering::SeqCst);
        let follow_up = last_follow_up.is_none_or(|at| at.elapsed() >= FOLLOW_UP_EVERY);
        if follow_up {
            last_follow_up = Some(Instant::now());
        }
        // Its own task: nothing that happens to whoever asked can stop it half-way.
        let pass = {
            let (ctx, handoff) = (ctx.clone(), handoff.clone());
            tokio::spawn(async move { dispatch_once(&ctx, &handoff, follow_up).await })
        };
        let result = match pass.await {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(error)) => {
                tracing::error!(error = %error_chain(&error), "dispatch pass failed");
                Err(error_chain(&error))
            }
            Err(error) => {
                tracing::error!(error = %error_chain(&error), "dispatch pass panicked");
                Err(error.to_string())
            }
        };
        begun = begun.max(asked);
        passes.done.send_replace(Done { number: begun, result });
        if passes.asked.load(Ordering::SeqCst) > begun {
            continue;
        }
        let wait = tick.unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = passes.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
