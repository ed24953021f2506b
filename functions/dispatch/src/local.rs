//! The dispatch loop of `sparky up`: a pass on every poke (trigger and run poke it
//! directly), and a sweep now and then in case a runner vanished.

use std::{sync::Arc, time::Duration};

use sparky_core::{Ctx, api::error_chain};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{Deliver, dispatch_once};

/// How often the loop sweeps without being poked.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Runs dispatch passes until `shutdown` fires.
pub async fn run_loop(ctx: Ctx, deliver: Arc<dyn Deliver>, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        if let Err(error) = dispatch_once(&ctx, deliver.as_ref()).await {
            tracing::error!(error = %error_chain(&error), "dispatch pass failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}
