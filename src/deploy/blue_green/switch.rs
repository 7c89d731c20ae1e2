//! The switch: the new group takes over the old one's capacity and processes, the old one leaves
//! traffic and is kept ([`Retired`]); and the way back while a switch is recorded (a failed gate,
//! an error, a signal, `--abort`): the old group back in traffic and healthy, then the new one
//! out of traffic, emptied and deleted.
use crate::aws::{Fleet, Group, LockTable, TemplateRef};
use crate::deploy::blue_green::keyed;
use crate::deploy::blue_green::record::{
    cluster_of, utc, utc_ms, write, Retired, Switch, BACK, SWITCH,
};
use crate::deploy::lock::{refused, stopped, LockValue};
use crate::deploy::region::RegionCtx;
use crate::deploy::roll::{counting, Roll};
use crate::deploy::rollback::Abandoned;
use crate::deploy::state::OnGroup;
use crate::deploy::{GroupOutcome, GroupResult, LOCK_TAG, SUSPEND};
use crate::error::{Error, InputError};
use crate::wait::patiently;
use std::collections::BTreeMap;
use tokio::time::Instant;

/// The new group takes over: recorded as switching first (a killed run continues here), the new
/// group given the old one's capacity and its processes, the old group detached from its traffic
/// sources, its processes suspended, recorded as kept until `--keep-old` from now, and scaled to
/// `--scale-old-to` when asked. The lock tags are removed by the caller (after the heartbeat).
pub(super) async fn switch_over<F: Fleet, L: LockTable>(
    _ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    newr: &Roll<'_, F, L>,
    g: &Group,
    sw: &Switch,
) -> Result<String, Error> {
    let (fleet, d) = (roll.fleet, roll.deadline());
    let sw = Switch {
        phase: SWITCH.into(),
        ..sw.clone()
    };
    super::grow::record_switch(roll, &sw).await?;
    patiently(roll.cancel, d, || {
        fleet.set_capacity(&sw.new, g.min, g.max, g.desired)
    })
    .await?;
    let user: Vec<&String> = g
        .suspended
        .iter()
        .filter(|p| !sw.susp.contains(p))
        .collect();
    let resume: Vec<String> = SUSPEND
        .iter()
        .filter(|p| !user.iter().any(|u| u == p))
        .map(|p| p.to_string())
        .collect();
    patiently(roll.cancel, d, || {
        fleet.set_processes(&sw.new, &resume, false)
    })
    .await?;
    let old = roll.group().await?;
    let kept = retire(roll, g, &old, sw.susp.clone()).await?;
    let keys = [crate::tags::BLUEGREEN.to_owned()];
    patiently(roll.cancel, d, || fleet.delete_tags(&g.name, &keys)).await?;
    let sources = old.target_groups.len() + old.load_balancers.len();
    roll.say(&format!(
        "switched: {} serves {} ({} instances); {} left {sources} traffic source(s), {kept}",
        newr.name, roll.ami, g.desired, g.name
    ));
    Ok(format!(
        "{} serves {} ({} instances); {} out of traffic, {kept} (`gears deploy --rollback` puts it back)",
        newr.name, roll.ami, g.desired, g.name
    ))
}

/// Takes `g` (as it was, for its capacity; `now`, as it is, for its traffic sources) out of
/// traffic and keeps it: detached, `susp` suspended, tagged [`Retired`] until `--keep-old` from
/// now, scaled to `--scale-old-to` when asked; returns what happened to it, in words.
pub(super) async fn retire<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    g: &Group,
    now: &Group,
    susp: Vec<String>,
) -> Result<String, Error> {
    let (fleet, d, s) = (roll.fleet, roll.deadline(), roll.settings);
    if !now.target_groups.is_empty() || !now.load_balancers.is_empty() {
        patiently(roll.cancel, d, || {
            fleet.set_traffic(&g.name, &now.target_groups, &now.load_balancers, false)
        })
        .await?;
    }
    patiently(roll.cancel, d, || fleet.set_processes(&g.name, &susp, true)).await?;
    let at = chrono::Utc::now();
    let keep = chrono::Duration::from_std(s.keep_old).unwrap_or_default();
    let retired = Retired {
        run: roll.run.clone(),
        at: utc_ms(at),
        until: utc(at + keep),
        min: g.min,
        max: g.max,
        desired: g.desired,
        susp,
    };
    let value = write(&retired)
        .map_err(|why| Error::from(InputError::whole_file(format!("group {}", g.name), why)))?;
    let tag = BTreeMap::from([(crate::tags::RETIRED.to_owned(), value)]);
    patiently(roll.cancel, d, || fleet.put_tags(&g.name, &tag, false)).await?;
    Ok(match s.scale_old_to {
        Some(n) => {
            let n = (n as i32).min(g.desired);
            patiently(roll.cancel, d, || {
                fleet.set_capacity(&g.name, g.min.min(n), g.max, n)
            })
            .await?;
            format!("scaled to {n}")
        }
        None => format!("kept at {} until {}", g.desired, retired.until),
    })
}

/// Removes the lock tags a deploy left on the old group and, when it is still there, the new
/// one (after the heartbeat). Best effort: a lock left behind goes stale.
pub(super) async fn unlock_both<F: Fleet, L: LockTable>(roll: &Roll<'_, F, L>, new: Option<&str>) {
    let keys = [LOCK_TAG.to_owned()];
    let d = roll.deadline();
    for group in std::iter::once(roll.name.as_str()).chain(new) {
        let _ = patiently(roll.cancel, d, || roll.fleet.delete_tags(group, &keys)).await;
    }
}

/// The way back while a switch is recorded: the old group back in traffic (from the new
/// group's traffic sources) with its processes and waited on until healthy in every source,
/// then the new group out of traffic, emptied, deleted; the record removed.
pub(super) async fn undo<F: Fleet, L: LockTable>(
    undo: &Roll<'_, F, L>,
    g: &Group,
    sw: &Switch,
) -> Result<(), Error> {
    let (fleet, d) = (undo.fleet, undo.deadline());
    let none = BTreeMap::new();
    let new = patiently(undo.cancel, d, || {
        fleet.groups(&none, std::slice::from_ref(&sw.new))
    })
    .await?
    .into_iter()
    .next();
    let old = undo.group().await?;
    if let Some(n) = &new {
        let tgs: Vec<String> = n
            .target_groups
            .iter()
            .filter(|t| !old.target_groups.contains(t))
            .cloned()
            .collect();
        let lbs: Vec<String> = n
            .load_balancers
            .iter()
            .filter(|l| !old.load_balancers.contains(l))
            .cloned()
            .collect();
        if !tgs.is_empty() || !lbs.is_empty() {
            undo.say(&format!("putting {} back in traffic", g.name));
            patiently(undo.cancel, d, || {
                fleet.set_traffic(&g.name, &tgs, &lbs, true)
            })
            .await?;
        }
    }
    let back: Vec<String> = sw
        .susp
        .iter()
        .filter(|p| old.suspended.contains(p))
        .cloned()
        .collect();
    patiently(undo.cancel, d, || {
        fleet.set_processes(&g.name, &back, false)
    })
    .await?;
    wait_serving(undo, old.desired).await?;
    if let Some(n) = new {
        remove_group(undo, &n).await?;
    }
    // A switch killed after it retired the old group left its record too: the old group
    // serves again.
    let keys = [
        crate::tags::BLUEGREEN.to_owned(),
        crate::tags::RETIRED.to_owned(),
    ];
    patiently(undo.cancel, d, || fleet.delete_tags(&g.name, &keys)).await?;
    Ok(())
}

/// Waits until `roll`'s group has `want` members in service, each healthy in every traffic
/// source (no smoke tests: these instances served before), within `--gate-timeout`.
pub(super) async fn wait_serving<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    want: i32,
) -> Result<(), Error> {
    let deadline = roll.deadline();
    let pace = roll.pace();
    loop {
        let since = pace.fresh_since();
        let g = counting(roll.group_seen_since(since).await?);
        let health = roll.health(&g, since).await?;
        let healthy = health.values().filter(|h| **h).count() as i32;
        if healthy >= want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(stopped(
                &roll.name,
                format!(
                    "not healthy in its traffic sources after {}: {healthy} of {want}",
                    crate::text::human_duration(roll.settings.gate_timeout)
                ),
                "look at the group and its target groups",
            ));
        }
        pace.sleep(roll).await?;
    }
}

/// A new group out of traffic, emptied (its instances terminated by scaling to 0) and deleted.
async fn remove_group<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    n: &Group,
) -> Result<(), Error> {
    let (fleet, d) = (roll.fleet, roll.deadline());
    if !n.target_groups.is_empty() || !n.load_balancers.is_empty() {
        patiently(roll.cancel, d, || {
            fleet.set_traffic(&n.name, &n.target_groups, &n.load_balancers, false)
        })
        .await?;
    }
    patiently(roll.cancel, d, || fleet.set_capacity(&n.name, 0, n.max, 0)).await?;
    let pace = roll.pace();
    let none = BTreeMap::new();
    loop {
        let now = patiently(roll.cancel, d, || {
            fleet.groups(&none, std::slice::from_ref(&n.name))
        })
        .await?;
        match now.first() {
            None => return Ok(()),
            Some(g) if g.members.is_empty() => break,
            Some(_) if Instant::now() >= d => {
                return Err(stopped(
                    &n.name,
                    "its instances did not terminate in time; it was not deleted".into(),
                    "delete it once it is empty: `aws autoscaling delete-auto-scaling-group`",
                ))
            }
            Some(_) => pace.sleep(roll).await?,
        }
    }
    patiently(roll.cancel, d, || fleet.delete_group(&n.name)).await?;
    roll.say(&format!("{} emptied and deleted", n.name));
    Ok(())
}

/// After a start that failed: what the killed start made undone when the switch was recorded by
/// this run and the lock is ours; the lock given back. `Some(detail)` when that undo failed.
pub(super) async fn start_failed<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    undo_roll: &Roll<'_, F, L>,
    g: &Group,
) -> Option<String> {
    let now = roll.group().await.ok()?;
    let on = OnGroup::read(&now).ok()?;
    if !on.ours(&roll.run) {
        roll.give_back().await;
        return None;
    }
    let r = match &on.switch {
        Some(sw) if sw.run == roll.run => undo(undo_roll, g, sw).await.err(),
        _ => None,
    };
    let keys = [LOCK_TAG.to_owned()];
    let _ = roll.fleet.delete_tags(&g.name, &keys).await;
    roll.give_back().await;
    r.map(|e| {
        format!(
            "undoing the start failed: {}",
            e.render().trim().trim_start_matches("error: ")
        )
    })
}

/// The template version the new group launches from, before the undo removes it (`None`
/// when it is not there: the killed run had not made it yet, or AWS did not answer).
async fn new_version<F: Fleet, L: LockTable>(
    undo: &Roll<'_, F, L>,
    sw: &Switch,
) -> Option<TemplateRef> {
    let none = BTreeMap::new();
    let named = std::slice::from_ref(&sw.new);
    let d = undo.deadline();
    let found = patiently(undo.cancel, d, || undo.fleet.groups(&none, named)).await;
    found.ok()?.into_iter().next()?.template
}

/// After an `--abort`, the new group's template version (`made`) deleted when `$Latest` still
/// launches it and no group uses it ([`Roll::forget_version`]). Not known (the killed run died
/// before its clone): the latest version, when gears made it after the one the old group was
/// pinned to.
async fn forget_new_version<F: Fleet, L: LockTable>(
    undo: &Roll<'_, F, L>,
    sw: &Switch,
    made: Option<TemplateRef>,
) {
    let Some(old) = undo.group().await.ok().and_then(|o| o.template) else {
        return;
    };
    let fromn = if old.version.parse::<u64>().is_ok() {
        old.version.as_str()
    } else {
        ""
    };
    let (lt, fromn, to) = match &made {
        Some(m) if m.id == old.id => (m.id.as_str(), fromn, m.version.as_str()),
        Some(m) => (m.id.as_str(), "", m.version.as_str()),
        None if !fromn.is_empty() => (old.id.as_str(), fromn, ""),
        None => return,
    };
    let a = Abandoned {
        lt,
        fromn,
        to,
        run: &sw.run,
        gone: Some(&sw.new),
    };
    undo.forget_version(a).await;
}

/// `--abort` of a recorded blue/green deploy: the way back, whatever phase it reached, on
/// cleanup's own token (a first signal does not leave it half done).
pub(super) async fn abort<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    g: &Group,
    on: &OnGroup,
    out: GroupOutcome,
) -> Result<GroupOutcome, Error> {
    let Some(sw) = on.switch.clone() else {
        // A run killed before it recorded its switch (or after its switch) left its locks.
        let removed = super::sweep::sweep(ctx, roll, &cluster_of(g), true).await?;
        let result = if removed.is_empty() {
            GroupResult::NothingToDo
        } else {
            GroupResult::Aborted
        };
        let detail = format!(
            "no blue/green deploy recorded{}",
            super::sweep::removed_words(&removed)
        );
        return Ok(out.with(result, detail));
    };
    if let Some(l @ LockValue::Held { run, .. }) = &on.lock {
        if l.is_live(roll.settings.lock_stale) && run != &roll.run {
            return Err(refused(
                &g.name,
                format!(
                    "a deploy is running now: run {run}, lock refreshed {} ago",
                    crate::text::human_duration(l.age().unwrap_or_default())
                ),
                "stop that deploy first (it undoes itself on SIGTERM), or wait a minute if it was killed",
            ));
        }
    }
    if sw.ami != roll.ami {
        return Err(Error::usage(
            format!(
                "--abort: the blue/green deploy recorded on {} is of {} (run {}), not {}",
                g.name, sw.ami, sw.run, roll.ami
            ),
            Some(format!(
                "`gears deploy --abort --ami {} --region {}` undoes it",
                sw.ami,
                roll.fleet.region()
            )),
        ));
    }
    if sw.phase == BACK {
        return super::tidy::abort_rollback(ctx, roll, g, on, &sw, out).await;
    }
    super::super::admin::take_locks_for_abort(roll, on).await?;
    let abort_cancel = ctx.cancel.for_cleanup();
    let undo_roll = keyed(
        Roll::new(
            ctx,
            roll.fleet,
            roll.table,
            roll.looks,
            &g.name,
            &roll.ami,
            &abort_cancel,
        ),
        roll,
    );
    let made = new_version(&undo_roll, &sw).await;
    let r = undo_roll.with_heartbeat(undo(&undo_roll, g, &sw)).await;
    if let Err(e) = r {
        let note = undo_roll.stop_the_line().await;
        let detail = format!(
            "undoing failed: {}{note}",
            e.render().trim().trim_start_matches("error: ")
        );
        return Ok(out.with(GroupResult::RollbackFailed, detail));
    }
    forget_new_version(&undo_roll, &sw, made).await;
    unlock_both(&undo_roll, None).await;
    let _ = super::sweep::sweep(ctx, &undo_roll, &cluster_of(g), false).await;
    undo_roll.give_back().await;
    let detail = format!("{} removed; {} serves as before", sw.new, g.name);
    Ok(out.with(GroupResult::Aborted, detail))
}
