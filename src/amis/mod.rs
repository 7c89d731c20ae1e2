//! `gears amis`: the component's AMIs per region, where each is in use, and pruning.
//!
//! [`list`] finds our AMIs (owner self, tagged `gears:component` and `COMPONENT_NAME` with the
//! component's name, as every bake tags them) and what uses any AMI in the region (launch
//! template default and latest versions, versions Auto Scaling groups pin by number, launch
//! configurations, instances that are not terminated). [`select`] decides what a prune keeps (pure); [`prune`] deregisters the rest and
//! deletes their snapshots, only when asked to.
//!
//! What is kept: every AMI in use; the newest N available AMIs of each builder (`gears:builder`)
//! in each region, newest by `CREATED_AT`, then EC2's creation date, then id; and AMIs that are
//! not `available` yet (a bake may be copying them). A `failed` AMI is never among the newest.

use crate::aws::{AmiCloud, AmiHousekeeping, AmiUse, CloudError, ErrorKind, OwnedImage};
use crate::cancel::Cancel;
use crate::error::Error;
use crate::exit::Exit;
use crate::wait::patiently;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, BTreeSet};

mod settings;
pub use settings::{AmisAsk, AmisSettings};

/// One of the component's AMIs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ami {
    pub region: String,
    pub id: String,
    pub name: String,
    /// EC2's state: `available`, `pending`, `failed`, ...
    pub state: String,
    /// `COMPONENT_VERSION`.
    pub version: String,
    /// `GIT_SHA`.
    pub git_sha: String,
    /// `gears:builder`.
    pub builder: String,
    /// `gears:run-id`.
    pub run_id: String,
    /// When it was baked (RFC 3339, UTC): `CREATED_AT`, else EC2's creation date.
    pub created: Option<String>,
    /// Seconds since then, when known.
    pub age_secs: Option<i64>,
    /// Where it is in use, e.g. `launch-template lt-0a1b (hello version 3 (default, latest))`.
    pub in_use: Vec<String>,
    /// The EBS snapshots behind it.
    pub snapshots: Vec<String>,
    /// Tagged `gears:managed-by=gears` (a bake made it); others are never pruned.
    pub made_by_gears: bool,
    /// EC2 says anyone may launch it.
    pub public: bool,
    /// Why the bake time is not `CREATED_AT`, when it is not.
    pub created_note: Option<String>,
}

/// How a prune goes.
#[derive(Debug, Clone, Copy)]
pub struct PruneOptions {
    /// Keep the newest N available AMIs of each builder in each region.
    pub keep: usize,
    /// Remove; otherwise only say what would go.
    pub yes: bool,
    /// Prune AMIs that other accounts may launch (public or shared) too.
    pub include_shared: bool,
}

/// A snapshot of ours whose AMI is gone (a prune killed between deregister and delete).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Swept {
    pub region: String,
    pub id: String,
    /// Its `gears:run-id`.
    pub run_id: String,
    pub reason: String,
    /// What was done with it: would delete, deleted or failed.
    pub action: SnapshotAction,
}

/// What a prune did: each AMI, and the snapshots left behind by earlier runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneReport {
    pub amis: Vec<Pruned>,
    pub snapshots: Vec<Swept>,
}

impl PruneReport {
    /// How many removals failed.
    pub fn failures(&self) -> usize {
        self.amis.iter().filter(|p| p.failed()).count()
            + self.snapshots.iter().filter(|s| s.action.failed()).count()
    }

    /// The exit code of the prune: 5 when a removal failed, else 0.
    pub fn exit(&self) -> Exit {
        let amis = self.amis.iter().map(Pruned::exit);
        let swept = self.snapshots.iter().map(|s| s.action.exit());
        amis.chain(swept).fold(Exit::Success, Exit::most_severe)
    }
}

/// How long one AWS call is retried (throttling, a transient error) before it counts as failed.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// The deadline of an AWS call made now: [`PATIENCE`] from now.
fn patience() -> tokio::time::Instant {
    tokio::time::Instant::now() + PATIENCE
}

/// What a prune did with an AMI (or would do, without `--yes`). Printed and serialized as
/// `kept`, `would deregister`, `deregistered` or `failed: <why>`.
#[derive(Debug, Clone, PartialEq)]
pub enum AmiAction {
    Kept,
    WouldDeregister,
    Deregistered,
    /// AWS refused the deregister, after retries: exit 5.
    Failed(CloudError),
}

/// What a prune did with a snapshot of an AMI that goes, or of one already gone. Printed and
/// serialized as `would delete`, `deleted`, `kept: <why>` or `failed: <why>`.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotAction {
    WouldDelete,
    Deleted,
    /// Kept, and why: [`SnapshotAction::SHARED`] or [`SnapshotAction::STILL_REGISTERED`].
    Kept(&'static str),
    /// AWS refused the deletion, after retries: exit 5.
    Failed(CloudError),
}

impl SnapshotAction {
    /// Why the snapshot of an AMI that goes stays: another AMI, one that stays, uses it.
    pub const SHARED: &'static str = "a kept AMI uses it too";
    /// Why the snapshots of an AMI whose deregister failed stay.
    pub const STILL_REGISTERED: &'static str = "the AMI is still registered";

    /// Whether the deletion failed.
    pub fn failed(&self) -> bool {
        matches!(self, SnapshotAction::Failed(_))
    }

    /// The exit code this action asks for: 5 when it failed, else 0.
    pub fn exit(&self) -> Exit {
        if self.failed() {
            Exit::Cloud
        } else {
            Exit::Success
        }
    }
}

impl AmiAction {
    /// Whether the deregister failed.
    pub fn failed(&self) -> bool {
        matches!(self, AmiAction::Failed(_))
    }

    /// The exit code this action asks for: 5 when it failed, else 0.
    pub fn exit(&self) -> Exit {
        if self.failed() {
            Exit::Cloud
        } else {
            Exit::Success
        }
    }
}

impl std::fmt::Display for AmiAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AmiAction::Kept => f.write_str("kept"),
            AmiAction::WouldDeregister => f.write_str("would deregister"),
            AmiAction::Deregistered => f.write_str("deregistered"),
            AmiAction::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

impl std::fmt::Display for SnapshotAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotAction::WouldDelete => f.write_str("would delete"),
            SnapshotAction::Deleted => f.write_str("deleted"),
            SnapshotAction::Kept(why) => write!(f, "kept: {why}"),
            SnapshotAction::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// Both actions are written in JSON as they are printed.
impl Serialize for AmiAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for SnapshotAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One AMI in a prune: kept or not, why, and what was done.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pruned {
    #[serde(flatten)]
    pub ami: Ami,
    pub keep: bool,
    pub reason: String,
    /// Kept, would deregister (without `--yes`), deregistered, or failed.
    pub action: AmiAction,
    /// Snapshot id → what was done with it (for AMIs that go).
    pub snapshot_actions: BTreeMap<String, SnapshotAction>,
}

impl Pruned {
    /// Whether a removal of this AMI or one of its snapshots failed.
    pub fn failed(&self) -> bool {
        self.action.failed() || self.snapshot_actions.values().any(SnapshotAction::failed)
    }

    /// The exit code of this AMI's line: 5 when a removal failed, else 0.
    pub fn exit(&self) -> Exit {
        let snapshots = self.snapshot_actions.values().map(SnapshotAction::exit);
        snapshots.fold(self.action.exit(), Exit::most_severe)
    }
}

/// The tags of the component's AMIs.
pub fn component_tags(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (crate::tags::COMPONENT.to_owned(), component.to_owned()),
        ("COMPONENT_NAME".to_owned(), component.to_owned()),
    ])
}

/// When an AMI was baked: its `CREATED_AT` tag (bake writes `%Y%m%d%H%M`, UTC: exactly 12
/// digits), else EC2's creation date; with a note when `CREATED_AT` is there but not trusted
/// (not 12 digits, not a time, or in the future).
pub fn created(
    tags: &BTreeMap<String, String>,
    creation_date: &str,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<String>) {
    let ec2 = DateTime::parse_from_rfc3339(creation_date)
        .ok()
        .map(|t| t.with_timezone(&Utc));
    let Some(raw) = tags.get("CREATED_AT") else {
        return (ec2, None);
    };
    let parsed = (raw.len() == 12 && raw.bytes().all(|b| b.is_ascii_digit()))
        .then(|| NaiveDateTime::parse_from_str(raw, "%Y%m%d%H%M").ok())
        .flatten()
        .map(|t| t.and_utc());
    match parsed {
        // A minute of clock skew is not the future.
        Some(t) if t <= now + chrono::Duration::minutes(1) => (Some(t), None),
        Some(_) => (
            ec2,
            Some(format!(
                "CREATED_AT {raw} is in the future: EC2's creation date used"
            )),
        ),
        None => (
            ec2,
            Some(format!(
                "CREATED_AT {raw:?} is not a bake time (12 digits, UTC): EC2's creation date used"
            )),
        ),
    }
}

fn describe_use(u: &AmiUse) -> String {
    if u.detail.is_empty() {
        format!("{} {}", u.kind, u.id)
    } else {
        format!("{} {} ({})", u.kind, u.id, u.detail)
    }
}

/// The component's AMIs of one region as rows, newest first, with their uses.
pub fn rows(
    region: &str,
    images: Vec<OwnedImage>,
    uses: &[AmiUse],
    now: DateTime<Utc>,
) -> Vec<Ami> {
    let mut by_image: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for u in uses {
        by_image
            .entry(u.image_id.as_str())
            .or_default()
            .insert(describe_use(u));
    }
    let mut out: Vec<Ami> = images
        .into_iter()
        .map(|o| {
            let tag = |k: &str| o.image.tags.get(k).cloned().unwrap_or_default();
            let (when, created_note) = created(&o.image.tags, &o.image.creation_date, now);
            Ami {
                region: region.to_owned(),
                in_use: by_image
                    .get(o.image.id.as_str())
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default(),
                version: tag("COMPONENT_VERSION"),
                git_sha: tag("GIT_SHA"),
                builder: tag(crate::tags::BUILDER),
                run_id: tag(crate::tags::RUN_ID),
                created: when.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                age_secs: when.map(|t| now.signed_duration_since(t).num_seconds()),
                id: o.image.id,
                name: o.image.name,
                state: o.image.state,
                snapshots: o.snapshots,
                made_by_gears: o
                    .image
                    .tags
                    .get(crate::tags::MANAGED_BY)
                    .map(String::as_str)
                    == Some("gears"),
                public: o.public,
                created_note,
            }
        })
        .collect();
    out.sort_by(newest_first);
    out
}

/// Newest first: by bake time, then id (so the order is total).
fn newest_first(a: &Ami, b: &Ami) -> std::cmp::Ordering {
    (&b.created, &b.id).cmp(&(&a.created, &a.id))
}

/// What a prune keeps, for each AMI in `amis` (same order): `(keep, reason)`. Kept: every AMI in
/// use, the newest `keep` available AMIs of each builder in each region, and AMIs that are not
/// available yet; the rest (older available ones, failed ones) go.
pub fn select(amis: &[Ami], keep: usize) -> Vec<(bool, String)> {
    let mut groups: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (i, a) in amis.iter().enumerate() {
        if a.state == "available" && a.made_by_gears {
            groups
                .entry((a.region.as_str(), a.builder.as_str()))
                .or_default()
                .push(i);
        }
    }
    let mut newest = BTreeSet::new();
    for v in groups.values_mut() {
        v.sort_by(|&x, &y| newest_first(&amis[x], &amis[y]));
        newest.extend(v.iter().take(keep).copied());
    }
    let of = |a: &Ami| {
        if a.builder.is_empty() {
            format!("in {}", a.region)
        } else {
            format!("of builder {} in {}", a.builder, a.region)
        }
    };
    amis.iter()
        .enumerate()
        .map(|(i, a)| {
            if !a.in_use.is_empty() {
                (true, format!("in use: {}", a.in_use.join(", ")))
            } else if !a.made_by_gears {
                (
                    true,
                    format!(
                        "not made by gears (no {}=gears tag)",
                        crate::tags::MANAGED_BY
                    ),
                )
            } else if newest.contains(&i) {
                (true, format!("one of the newest {keep} {}", of(a)))
            } else if a.state == "available" {
                (false, format!("older than the newest {keep} {}", of(a)))
            } else if a.state == "failed" {
                (false, "the AMI failed".to_owned())
            } else {
                (true, format!("{} (not available yet)", a.state))
            }
        })
        .collect()
}

async fn list_region<C: AmiCloud>(
    settings: &AmisSettings,
    cloud: &C,
    region: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Ami>, Error> {
    let port = cloud.amis(region).await?;
    let tags = component_tags(&settings.component);
    let cancel = Cancel::new();
    let (images, uses) = futures::try_join!(
        patiently(&cancel, patience(), || port.owned_images(&tags)),
        patiently(&cancel, patience(), || port.uses())
    )?;
    Ok(rows(region, images, &uses, now))
}

/// The component's AMIs in every region of the settings (regions concurrently, rows in region
/// order, newest first within a region).
pub async fn list<C: AmiCloud>(settings: &AmisSettings, cloud: &C) -> Result<Vec<Ami>, Error> {
    let now = Utc::now();
    let per_region = futures::future::try_join_all(
        settings
            .regions
            .iter()
            .map(|r| list_region(settings, cloud, r, now)),
    )
    .await?;
    Ok(per_region.into_iter().flatten().collect())
}

/// Lists what a prune would do and, with `yes`, does it: deregisters each AMI that goes, then
/// deletes its snapshots (never one that another registered AMI uses), then deletes the
/// snapshots of ours whose AMI is gone (left by a run killed between the two). Kept besides
/// [`select`]'s: AMIs other accounts may launch (public or shared), unless `include_shared`.
/// Every call is retried while AWS throttles; a failure is recorded on its line and the prune
/// goes on with the others.
pub async fn prune<C: AmiCloud>(
    settings: &AmisSettings,
    opts: PruneOptions,
    cancel: &Cancel,
    cloud: &C,
) -> Result<PruneReport, Error> {
    let amis = list(settings, cloud).await?;
    let mut verdicts = select(&amis, opts.keep);
    let mut out = PruneReport {
        amis: Vec::with_capacity(amis.len()),
        snapshots: Vec::new(),
    };
    for region in &settings.regions {
        let port = cloud.amis(region).await?;
        let here: Vec<usize> = (0..amis.len())
            .filter(|&i| &amis[i].region == region)
            .collect();
        for &i in &here {
            if !verdicts[i].0 && !opts.include_shared {
                if let Some(why) = shared(&port, &amis[i], cancel).await? {
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
    Ok(out)
}

/// Why an AMI others may launch stays, if they may.
async fn shared<P: AmiHousekeeping>(
    port: &P,
    ami: &Ami,
    cancel: &Cancel,
) -> Result<Option<String>, Error> {
    if ami.public {
        return Ok(Some(
            "public: anyone may launch it (--include-shared prunes it)".into(),
        ));
    }
    let who = patiently(cancel, patience(), || port.launch_permissions(&ami.id)).await?;
    Ok((!who.is_empty()).then(|| {
        format!(
            "shared: {} may launch it (--include-shared prunes it)",
            who.join(", ")
        )
    }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::{ErrorKind, Image};
    use crate::testing::{FakeCloud, Faults};

    fn ami(id: &str, builder: &str, created: &str, in_use: &[&str]) -> Ami {
        Ami {
            region: "us-east-1".into(),
            id: id.into(),
            name: id.into(),
            state: "available".into(),
            version: "1".into(),
            git_sha: "abc".into(),
            builder: builder.into(),
            run_id: String::new(),
            created: Some(created.into()),
            age_secs: None,
            in_use: in_use.iter().map(|s| s.to_string()).collect(),
            snapshots: vec![format!("snap-{id}")],
            made_by_gears: true,
            public: false,
            created_note: None,
        }
    }

    fn kept(amis: &[Ami], keep: usize) -> Vec<&str> {
        amis.iter()
            .zip(select(amis, keep))
            .filter(|(_, (k, _))| *k)
            .map(|(a, _)| a.id.as_str())
            .collect()
    }

    #[test]
    fn in_use_is_kept_even_when_oldest_and_newest_n_are_kept() {
        let amis = [
            ami(
                "ami-old",
                "web",
                "2026-01-01T00:00:00Z",
                &["launch-template lt-1"],
            ),
            ami("ami-mid", "web", "2026-02-01T00:00:00Z", &[]),
            ami("ami-new", "web", "2026-03-01T00:00:00Z", &[]),
        ];
        assert_eq!(kept(&amis, 1), ["ami-old", "ami-new"]);
        let v = select(&amis, 1);
        assert!(v[0].1.starts_with("in use: launch-template lt-1"), "{v:?}");
        assert_eq!(
            v[1],
            (
                false,
                "older than the newest 1 of builder web in us-east-1".into()
            )
        );
        assert_eq!(kept(&amis, 2), ["ami-old", "ami-mid", "ami-new"]);
        assert_eq!(kept(&amis, 0), ["ami-old"]);
    }

    #[test]
    fn newest_is_per_builder_and_region_and_only_among_available() {
        let mut amis = vec![
            ami("ami-w1", "web", "2026-01-01T00:00:00Z", &[]),
            ami("ami-w2", "web", "2026-02-01T00:00:00Z", &[]),
            ami("ami-a1", "agent", "2026-01-05T00:00:00Z", &[]),
            ami("ami-e1", "web", "2026-01-01T00:00:00Z", &[]),
        ];
        amis[3].region = "eu-west-1".into();
        assert_eq!(kept(&amis, 1), ["ami-w2", "ami-a1", "ami-e1"]);
        // A pending (being copied) newest one is kept and does not push out the newest
        // available one; a failed one goes.
        let mut p = ami("ami-pending", "web", "2026-03-01T00:00:00Z", &[]);
        p.state = "pending".into();
        let mut f = ami("ami-failed", "web", "2026-04-01T00:00:00Z", &[]);
        f.state = "failed".into();
        amis.push(p);
        amis.push(f);
        assert_eq!(
            kept(&amis, 1),
            ["ami-w2", "ami-a1", "ami-e1", "ami-pending"]
        );
    }

    #[test]
    fn bake_times_and_ages() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let tags = |v: &str| BTreeMap::from([("CREATED_AT".to_owned(), v.to_owned())]);
        let at = |v: &str| {
            let (t, note) = created(&tags(v), "2020-01-01T00:00:00.000Z", now);
            (t.unwrap().to_rfc3339_opts(SecondsFormat::Secs, true), note)
        };
        assert_eq!(at("202611240405"), ("2026-11-24T04:05:00Z".into(), None));
        // Not 12 digits, not a time, or in the future: EC2's creation date, and a note why.
        for bad in [
            "garbage",
            "20240101000",
            "2024010100000",
            "202613010000",
            "+20401010000",
            "203001010000",
        ] {
            let (t, note) = at(bad);
            assert_eq!(t, "2020-01-01T00:00:00Z", "{bad}");
            assert!(note.unwrap().contains(bad), "{bad}");
        }
        assert!(created(&BTreeMap::new(), "", now).0.is_none());
    }

    fn image(id: &str, created_at: &str) -> Image {
        Image {
            id: id.into(),
            name: format!("hello-{id}"),
            state: "available".into(),
            creation_date: "2026-01-01T00:00:00.000Z".into(),
            tags: [
                ("gears:component", "hello"),
                ("COMPONENT_NAME", "hello"),
                ("COMPONENT_VERSION", id),
                ("gears:builder", "web"),
                ("gears:managed-by", "gears"),
                ("gears:run-id", id),
                ("CREATED_AT", created_at),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ..Default::default()
        }
    }

    fn cloud() -> FakeCloud {
        let cloud = FakeCloud::new();
        for (id, at) in [
            ("ami-old", "202601010000"),
            ("ami-mid", "202602010000"),
            ("ami-new", "202603010000"),
        ] {
            cloud.add_image("us-east-1", image(id, at));
            cloud.add_snapshots("us-east-1", id, &[&format!("snap-{id}")]);
        }
        let mut other = image("ami-other", "202501010000");
        other.tags.insert("gears:component".into(), "other".into());
        other.tags.insert("COMPONENT_NAME".into(), "other".into());
        cloud.add_image("us-east-1", other);
        cloud.add_ami_use(
            "us-east-1",
            AmiUse {
                image_id: "ami-old".into(),
                kind: "launch-template",
                id: "lt-1".into(),
                detail: "hello version 1 (default, latest)".into(),
            },
        );
        cloud
    }

    fn opts(keep: usize, yes: bool) -> PruneOptions {
        PruneOptions {
            keep,
            yes,
            include_shared: false,
        }
    }

    fn settings() -> AmisSettings {
        AmisSettings {
            account: None,
            component: "hello".into(),
            regions: vec!["us-east-1".into()],
            endpoint_flag: None,
        }
    }

    #[tokio::test]
    async fn prune_lists_then_deregisters_and_deletes_snapshots() {
        let cloud = cloud();
        let listed = list(&settings(), &cloud).await.unwrap();
        let ids: Vec<&str> = listed.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(
            ids,
            ["ami-new", "ami-mid", "ami-old"],
            "newest first, ours only"
        );
        assert_eq!(
            listed[2].in_use,
            ["launch-template lt-1 (hello version 1 (default, latest))"]
        );
        assert_eq!(listed[2].created.as_deref(), Some("2026-01-01T00:00:00Z"));

        let dry = prune(&settings(), opts(1, false), &Cancel::new(), &cloud)
            .await
            .unwrap()
            .amis;
        let actions: Vec<(&str, &AmiAction)> =
            dry.iter().map(|p| (p.ami.id.as_str(), &p.action)).collect();
        assert_eq!(
            actions,
            [
                ("ami-new", &AmiAction::Kept),
                ("ami-mid", &AmiAction::WouldDeregister),
                ("ami-old", &AmiAction::Kept)
            ]
        );
        assert_eq!(
            dry[1].snapshot_actions["snap-ami-mid"],
            SnapshotAction::WouldDelete
        );
        assert_eq!(
            cloud.ami_ids("us-east-1").len(),
            4,
            "without --yes nothing changes"
        );

        let done = prune(&settings(), opts(1, true), &Cancel::new(), &cloud)
            .await
            .unwrap()
            .amis;
        assert_eq!(done[1].action, AmiAction::Deregistered);
        assert_eq!(
            done[1].snapshot_actions["snap-ami-mid"],
            SnapshotAction::Deleted
        );
        assert!(!done.iter().any(Pruned::failed));
        assert_eq!(
            cloud.ami_ids("us-east-1"),
            ["ami-old", "ami-new", "ami-other"]
        );
        assert_eq!(
            cloud.snapshot_ids("us-east-1"),
            ["snap-ami-old", "snap-ami-new"]
        );
    }

    #[tokio::test]
    async fn a_failed_deregister_is_reported_and_the_others_go_on() {
        let cloud = cloud();
        cloud.add_image("us-east-1", image("ami-older", "202512010000"));
        cloud.add_snapshots("us-east-1", "ami-older", &["snap-ami-older"]);
        // The first deregister (ami-mid, the newer of the two that go) fails.
        // DescribeImages + the four of uses(), DescribeImageAttribute of the two that go, and
        // DescribeImages of every snapshot.
        let calls_before_deregister = 8;
        cloud.set_faults(Faults {
            fail_at: Some((calls_before_deregister + 1, ErrorKind::AccessDenied)),
            ..Default::default()
        });
        let done = prune(&settings(), opts(1, true), &Cancel::new(), &cloud)
            .await
            .unwrap()
            .amis;
        let by_id: BTreeMap<&str, &Pruned> = done.iter().map(|p| (p.ami.id.as_str(), p)).collect();
        assert!(
            matches!(&by_id["ami-mid"].action, AmiAction::Failed(e) if e.kind() == ErrorKind::AccessDenied),
            "{done:?}"
        );
        assert!(by_id["ami-mid"].failed());
        assert_eq!(by_id["ami-mid"].exit(), Exit::Cloud);
        assert_eq!(
            by_id["ami-mid"].snapshot_actions["snap-ami-mid"],
            SnapshotAction::Kept(SnapshotAction::STILL_REGISTERED)
        );
        assert_eq!(by_id["ami-older"].action, AmiAction::Deregistered);
        assert_eq!(by_id["ami-older"].exit(), Exit::Success);
        assert_eq!(
            by_id["ami-older"].snapshot_actions["snap-ami-older"],
            SnapshotAction::Deleted
        );
        assert!(cloud.ami_ids("us-east-1").contains(&"ami-mid".to_owned()));
        assert!(cloud
            .snapshot_ids("us-east-1")
            .contains(&"snap-ami-mid".to_owned()));
    }

    #[test]
    fn actions_read_as_before_in_text_and_json() {
        let e = CloudError::api("DeleteSnapshot", "us-east-1", Some("Nope"), "no");
        let texts = [
            (AmiAction::Kept.to_string(), "kept".to_owned()),
            (
                AmiAction::WouldDeregister.to_string(),
                "would deregister".into(),
            ),
            (AmiAction::Deregistered.to_string(), "deregistered".into()),
            (
                AmiAction::Failed(e.clone()).to_string(),
                format!("failed: {e}"),
            ),
            (
                SnapshotAction::WouldDelete.to_string(),
                "would delete".into(),
            ),
            (SnapshotAction::Deleted.to_string(), "deleted".into()),
            (
                SnapshotAction::Kept(SnapshotAction::SHARED).to_string(),
                "kept: a kept AMI uses it too".into(),
            ),
            (
                SnapshotAction::Kept(SnapshotAction::STILL_REGISTERED).to_string(),
                "kept: the AMI is still registered".into(),
            ),
            (
                SnapshotAction::Failed(e.clone()).to_string(),
                format!("failed: {e}"),
            ),
        ];
        for (got, want) in texts {
            assert_eq!(got, want);
        }
        let json = serde_json::to_string(&Swept {
            region: "r".into(),
            id: "snap-1".into(),
            run_id: "run".into(),
            reason: "why".into(),
            action: SnapshotAction::Failed(e.clone()),
        })
        .unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"region":"r","id":"snap-1","run_id":"run","reason":"why","action":"failed: {e}"}}"#
            )
        );
        assert_eq!(SnapshotAction::Failed(e).exit(), Exit::Cloud);
        assert_eq!(AmiAction::Kept.exit(), Exit::Success);
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_while_a_deregister_is_throttled_interrupts_the_prune() {
        let cloud = cloud();
        cloud.set_faults(Faults {
            throttle_ops: vec!["DeregisterImage"],
            ..Default::default()
        });
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            c2.cancel(crate::cancel::Signal::Term);
        });
        // Not "failed: throttled" on the AMI's line (exit 5): the run was stopped (143).
        let e = prune(&settings(), opts(1, true), &cancel, &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Terminated, "{e}");
        assert_eq!(cloud.ami_ids("us-east-1").len(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn aws_errors_while_looking_are_errors_and_nothing_is_removed() {
        let cloud = cloud();
        cloud.set_faults(Faults {
            throttle_ops: vec!["DescribeLaunchConfigurations"],
            ..Default::default()
        });
        // Without knowing every use, nothing may go.
        let e = prune(&settings(), opts(1, true), &Cancel::new(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Cloud);
        assert_eq!(cloud.ami_ids("us-east-1").len(), 4);
        assert!(!cloud.calls().iter().any(|c| c.starts_with("Deregister")));
    }

    #[tokio::test]
    async fn a_snapshot_shared_with_a_kept_ami_stays() {
        let cloud = cloud();
        // ami-mid is also backed by ami-new's snapshot.
        cloud.add_snapshots("us-east-1", "ami-mid", &["snap-ami-new"]);
        let done = prune(&settings(), opts(1, true), &Cancel::new(), &cloud)
            .await
            .unwrap()
            .amis;
        assert_eq!(done[1].ami.id, "ami-mid");
        assert_eq!(
            done[1].snapshot_actions["snap-ami-mid"],
            SnapshotAction::Deleted
        );
        assert_eq!(
            done[1].snapshot_actions["snap-ami-new"],
            SnapshotAction::Kept(SnapshotAction::SHARED)
        );
        assert!(cloud
            .snapshot_ids("us-east-1")
            .contains(&"snap-ami-new".to_owned()));
    }

    #[tokio::test]
    async fn only_gears_ami_go_and_shared_or_public_ones_stay() {
        let cloud = cloud();
        // Carries the component's tags, made by hand: no gears:managed-by.
        let mut by_hand = image("ami-hand", "202501010000");
        by_hand.tags.remove("gears:managed-by");
        cloud.add_image("us-east-1", by_hand);
        cloud.add_launch_permission("ami-mid", "account 111122223333");
        let done = prune(&settings(), opts(1, true), &Cancel::new(), &cloud)
            .await
            .unwrap()
            .amis;
        let by_id: BTreeMap<&str, &Pruned> = done.iter().map(|p| (p.ami.id.as_str(), p)).collect();
        assert_eq!(by_id["ami-hand"].action, AmiAction::Kept);
        assert!(by_id["ami-hand"].reason.starts_with("not made by gears"));
        assert_eq!(by_id["ami-mid"].action, AmiAction::Kept, "{done:?}");
        assert!(by_id["ami-mid"].reason.contains("account 111122223333"));
        assert!(cloud.ami_ids("us-east-1").contains(&"ami-hand".to_owned()));
        assert!(cloud.ami_ids("us-east-1").contains(&"ami-mid".to_owned()));
        // --include-shared prunes the shared one; the hand-made one still stays.
        let o = PruneOptions {
            include_shared: true,
            ..opts(1, true)
        };
        let done = prune(&settings(), o, &Cancel::new(), &cloud)
            .await
            .unwrap()
            .amis;
        let mid = done.iter().find(|p| p.ami.id == "ami-mid").unwrap();
        assert_eq!(mid.action, AmiAction::Deregistered);
        assert!(cloud.ami_ids("us-east-1").contains(&"ami-hand".to_owned()));
    }

    #[tokio::test(start_paused = true)]
    async fn snapshots_in_use_after_deregister_are_retried_and_leftovers_swept() {
        let cloud = cloud();
        // EC2 says InUse for a while right after a deregister.
        cloud.set_snapshot_in_use_lag(2);
        let done = prune(&settings(), opts(1, true), &Cancel::new(), &cloud)
            .await
            .unwrap();
        assert_eq!(
            done.amis[1].snapshot_actions["snap-ami-mid"],
            SnapshotAction::Deleted
        );
        assert_eq!(done.failures(), 0);
        // A run killed between DeregisterImage and DeleteSnapshot: the next run finds the
        // snapshot by its tags and deletes it; another component's stays.
        cloud.add_snapshots("us-east-1", "ami-gone", &["snap-left", "snap-other"]);
        let mine = [
            ("gears:component", "hello"),
            ("COMPONENT_NAME", "hello"),
            ("gears:managed-by", "gears"),
            ("gears:run-id", "run-gone"),
        ];
        cloud.tag_snapshot("snap-left", &mine);
        cloud.tag_snapshot("snap-other", &[("gears:component", "other")]);
        let dry = prune(&settings(), opts(1, false), &Cancel::new(), &cloud)
            .await
            .unwrap();
        assert_eq!(dry.snapshots.len(), 1, "{dry:?}");
        assert_eq!(
            (dry.snapshots[0].id.as_str(), &dry.snapshots[0].action),
            ("snap-left", &SnapshotAction::WouldDelete)
        );
        let done = prune(&settings(), opts(1, true), &Cancel::new(), &cloud)
            .await
            .unwrap();
        assert_eq!(done.snapshots[0].action, SnapshotAction::Deleted);
        let left = cloud.snapshot_ids("us-east-1");
        assert!(!left.contains(&"snap-left".to_owned()) && left.contains(&"snap-other".to_owned()));
        // A snapshot of a kept AMI, even if tagged as ours, is never swept.
        cloud.tag_snapshot("snap-ami-new", &mine);
        let again = prune(&settings(), opts(1, true), &Cancel::new(), &cloud)
            .await
            .unwrap();
        assert!(again.snapshots.is_empty(), "{again:?}");
        assert!(cloud
            .snapshot_ids("us-east-1")
            .contains(&"snap-ami-new".to_owned()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_third_of_calls_throttled_never_fails_a_prune() {
        for k in [10, 20, 30] {
            let cloud = cloud();
            cloud.add_image("us-east-1", image("ami-older", "202512010000"));
            cloud.add_snapshots("us-east-1", "ami-older", &["snap-ami-older"]);
            cloud.set_faults(Faults {
                throttle_percent: Some(k),
                ..Default::default()
            });
            let start = tokio::time::Instant::now();
            let done = prune(&settings(), opts(1, true), &Cancel::new(), &cloud).await;
            let done = done.unwrap_or_else(|e| {
                panic!("{k}%: {e} after {:?}: {:?}", start.elapsed(), cloud.calls())
            });
            assert_eq!(done.failures(), 0, "{k}% throttled: {done:?}");
            assert_eq!(
                cloud.ami_ids("us-east-1"),
                ["ami-old", "ami-new", "ami-other"]
            );
            assert_eq!(
                cloud.snapshot_ids("us-east-1"),
                ["snap-ami-old", "snap-ami-new"]
            );
        }
    }
}
