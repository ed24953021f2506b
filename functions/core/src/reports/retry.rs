//! Retrying report writes: report storage may be away for a while (an S3 server
//! restarting, a network blip), and a build must still finish. Writes are retried with
//! exponential backoff ([`Backoff`]) until a deadline; what still fails is recorded as
//! an incomplete report rather than failing the build.

use std::{future::Future, time::Duration};

use tokio::time::Instant;

use super::ReportError;
use crate::error::error_chain;

/// Exponential backoff: 100 ms, doubling, at most 5 s between attempts.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Duration::from_millis(100) }
    }
}

impl Backoff {
    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Duration::from_secs(5));
        delay
    }
}

/// Runs `attempt` until it succeeds, it fails in a way retrying can't fix (an invalid
/// key), or the next attempt would start after `deadline`; returns the last error then.
pub async fn until<T, F, Fut>(deadline: Instant, what: &str, mut attempt: F) -> Result<T, ReportError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ReportError>>,
{
    let mut backoff = Backoff::default();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(error @ ReportError::InvalidKey { .. }) => return Err(error),
            Err(error) => error,
        };
        let delay = backoff.next_delay();
        if Instant::now() + delay > deadline {
            tracing::error!(what, attempts, error = %error_chain(&error), "giving up storing a report");
            return Err(error);
        }
        tracing::warn!(what, attempts, error = %error_chain(&error), retry_in = ?delay, "storing a report failed; retrying");
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> ReportError {
        ReportError::Io { key: "k".into(), source: std::io::Error::other("down") }
    }

    #[tokio::test]
    async fn retries_until_it_works_or_the_deadline() {
        let mut calls = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        let value = until(deadline, "test", || {
            calls += 1;
            let ok = calls >= 3;
            async move { if ok { Ok(calls) } else { Err(failure()) } }
        })
        .await
        .expect("third attempt works");
        assert_eq!(value, 3);

        let started = Instant::now();
        let deadline = started + Duration::from_millis(250);
        assert!(until(deadline, "test", || async { Err::<(), _>(failure()) }).await.is_err());
        assert!(started.elapsed() < Duration::from_millis(400), "stopped at the deadline");
    }

    #[test]
    fn backs_off_exponentially_up_to_a_cap() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}
