//! `--strategy blue-green` (Asgard's and Spinnaker's red/black): a group of the component is
//! one **cluster**; its group in traffic (the old one) stays whole while a clone on the new AMI
//! (`<cluster>-vNNN`) grows beside it, gated as a rolling batch is. Once the new group is healthy
//! (and baked), the old one leaves traffic (detached from its target groups and load balancers,
//! its scaling processes suspended) and is kept at its size for `--keep-old`, so going back
//! (`--rollback`) takes seconds. A failure before the switch removes the new group; the old one
//! never stopped serving.
//!
//! The outline, in the order a deploy goes:
//! - [`record`]: what is written on the groups (the switch in flight, an old group kept) and
//!   the names of a cluster's groups;
//! - [`grow`]: the new group made (template version, clone, scaling copied) and grown, gated;
//! - [`switch`]: traffic moved to the new group, the old one retired; the way back before or
//!   during the switch;
//! - [`tidy`]: old groups scaled to 0 after their keep time, deleted beyond `--keep-groups`;
//!   `--rollback` to the previous group; `--plan`.
use crate::deploy::blue_green::record::Switch;

mod grow;
pub mod record;
mod sweep;
mod switch;
mod tidy;

use crate::aws::{Fleet, Group, LockTable};
use crate::deploy::blue_green::record::{cluster_of, BACK};
use crate::deploy::gate::gated_on;
use crate::deploy::group::unfinished_step;
use crate::deploy::lock::refused;
use crate::deploy::region::RegionCtx;
use crate::deploy::roll::{counting, Roll};
use crate::deploy::state::OnGroup;
use crate::deploy::{GroupOutcome, GroupResult, Strategy};
use crate::error::Error;

/// Processes gears suspends on an old group out of traffic (what was suspended stays).
pub(super) const RETIRE: [&str; 4] = [
    "AlarmNotification",
    "ScheduledActions",
    "AZRebalance",
    "AddToLoadBalancer",
];

/// gears' own tags, which a clone does not copy from its source.
pub(super) const NOT_CLONED: [&str; 4] = [
    crate::tags::DEPLOY,
    crate::tags::DEPLOY_TAGS,
    crate::tags::BLUEGREEN,
    crate::tags::RETIRED,
];

/// The lock table's key of `g`'s cluster in `region`.
pub(super) fn lock_key(region: &str, g: &Group) -> String {
    format!("{region}/cluster:{}", cluster_of(g))
}

/// `r` locking what `like` locks (the cluster's key in the lock table); an undo of `like`'s own
/// group shares its tag lock too, so the undo's heartbeat renews the lock `like` took.
pub(super) fn keyed<'r, F: Fleet, L: LockTable>(
    mut r: Roll<'r, F, L>,
    like: &Roll<'_, F, L>,
) -> Roll<'r, F, L> {
    r.lock_key = like.lock_key.clone();
    if r.name == like.name {
        r.tag_ours = like.tag_ours.clone();
    }
    r
}

/// One cluster (its group in traffic `g`): `--plan`, `--abort`, `--rollback`, or a deploy.
pub(super) async fn cluster<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    g: &Group,
    on: &OnGroup,
    out: GroupOutcome,
) -> Result<GroupOutcome, Error> {
    let s = ctx.settings;
    if s.plan_only {
        return tidy::plan(ctx, roll, g, on, out).await;
    }
    if s.abort {
        return switch::abort(ctx, roll, g, on, out).await;
    }
    if s.rollback {
        return tidy::rollback(ctx, roll, g, on, out).await;
    }
    if s.strategy != Strategy::BlueGreen {
        return Err(refused(
            &g.name,
            format!(
                "a blue/green deploy of {} is recorded on the group",
                on.switch.as_ref().map(|w| w.ami.as_str()).unwrap_or("?")
            ),
            "continue it with --strategy blue-green, or undo it with `gears deploy --abort`",
        ));
    }
    deploy(ctx, roll, g, on, out).await
}

/// Before a deploy of the cluster: nothing to do when its group in traffic launches the AMI
/// already (the locks a run killed after its switch left removed, a live run's refused); a
/// `--rollback` in flight refused.
async fn nothing_to_do<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    g: &Group,
    on: &OnGroup,
    out: &GroupOutcome,
) -> Result<Option<GroupOutcome>, Error> {
    // Its launch spec launches the AMI, and its instances in service run it (`$Latest` may have
    // moved to the AMI with another cluster's deploy).
    let runs_it = || async {
        let serving = counting(g.clone());
        let images = roll.images(&serving).await?;
        Ok::<_, Error>(
            images.len() == serving.members.len() && images.values().all(|i| *i == roll.ami),
        )
    };
    if on.switch.is_none() && out.from_ami == roll.ami && runs_it().await? {
        // A run killed after its switch may have left its locks (and its table item).
        let removed = sweep::sweep(ctx, roll, &cluster_of(g), true).await?;
        let detail = format!(
            "the cluster's group {} already launches {}{}",
            g.name,
            roll.ami,
            sweep::removed_words(&removed)
        );
        return Ok(Some(out.clone().with(GroupResult::NothingToDo, detail)));
    }
    if let Some(sw) = on.switch.as_ref().filter(|sw| sw.phase == BACK) {
        return Err(refused(
            &g.name,
            format!("a --rollback to {} is in flight (run {})", sw.new, sw.run),
            "`gears deploy --rollback` continues it, `gears deploy --abort` undoes it",
        ));
    }
    Ok(None)
}

/// The blue/green deploy of one cluster: the switch recorded, the new group made and grown,
/// then switched to; a failed gate, an error or a signal removes the new group again.
async fn deploy<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    g: &Group,
    on: &OnGroup,
    out: GroupOutcome,
) -> Result<GroupOutcome, Error> {
    if let Some(done) = nothing_to_do(ctx, roll, g, on, &out).await? {
        return Ok(done);
    }
    grow::refuse_unclonable(g)?;
    roll.say(&gated_on(g, roll.smoke.is_some(), &roll.settings.alarms));
    roll.take_table_lock().await?;
    let region = roll.fleet.region().to_owned();
    let step = unfinished_step(ctx, &g.name, &region);
    let cleanup_cancel = ctx.cancel.for_cleanup();
    let undo = keyed(
        Roll::new(
            ctx,
            roll.fleet,
            roll.table,
            roll.looks,
            &g.name,
            &roll.ami,
            &cleanup_cancel,
        ),
        roll,
    );
    let sw = match roll.with_heartbeat(grow::start(ctx, roll, g, on)).await {
        Ok(sw) => sw,
        Err(e) => {
            let r = switch::start_failed(roll, &undo, g).await;
            ctx.cleanup.done(step);
            return match r {
                Some(detail) => Ok(out.with(GroupResult::RollbackFailed, detail)),
                None => Err(e),
            };
        }
    };
    let ended = roll
        .with_heartbeat(grow::grow_and_switch(ctx, roll, g, &sw))
        .await;
    let why = match ended {
        Ok(Ok(detail)) => return Ok(switched(ctx, roll, g, &sw, step, out, detail).await),
        Ok(Err(why)) => why,
        Err(e @ Error::Locked { .. }) => {
            ctx.cleanup.done(step);
            return Err(e);
        }
        Err(Error::Interrupted(sig)) => {
            let why = format!("{sig} received");
            roll.say(&format!("{why}: removing {} before exiting", sw.new));
            why
        }
        Err(e) => format!("AWS error: {}", e.render().trim()),
    };
    let back = undo.with_heartbeat(switch::undo(&undo, g, &sw)).await;
    ctx.cleanup.done(step);
    Ok(undone(ctx, (roll, &undo), g, &sw, out, why, back).await)
}

/// The cluster switched to its new group: the locks given back, old groups tidied.
async fn switched<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    g: &Group,
    sw: &Switch,
    step: crate::cancel::CleanupId,
    out: GroupOutcome,
    detail: String,
) -> GroupOutcome {
    ctx.cleanup.done(step);
    switch::unlock_both(roll, Some(&sw.new)).await;
    let _ = sweep::sweep(ctx, roll, &cluster_of(g), false).await;
    tidy::old_groups(ctx, roll, &cluster_of(g), Some(&sw.new)).await;
    roll.give_back().await;
    out.with(GroupResult::Deployed, detail)
}

/// After a failed gate, an error or a signal, once the new group was undone (`back`): the
/// group in traffic kept serving, or the line stopped when undoing failed.
async fn undone<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    (roll, undo): (&Roll<'_, F, L>, &Roll<'_, F, L>),
    g: &Group,
    sw: &Switch,
    out: GroupOutcome,
    why: String,
    back: Result<(), Error>,
) -> GroupOutcome {
    match back {
        Ok(()) => {
            switch::unlock_both(undo, None).await;
            let _ = sweep::sweep(ctx, undo, &cluster_of(g), false).await;
            roll.give_back().await;
            let detail = format!(
                "{why}; {} removed, {} kept serving {}",
                sw.new, g.name, out.from_ami
            );
            out.with(GroupResult::RolledBack, detail)
        }
        Err(e) => {
            let note = undo.stop_the_line().await;
            let detail = format!(
                "{why}; undoing failed: {}{note}; run `gears deploy --abort` once a human looked",
                e.render().trim().trim_start_matches("error: ")
            );
            out.with(GroupResult::RollbackFailed, detail)
        }
    }
}
