//! The lock kept alive while a group's deploy runs, on its own cadence (never a write per
//! poll): the lock table's lease and the group's tag, renewed every quarter of the stale
//! limit; lost when another run took it over. And the pace of the looks between steps.
use crate::aws::{Fleet, LockTable};
use crate::deploy::lease::lease_period;
use crate::deploy::lock::{held_by_another, lease_times, refused, stopped, Holder, LockValue};
use crate::deploy::roll::Roll;
use crate::error::Error;
use crate::wait::patiently;
use std::time::Duration;
use tokio::time::Instant;

impl<F: Fleet, L: LockTable> Roll<'_, F, L> {
    /// The lock table first (`--lock-table`): a compare-and-swap no racing writer can slip
    /// past. A lock renewed within the stale limit belongs to a live deploy; an older one to a
    /// killed deploy, which the same command continues (the group's tags say what it had
    /// reached, and refuse another AMI).
    pub(super) async fn take_table_lock(&self) -> Result<(), Error> {
        let Some(t) = self.table else {
            return Ok(());
        };
        let (now, stale) = lease_times(self.settings);
        let mine = LockValue::held_now(&self.run, self.who).write();
        let d = self.deadline();
        let held = patiently(self.cancel, d, || {
            t.acquire(&self.lock_key, &self.run, &mine, now, stale)
        })
        .await?;
        match held {
            None => Ok(()),
            Some(h) if h.is_stop() => Err(stopped(
                &self.name,
                format!("the line is stopped: the lock table holds {} for {h}", self.lock_key),
                "a rollback failed here: look at the group, then `gears deploy --unlock --lock-table ...`",
            )),
            Some(h) => Err(held_by_another(
                &self.name,
                &Holder::of_table(&h, &self.lock_key),
                self.settings.lock_stale,
                None,
            )),
        }
    }

    /// Gives the lock table's lock back (best effort: a lock not given back goes stale).
    pub(super) async fn give_back(&self) {
        if let Some(t) = self.table {
            let _ = t.release(&self.lock_key, &self.run).await;
        }
    }

    pub(super) fn lost(&self) -> Error {
        refused(
            &self.name,
            "another run took the lock over in the lock table (or it was unlocked); stopping here"
                .into(),
            "that run finishes the deploy; look at the group if none does",
        )
    }

    /// Keeps the lock alive every lease period ([`lease_period`]: a quarter of the stale limit,
    /// 1 to 15 s) for as long as it runs, whatever the loop waits on (smoke tests, throttled
    /// calls, a long `--poll`), so a live deploy's lock never looks stale; ends only when the
    /// lock is lost. The lock table's item is renewed here; the group's tag, once this run read
    /// its lock back, by the region's renewal of all its locks in one call
    /// ([`crate::deploy::lease::Leases`]). A slow or failing renewal is tried again at the next
    /// beat.
    pub(super) async fn heartbeat(&self) -> Error {
        let every = lease_period(self.settings.lock_stale);
        loop {
            // The tag lock held from the first quarter period after this run read it back.
            for _ in 0..4 {
                if self.tag_ours.load(std::sync::atomic::Ordering::SeqCst) {
                    self.looks.leases.hold(&self.name);
                }
                tokio::time::sleep(every / 4).await;
            }
            let beat = async {
                if let Some(t) = self.table {
                    let value = LockValue::held_now(&self.run, self.who).write();
                    let (now, _) = lease_times(self.settings);
                    if !t.renew(&self.lock_key, &self.run, &value, now).await? {
                        return Err(self.lost());
                    }
                }
                Ok::<(), Error>(())
            };
            if let Ok(Err(e @ Error::Locked { .. })) = tokio::time::timeout(every, beat).await {
                return e;
            }
        }
    }

    /// The group's tag lock no longer renewed (the steps its heartbeat ran beside ended): once
    /// this returns, no renewal of it is in flight, so a lock removed after it stays removed.
    pub(super) async fn let_go(&self) {
        if self.tag_ours.load(std::sync::atomic::Ordering::SeqCst) {
            self.looks.leases.let_go(&self.name).await;
        }
    }

    /// `fut` with the lock renewed beside it; a lost lock ends it.
    pub(super) async fn with_heartbeat<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let r = tokio::select! {
            r = fut => r,
            e = self.heartbeat() => Err(e),
        };
        self.let_go().await;
        r
    }

    /// Waits one `--poll`, or less when the run is cancelled (an error then).
    pub(super) async fn sleep(&self) -> Result<(), Error> {
        self.sleep_for(self.settings.poll).await
    }

    pub(super) async fn sleep_for(&self, d: Duration) -> Result<(), Error> {
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = self.cancel.cancelled() => Err(Error::Interrupted(self.cancel.ended_by())),
        }
    }

    /// The pace of this group's looks.
    pub(super) fn pace(&self) -> Pace {
        Pace::new(self.settings.poll)
    }
}

/// How long to wait before the next look: soon after a change (what gears waits for is most
/// likely to appear then), backing off to `--poll` as the wait goes on. The pause is an
/// eighth of the time since the last change, between [`Pace::FIRST`] and `--poll`: gears acts
/// within about 1/8 of the wait (a batch healthy 4 s after launch is seen within 0.5 s), and a
/// long wait costs one look per `--poll`, as before.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    poll: Duration,
    since: Instant,
}

impl Pace {
    /// The shortest pause.
    pub const FIRST: Duration = Duration::from_millis(250);

    pub fn new(poll: Duration) -> Pace {
        Pace {
            poll,
            since: Instant::now(),
        }
    }

    /// Something changed (gears acted): look again soon.
    pub fn changed(&mut self) {
        self.since = Instant::now();
    }

    /// The oldest look the next step may act on: one begun after the last change and within
    /// the last pause (so groups of a region share a look, never one from before their change).
    pub fn fresh_since(&self) -> Instant {
        let now = Instant::now();
        self.since.max(now.checked_sub(self.pause()).unwrap_or(now))
    }

    /// The pause before the next look.
    pub fn pause(&self) -> Duration {
        (self.since.elapsed() / 8).clamp(Self::FIRST.min(self.poll), self.poll)
    }

    pub(super) async fn sleep<F: Fleet, L: LockTable>(
        &self,
        roll: &Roll<'_, F, L>,
    ) -> Result<(), Error> {
        roll.sleep_for(self.pause()).await
    }
}
