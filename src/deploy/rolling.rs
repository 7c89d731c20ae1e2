//! The rolling strategy: gears' own batches, surge then retire (or in place below 100%
//! `--min-healthy`), gated by health. The planner ([`super::plan::next`]) decides each step;
//! this loop looks, carries the step out and says what it did.
use crate::aws::{Fleet, Group, LockTable};
use crate::deploy::gate::{held_by_hooks, GateMemory};
use crate::deploy::lock::{refused, stopped, LockValue};
use crate::deploy::roll::{counting, Roll, Rolled};
use crate::deploy::state::State;
use crate::deploy::{plan, LOCK_TAG};
use crate::error::Error;
use crate::wait::patiently;
use plan::{Failure, Step, Waiting};
use std::time::Duration;
use tokio::time::Instant;

impl<F: Fleet, L: LockTable> Roll<'_, F, L> {
    /// Batch by batch until the planner says done or failed.
    pub(super) async fn roll(&self, st: &State) -> Result<Rolled, Error> {
        let terms = self.terms(st);
        let mut mem = plan::Memory::default();
        let mut batch_deadline = self.deadline();
        let mut gate = GateMemory::default();
        let mut last_say = Instant::now();
        let mut pace = self.pace();
        let hooks = self.launch_hooks().await?;
        // The bake time: a batch launched is gated this long once healthy before gears acts
        // on it (retires old instances, starts the next batch, or finishes).
        let mut unbaked = false;
        let mut healthy_since: Option<Instant> = None;
        loop {
            let since = pace.fresh_since();
            let g = counting(self.group_seen_since(since).await?);
            self.still_ours(&g)?;
            let look = self.look(&g, since, Some(&mut gate)).await?;
            if let Some(why) = self.alarm_fired(since).await? {
                return Ok(Rolled::GateFailed(why, mem.batches));
            }
            mem.timed_out = Instant::now() >= batch_deadline;
            let step = plan::next(&look, &terms, &mut mem);
            let acts = matches!(step, Step::Retire { .. } | Step::Done | Step::Launch { .. });
            if self.baking(acts, &mut unbaked, &mut healthy_since, &mut last_say, &mem) {
                pace.sleep(self).await?;
                continue;
            }
            match step {
                Step::Done => return Ok(Rolled::Done(mem.batches)),
                Step::Fail(f) => {
                    let why = self.failure(&f, &g, &look, &terms, &hooks, &gate);
                    return Ok(Rolled::GateFailed(why, mem.batches));
                }
                Step::Retire { ids, last } => {
                    mem.batches += 1;
                    self.retire(&ids, mem.batches).await?;
                    last_say = Instant::now();
                    pace.changed();
                    if last {
                        // The last batch: the group may now be all new.
                        continue;
                    }
                }
                Step::Launch {
                    surge,
                    in_place,
                    desired,
                    max,
                } => {
                    self.launch(&terms, surge, &in_place, desired, max).await?;
                    unbaked = true;
                    if surge == 0 {
                        // Nothing to retire later: the batch is this replacement.
                        mem.batches += 1;
                    }
                    let old = look.members.iter().filter(|m| m.new == Some(false)).count();
                    self.say(&launch_words(
                        &mem, surge, &in_place, desired, max, old, &terms,
                    ));
                    last_say = Instant::now();
                    batch_deadline = self.deadline() + self.settings.bake_time;
                    pace.changed();
                    continue;
                }
                Step::Wait(w) => {
                    if last_say.elapsed() >= Duration::from_secs(30) {
                        self.say(&waiting_words(w, &g, &look, &hooks, &gate));
                        last_say = Instant::now();
                    }
                }
            }
            pace.sleep(self).await?;
        }
    }

    /// Whether the batch launched is still baking (`acts`: the planner would act on it now):
    /// the bake time runs from the first look that finds it healthy, said at once, then every
    /// 30 s.
    fn baking(
        &self,
        acts: bool,
        unbaked: &mut bool,
        healthy_since: &mut Option<Instant>,
        last_say: &mut Instant,
        mem: &plan::Memory,
    ) -> bool {
        if !acts {
            *healthy_since = None;
            return false;
        }
        if !*unbaked || self.settings.bake_time.is_zero() {
            return false;
        }
        // The first look that finds the batch healthy says so at once (real time moves
        // between two calls, so "no time elapsed" cannot tell it).
        let first = healthy_since.is_none();
        let since = *healthy_since.get_or_insert_with(Instant::now);
        let left = self.settings.bake_time.saturating_sub(since.elapsed());
        if !left.is_zero() {
            if first || last_say.elapsed() >= Duration::from_secs(30) {
                self.say(&format!(
                    "batch {} healthy: baking, {} left",
                    mem.batches + 1,
                    crate::text::human_duration(left)
                ));
                *last_say = Instant::now();
            }
            return true;
        }
        *unbaked = false;
        *healthy_since = None;
        false
    }

    /// Retires the old instances of batch `batch` (its new ones are healthy): each terminated
    /// with the group's desired capacity down by one.
    async fn retire(&self, ids: &[String], batch: u32) -> Result<(), Error> {
        for id in ids {
            let d = self.deadline();
            patiently(self.cancel, d, || self.fleet.terminate_member(id, true)).await?;
        }
        self.say(&format!(
            "batch {batch}: new instances healthy; retired {}",
            ids.join(", ")
        ));
        Ok(())
    }

    /// The planner's terms for this deploy.
    pub(super) fn terms(&self, st: &State) -> plan::Terms {
        plan::Terms {
            min: st.min,
            max: st.max,
            desired: st.desired,
            batch: self.settings.batch().size(st.desired),
            min_healthy: self.settings.min_healthy,
        }
    }

    /// Starts a batch: capacity up by `surge`, `in_place` terminated without lowering desired.
    async fn launch(
        &self,
        t: &plan::Terms,
        surge: i32,
        in_place: &[String],
        desired: i32,
        max: i32,
    ) -> Result<(), Error> {
        let d = self.deadline();
        if surge > 0 {
            patiently(self.cancel, d, || {
                self.fleet.set_capacity(&self.name, t.min, max, desired)
            })
            .await?;
        }
        for id in in_place {
            patiently(self.cancel, d, || self.fleet.terminate_member(id, false)).await?;
        }
        Ok(())
    }

    /// Still ours? A run that took over a stale lock owns the group now; a lock removed by
    /// `--unlock` means a human took the group in hand.
    pub(super) fn still_ours(&self, g: &Group) -> Result<(), Error> {
        match g.tags.get(LOCK_TAG).map(|v| LockValue::parse(v)) {
            Some(Ok(l)) if !l.is_stop() && l.run() == self.run => Ok(()),
            Some(Ok(l)) => Err(refused(
                &self.name,
                format!("another run took the lock over ({l}); stopping here"),
                "that run finishes the deploy",
            )),
            Some(Err(why)) => Err(stopped(
                &self.name,
                format!("its lock tag was overwritten with a value gears did not write ({why}); stopping here"),
                "look at the group: who wrote the lock? Then `gears deploy --unlock` and run again",
            )),
            None => Err(refused(
                &self.name,
                "the group's lock was removed (`--unlock`) while this deploy ran; stopping here"
                    .into(),
                "look at the group: run the same command to continue the deploy, or `--abort` to undo it",
            )),
        }
    }

    /// Why a roll failed, in words.
    fn failure(
        &self,
        f: &Failure,
        g: &Group,
        look: &plan::Look,
        terms: &plan::Terms,
        hooks: &[crate::aws::LaunchHook],
        gate: &GateMemory,
    ) -> String {
        match f {
            Failure::NotHealthy { batch } => {
                let bad: Vec<&str> = look
                    .members
                    .iter()
                    .filter(|m| m.new == Some(true) && !m.healthy)
                    .map(|m| m.id.as_str())
                    .collect();
                format!(
                    "batch {batch} not healthy after {}: {} of {} instances running, unhealthy new: {}",
                    crate::text::human_duration(self.settings.gate_timeout),
                    g.members.len(),
                    g.desired,
                    if bad.is_empty() { "none (still launching)".into() } else { bad.join(", ") }
                ) + &held_by_hooks(g, hooks)
                    + &gate.smoke_failure.as_ref().map(|f| format!(" ({f})")).unwrap_or_default()
            }
            Failure::Churn { batches, old } => format!(
                "{batches} batches and still {old} instances not on {}: the group launches something else (was its launch spec changed?)",
                self.ami
            ),
            Failure::NotSettled => format!(
                "the group did not settle: {} of {} instances (the deploy started at {}), new ones healthy: {}",
                g.members.len(),
                g.desired,
                terms.desired,
                look.members.iter().filter(|m| m.new == Some(true)).all(|m| m.healthy)
            ),
        }
    }
}

/// `batch N: launching ...; replacing ... in place; K old left`.
fn launch_words(
    mem: &plan::Memory,
    surge: i32,
    in_place: &[String],
    desired: i32,
    max: i32,
    old: usize,
    t: &plan::Terms,
) -> String {
    format!(
        "batch {}: {}{}; {old} old left",
        if surge == 0 {
            mem.batches
        } else {
            mem.batches + 1
        },
        if surge > 0 {
            format!("launching {surge} on the new AMI (desired {desired}, max {max})")
        } else {
            String::new()
        },
        if in_place.is_empty() {
            String::new()
        } else {
            format!(
                "{}replacing {} in place (--min-healthy {}%)",
                if surge > 0 { ", " } else { "" },
                in_place.join(", "),
                t.min_healthy
            )
        },
    )
}

/// `waiting: N new healthy, ...` every 30 s, so a log never goes silent.
fn waiting_words(
    _why: Waiting,
    g: &Group,
    look: &plan::Look,
    hooks: &[crate::aws::LaunchHook],
    gate: &GateMemory,
) -> String {
    let healthy_new = look
        .members
        .iter()
        .filter(|m| m.new == Some(true) && m.healthy)
        .count();
    format!(
        "waiting: {healthy_new} new healthy, {} of {} instances running{}{}",
        g.members.len(),
        g.desired,
        held_by_hooks(g, hooks),
        gate.smoke_failure
            .as_ref()
            .map(|f| format!("; last: {f}"))
            .unwrap_or_default()
    )
}
