//! `gears amis`: the component's AMIs per region, where each is in use, and pruning.
//!
//! [`list`] finds our AMIs (owner self, tagged `gears:component` and `COMPONENT_NAME` with the
//! component's name, as every bake tags them), who else may launch each (its launch
//! permissions), and what uses them in the region (every launch template version, with the
//! groups that launch from it, launch configurations, instances that are not terminated): in
//! the build account and in every account of `accounts:`, read through its environment's role
//! ([`accounts`]). An AMI deregistered between the list and a call about it is gone: left out,
//! never a failed list. [`select`] decides what a prune keeps (pure); [`prune`] deregisters the rest
//! and deletes their snapshots, only when asked to.
//!
//! What is kept: every AMI in use in any of those accounts; the newest N available AMIs of each
//! builder (`gears:builder`) in each region, newest by `CREATED_AT`, then EC2's creation date,
//! then id; AMIs that are not `available` yet (a bake may be copying them); and AMIs others may
//! launch, as [`accounts::kept_for_shares`] says. A `failed` AMI is never among the newest.

use crate::aws::{AmiCloud, AmiHousekeeping, AmiUse, CloudError, LaunchPermission, OwnedImage};
use crate::cancel::Cancel;
use crate::error::Error;
use crate::exit::Exit;
use crate::wait::patiently;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

pub mod accounts;
mod actions;
mod prune;
mod settings;
pub use accounts::{Consumer, Unread};
pub use actions::{AmiAction, PruneOptions, PruneReport, Pruned, SnapshotAction, Swept};
pub use prune::prune;
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
    /// Where it is in use, e.g. `launch-template lt-0a1b (hello version 3 (default, latest))`,
    /// or in another account `account 222222222222 (live): instance i-0a1b (running)`.
    pub in_use: Vec<String>,
    /// Who else may launch it (DescribeImageAttribute), e.g. `account 222222222222`.
    pub shares: Vec<LaunchPermission>,
    /// The EBS snapshots behind it.
    pub snapshots: Vec<String>,
    /// Tagged `gears:managed-by=gears` (a bake made it); others are never pruned.
    pub made_by_gears: bool,
    /// EC2 says anyone may launch it.
    pub public: bool,
    /// Its deregistration protection when on (`enabled`, `enabled-with-cooldown`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protection: Option<String>,
    /// Why the bake time is not `CREATED_AT`, when it is not.
    pub created_note: Option<String>,
}

/// How long one AWS call is retried (throttling, a transient error) before it counts as failed.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// The deadline of an AWS call made now: [`PATIENCE`] from now.
fn patience() -> tokio::time::Instant {
    tokio::time::Instant::now() + PATIENCE
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

/// `launch-template lt-… (…)`, after `account … (env): ` when it is another account's.
fn describe_use(account: &str, u: &AmiUse) -> String {
    let what = if u.detail.is_empty() {
        format!("{} {}", u.kind, u.id)
    } else {
        format!("{} {} ({})", u.kind, u.id, u.detail)
    };
    if account.is_empty() {
        what
    } else {
        format!("{account}: {what}")
    }
}

/// What one region holds of the component's AMIs: the images, their uses (each with the
/// account it is in, empty for the build account's own) and their launch permissions.
pub struct Region {
    pub images: Vec<OwnedImage>,
    pub uses: Vec<(String, AmiUse)>,
    pub shares: BTreeMap<String, Vec<LaunchPermission>>,
}

/// The component's AMIs of one region as rows, newest first, with their uses and shares.
pub fn rows(region: &str, found: Region, now: DateTime<Utc>) -> Vec<Ami> {
    let mut by_image: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (account, u) in &found.uses {
        by_image
            .entry(u.image_id.as_str())
            .or_default()
            .insert(describe_use(account, u));
    }
    let mut out: Vec<Ami> = found
        .images
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
                shares: found.shares.get(&o.image.id).cloned().unwrap_or_default(),
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
                protection: o.protection,
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

/// What `gears amis list` found: the AMIs, and the accounts of `accounts:` it could not read.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub amis: Vec<Ami>,
    pub unread: Vec<Unread>,
}

impl Listing {
    /// Exit 5 when an account could not be read (its use of the AMIs is unknown), else 0.
    pub fn exit(&self) -> Exit {
        self.unread
            .iter()
            .map(Unread::exit)
            .fold(Exit::Success, Exit::most_severe)
    }
}

/// How many launch permissions are read at once in a region.
const PERMISSION_LOOKS: usize = 4;

/// What a call about one AMI answered, `None` when EC2 says the AMI is gone
/// ([`CloudError::image_gone`]): deregistered since it was listed.
async fn still_there<T>(
    call: impl std::future::Future<Output = Result<T, CloudError>>,
) -> Result<Option<T>, CloudError> {
    match call.await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.image_gone() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The AMIs of one region with their shares and their uses in the build account and in each
/// consumer account (those read concurrently), and the consumers that could not be read.
async fn list_region<C: AmiCloud>(
    settings: &AmisSettings,
    cancel: &Cancel,
    cloud: &C,
    consumers: &[(Consumer, C)],
    region: &str,
    now: DateTime<Utc>,
) -> Result<(Vec<Ami>, Vec<Unread>), Error> {
    use futures::StreamExt;
    let port = cloud.amis(region).await?;
    let tags = component_tags(&settings.component);
    let images = patiently(cancel, patience(), || port.owned_images(&tags)).await?;
    let ids: Vec<String> = images.iter().map(|o| o.image.id.clone()).collect();
    let own = patiently(cancel, patience(), || port.uses_of(&ids));
    let shares = futures::stream::iter(ids.iter().map(|id| {
        let port = &port;
        async move {
            let who = patiently(cancel, patience(), || {
                still_there(port.launch_permissions(id))
            });
            Ok::<_, Error>((id.clone(), who.await?))
        }
    }))
    .buffered(PERMISSION_LOOKS)
    .collect::<Vec<_>>();
    let theirs = futures::future::join_all(
        consumers
            .iter()
            .map(|(c, cc)| accounts::uses_in(c, cc, region, &ids, cancel)),
    );
    let (own, shares, theirs) = futures::join!(own, shares, theirs);
    // An AMI deregistered since the list is gone: not a row, and never a failed list.
    let shares: BTreeMap<String, Option<Vec<LaunchPermission>>> =
        shares.into_iter().collect::<Result<_, _>>()?;
    let mut found = Region {
        images: (images.into_iter())
            .filter(|o| !matches!(shares.get(&o.image.id), Some(None)))
            .collect(),
        uses: own?.into_iter().map(|u| (String::new(), u)).collect(),
        shares: (shares.into_iter())
            .filter_map(|(id, who)| Some((id, who?)))
            .collect(),
    };
    let mut unread = Vec::new();
    for t in theirs {
        match t? {
            Ok(uses) => found.uses.extend(uses),
            Err(u) => unread.push(u),
        }
    }
    Ok((rows(region, found, now), unread))
}

/// The component's AMIs in every region of the settings (regions concurrently, rows in region
/// order, newest first within a region), with their uses in every account of `accounts:`.
/// Every call is retried while AWS throttles, until `cancel` fires: then
/// [`Error::Interrupted`].
pub async fn list<C: AmiCloud>(
    settings: &AmisSettings,
    cancel: &Cancel,
    cloud: &C,
) -> Result<Listing, Error> {
    let now = Utc::now();
    let consumers: Vec<(Consumer, C)> = settings
        .consumers
        .iter()
        .map(|c| (c.clone(), cloud.of_account(c.session.clone())))
        .collect();
    let per_region = futures::future::try_join_all(
        settings
            .regions
            .iter()
            .map(|r| list_region(settings, cancel, cloud, &consumers, r, now)),
    )
    .await?;
    let mut out = Listing {
        amis: Vec::new(),
        unread: Vec::new(),
    };
    for (amis, unread) in per_region {
        out.amis.extend(amis);
        out.unread.extend(unread);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
