//! A cluster's old groups: scaled to 0 once their keep time has passed, deleted beyond
//! `--keep-groups` once empty (never one with a lock); `--rollback` to the newest old group;
//! `--plan` of a blue/green deploy.
use crate::aws::{Fleet, Group, LockTable};
use crate::deploy::blue_green::record::{cluster_of, parse_utc, write, Retired, Switch, BACK};
use crate::deploy::blue_green::{keyed, switch, RETIRE};
use crate::deploy::gate::gated_on;
use crate::deploy::lock::{held_by_another, refused, stopped, Holder};
use crate::deploy::region::RegionCtx;
use crate::deploy::roll::Roll;
use crate::deploy::state::OnGroup;
use crate::deploy::{GroupOutcome, GroupResult, LOCK_TAG};
use crate::error::{Error, InputError};
use crate::wait::patiently;
use std::collections::BTreeMap;
use tokio::time::Instant;

/// The cluster's old groups kept out of traffic, newest first, with their records.
async fn kept<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    cluster: &str,
) -> Result<Vec<(Group, Retired, OnGroup)>, Error> {
    let d = roll.deadline();
    let groups = patiently(roll.cancel, d, || roll.fleet.groups(ctx.want, &[])).await?;
    let mut kept: Vec<(Group, Retired, OnGroup)> = groups
        .into_iter()
        .filter(|g| cluster_of(g) == cluster)
        .filter_map(|g| {
            let on = OnGroup::read(&g).ok()?;
            let r = on.retired.clone()?;
            Some((g, r, on))
        })
        .collect();
    kept.sort_by(|a, b| b.1.at.cmp(&a.1.at).then(b.0.name.cmp(&a.0.name)));
    Ok(kept)
}

/// Best effort after a switch: old groups past their keep time scaled to 0, those beyond the
/// newest `--keep-groups` scaled to 0 and deleted once empty; what was done (or could not be)
/// is said, never a failure of the deploy. Groups with a lock are left alone.
pub(super) async fn old_groups<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    cluster: &str,
    _active: Option<&str>,
) {
    let Ok(kept) = kept(ctx, roll, cluster).await else {
        roll.say("old groups not looked at (AWS did not answer); the next deploy tidies them");
        return;
    };
    let now = chrono::Utc::now();
    let d = roll.deadline();
    for (i, (g, r, on)) in kept.iter().enumerate() {
        if on.lock.is_some() {
            continue;
        }
        let expired = parse_utc(&r.until).is_some_and(|u| u <= now);
        let beyond = i >= roll.settings.keep_groups as usize;
        if beyond && g.members.is_empty() && g.desired == 0 {
            match patiently(roll.cancel, d, || roll.fleet.delete_group(&g.name)).await {
                Ok(()) => roll.say(&format!(
                    "deleted old group {} (beyond --keep-groups {})",
                    g.name, roll.settings.keep_groups
                )),
                Err(e) => roll.say(&format!(
                    "old group {} not deleted: {}",
                    g.name,
                    e.render().trim().trim_start_matches("error: ")
                )),
            }
        } else if (expired || beyond) && g.desired > 0 {
            let r = patiently(roll.cancel, d, || {
                roll.fleet.set_capacity(&g.name, 0, g.max, 0)
            })
            .await;
            let why = if beyond {
                "beyond --keep-groups; deleted by a later deploy once empty"
            } else {
                "its keep time is over"
            };
            match r {
                Ok(()) => roll.say(&format!("scaled old group {} to 0 ({why})", g.name)),
                Err(e) => roll.say(&format!(
                    "old group {} not scaled to 0: {}",
                    g.name,
                    e.render().trim().trim_start_matches("error: ")
                )),
            }
        }
    }
}

/// `--rollback`: the newest old group back in traffic (grown to its recorded capacity first
/// when it was scaled down), waited on until healthy in every traffic source, then the group in
/// traffic now taken out and kept as the old one is. A failure before the current group leaves
/// traffic puts the old group out again (exit 6). Recorded on the group in traffic first (a
/// [`Switch`] in phase `back`), so a killed rollback is continued by `--rollback` again (from
/// what it reached: the old group's record is removed only once it serves) or undone by
/// `--abort`.
pub(super) async fn rollback<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    g: &Group,
    on: &OnGroup,
    out: GroupOutcome,
) -> Result<GroupOutcome, Error> {
    let going_back = on.switch.as_ref().filter(|sw| sw.phase == BACK);
    if let (Some(sw), None) = (&on.switch, going_back) {
        return Err(refused(
            &g.name,
            format!(
                "a blue/green deploy of {} to {} is in flight",
                sw.ami, sw.new
            ),
            "`gears deploy --abort` undoes it (that is the way back from a deploy not finished)",
        ));
    }
    let (prev, r) = match going_back {
        Some(sw) => recorded_previous(roll, sw).await?,
        None => previous(ctx, roll, g).await.map(|(p, r)| (p, Some(r)))?,
    };
    roll.take_table_lock().await?;
    roll.take_tag_lock(on).await?;
    let sw = match going_back {
        Some(sw) => sw.clone(),
        None => {
            let sw = Switch {
                run: roll.run.clone(),
                ami: roll.ami.clone(),
                new: prev.name.clone(),
                phase: BACK.into(),
                susp: RETIRE
                    .iter()
                    .filter(|p| !g.suspended.iter().any(|s| s == *p))
                    .map(|p| p.to_string())
                    .collect(),
            };
            super::grow::record_switch(roll, &sw).await?;
            sw
        }
    };
    let result = back_and_out(ctx, roll, g, &prev, r.as_ref(), &sw, out).await;
    switch::unlock_both(roll, Some(&prev.name)).await;
    let _ = super::sweep::sweep(ctx, roll, &cluster_of(g), false).await;
    roll.give_back().await;
    result
}

/// The old group back in (unless a killed rollback had brought it back: `r` is `None` once its
/// record is gone), then `g` taken out; or, when it does not come back, put out again. The
/// rollback's record on `g` is removed when either is done.
async fn back_and_out<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    g: &Group,
    prev: &Group,
    r: Option<&Retired>,
    sw: &Switch,
    out: GroupOutcome,
) -> Result<GroupOutcome, Error> {
    let started = Instant::now();
    let prevr = Roll::new(
        ctx,
        roll.fleet,
        roll.table,
        roll.looks,
        &prev.name,
        &roll.ami,
        roll.cancel,
    );
    roll.looks.add(&prev.name).await;
    let back = match r {
        Some(r) => roll.with_heartbeat(back_in(roll, &prevr, prev, g, r)).await,
        None => Ok(()),
    };
    let (result, done) = match (back, r) {
        (Ok(()), _) => {
            let o = take_out(roll, g, prev, sw.susp.clone(), started, out).await;
            let done = o.result == GroupResult::Deployed;
            (Ok(o), done)
        }
        // The lock lost to another run, which owns the cluster now.
        (Err(e @ Error::Locked { stopped: false, .. }), _) => (Err(e), false),
        (Err(e), None) => (Err(e), false),
        // A signal: the old group out again before exiting (the exit is the signal's).
        (Err(e @ Error::Interrupted(_)), Some(r)) => {
            let why = format!("{e}");
            let o = put_out_again(ctx, roll, prev, g, r, why, out).await;
            let done = o.result == GroupResult::RolledBack;
            (Err(e), done)
        }
        // Not healthy in time, or AWS said no.
        (Err(e), Some(r)) => {
            let why = e.render().trim().trim_start_matches("error: ").to_owned();
            let o = put_out_again(ctx, roll, prev, g, r, why, out).await;
            let done = o.result == GroupResult::RolledBack;
            (Ok(o), done)
        }
    };
    if done {
        forget_rollback(ctx, roll, g).await;
    }
    result
}

/// The rollback's record removed from `g`, with its lock in the same call: a run killed before
/// it is continued, one killed after it left nothing on the group (on cleanup's token: a
/// signal does not leave it).
async fn forget_rollback<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    g: &Group,
) {
    let cleanup_cancel = ctx.cancel.for_cleanup();
    let keys = [crate::tags::BLUEGREEN.to_owned(), LOCK_TAG.to_owned()];
    let d = roll.deadline();
    let _ = patiently(&cleanup_cancel, d, || {
        roll.fleet.delete_tags(&g.name, &keys)
    })
    .await;
}

/// The group a killed rollback was bringing back, and its record (`None` once it served again
/// and its record was removed).
async fn recorded_previous<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    sw: &Switch,
) -> Result<(Group, Option<Retired>), Error> {
    let none = BTreeMap::new();
    let found = patiently(roll.cancel, roll.deadline(), || {
        roll.fleet.groups(&none, std::slice::from_ref(&sw.new))
    })
    .await?;
    let Some(prev) = found.into_iter().next() else {
        return Err(stopped(
            &roll.name,
            format!(
                "the rollback recorded on it goes back to {}, which is gone",
                sw.new
            ),
            "look at the cluster; then remove the group's gears:bluegreen tag",
        ));
    };
    let r = OnGroup::read(&prev)?.retired;
    Ok((prev, r))
}

/// `--abort` of a killed rollback: the old group out of traffic again when it had not yet
/// served (its record still there: the group in traffic never left); once it served, the
/// rollback is finished instead (the group in traffic was leaving).
pub(super) async fn abort_rollback<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    g: &Group,
    on: &OnGroup,
    sw: &Switch,
    out: GroupOutcome,
) -> Result<GroupOutcome, Error> {
    let (prev, r) = recorded_previous(roll, sw).await?;
    super::super::admin::take_locks_for_abort(roll, on).await?;
    let o = match &r {
        Some(r) => {
            let why = "aborted".to_owned();
            let o = put_out_again(ctx, roll, &prev, g, r, why, out).await;
            if o.result == GroupResult::RolledBack {
                forget_rollback(ctx, roll, g).await;
                o.with(
                    GroupResult::Aborted,
                    format!(
                        "the rollback undone: {} out of traffic again, {} serves",
                        prev.name, g.name
                    ),
                )
            } else {
                o
            }
        }
        None => {
            let o = back_and_out(ctx, roll, g, &prev, None, sw, out).await?;
            if o.result == GroupResult::Deployed {
                let detail = format!(
                    "{} already served again: the rollback finished; {}",
                    prev.name, o.detail
                );
                o.with(GroupResult::Aborted, detail)
            } else {
                o
            }
        }
    };
    switch::unlock_both(roll, Some(&prev.name)).await;
    let _ = super::sweep::sweep(ctx, roll, &cluster_of(g), false).await;
    roll.give_back().await;
    Ok(o)
}

/// The cluster's newest old group to go back to, refused when there is none or another run
/// holds it (a stale lock is a killed switch's, taken over).
async fn previous<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    g: &Group,
) -> Result<(Group, Retired), Error> {
    let cluster = cluster_of(g);
    let kept = kept(ctx, roll, &cluster).await?;
    let Some((prev, r, prev_on)) = kept.into_iter().next() else {
        return Err(InputError::whole_file(
            format!("group {}", g.name),
            format!("cluster {cluster} has no old group kept to go back to"),
        )
        .with_hint(
            "a rollback needs a group a blue/green deploy took out of traffic (see --keep-groups)",
        )
        .into());
    };
    let stale = roll.settings.lock_stale;
    match &prev_on.lock {
        Some(l) if l.is_stop() => {
            return Err(refused(
                &prev.name,
                format!("the line is stopped: {l}"),
                "look at the group; `gears deploy --unlock` once a human looked",
            ))
        }
        Some(l) if l.is_live(stale) => {
            if let Some(h) = Holder::of_tag(l) {
                return Err(held_by_another(&prev.name, &h, stale, None));
            }
        }
        _ => {}
    }
    Ok((prev, r))
}

/// Once the old group serves again: the group in traffic `g` taken out and kept. When that
/// fails both serve (safe, not what was asked: exit 7 to look at).
async fn take_out<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    g: &Group,
    prev: &Group,
    susp: Vec<String>,
    started: Instant,
    out: GroupOutcome,
) -> GroupOutcome {
    let retired = async {
        let now = roll.group().await?;
        roll.with_heartbeat(switch::retire(roll, g, &now, susp))
            .await
    };
    match retired.await {
        Ok(kept) => out.with(
            GroupResult::Deployed,
            format!(
                "{} back in traffic and healthy in {:.1} s; {} out of traffic, {kept}",
                prev.name,
                started.elapsed().as_secs_f64(),
                g.name
            ),
        ),
        Err(e) => out.with(
            GroupResult::RollbackFailed,
            format!(
                "{} is back in traffic, but taking {} out failed: {}; both serve",
                prev.name,
                g.name,
                e.render().trim().trim_start_matches("error: ")
            ),
        ),
    }
}

/// After `--rollback` failed to bring the old group back: it leaves traffic again (the group
/// in traffic never left), on cleanup's own token. Exit 6 when done, 7 when not.
async fn put_out_again<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    prev: &Group,
    g: &Group,
    r: &Retired,
    why: String,
    out: GroupOutcome,
) -> GroupOutcome {
    let cleanup_cancel = ctx.cancel.for_cleanup();
    let undo = keyed(
        Roll::new(
            ctx,
            roll.fleet,
            roll.table,
            roll.looks,
            &prev.name,
            &roll.ami,
            &cleanup_cancel,
        ),
        roll,
    );
    let d = undo.deadline();
    let again = async {
        patiently(undo.cancel, d, || {
            roll.fleet
                .set_traffic(&prev.name, &g.target_groups, &g.load_balancers, false)
        })
        .await?;
        patiently(undo.cancel, d, || {
            roll.fleet.set_processes(&prev.name, &r.susp, true)
        })
        .await?;
        // Its record back, had the way back already removed it.
        let value = write(r).unwrap_or_default();
        let tag = BTreeMap::from([(crate::tags::RETIRED.to_owned(), value)]);
        patiently(undo.cancel, d, || {
            roll.fleet.put_tags(&prev.name, &tag, false)
        })
        .await
    };
    match again.await {
        Ok(()) => out.with(
            GroupResult::RolledBack,
            format!(
                "{why}; {} out of traffic again, {} still serves",
                prev.name, g.name
            ),
        ),
        Err(e2) => out.with(
            GroupResult::RollbackFailed,
            format!(
                "{why}; taking {} out again failed: {}",
                prev.name,
                e2.render().trim()
            ),
        ),
    }
}

/// The old group back in traffic (grown to its recorded capacity first), its processes
/// resumed, waited on until healthy in every traffic source of the group in traffic `g`, and
/// its [`Retired`] record removed.
async fn back_in<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    prevr: &Roll<'_, F, L>,
    prev: &Group,
    g: &Group,
    r: &Retired,
) -> Result<(), Error> {
    let (fleet, d) = (roll.fleet, roll.deadline());
    if prev.desired < r.desired {
        roll.say(&format!(
            "{} has {} instances: growing it to {} first",
            prev.name, prev.desired, r.desired
        ));
        patiently(roll.cancel, d, || {
            fleet.set_capacity(&prev.name, r.min, r.max, r.desired)
        })
        .await?;
    }
    let tgs: Vec<String> = g
        .target_groups
        .iter()
        .filter(|t| !prev.target_groups.contains(t))
        .cloned()
        .collect();
    let lbs: Vec<String> = g
        .load_balancers
        .iter()
        .filter(|l| !prev.load_balancers.contains(l))
        .cloned()
        .collect();
    patiently(roll.cancel, d, || {
        fleet.set_traffic(&prev.name, &tgs, &lbs, true)
    })
    .await?;
    patiently(roll.cancel, d, || {
        fleet.set_processes(&prev.name, &r.susp, false)
    })
    .await?;
    roll.say(&format!(
        "{} back in {} traffic source(s): waiting until healthy in each",
        prev.name,
        tgs.len() + lbs.len()
    ));
    switch::wait_serving(prevr, r.desired).await?;
    // A switch killed after it retired this group may have left its record: gone too.
    let keys = [
        crate::tags::RETIRED.to_owned(),
        crate::tags::BLUEGREEN.to_owned(),
    ];
    patiently(roll.cancel, d, || fleet.delete_tags(&prev.name, &keys)).await
}

/// `--plan` of a blue/green deploy: the new group's name, its growth, the capacity during the
/// switch, what happens to the old group and to older ones.
pub(super) async fn plan<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    g: &Group,
    on: &OnGroup,
    out: GroupOutcome,
) -> Result<GroupOutcome, Error> {
    let s = roll.settings;
    if let Some(sw) = &on.switch {
        let detail = format!(
            "a blue/green deploy of {} to {} is recorded (phase {}): the same command continues it, --abort undoes it",
            sw.ami, sw.new, sw.phase
        );
        return Ok(out.with(GroupResult::Planned, detail));
    }
    if s.rollback {
        let kept = kept(ctx, roll, &cluster_of(g)).await?;
        let detail = match kept.first() {
            Some((p, r, _)) => format!(
                "would put {} back in traffic ({} instances now, {} recorded), then take {} out",
                p.name, p.desired, r.desired, g.name
            ),
            None => "no old group kept: nothing to roll back to".into(),
        };
        return Ok(out.with(GroupResult::Planned, detail));
    }
    if let Err(e) = super::grow::refuse_unclonable(g) {
        let detail = format!(
            "would be refused: {}",
            e.render().trim().trim_start_matches("error: ")
        );
        return Ok(out.with(GroupResult::Planned, detail));
    }
    let new = super::grow::new_name(roll, g).await?;
    let steps = match s.batch {
        Some(b) => format!("in steps of {}", b.size(g.desired)),
        None => "at once".into(),
    };
    let kept = kept(ctx, roll, &cluster_of(g)).await?;
    let extra = kept
        .len()
        .saturating_sub(s.keep_groups.saturating_sub(1) as usize);
    let detail = format!(
        "would clone {} as {new} on {}, grow it to {} {steps} ({}); capacity during the switch: {} old + {} new; then {} leaves traffic, {}{}",
        g.name,
        roll.ami,
        g.desired,
        gated_on(g, roll.smoke.is_some(), &s.alarms),
        g.desired,
        g.desired,
        g.name,
        match s.scale_old_to {
            Some(n) => format!("scaled to {n}"),
            None => format!("kept at {} for {}", g.desired, crate::text::human_duration(s.keep_old)),
        },
        if extra > 0 { format!("; {extra} older group(s) scaled to 0 and deleted (--keep-groups {})", s.keep_groups) } else { String::new() }
    );
    Ok(out.with(GroupResult::Planned, detail))
}
