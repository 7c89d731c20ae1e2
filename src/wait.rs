//! The one way to wait (STYLE.md §10): poll until a check passes, a deadline passes or the run
//! is cancelled, backing off between attempts, on tokio's clock.

use crate::cancel::Cancel;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Backoff between attempts: starts at `first`, doubles, never above `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

/// How a poll ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Polled<T> {
    /// The check passed; its value and the attempts it took.
    Ready(T, u32),
    /// The deadline passed; the last value and the attempts made.
    TimedOut(T, u32),
    /// The run was cancelled; the last value and the attempts made.
    Cancelled(T, u32),
}

/// Calls `attempt` until `done` says its value is ready, `deadline` passes (`None`: one attempt)
/// or `cancel` fires. Never sleeps past the deadline.
pub async fn poll_until<T, F, Fut>(
    deadline: Option<Instant>,
    backoff: Backoff,
    cancel: &Cancel,
    mut attempt: F,
    done: impl Fn(&T) -> bool,
) -> Polled<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let mut pause = backoff.first;
    let mut n = 0;
    loop {
        n += 1;
        let value = attempt().await;
        if done(&value) {
            return Polled::Ready(value, n);
        }
        if cancel.is_cancelled() {
            return Polled::Cancelled(value, n);
        }
        let now = Instant::now();
        let Some(deadline) = deadline.filter(|d| *d > now) else {
            return Polled::TimedOut(value, n);
        };
        tokio::select! {
            _ = tokio::time::sleep(pause.min(deadline - now)) => {}
            _ = cancel.cancelled() => return Polled::Cancelled(value, n),
        }
        pause = (pause * 2).min(backoff.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    const B: Backoff = Backoff {
        first: Duration::from_millis(250),
        max: Duration::from_secs(5),
    };

    #[tokio::test(start_paused = true)]
    async fn retries_with_backoff_until_ready() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let r = poll_until(
            Some(start + Duration::from_secs(60)),
            B,
            &Cancel::new(),
            || async { calls.fetch_add(1, Ordering::SeqCst) + 1 },
            |n| *n == 4,
        )
        .await;
        assert_eq!(r, Polled::Ready(4, 4));
        // 250 + 500 + 1000 ms of backoff on the paused clock.
        assert_eq!(start.elapsed(), Duration::from_millis(1750));
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_the_deadline_without_sleeping_past_it() {
        let start = Instant::now();
        let r = poll_until(
            Some(start + Duration::from_millis(600)),
            B,
            &Cancel::new(),
            || async { false },
            |v| *v,
        )
        .await;
        assert_eq!(r, Polled::TimedOut(false, 3));
        assert_eq!(start.elapsed(), Duration::from_millis(600));
    }

    #[tokio::test(start_paused = true)]
    async fn no_deadline_means_one_attempt() {
        let r = poll_until(None, B, &Cancel::new(), || async { 1 }, |_| false).await;
        assert_eq!(r, Polled::TimedOut(1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_ends_the_wait() {
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            c2.cancel(crate::cancel::Signal::Term);
        });
        let r = poll_until(
            Some(Instant::now() + Duration::from_secs(600)),
            B,
            &cancel,
            || async { 0 },
            |_| false,
        )
        .await;
        assert!(matches!(r, Polled::Cancelled(0, _)), "{r:?}");
    }
}
