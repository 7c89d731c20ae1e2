//! The admin commands, one group at a time: `--unlock`, `--plan`, `--abort`.
use crate::aws::{Fleet, Group, LockTable};
use crate::deploy::gate::gated_on;
use crate::deploy::lock::{lease_times, refused, LockValue, KEPT};
use crate::deploy::region::RegionCtx;
use crate::deploy::roll::{counting, Roll};
use crate::deploy::start::Taking;
use crate::deploy::state::{recorded_from_ami, OnGroup};
use crate::deploy::DeploySettings;
use crate::deploy::{plan, GroupOutcome, GroupResult, LOCK_TAG};
use crate::error::Error;
use crate::wait::patiently;
use std::collections::BTreeMap;

/// `--unlock`: removes the group's lock (and its lock-table item), never from under a deploy
/// that renewed it within the stale limit. A value gears did not write is removed too: a
/// human looked, and unlocking is how they clear it.
pub(super) async fn unlock<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    g: &Group,
    out: GroupOutcome,
) -> Result<GroupOutcome, Error> {
    let settings = roll.settings;
    let value = g.tags.get(LOCK_TAG);
    if let Some(l @ LockValue::Held { .. }) = value.and_then(|v| LockValue::parse(v).ok()) {
        if l.is_live(settings.lock_stale) {
            return Err(refused(
                &g.name,
                format!(
                    "a deploy is running now: run {}, lock renewed {} ago",
                    l.run(),
                    crate::text::human_duration(l.age().unwrap_or_default())
                ),
                "--unlock is for a lock left by a failed rollback or a dead run: stop that deploy (it rolls back on SIGTERM), or wait a minute if it was killed",
            ));
        }
    }
    let d = roll.deadline();
    let keys = [LOCK_TAG.to_owned()];
    patiently(roll.cancel, d, || roll.fleet.delete_tags(&g.name, &keys)).await?;
    if let Some(t) = roll.table {
        patiently(roll.cancel, d, || t.force_release(&roll.lock_key)).await?;
    }
    let detail = value.cloned().unwrap_or_else(|| "no lock".into());
    Ok(out.with(GroupResult::Unlocked, detail))
}

/// `--plan`: what a deploy would do, from what is on the group now (a lock, a STOP, a deploy
/// recorded by a run that did not finish: then its original capacity is the baseline), with
/// the first batch's shape from the planner.
pub(super) async fn plan<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    g: &Group,
    on: &OnGroup,
    mut out: GroupOutcome,
) -> Result<GroupOutcome, Error> {
    let settings = roll.settings;
    let mut g = counting(g.clone());
    let mut note = lock_note(on, settings);
    if let Some(st) = &on.recorded {
        note += &format!(
            "; run {} recorded a deploy of {} that did not finish (capacity was {}/{}/{}): {}",
            st.run,
            st.ami,
            st.min,
            st.max,
            st.desired,
            if st.ami == roll.ami {
                "the same command continues it"
            } else {
                "`--abort` with that AMI undoes it first"
            }
        );
        (g.min, g.max, g.desired) = (st.min, st.max, st.desired);
        if let Some(was) = recorded_from_ami(roll.fleet, st, roll.cancel, roll.deadline()).await {
            out.from_ami = was;
        }
    }
    let images = roll.images(&g).await?;
    let (batches, first) = first_batch(&g, &images, &roll.ami, settings);
    out.batches = batches;
    let detail = first + "; " + &gated_on(&g, roll.smoke.is_some(), &roll.settings.alarms) + &note;
    Ok(out.with(GroupResult::Planned, detail))
}

/// What `--plan` says of the lock on the group (nothing when there is none).
fn lock_note(on: &OnGroup, settings: &DeploySettings) -> String {
    match &on.lock {
        Some(l @ LockValue::Stop { .. }) => format!(
            "; the line is stopped ({l}): a deploy would be refused (exit 7) until `--unlock`"
        ),
        Some(l) if l.is_live(settings.lock_stale) => format!(
            "; locked by run {}, renewed {} ago: a deploy would be refused now",
            l.run(),
            crate::text::human_duration(l.age().unwrap_or_default())
        ),
        Some(l) => format!("; a stale lock ({l})"),
        None => String::new(),
    }
}

/// The deploy's batches as the planner would start them on a healthy group `g`, whose members
/// launch `images`: how many, and the words of `--plan`.
fn first_batch(
    g: &Group,
    images: &BTreeMap<String, String>,
    ami: &str,
    settings: &DeploySettings,
) -> (u32, String) {
    // The first batch as the planner would start it, on a healthy group.
    let look = plan::Look {
        desired: g.desired,
        members: g
            .members
            .iter()
            .map(|m| plan::Seen {
                id: m.id.clone(),
                new: Some(images.get(&m.id).map(String::as_str) == Some(ami)),
                healthy: true,
            })
            .collect(),
    };
    let terms = plan::Terms {
        min: g.min,
        max: g.max,
        desired: g.desired,
        batch: settings.batch().size(g.desired),
        min_healthy: settings.min_healthy,
    };
    let old = look.members.iter().filter(|m| m.new == Some(false)).count() as i32;
    let k = terms.batch.min(old.max(1));
    let (in_place, surge) = plan::split(&look, &terms);
    let in_place = in_place.len() as i32;
    let floor = plan::floor(g.desired, settings.min_healthy);
    let batches = ((old + k - 1) / k.max(1)) as u32;
    let detail = format!(
        "{old} of {} instances to replace, {} batch(es) of {k}{}: capacity {}..{} (max {} → {} during the deploy), healthy never below {floor}",
        g.members.len(),
        batches,
        if in_place > 0 {
            format!(" ({in_place} replaced in place, {surge} launched first)")
        } else {
            String::new()
        },
        g.desired,
        g.desired + surge,
        g.max,
        g.max.max(g.desired + surge),
    );
    (batches, detail)
}

/// `--abort`: undoes the deploy recorded on the group (of the AMI named), never fighting a
/// deploy that is running now. A dead run's lock with nothing recorded is removed.
pub(super) async fn abort<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    g: &Group,
    on: &OnGroup,
    mut out: GroupOutcome,
) -> Result<GroupOutcome, Error> {
    let (settings, region, ami) = (roll.settings, roll.fleet.region(), roll.ami.as_str());
    // Never fight a deploy that is running now.
    if let Some(l @ LockValue::Held { run, .. }) = &on.lock {
        if l.is_live(settings.lock_stale) && run != &roll.run {
            return Err(refused(
                &g.name,
                format!(
                    "a deploy is running now: run {run}, lock refreshed {} ago",
                    crate::text::human_duration(l.age().unwrap_or_default())
                ),
                "stop that deploy first (it rolls back on SIGTERM), or wait a minute if it was killed",
            ));
        }
    }
    let Some(st) = on.recorded.clone() else {
        return abort_nothing_recorded(roll, g, on, out).await;
    };
    // The deploy named: undoing another AMI's by mistake is refused.
    if st.ami != ami {
        return Err(Error::usage(
            format!(
                "--abort: the deploy recorded on {} in {region} is of {} (run {}), not {ami}",
                g.name, st.ami, st.run
            ),
            Some(format!(
                "`gears deploy --abort --ami {} --region {region}` undoes it",
                st.ami
            )),
        ));
    }
    take_locks_for_abort(roll, on).await?;
    // The undo runs to its end on cleanup's own token: a first signal does not leave it half
    // done (a second one stops it; the deploy stays recorded on the group).
    let abort_cancel = ctx.cancel.for_cleanup();
    if let Some(was) = recorded_from_ami(roll.fleet, &st, roll.cancel, roll.deadline()).await {
        out.from_ami = was;
    }
    let mut undo = Roll::new(
        ctx,
        roll.fleet,
        roll.table,
        roll.looks,
        &g.name,
        ami,
        &abort_cancel,
    );
    // The undo renews the lock this abort took.
    undo.tag_ours = roll.tag_ours.clone();
    match undo.roll_back(&st).await? {
        Ok(()) => {
            undo.tidy_abandoned(&st).await;
            undo.give_back().await;
            // What was asked for: exit 0.
            Ok(out.with(
                GroupResult::Aborted,
                "undone: back on the old AMI, as it was",
            ))
        }
        Err(state) => Ok(out.with(GroupResult::RollbackFailed, state)),
    }
}

/// `--abort` with no deploy recorded: a dead run's lock (killed between taking the lock and
/// recording) is removed, since nothing else will ever remove it; otherwise nothing to do.
async fn abort_nothing_recorded<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    g: &Group,
    on: &OnGroup,
    out: GroupOutcome,
) -> Result<GroupOutcome, Error> {
    match &on.lock {
        Some(l @ LockValue::Held { .. }) => {
            // Taken over first: a deploy that took the dead run's lock since the look is
            // refused here, its lock never removed from under it.
            take_locks_for_abort(roll, on).await?;
            let d = roll.deadline();
            let keys = [LOCK_TAG.to_owned()];
            let removed = patiently(roll.cancel, d, || roll.fleet.delete_tags(&g.name, &keys));
            if let Err(e) = removed.await {
                roll.give_back().await;
                return Err(e);
            }
            if let Some(t) = roll.table {
                patiently(roll.cancel, d, || t.force_release(&roll.lock_key)).await?;
            }
            Ok(out.with(
                GroupResult::Aborted,
                format!("no deploy recorded on the group; removed the lock of a run that is gone ({l})"),
            ))
        }
        Some(l) => Ok(out.with(
            GroupResult::NothingToDo,
            format!("no deploy recorded on the group, but the line is stopped ({l}): `--unlock` removes the lock"),
        )),
        None => {
            // A run killed after it took the lock table's lock, before its tag: its item.
            if roll.table.is_some() {
                take_table_lock_for_abort(roll).await?;
                roll.give_back().await;
            }
            Ok(out.with(GroupResult::NothingToDo, "no deploy recorded on the group"))
        }
    }
}

/// The locks an `--abort` holds while it undoes: the lock table's (with `--lock-table`) and the
/// group's tag, each taken over from the dead run (a live one refused), so a deploy or a second
/// `--abort` started meanwhile is refused, whichever lock the teams use.
pub(super) async fn take_locks_for_abort<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    on: &OnGroup,
) -> Result<(), Error> {
    take_table_lock_for_abort(roll).await?;
    // A STOP stays (it refuses deploys already): an abort killed after writing its own lock
    // over it would leave a lock that goes stale, and a deploy would then continue the deploy
    // whose rollback failed.
    if matches!(on.lock, Some(LockValue::Stop { .. })) {
        return Ok(());
    }
    if let Err(e) = roll.take_tag_lock_as(on, Taking::Abort).await {
        roll.give_back().await;
        return Err(e);
    }
    Ok(())
}

/// The lock table for an abort: a live holder is refused; a killed one's lock, or a STOP
/// lock (a human decided to undo), is taken over.
pub(super) async fn take_table_lock_for_abort<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
) -> Result<(), Error> {
    let Some(t) = roll.table else {
        return Ok(());
    };
    let (now, stale) = lease_times(roll.settings);
    let mine = LockValue::held_now(&roll.run, roll.who).write();
    let d = roll.deadline();
    let key = &roll.lock_key;
    let mut held = patiently(roll.cancel, d, || {
        t.acquire(key, &roll.run, &mine, now, stale)
    })
    .await?;
    if held.as_ref().is_some_and(|h| h.is_stop()) {
        held = patiently(roll.cancel, d, || {
            t.acquire(key, &roll.run, &mine, now, KEPT)
        })
        .await?;
    }
    match held {
        None => Ok(()),
        Some(holder) => Err(refused(
            &roll.name,
            format!("the lock table holds {key} for {holder}: a deploy is running now"),
            "stop that deploy first (it rolls back on SIGTERM), or wait a minute if it was killed",
        )),
    }
}
