//! Terminating an instance gears launched, until EC2 says it is going: the test stage's
//! cleanup step and `gears reap` alike.

use crate::aws::{CloudError, Instance, Instances};
use crate::cancel::Cancel;
use crate::wait::{poll, Backoff, Check, Poll, Polled};
use std::time::Duration;
use tokio::time::Instant;

/// How long gears keeps asking EC2 to terminate an instance before it gives up and says which
/// instance a human must terminate.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// Asks EC2 to terminate `id` until it is shutting down or gone, retrying throttling and
/// transient errors with backoff, until `deadline` or `cancel` (cleanup's own token). Access
/// denied is not retried. The error names the instance for the operator.
pub async fn until_gone<I: Instances>(
    port: &I,
    id: &str,
    cancel: &Cancel,
    deadline: Instant,
) -> Result<(), String> {
    let unknown = std::sync::atomic::AtomicU32::new(0);
    let r = poll(
        Poll {
            deadline: Some(deadline),
            backoff: Backoff {
                first: Duration::from_secs(1),
                max: Duration::from_secs(10),
            },
            jitter: 0.2,
            successes: 1,
        },
        cancel,
        || async {
            port.terminate(id).await?;
            port.describe(id).await
        },
        |r: &Result<Option<Instance>, CloudError>| match r {
            // EC2 may not know an instance launched a moment ago: "not found" counts as gone
            // only once it has been said a few times, a few seconds apart.
            Ok(None) if unknown.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 3 => {
                Check::Pass
            }
            Ok(None) => Check::Retry,
            Ok(Some(i)) if i.is_gone() => Check::Pass,
            Ok(Some(_)) => Check::Retry,
            Err(e) if e.is_retryable() => Check::Retry,
            Err(_) => Check::Fail,
        },
    )
    .await;
    let by_hand = format!(
        "terminate it by hand: aws ec2 terminate-instances --region {} --instance-ids {id}",
        port.region()
    );
    match r {
        Polled::Ready(..) => Ok(()),
        Polled::Failed(Err(e), _) => Err(format!("{e}; {by_hand}")),
        Polled::TimedOut(last, n) => Err(format!(
            "{id} in {} is still not terminating after {n} attempts ({}); {by_hand}",
            port.region(),
            match last {
                Err(e) => e.to_string(),
                Ok(i) => format!("state {}", i.map(|i| i.state).unwrap_or_default()),
            }
        )),
        Polled::Cancelled(..) | Polled::Failed(..) => Err(format!(
            "stopped by a second signal before {id} was terminating; {by_hand}"
        )),
    }
}
