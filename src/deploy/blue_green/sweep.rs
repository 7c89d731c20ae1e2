//! The end of every run on a cluster (a deploy, one continued, `--abort`, `--rollback`, or
//! nothing to do): no lock of this run, and none of a run that is gone, is left on any group of
//! the cluster in the region, nor in the lock table. A killed run's lock can sit on any of them:
//! the old group (its lock), the new one (a clone of the old group, lock and all), the group
//! a `--rollback` brought back; the run that continues or undoes its deploy is the only one that
//! will ever come by, so it removes them.
use crate::aws::{Fleet, Group, LockTable};
use crate::deploy::blue_green::record::cluster_of;
use crate::deploy::lock::{held_by_another, lease_times, Holder, LockValue};
use crate::deploy::region::RegionCtx;
use crate::deploy::roll::Roll;
use crate::deploy::LOCK_TAG;
use crate::error::Error;
use crate::wait::patiently;
use std::collections::BTreeMap;

/// The cluster's groups in the region (those the component's tags find, and the group in
/// traffic itself).
async fn cluster_groups<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    cluster: &str,
) -> Result<Vec<Group>, Error> {
    let d = roll.deadline();
    let mut groups: Vec<Group> = patiently(roll.cancel, d, || roll.fleet.groups(ctx.want, &[]))
        .await?
        .into_iter()
        .filter(|g| cluster_of(g) == cluster)
        .collect();
    if !groups.iter().any(|g| g.name == roll.name) {
        let none = BTreeMap::new();
        let named = std::slice::from_ref(&roll.name);
        groups.extend(patiently(roll.cancel, d, || roll.fleet.groups(&none, named)).await?);
    }
    Ok(groups)
}

/// Removes every lock tag of this run or of a run that is gone (renewed longer ago than the
/// stale limit) from the cluster's groups; a live run's lock and a STOP are left. `idle`: this
/// run took no lock (it had nothing to do): then a live run's lock is refused, as a deploy
/// would refuse it, and a gone run's lock-table item is removed too (a run that took the table's
/// lock took such an item over, and gave it back). Returns the groups whose lock was removed.
/// After a run's own work, best effort: what AWS does not answer is left (said).
pub(super) async fn sweep<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    cluster: &str,
    idle: bool,
) -> Result<Vec<String>, Error> {
    let stale = roll.settings.lock_stale;
    let d = roll.deadline();
    let groups = match cluster_groups(ctx, roll, cluster).await {
        Ok(g) => g,
        Err(e) if idle => return Err(e),
        Err(_) => {
            roll.say("the cluster's locks not looked at (AWS did not answer)");
            return Ok(Vec::new());
        }
    };
    let locks: Vec<(String, LockValue)> = groups
        .into_iter()
        .filter_map(|g| {
            let l = LockValue::parse(g.tags.get(LOCK_TAG)?).ok()?;
            Some((g.name, l))
        })
        .collect();
    if idle {
        for (group, l) in &locks {
            if l.run() != roll.run && l.is_live(stale) {
                if let Some(h) = Holder::of_tag(l) {
                    return Err(held_by_another(group, &h, stale, None));
                }
            }
        }
    }
    let keys = [LOCK_TAG.to_owned()];
    let mut removed = Vec::new();
    for (group, l) in locks {
        if l.is_stop() || (l.run() != roll.run && l.is_live(stale)) {
            continue;
        }
        match patiently(roll.cancel, d, || roll.fleet.delete_tags(&group, &keys)).await {
            Ok(()) => removed.push(group),
            // Deleted since the look (AWS refuses a tag call naming a group that is gone): its
            // lock went with it.
            Err(_) if gone(roll, &group).await => {}
            Err(e) if idle => return Err(e),
            Err(e) => roll.say(&format!(
                "the lock on {group} is left: {}",
                e.render().trim().trim_start_matches("error: ")
            )),
        }
    }
    if let (Some(t), true) = (roll.table, idle) {
        // A gone run's item: taken (a compare-and-swap: a live one is refused) and given back.
        let (now, stale_before) = lease_times(roll.settings);
        let mine = LockValue::held_now(&roll.run, roll.who).write();
        let key = &roll.lock_key;
        let held = patiently(roll.cancel, d, || {
            t.acquire(key, &roll.run, &mine, now, stale_before)
        })
        .await?;
        if let Some(h) = held {
            return Err(held_by_another(
                &roll.name,
                &Holder::of_table(&h, key),
                stale,
                None,
            ));
        }
        patiently(roll.cancel, d, || t.release(key, &roll.run)).await?;
    }
    Ok(removed)
}

/// Whether `group` no longer exists (a look that answers, without it).
async fn gone<F: Fleet, L: LockTable>(roll: &Roll<'_, F, L>, group: &str) -> bool {
    let none = BTreeMap::new();
    let named = [group.to_owned()];
    let d = roll.deadline();
    patiently(roll.cancel, d, || roll.fleet.groups(&none, &named))
        .await
        .is_ok_and(|g| g.is_empty())
}

/// `; removed the lock of a run that is gone from GROUP, ...` (empty when none was).
pub(super) fn removed_words(removed: &[String]) -> String {
    if removed.is_empty() {
        String::new()
    } else {
        format!(
            "; removed the lock of a run that is gone from {}",
            removed.join(", ")
        )
    }
}
