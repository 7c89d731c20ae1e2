//! Back to the old launch spec and old-AMI instances, capacity as it was; and when that
//! fails, the line stopped (a STOP lock until a human unlocks) with the group's state in words.
//! The planner ([`super::plan::back`]) decides each step.
use crate::aws::{Fleet, Group, LockTable, TemplateRef};
use crate::deploy::lock::{refused, stopped, LockValue, KEPT, STOP_REASON};
use crate::deploy::roll::{counting, Roll, Undone};
use crate::deploy::start::gears_copy_base;
use crate::deploy::state::{prior_tags, State};
use crate::deploy::{plan, LOCK_TAG, STATE_TAG, TAGS_TAG};
use crate::error::Error;
use crate::wait::patiently;
use plan::Back;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

impl<F: Fleet, L: LockTable> Roll<'_, F, L> {
    /// Rolls the recorded deploy back. `Ok(Ok(()))`: back as it was; `Ok(Err(words))`: the
    /// rollback failed, the line is stopped, and the words say what was left and the group's
    /// state now; `Err`: another run took the lock over (that run owns the group).
    pub(super) async fn roll_back(&self, st: &State) -> Result<Result<(), String>, Error> {
        match self.rollback_held(st).await {
            Ok(()) => Ok(Ok(())),
            Err(Undone::Lost(e)) => Err(e),
            Err(Undone::Failed(why)) => {
                let note = self.stop_the_line().await;
                Ok(Err(format!(
                    "rollback failed: {why}{note}; {}",
                    self.state_now().await
                )))
            }
        }
    }

    /// Stops the line after a failed rollback: a STOP lock on the group (and in the lock
    /// table) until a human runs `--unlock`. Retried like any call, for up to a minute; what
    /// could not be written is said (returned as `; ...`, empty when all was written).
    pub(super) async fn stop_the_line(&self) -> String {
        let stop = LockValue::Stop {
            run: self.run.clone(),
            reason: STOP_REASON.into(),
        }
        .write();
        let d = Instant::now() + Duration::from_secs(60);
        let tag = BTreeMap::from([(LOCK_TAG.to_owned(), stop.clone())]);
        let mut missing = Vec::new();
        if patiently(self.cancel, d, || {
            self.fleet.put_tags(&self.name, &tag, false)
        })
        .await
        .is_err()
        {
            missing.push("the group's tag");
        }
        if let Some(t) = self.table {
            let kept = patiently(self.cancel, d, || {
                t.acquire(&self.lock_key, &self.run, &stop, KEPT, i64::MIN)
            })
            .await;
            if !matches!(kept, Ok(None)) {
                missing.push("the lock table");
            }
        }
        if missing.is_empty() {
            String::new()
        } else {
            format!(
                "; the STOP lock could not be written to {}: look at the group before any deploy",
                missing.join(" or ")
            )
        }
    }

    /// The group as it is now, in words, for a human after a failed rollback (best effort).
    async fn state_now(&self) -> String {
        let Ok(g) = self.group().await else {
            return "the group's state could not be read: look at it in the console".into();
        };
        let images = self.images(&counting(g.clone())).await.unwrap_or_default();
        let new = images.values().filter(|i| **i == self.ami).count();
        format!(
            "the group now: min {} max {} desired {}, {} in service ({new} on {}, {} on other AMIs), suspended: {}; launch spec {} (look at it, then `gears deploy --unlock`)",
            g.min,
            g.max,
            g.desired,
            images.len(),
            self.ami,
            images.len() - new,
            if g.suspended.is_empty() { "nothing".into() } else { g.suspended.join(", ") },
            match (&g.template, &g.launch_configuration) {
                (Some(t), _) => format!("template {} version {}", t.id, t.version),
                (None, Some(c)) => format!("launch configuration {c}"),
                _ => "none".into(),
            }
        )
    }

    /// The rollback's steps with the lock renewed beside them; the restore after (a renewal
    /// must not put the lock back once it was removed).
    async fn rollback_held(&self, st: &State) -> Result<(), Undone> {
        let steps = tokio::select! {
            r = self.rollback_steps(st) => r,
            e = self.heartbeat() => Err(Undone::Lost(e)),
        };
        self.let_go().await;
        steps?;
        self.finish(st)
            .await
            .map_err(|e| Undone::Failed(e.to_string()))
    }

    /// The launch spec to go back to: `$Default`, unless someone moved the template's default
    /// version during the deploy: then the version it meant when the deploy started (the one
    /// the old instances came from), and the group stays pinned to it.
    async fn way_back(&self, st: &State) -> String {
        if st.from != "$Default" || st.fromn.is_empty() || st.lc {
            return st.from.clone();
        }
        let t = TemplateRef {
            id: st.lt.clone(),
            version: st.from.clone(),
        };
        let d = self.deadline();
        match patiently(self.cancel, d, || self.fleet.resolve_version(&t)).await {
            Ok(now) if now != st.fromn => {
                self.say(&format!(
                    "the template's default version moved during the deploy ({} → {now}): rolling back to version {}, and the group stays on it",
                    st.fromn, st.fromn
                ));
                st.fromn.clone()
            }
            _ => st.from.clone(),
        }
    }

    /// Back to the old template and old-AMI instances, capacity as it was (all but the
    /// restore of [`Roll::finish`]).
    async fn rollback_steps(&self, st: &State) -> Result<(), Undone> {
        let e = |e: Error| match e {
            e @ Error::Locked { .. } => Undone::Lost(e),
            e => Undone::Failed(e.to_string()),
        };
        self.say(&format!(
            "rolling back to launch template version {} and {} instances",
            st.from, st.desired
        ));
        let back = self.way_back(st).await;
        self.point_at(st, &back).await.map_err(e)?;
        let deadline = self.deadline();
        let terms = self.terms(st);
        let mut mem = plan::BackMemory::default();
        let mut pace = self.pace();
        // The lock as the rollback found it (a killed run's, for --abort): another value that
        // is not ours means another run took the group over.
        let mut found: Option<Option<String>> = None;
        loop {
            let g = counting(self.group().await.map_err(e)?);
            self.not_taken_over(&g, &mut found)?;
            let look = self.look(&g, Instant::now(), None).await.map_err(e)?;
            mem.timed_out = Instant::now() >= deadline;
            let d = self.deadline();
            match plan::back(&look, &terms, &mut mem) {
                Back::Done => break,
                Back::Fail { new } => {
                    return Err(Undone::Failed(format!(
                        "group {}: {} members ({} on the new AMI: {}), desired {} (was {}), not all healthy; template set back to version {}",
                        self.name,
                        g.members.len(),
                        new.len(),
                        new.join(", "),
                        g.desired,
                        st.desired,
                        st.from
                    )));
                }
                Back::Retire(ids) => {
                    for id in &ids {
                        patiently(self.cancel, d, || self.fleet.terminate_member(id, true))
                            .await
                            .map_err(e)?;
                    }
                    pace.changed();
                    continue;
                }
                Back::Capacity { desired, max } => {
                    patiently(self.cancel, d, || {
                        self.fleet.set_capacity(&self.name, st.min, max, desired)
                    })
                    .await
                    .map_err(e)?;
                    pace.changed();
                    continue;
                }
                Back::Wait => {}
            }
            pace.sleep(self).await.map_err(e)?;
        }
        self.restore_instance_tags().await.map_err(e)
    }

    /// `Err` when another run took the lock over during the rollback (or a value gears did not
    /// write replaced it); `found` keeps the lock the rollback found.
    fn not_taken_over(&self, g: &Group, found: &mut Option<Option<String>>) -> Result<(), Undone> {
        let lock = g.tags.get(LOCK_TAG).cloned();
        let found = found.get_or_insert_with(|| lock.clone());
        let Some(l) = &lock else { return Ok(()) };
        if Some(l) == found.as_ref() {
            return Ok(());
        }
        match LockValue::parse(l) {
            Ok(v) if v.is_stop() || v.run() == self.run => Ok(()),
            Ok(v) => Err(Undone::Lost(refused(
                &self.name,
                format!("another run took the lock over during the rollback ({v}); stopping here"),
                "that run owns the group now",
            ))),
            Err(why) => Err(Undone::Lost(stopped(
                &self.name,
                format!("during the rollback its lock tag was overwritten with a value gears did not write ({why}): `{l}`; stopping here"),
                "look at the group: who wrote the lock? Then `gears deploy --abort` with the AMI finishes the rollback",
            ))),
        }
    }

    /// The instance tags as they were before the deploy.
    async fn restore_instance_tags(&self) -> Result<(), Error> {
        let g = self.group().await?;
        let Some(value) = g.tags.get(TAGS_TAG) else {
            return Ok(());
        };
        let before = prior_tags(value).map_err(|why| {
            stopped(
                &self.name,
                why,
                "the instance tags were not put back: set them by hand, then `gears deploy --unlock`",
            )
        })?;
        let put: BTreeMap<String, String> = before
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        let gone: Vec<String> = before
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        let d = self.deadline();
        if !put.is_empty() {
            patiently(self.cancel, d, || {
                self.fleet.put_tags(&self.name, &put, true)
            })
            .await?;
        }
        patiently(self.cancel, d, || self.fleet.delete_tags(&self.name, &gone)).await
    }

    /// Capacity as it was, processes resumed, state and lock removed.
    pub(super) async fn finish(&self, st: &State) -> Result<(), Error> {
        self.say(&format!(
            "restoring capacity {}/{}/{}, resuming processes, unlocking",
            st.min, st.max, st.desired
        ));
        let d = self.deadline();
        patiently(self.cancel, d, || {
            self.fleet
                .set_capacity(&self.name, st.min, st.max, st.desired)
        })
        .await?;
        patiently(self.cancel, d, || {
            self.fleet.set_processes(&self.name, &st.susp, false)
        })
        .await?;
        let keys = [
            STATE_TAG.to_owned(),
            TAGS_TAG.to_owned(),
            LOCK_TAG.to_owned(),
        ];
        patiently(self.cancel, d, || self.fleet.delete_tags(&self.name, &keys)).await
    }

    /// What an undone deploy made and no group uses: its launch configuration copy
    /// ([`Roll::tidy_configuration`]) or its launch template version ([`Roll::forget_version`]).
    pub(super) async fn tidy_abandoned(&self, st: &State) {
        if st.lc {
            self.tidy_configuration(&st.to).await;
        } else {
            self.forget_version(Abandoned {
                lt: &st.lt,
                fromn: &st.fromn,
                to: &st.to,
                run: &st.run,
                gone: None,
            })
            .await;
        }
    }

    /// The template version an undone deploy made, deleted when it is still the template's
    /// latest, not its default, and no group of the region points at it: a group on `$Latest`
    /// the deploy never reached (a run killed after its first group, then `--abort`) launches
    /// the version before it again, not the undone AMI. The deploy went from version `fromn` of
    /// template `lt` to `to`; when `to` is not known (a run killed before it recorded it), the
    /// latest version is the deploy's when it launches the undone AMI and is newer than `fromn`.
    /// Best effort, said.
    pub(super) async fn forget_version(&self, a: Abandoned<'_>) {
        let Abandoned {
            lt,
            fromn,
            to,
            run,
            gone,
        } = a;
        let d = self.deadline();
        let at = |version: &str| TemplateRef {
            id: lt.to_owned(),
            version: version.to_owned(),
        };
        let (latest, default) = (at("$Latest"), at("$Default"));
        let now = async {
            let l = patiently(self.cancel, d, || self.fleet.version_image(&latest)).await?;
            let f = patiently(self.cancel, d, || self.fleet.resolve_version(&default)).await?;
            static ANY: BTreeMap<String, String> = BTreeMap::new();
            let groups = patiently(self.cancel, d, || self.fleet.groups(&ANY, &[])).await?;
            Ok::<_, Error>((l, f, groups))
        };
        let ((l, image), f, groups) = match now.await {
            Ok(found) => found,
            Err(e) => {
                return self.say(&format!(
                    "warning: the launch template version the deploy made in {lt} may be left: {}",
                    e.render().trim().trim_start_matches("error: ")
                ))
            }
        };
        let number = |v: &str| v.parse::<u64>().unwrap_or(0);
        let made = match to {
            "" => image == self.ami && number(&l) > number(fromn),
            to => l == to,
        };
        let ours = at(&l);
        if !made || f == l || in_use(&groups, &ours, run, gone) {
            return;
        }
        // Never a version gears did not make (someone's own, with this AMI).
        let by_gears = patiently(self.cancel, d, || self.fleet.made_by_gears(&ours)).await;
        if !matches!(by_gears, Ok(true)) {
            return;
        }
        match patiently(self.cancel, d, || self.fleet.delete_template_version(&ours)).await {
            Ok(()) => self.say(&format!(
                "deleted launch template {lt} version {l}, which no group uses: its $Latest is the version before it again"
            )),
            Err(e) => self.say(&format!(
                "warning: launch template {lt} version {l} is left (its $Latest launches {}): {}",
                self.ami,
                e.render().trim().trim_start_matches("error: ")
            )),
        }
    }

    /// A launch configuration copy gears made that no group uses any more (the one a finished
    /// deploy left, or the one a rollback abandoned) is deleted, so the region's quota of
    /// launch configurations is not used up deploy after deploy. The user's own configuration
    /// is never touched; a copy still in use (another group, a deploy in flight) is kept.
    /// Best effort: what cannot be deleted is said, never a failure of the deploy.
    pub(super) async fn tidy_configuration(&self, unused: &str) {
        if gears_copy_base(unused).is_none() {
            return;
        }
        let d = self.deadline();
        static ANY: BTreeMap<String, String> = BTreeMap::new();
        let in_use = match patiently(self.cancel, d, || self.fleet.groups(&ANY, &[])).await {
            Ok(groups) => groups
                .iter()
                .any(|g| g.launch_configuration.as_deref() == Some(unused)),
            Err(_) => true,
        };
        if in_use {
            return;
        }
        match patiently(self.cancel, d, || self.fleet.delete_configuration(unused)).await {
            Ok(()) => self.say(&format!(
                "deleted launch configuration {unused}, gears' copy no group uses"
            )),
            Err(e) => self.say(&format!(
                "warning: gears' launch configuration copy {unused} is left: {}",
                e.render().trim().trim_start_matches("error: ")
            )),
        }
    }
}

/// A template version an undone deploy may have made ([`Roll::forget_version`]): on template
/// `lt`, from version `fromn` to `to` (empty: not known), by run `run`; `gone`, the group the undo
/// deleted (AWS still lists a group while it is being deleted).
pub(super) struct Abandoned<'a> {
    pub(super) lt: &'a str,
    pub(super) fromn: &'a str,
    pub(super) to: &'a str,
    pub(super) run: &'a str,
    pub(super) gone: Option<&'a str>,
}

/// Whether a group (but `gone`) points at template version `v`, or a deploy recorded on a group
/// of its template may still need it: one of the same run (continued, it gets the same version
/// back by the run's client token), one whose recorded version is `v` or not known yet (another
/// run killed after making `v`), or a blue/green switch in flight (it records no version). Then
/// it is not deleted: keeping a version is the safe side.
fn in_use(groups: &[Group], v: &TemplateRef, run: &str, gone: Option<&str>) -> bool {
    groups
        .iter()
        .filter(|g| Some(g.name.as_str()) != gone)
        .any(|g| {
            let on_it = g.template.as_ref().is_some_and(|t| t.id == v.id);
            let state = g.tags.get(STATE_TAG).and_then(|t| State::parse(t).ok());
            let needs = state.is_some_and(|st| {
                st.lt == v.id && (st.run == run || st.to.is_empty() || st.to == v.version)
            });
            let switching = g.tags.contains_key(crate::tags::BLUEGREEN);
            g.template.as_ref() == Some(v) || needs || (on_it && switching)
        })
}
