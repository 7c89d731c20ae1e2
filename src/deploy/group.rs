//! One group: lock, roll, gate, then finish or roll back.
use crate::aws::{Fleet, Group, LockTable, TemplateRef};
use crate::deploy::gate::gated_on;
use crate::deploy::region::{RegionCtx, RegionLooks};
use crate::deploy::roll::{counting, Roll, Rolled};
use crate::deploy::state::{recorded_from_ami, OnGroup, State};
use crate::deploy::{admin, blue_green, GroupOutcome, GroupResult, Strategy, LOCK_TAG};
use crate::error::Error;
use crate::wait::patiently;

/// One group: the admin commands go to [`admin`]; a deploy locks, rolls, gates, then
/// finishes or rolls back.
pub(super) async fn deploy_group<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    fleet: &F,
    table: Option<&L>,
    looks: &RegionLooks,
    region: &str,
    ami: &str,
    g: Group,
) -> Result<GroupOutcome, Error> {
    let settings = ctx.settings;
    if let Some(sig) = ctx.cancel.signal() {
        return Err(Error::Interrupted(sig));
    }
    let mut roll = Roll::new(ctx, fleet, table, looks, &g.name, ami, ctx.cancel);
    let d = roll.deadline();
    let from_ami = match (&g.template, &g.launch_configuration) {
        (Some(t), _) => roll.version_of(t).await.map(|(_, image)| image),
        (None, Some(c)) => patiently(ctx.cancel, d, || fleet.configuration_image(c)).await,
        _ => Ok(String::new()),
    }
    .unwrap_or_default();
    let out = GroupOutcome::new(region, &g.name, from_ami, ami);
    if settings.unlock {
        return admin::unlock(&roll, &g, out).await;
    }
    // What gears wrote on the group, read once: a value it cannot read stops here (exit 7).
    let on = OnGroup::read(&g)?;
    let blue_green = settings.strategy == Strategy::BlueGreen || settings.rollback;
    if blue_green || on.switch.is_some() {
        // The lock table's key is the cluster's: a deploy and a `--rollback` of one cluster
        // exclude each other whichever group is in traffic.
        roll.lock_key = blue_green::lock_key(fleet.region(), &g);
        return blue_green::cluster(ctx, &roll, &g, &on, out).await;
    }
    if settings.plan_only {
        return admin::plan(&roll, &g, &on, out).await;
    }
    if settings.abort {
        return admin::abort(ctx, &roll, &g, &on, out).await;
    }
    deploy_one(ctx, &roll, &g, &on, out).await
}

/// The deploy of one group (not an admin command).
async fn deploy_one<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    g: &Group,
    on: &OnGroup,
    mut out: GroupOutcome,
) -> Result<GroupOutcome, Error> {
    let (ami, region) = (roll.ami.as_str(), roll.fleet.region().to_owned());
    if let Some(detail) = already_there(roll, g, on, &out).await? {
        // A run killed after its deploy finished, before it gave the lock table's lock back:
        // its item taken over and given back (a live one refused).
        if roll.table.is_some() {
            roll.take_table_lock().await?;
            roll.give_back().await;
        }
        return Ok(out.with(GroupResult::NothingToDo, detail));
    }
    roll.say(&gated_on(g, roll.smoke.is_some(), &roll.settings.alarms));
    roll.take_table_lock().await?;
    let step = unfinished_step(ctx, &g.name, &region);
    let cleanup_cancel = ctx.cancel.for_cleanup();
    let mut undo = Roll::new(
        ctx,
        roll.fleet,
        roll.table,
        roll.looks,
        &g.name,
        ami,
        &cleanup_cancel,
    );
    // The undo renews the tag lock the deploy takes (its heartbeat writes it only when ours).
    undo.tag_ours = roll.tag_ours.clone();
    let st = match roll.with_heartbeat(roll.start(g, on)).await {
        Ok(st) => st,
        Err(e) => {
            let r = start_failed(roll, &undo, &e).await;
            ctx.cleanup.done(step);
            return match r {
                Some(detail) => Ok(out.with(GroupResult::RollbackFailed, detail)),
                None => Err(e),
            };
        }
    };
    // A continued run: the group already points at the new spec, so what it came from is the
    // recorded one.
    if let Some(was) = came_from(roll, &st).await {
        out.from_ami = was;
    }
    let rolled = match ctx.settings.strategy {
        // Blue/green never comes here (its groups go to `blue_green::cluster`).
        Strategy::Rolling | Strategy::BlueGreen => roll.with_heartbeat(roll.roll(&st)).await,
        Strategy::InstanceRefresh => roll.with_heartbeat(roll.refresh(&st)).await,
    };
    let (why, batches) = match rolled {
        Ok(Rolled::Done(n)) => return deployed(ctx, roll, &st, step, out, n).await,
        Ok(Rolled::GateFailed(why, n)) => (why, n),
        // Another run took the lock over (this one was presumed dead): it owns the group now.
        Err(e @ Error::Locked { .. }) => {
            ctx.cleanup.done(step);
            return Err(e);
        }
        // A signal (a CI cancel) never leaves a half-rolled group: roll back first, on
        // cleanup's own token (a second signal stops that too; the deploy stays recorded on
        // the group for `--abort`). Its exit (130/143) is decided for the whole run.
        Err(Error::Interrupted(sig)) => {
            let why = format!("{sig} received");
            roll.say(&format!(
                "{why}: rolling back to {} before exiting",
                out.from_ami
            ));
            (why, 0)
        }
        Err(e) => (format!("AWS error: {}", e.render().trim()), 0),
    };
    out.batches = batches;
    rolled_back(ctx, roll, &undo, &st, step, out, why).await
}

/// The AMI of the launch spec the recorded deploy came from (a template version's read once
/// a run), `None` when AWS does not say.
async fn came_from<F: Fleet, L: LockTable>(roll: &Roll<'_, F, L>, st: &State) -> Option<String> {
    if st.lc {
        return recorded_from_ami(roll.fleet, st, roll.cancel, roll.deadline()).await;
    }
    let t = TemplateRef {
        id: st.lt.clone(),
        version: st.from.clone(),
    };
    let read = roll.version_of(&t).await.ok();
    read.map(|(_, image)| image).filter(|i| !i.is_empty())
}

/// A group rolled to the end: finished (capacity and processes as they were), the lock given
/// back.
async fn deployed<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    st: &State,
    step: crate::cancel::CleanupId,
    mut out: GroupOutcome,
    batches: u32,
) -> Result<GroupOutcome, Error> {
    roll.finish(st).await?;
    if st.lc {
        roll.tidy_configuration(&st.from).await;
    }
    ctx.cleanup.done(step);
    roll.give_back().await;
    out.batches = batches;
    let detail = roll.deployed_detail().await;
    Ok(out.with(GroupResult::Deployed, detail))
}

/// After a failed gate, an error or a signal: the group rolled back (or the rollback failed).
async fn rolled_back<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    undo: &Roll<'_, F, L>,
    st: &State,
    step: crate::cancel::CleanupId,
    out: GroupOutcome,
    why: String,
) -> Result<GroupOutcome, Error> {
    let back = back_out(ctx, undo, roll, st).await;
    ctx.cleanup.done(step);
    match back? {
        Ok(()) => {
            if st.lc {
                roll.tidy_configuration(&st.to).await;
            }
            roll.give_back().await;
            let detail = format!("{why}; rolled back to {}", out.from_ami);
            Ok(out.with(GroupResult::RolledBack, detail))
        }
        Err(state) => Ok(out.with(GroupResult::RollbackFailed, format!("{why}; {state}"))),
    }
}

/// Until the group is deployed or rolled back, a second signal (which stops gears at once)
/// says what is left undone, and an unexpected way out is a failed cleanup (exit 7).
pub(super) fn unfinished_step(
    ctx: &RegionCtx<'_>,
    group: &str,
    region: &str,
) -> crate::cancel::CleanupId {
    let what = format!(
        "the deploy of {group} in {region} (run {}): run the same command to finish it, or `gears deploy --abort` to undo it",
        ctx.run
    );
    let unfinished = what.clone();
    ctx.cleanup.register(what, move || async move {
        Err(format!("not finished: {unfinished}"))
    })
}

/// Already there: the launch spec launches the AMI and every member in service runs it, with
/// no deploy recorded. Nothing is locked, suspended or made; `Some(detail)` says so.
async fn already_there<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    g: &Group,
    on: &OnGroup,
    out: &GroupOutcome,
) -> Result<Option<String>, Error> {
    let ami = roll.ami.as_str();
    if out.from_ami != ami || on.recorded.is_some() {
        return Ok(None);
    }
    let serving = counting(g.clone());
    let images = roll.images(&serving).await?;
    if images.len() == serving.members.len() && images.values().all(|i| i == ami) {
        let n = images.len();
        return Ok(Some(format!(
            "the group already launches {ami}, and its {n} instance(s) in service run it"
        )));
    }
    Ok(None)
}

/// The way back after a failed gate, an error or a signal, on cleanup's token (`undo`). An
/// instance refresh still running would fight the rollback (it replaces what the rollback
/// launches): cancelled first, and waited on until it stopped.
async fn back_out<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    undo: &Roll<'_, F, L>,
    roll: &Roll<'_, F, L>,
    st: &State,
) -> Result<Result<(), String>, Error> {
    if ctx.settings.strategy == Strategy::InstanceRefresh {
        let refresh = roll
            .refresh_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        undo.with_heartbeat(async {
            undo.stop_refresh(refresh.as_deref()).await;
            Ok(())
        })
        .await?;
    }
    undo.roll_back(st).await
}

/// After a start that failed: the lock given back if nothing was recorded, what was recorded
/// undone if the lock is still ours. `Some(detail)` when that undo failed (the line stopped).
async fn start_failed<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    undo: &Roll<'_, F, L>,
    e: &Error,
) -> Option<String> {
    let now = roll.group().await.ok();
    let on = now
        .as_ref()
        .and_then(|g| OnGroup::read(g).ok())
        .unwrap_or_default();
    let ours = on.ours(&roll.run);
    // This run's deploy, or the one of this AMI it was continuing.
    let recorded = on
        .recorded
        .filter(|st| st.run == roll.run || (ours && st.ami == roll.ami));
    match recorded {
        None => {
            if ours {
                let _ = roll
                    .fleet
                    .delete_tags(&roll.name, &[LOCK_TAG.to_owned()])
                    .await;
            }
            roll.give_back().await;
            None
        }
        // Recorded, and still ours: undo it. Not ours any more: the run that took the lock
        // over owns the group.
        Some(st) if ours => match undo.roll_back(&st).await {
            Ok(Ok(())) => {
                roll.give_back().await;
                None
            }
            Ok(Err(state)) => Some(format!(
                "{}; {state}",
                e.render().trim().trim_start_matches("error: ")
            )),
            Err(_) => None,
        },
        Some(_) => None,
    }
}
