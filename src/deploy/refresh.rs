//! The instance-refresh strategy: AWS's refresh, started and waited on; cancelled before any
//! rollback.
use super::*;

impl<F: Fleet, L: LockTable> Roll<'_, F, L> {
    pub(super) async fn refresh(&self, st: &State) -> Result<Rolled, Error> {
        let k = self.settings.batch.size(st.desired);
        let max_healthy = (100 + k * 100 / st.desired.max(1)).clamp(110, 200);
        let d = self.deadline();
        let id = patiently(self.cancel, d, || {
            self.fleet
                .start_refresh(&self.name, self.settings.min_healthy as i32, max_healthy)
        })
        .await?;
        *self.refresh_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
        self.say(&format!(
            "instance refresh {id} started: healthy capacity between 100% and {max_healthy}%"
        ));
        let batches = (st.desired.max(1) as u32).div_ceil(k.max(1) as u32) + 1;
        let deadline = Instant::now() + self.settings.gate_timeout * batches;
        let mut last = -1;
        loop {
            let d = self.deadline();
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
                        crate::ui::human_duration(self.settings.gate_timeout * batches)
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
                            crate::ui::human_duration(self.settings.gate_timeout)
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
