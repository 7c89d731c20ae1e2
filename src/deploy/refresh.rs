//! The instance-refresh strategy: AWS's refresh, started and waited on; cancelled before any
//! rollback.
use crate::aws::{Fleet, LockTable};
use crate::deploy::roll::{Roll, Rolled};
use crate::deploy::state::State;
use crate::deploy::Batch;
use crate::error::Error;
use crate::wait::patiently;
use tokio::time::Instant;

/// The refresh's healthy-percentage preferences for a group of `desired`: at least
/// `min_healthy`, at most 100% plus the batch's share (110% to 200%, AWS's range). AWS refuses a
/// span of more than 100 points between them (a ValidationError once the deploy has started),
/// so that is refused here, before any change.
pub fn refresh_preferences(
    min_healthy: u32,
    batch: Batch,
    desired: i32,
) -> Result<(i32, i32), String> {
    let k = batch.size(desired);
    let max = (100 + k * 100 / desired.max(1)).clamp(110, 200);
    let min = min_healthy.min(100) as i32;
    if max - min > 100 {
        return Err(format!(
            "--strategy instance-refresh with --min-healthy {min}% and --batch {batch} (up to {max}% of the group healthy at once): AWS's instance refresh allows at most 100 points between its minimum and maximum healthy percentages; give --min-healthy {}% or more, or a smaller --batch",
            max - 100
        ));
    }
    Ok((min, max))
}

impl<F: Fleet, L: LockTable> Roll<'_, F, L> {
    pub(super) async fn refresh(&self, st: &State) -> Result<Rolled, Error> {
        let k = self.settings.batch().size(st.desired);
        let (min_healthy, max_healthy) =
            refresh_preferences(self.settings.min_healthy, self.settings.batch(), st.desired)
                .map_err(|why| Error::usage(why, None))?;
        let d = self.deadline();
        let id = patiently(self.cancel, d, || {
            self.fleet
                .start_refresh(&self.name, min_healthy, max_healthy)
        })
        .await?;
        *self.refresh_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
        self.say(&format!(
            "instance refresh {id} started: healthy capacity between {min_healthy}% and {max_healthy}%"
        ));
        let batches = (st.desired.max(1) as u32).div_ceil(k.max(1) as u32) + 1;
        let deadline = Instant::now() + self.settings.gate_timeout * batches;
        let mut last = -1;
        loop {
            let d = self.deadline();
            if let Some(why) = self.alarm_fired(Instant::now()).await? {
                return Ok(Rolled::GateFailed(
                    format!("instance refresh {id}: {why}"),
                    0,
                ));
            }
            let (status, pct, reason) = patiently(self.cancel, d, || {
                self.fleet.refresh_status(&self.name, &id)
            })
            .await?;
            match status.as_str() {
                "Successful" => {
                    self.say(&format!("instance refresh {id}: successful"));
                    return Ok(Rolled::Done(1));
                }
                "Failed" | "Cancelled" | "Cancelling" | "RollbackInProgress" | "RollbackFailed"
                | "RollbackSuccessful" => {
                    return Ok(Rolled::GateFailed(
                        format!("instance refresh {id} {status}: {reason}"),
                        0,
                    ));
                }
                _ => {}
            }
            if pct != last {
                self.say(&format!("instance refresh {id}: {status}, {pct}% done"));
                last = pct;
            }
            if Instant::now() >= deadline {
                let _ = self.fleet.cancel_refresh(&self.name).await;
                return Ok(Rolled::GateFailed(
                    format!(
                        "instance refresh {id} not finished after {} ({pct}% done); cancelled",
                        crate::text::human_duration(self.settings.gate_timeout * batches)
                    ),
                    0,
                ));
            }
            self.sleep().await?;
        }
    }

    /// Stops the line after a failed rollback: a STOP lock on the group (and in the lock
    /// table) until a human runs `--unlock`. Retried like any call, for up to a minute; what
    pub(super) async fn stop_refresh(&self, id: Option<&str>) {
        let d = self.deadline();
        let _ = patiently(self.cancel, d, || self.fleet.cancel_refresh(&self.name)).await;
        let Some(id) = id else {
            let _ = self.sleep().await;
            return;
        };
        loop {
            match patiently(self.cancel, d, || self.fleet.refresh_status(&self.name, id)).await {
                Ok((status, _, _))
                    if matches!(
                        status.as_str(),
                        "Pending" | "InProgress" | "Cancelling" | "RollbackInProgress"
                    ) =>
                {
                    if Instant::now() >= d {
                        self.say(&format!(
                            "instance refresh {id} still {status} after {}: rolling back beside it",
                            crate::text::human_duration(self.settings.gate_timeout)
                        ));
                        return;
                    }
                }
                _ => return,
            }
            if self.sleep().await.is_err() {
                return;
            }
        }
    }
}
