//! `gears amis prune`: what goes, then deregister and delete, then the sweep of snapshots a
//! killed run left.

use super::accounts::{kept_for_shares, Looked};
use super::{
    component_tags, list, patience, select, Ami, AmiAction, AmisSettings, Listing, PruneOptions,
    PruneReport, Pruned, SnapshotAction, Swept, Unread,
};
use crate::aws::{AmiCloud, AmiHousekeeping, ErrorKind};
use crate::cancel::Cancel;
use crate::error::Error;
use crate::wait::patiently;
use std::collections::{BTreeMap, BTreeSet};

/// Lists what a prune would do and, with `yes`, does it: deregisters each AMI that goes, then
/// deletes its snapshots (never one that another registered AMI uses), then deletes the
/// snapshots of ours whose AMI is gone (left by a run killed between the two). In use means in
/// use in the build account or in any account of `accounts:`. Kept besides [`select`]'s: AMIs
/// other accounts may launch, as [`kept_for_shares`] says. Every call is retried while AWS
/// throttles; a failure is recorded on its line and the prune goes on with the others. An
/// account of `accounts:` that cannot be read keeps every AMI shared with it and is in the
/// report (exit 5).
pub async fn prune<C: AmiCloud>(
    settings: &AmisSettings,
    opts: PruneOptions,
    cancel: &Cancel,
    cloud: &C,
) -> Result<PruneReport, Error> {
    let Listing { amis, unread } = list(settings, cancel, cloud).await?;
    let mut verdicts = select(&amis, opts.keep);
    let mut out = PruneReport {
        amis: Vec::with_capacity(amis.len()),
        snapshots: Vec::new(),
        unread: Vec::new(),
    };
    for region in &settings.regions {
        let port = cloud.amis(region).await?;
        let here: Vec<usize> = (0..amis.len())
            .filter(|&i| &amis[i].region == region)
            .collect();
        let looked = looked_in(settings, &unread, region);
        for &i in &here {
            if let (false, Some(p)) = (verdicts[i].0, &amis[i].protection) {
                // Never a failure half-way: EC2 would refuse to deregister it.
                verdicts[i] = (true, format!("deregistration protection is {p}: disable it (ec2:DisableImageDeregistrationProtection) for prune to deregister it"));
            }
            if !verdicts[i].0 {
                if let Some(why) = kept_for_shares(&amis[i], opts.include_shared, &looked) {
                    verdicts[i] = (true, why);
                }
            }
        }
        let registered = patiently(cancel, patience(), || port.registered_snapshots()).await?;
        let going: BTreeSet<&str> = here
            .iter()
            .filter(|&&i| !verdicts[i].0)
            .map(|&i| amis[i].id.as_str())
            .collect();
        let held: BTreeSet<&str> = registered
            .iter()
            .filter(|(_, by)| by.iter().any(|a| !going.contains(a.as_str())))
            .map(|(s, _)| s.as_str())
            .collect();
        for &i in &here {
            let (keep, reason) = verdicts[i].clone();
            let p = prune_one(&port, &amis[i], keep, reason, &held, opts.yes, cancel).await?;
            out.amis.push(p);
        }
        let listed: Vec<&Ami> = here.iter().map(|&i| &amis[i]).collect();
        let swept = sweep(&port, settings, &listed, &registered, opts.yes, cancel).await?;
        out.snapshots.extend(swept);
    }
    out.unread = unread;
    Ok(out)
}

/// The accounts of `accounts:` as the look at `region` left them: read, or not.
fn looked_in<'a>(settings: &'a AmisSettings, unread: &'a [Unread], region: &str) -> Looked<'a> {
    let mut looked = Looked::default();
    for u in unread.iter().filter(|u| u.region == region) {
        looked.unread.insert(u.account.as_str(), u);
    }
    for c in &settings.consumers {
        if !looked.unread.contains_key(c.account.as_str()) {
            looked.read.insert(c.account.as_str());
        }
    }
    looked
}

/// One AMI of a prune: what would happen, and with `yes` what did.
async fn prune_one<P: AmiHousekeeping>(
    port: &P,
    ami: &Ami,
    keep: bool,
    reason: String,
    held: &BTreeSet<&str>,
    yes: bool,
    cancel: &Cancel,
) -> Result<Pruned, Error> {
    let mut p = Pruned {
        ami: ami.clone(),
        keep,
        reason,
        action: if keep {
            AmiAction::Kept
        } else {
            AmiAction::WouldDeregister
        },
        snapshot_actions: BTreeMap::new(),
    };
    if keep {
        return Ok(p);
    }
    for s in &ami.snapshots {
        let a = if held.contains(s.as_str()) {
            SnapshotAction::Kept(SnapshotAction::SHARED)
        } else {
            SnapshotAction::WouldDelete
        };
        p.snapshot_actions.insert(s.clone(), a);
    }
    if !yes {
        return Ok(p);
    }
    if let Some(sig) = cancel.signal() {
        return Err(Error::Interrupted(sig));
    }
    match patiently(cancel, patience(), || port.deregister(&ami.id)).await {
        // Not found: an earlier attempt, whose answer was lost, deregistered it.
        Err(Error::Cloud(e)) if e.kind() != ErrorKind::NotFound => {
            p.action = AmiAction::Failed(e);
            for a in p.snapshot_actions.values_mut() {
                *a = SnapshotAction::Kept(SnapshotAction::STILL_REGISTERED);
            }
            return Ok(p);
        }
        Err(e @ Error::Interrupted(_)) => return Err(e),
        _ => p.action = AmiAction::Deregistered,
    }
    for (s, a) in p.snapshot_actions.iter_mut() {
        if *a == SnapshotAction::WouldDelete {
            *a = delete_snapshot(port, s, cancel).await?;
        }
    }
    Ok(p)
}

/// Deletes a snapshot, retrying `InvalidSnapshot.InUse` (EC2 answers it for a while right after
/// the deregister) and throttling; already gone (DeleteAssociatedSnapshots) counts as deleted.
/// `Err` only when the run is interrupted.
async fn delete_snapshot<P: AmiHousekeeping>(
    port: &P,
    id: &str,
    cancel: &Cancel,
) -> Result<SnapshotAction, Error> {
    match patiently(cancel, patience(), || port.delete_snapshot(id)).await {
        Ok(()) => Ok(SnapshotAction::Deleted),
        Err(Error::Cloud(e)) if e.kind() == ErrorKind::NotFound => Ok(SnapshotAction::Deleted),
        Err(Error::Cloud(e)) => Ok(SnapshotAction::Failed(e)),
        Err(e) => Err(e),
    }
}

/// Snapshots of ours (the component's, made by gears) that no AMI of ours uses any more: a
/// prune killed between DeregisterImage and DeleteSnapshot leaves them. A snapshot of a bake
/// still in progress (its run has an AMI not available yet) or not completed stays.
async fn sweep<P: AmiHousekeeping>(
    port: &P,
    settings: &AmisSettings,
    listed: &[&Ami],
    registered: &BTreeMap<String, Vec<String>>,
    yes: bool,
    cancel: &Cancel,
) -> Result<Vec<Swept>, Error> {
    let mut tags = component_tags(&settings.component);
    tags.insert(crate::tags::MANAGED_BY.into(), "gears".into());
    let snapshots = patiently(cancel, patience(), || port.tagged_snapshots(&tags)).await?;
    let baking: BTreeSet<&str> = listed
        .iter()
        .filter(|a| a.state != "available" && a.state != "failed")
        .map(|a| a.run_id.as_str())
        .collect();
    let mut out = Vec::new();
    for s in snapshots {
        let run_id = s.tags.get(crate::tags::RUN_ID).cloned().unwrap_or_default();
        if registered.contains_key(&s.id)
            || s.state != "completed"
            || baking.contains(run_id.as_str())
        {
            continue;
        }
        let action = if yes {
            if let Some(sig) = cancel.signal() {
                return Err(Error::Interrupted(sig));
            }
            delete_snapshot(port, &s.id, cancel).await?
        } else {
            SnapshotAction::WouldDelete
        };
        out.push(Swept {
            region: port.region().to_owned(),
            reason: format!("left behind: no AMI of ours uses it (run {run_id})"),
            id: s.id,
            run_id,
            action,
        });
    }
    Ok(out)
}
