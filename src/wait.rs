//! The one way to wait (STYLE.md §10): poll until a check passes (optionally N times in a row),
//! fails for good, a deadline passes or the run is cancelled, backing off with jitter between
//! attempts, on tokio's clock.

use crate::aws::CloudError;
use crate::cancel::Cancel;
use crate::error::Error;
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
    /// The check said retrying cannot help (e.g. access denied); the value and the attempts.
    Failed(T, u32),
}

/// What a check says of one attempt's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// It passed.
    Pass,
    /// Not yet: try again after a pause.
    Retry,
    /// It failed in a way another attempt will not change: stop now.
    Fail,
}

/// How to poll.
#[derive(Debug, Clone, Copy)]
pub struct Poll {
    /// `None`: one attempt (or one series of `successes`).
    pub deadline: Option<Instant>,
    pub backoff: Backoff,
    /// Each pause is shortened by a random share of up to this much (0: none, 0.5: up to half),
    /// so many waiters do not call AWS in step.
    pub jitter: f64,
    /// How many passes in a row make it ready (at least 1); a retry starts the count again.
    pub successes: u32,
}

/// Calls `attempt` until `check` has passed `successes` times in a row, says `Fail`, the
/// deadline passes, or `cancel` fires. Never sleeps past the deadline. Between passes of a
/// series it waits `backoff.first`.
pub async fn poll<T, F, Fut>(
    opts: Poll,
    cancel: &Cancel,
    mut attempt: F,
    check: impl Fn(&T) -> Check,
) -> Polled<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let mut pause = opts.backoff.first;
    let mut n = 0;
    let mut in_a_row = 0;
    loop {
        n += 1;
        let value = attempt().await;
        let wait = match check(&value) {
            Check::Fail => return Polled::Failed(value, n),
            Check::Pass => {
                in_a_row += 1;
                if in_a_row >= opts.successes.max(1) {
                    return Polled::Ready(value, n);
                }
                opts.backoff.first
            }
            Check::Retry => {
                in_a_row = 0;
                let p = pause;
                pause = (pause * 2).min(opts.backoff.max);
                p
            }
        };
        if cancel.is_cancelled() {
            return Polled::Cancelled(value, n);
        }
        let now = Instant::now();
        let Some(deadline) = opts.deadline.filter(|d| *d > now) else {
            return Polled::TimedOut(value, n);
        };
        let jitter = opts.jitter.clamp(0.0, 1.0) * crate::random::unit();
        let wait = wait.mul_f64(1.0 - jitter);
        tokio::select! {
            _ = tokio::time::sleep(wait.min(deadline - now)) => {}
            _ = cancel.cancelled() => return Polled::Cancelled(value, n),
        }
    }
}

/// Calls `attempt` until `done` says its value is ready, `deadline` passes (`None`: one attempt)
/// or `cancel` fires. Never sleeps past the deadline.
/// [`poll`] with one pass, no jitter and a yes/no check.
pub async fn poll_until<T, F, Fut>(
    deadline: Option<Instant>,
    backoff: Backoff,
    cancel: &Cancel,
    attempt: F,
    done: impl Fn(&T) -> bool,
) -> Polled<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let opts = Poll {
        deadline,
        backoff,
        jitter: 0.0,
        successes: 1,
    };
    poll(opts, cancel, attempt, |v| {
        if done(v) {
            Check::Pass
        } else {
            Check::Retry
        }
    })
    .await
}

/// How [`retry`] polls: from 1 s to 10 s with jitter between attempts (AWS's advice for
/// throttling).
fn retry_poll(deadline: Instant) -> Poll {
    Poll {
        deadline: Some(deadline),
        backoff: Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(10),
        },
        jitter: 0.5,
        successes: 1,
    }
}

/// The check of [`retry`]: an answer passes, what `retryable` allows is tried again, the rest
/// fails for good.
fn retry_check<T, E>(retryable: impl Fn(&E) -> bool) -> impl Fn(&Result<T, E>) -> Check {
    move |r| match r {
        Ok(_) => Check::Pass,
        Err(e) if retryable(e) => Check::Retry,
        Err(_) => Check::Fail,
    }
}

/// Calls `f` until it succeeds, fails in a way `retryable` says another attempt will not
/// change, `deadline` passes or `cancel` fires, backing off from 1 s to 10 s with jitter between
/// attempts (AWS's advice for throttling). The last answer is the result.
/// [`poll`] with a check that retries what `retryable` allows.
pub async fn retry<T, E, F, Fut>(
    deadline: Instant,
    cancel: &Cancel,
    f: F,
    retryable: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    match poll(retry_poll(deadline), cancel, f, retry_check(retryable)).await {
        Polled::Ready(v, _)
        | Polled::TimedOut(v, _)
        | Polled::Cancelled(v, _)
        | Polled::Failed(v, _) => v,
    }
}

/// An AWS step retried while AWS throttles (or errs transiently) until `deadline`, with the AWS
/// layer's own verdict of what is retryable: the answer; the last error when the deadline
/// passes or the error is permanent; [`Error::Interrupted`] when `cancel` fires before an
/// answer (the run's signal ends the step, not the throttling it was waiting out). The one
/// way gears calls AWS patiently: deploy, status, reap and amis alike.
pub async fn patiently<T, F, Fut>(cancel: &Cancel, deadline: Instant, f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    let check = retry_check(CloudError::is_retryable);
    match poll(retry_poll(deadline), cancel, f, check).await {
        Polled::Ready(v, _) | Polled::TimedOut(v, _) | Polled::Failed(v, _) => Ok(v?),
        // Only a retryable error is ever retried, so only one can be cut short.
        Polled::Cancelled(v, _) => v.map_err(|_| Error::Interrupted(cancel.ended_by())),
    }
}

/// `fut`, unless `cancel` fires first: then [`Error::Interrupted`] with the signal that ended
/// the run (and `fut` is dropped).
pub async fn unless_cancelled<T>(
    cancel: &Cancel,
    fut: impl Future<Output = T>,
) -> Result<T, Error> {
    tokio::select! {
        v = fut => Ok(v),
        _ = cancel.cancelled() => Err(Error::Interrupted(cancel.ended_by())),
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
    async fn a_check_that_fails_for_good_is_not_retried() {
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let r = poll(
            Poll {
                deadline: Some(start + Duration::from_secs(600)),
                backoff: B,
                jitter: 0.0,
                successes: 1,
            },
            &Cancel::new(),
            || async { calls.fetch_add(1, Ordering::SeqCst) + 1 },
            |n| if *n == 2 { Check::Fail } else { Check::Retry },
        )
        .await;
        assert_eq!(r, Polled::Failed(2, 2));
        assert_eq!(start.elapsed(), Duration::from_millis(250));
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_successes_restart_after_a_retry() {
        // pass, pass, retry, pass, pass, pass: ready at the 6th attempt with 3 in a row.
        let script = [true, true, false, true, true, true, true];
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let r = poll(
            Poll {
                deadline: Some(start + Duration::from_secs(600)),
                backoff: B,
                jitter: 0.0,
                successes: 3,
            },
            &Cancel::new(),
            || async { script[calls.fetch_add(1, Ordering::SeqCst) as usize] },
            |ok| if *ok { Check::Pass } else { Check::Retry },
        )
        .await;
        assert_eq!(r, Polled::Ready(true, 6));
        // Passes wait `first` (250 ms) each: 4 of them; the one retry waits 250 ms too.
        assert_eq!(start.elapsed(), Duration::from_millis(1250));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_shortens_pauses_within_its_share() {
        for _ in 0..20 {
            let start = Instant::now();
            let calls = AtomicU32::new(0);
            let r = poll(
                Poll {
                    deadline: Some(start + Duration::from_secs(600)),
                    backoff: Backoff {
                        first: Duration::from_secs(10),
                        max: Duration::from_secs(10),
                    },
                    jitter: 0.5,
                    successes: 1,
                },
                &Cancel::new(),
                || async { calls.fetch_add(1, Ordering::SeqCst) + 1 },
                |n| if *n == 2 { Check::Pass } else { Check::Retry },
            )
            .await;
            assert_eq!(r, Polled::Ready(2, 2));
            let waited = start.elapsed();
            assert!(
                waited > Duration::from_secs(5) && waited <= Duration::from_secs(10),
                "{waited:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retry_retries_what_may_pass_and_stops_at_what_will_not() {
        let calls = AtomicU32::new(0);
        let deadline = Instant::now() + Duration::from_secs(600);
        // Two transient failures, then an answer.
        let r: Result<u32, &str> = retry(
            deadline,
            &Cancel::new(),
            || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err("throttled"),
                    n => Ok(n),
                }
            },
            |e| *e == "throttled",
        )
        .await;
        assert_eq!(r, Ok(2));
        // A permanent error is answered at once.
        calls.store(0, Ordering::SeqCst);
        let r: Result<u32, &str> = retry(
            deadline,
            &Cancel::new(),
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("denied")
            },
            |e| *e == "throttled",
        )
        .await;
        assert_eq!((r, calls.load(Ordering::SeqCst)), (Err("denied"), 1));
        // Past the deadline, the last error.
        let start = Instant::now();
        let r: Result<u32, &str> = retry(
            start + Duration::from_secs(30),
            &Cancel::new(),
            || async { Err("throttled") },
            |e| *e == "throttled",
        )
        .await;
        assert_eq!(r, Err("throttled"));
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }

    fn throttled() -> CloudError {
        CloudError::api(
            "DescribeImages",
            "us-east-1",
            Some("Throttling"),
            "slow down",
        )
    }

    #[tokio::test(start_paused = true)]
    async fn patiently_cancelled_while_throttled_is_an_interruption() {
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            c2.cancel(crate::cancel::Signal::Term);
        });
        let start = Instant::now();
        let r: Result<(), Error> = patiently(&cancel, start + Duration::from_secs(600), || async {
            Err(throttled())
        })
        .await;
        assert!(
            matches!(r, Err(Error::Interrupted(crate::cancel::Signal::Term))),
            "{r:?}"
        );
        assert_eq!(r.unwrap_err().exit(), crate::exit::Exit::Terminated);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "ends at the signal"
        );
        // Already cancelled: the first attempt's throttling is not waited out either.
        let r: Result<(), Error> = patiently(
            &cancel,
            Instant::now() + Duration::from_secs(600),
            || async { Err(throttled()) },
        )
        .await;
        assert!(matches!(r, Err(Error::Interrupted(_))), "{r:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn patiently_answers_and_keeps_aws_errors_without_a_signal() {
        let calls = AtomicU32::new(0);
        let cancel = Cancel::new();
        let r = patiently(
            &cancel,
            Instant::now() + Duration::from_secs(600),
            || async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(throttled()),
                    n => Ok(n),
                }
            },
        )
        .await;
        assert_eq!(r.unwrap(), 1);
        // A permanent error stays the AWS error (exit 5), even once the run is cancelled.
        let denied = || async {
            Err::<(), _>(CloudError::api(
                "DeregisterImage",
                "us-east-1",
                Some("UnauthorizedOperation"),
                "no",
            ))
        };
        let r = patiently(&cancel, Instant::now() + Duration::from_secs(600), denied).await;
        assert!(matches!(r, Err(Error::Cloud(_))), "{r:?}");
        cancel.cancel(crate::cancel::Signal::Int);
        let r = patiently(&cancel, Instant::now() + Duration::from_secs(600), denied).await;
        assert!(matches!(r, Err(Error::Cloud(_))), "{r:?}");
        // Throttled past the deadline: the last error, exit 5.
        let r: Result<(), Error> = patiently(
            &Cancel::new(),
            Instant::now() + Duration::from_secs(30),
            || async { Err(throttled()) },
        )
        .await;
        assert_eq!(r.unwrap_err().exit(), crate::exit::Exit::Cloud);
    }

    #[tokio::test(start_paused = true)]
    async fn unless_cancelled_stops_a_step_at_the_signal() {
        let cancel = Cancel::new();
        assert_eq!(unless_cancelled(&cancel, async { 7 }).await.unwrap(), 7);
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            c2.cancel(crate::cancel::Signal::Int);
        });
        let r = unless_cancelled(&cancel, std::future::pending::<()>()).await;
        assert!(
            matches!(r, Err(Error::Interrupted(crate::cancel::Signal::Int))),
            "{r:?}"
        );
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
