//! One look at the fleet: every region read at once, each region's groups with one
//! DescribeAutoScalingGroups, their members' AMIs with one DescribeInstances per 200, the AMIs'
//! tags with one DescribeImages per 200, and one look per distinct launch spec; then each group
//! read into a [`GroupStatus`].
use super::*;
use crate::aws::Groups;
use crate::aws::{ErrorKind, Fleet, Group, Image, Images, TemplateRef};
use crate::deploy::state::OnGroup;
use crate::wait::patiently;
use std::collections::{BTreeMap, BTreeSet};

/// Lifecycle states of members on their way out: not counted among what runs.
fn leaving(lifecycle: &str) -> bool {
    lifecycle.starts_with("Terminating") || lifecycle == "Terminated"
}

/// One look at every region, rows sorted by environment, region, cluster and group.
pub async fn look<C: Cloud>(
    settings: &StatusSettings,
    component: &str,
    regions: &[String],
    cancel: &Cancel,
    cloud: &C,
    known: &Known,
) -> Result<Status, Error> {
    let at = chrono::Utc::now();
    let found = futures::future::join_all(
        regions
            .iter()
            .map(|r| region(settings, component, r, cancel, cloud, known)),
    )
    .await;
    if let Some(sig) = cancel.signal() {
        return Err(Error::Interrupted(sig));
    }
    let mut status = Status {
        component: component.to_owned(),
        at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        regions: regions.to_vec(),
        groups: Vec::new(),
        errors: Vec::new(),
        needs_human: false,
        exit: 0,
    };
    for (r, f) in regions.iter().zip(found) {
        match f {
            Ok(rows) => status.groups.extend(rows),
            Err(e) => status.errors.push(RegionError {
                region: r.clone(),
                error: e.to_string(),
            }),
        }
    }
    status.groups.sort_by(|a, b| {
        let key = |g: &GroupStatus| {
            (
                g.environment.clone(),
                g.region.clone(),
                g.cluster.clone().unwrap_or_else(|| g.group.clone()),
                g.group.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    status.decide();
    Ok(status)
}

/// The deadline of an AWS call made now: the settings' patience from now.
fn patience(settings: &StatusSettings) -> tokio::time::Instant {
    tokio::time::Instant::now() + settings.patience
}

/// What one region's look saw beside the groups.
#[derive(Default)]
pub(super) struct Seen {
    /// Member id → the AMI it runs.
    pub(super) member_images: BTreeMap<String, String>,
    /// Member id → its tags (what deploy wrote on it, `COMPONENT_VERSION` among them).
    pub(super) member_tags: BTreeMap<String, BTreeMap<String, String>>,
    /// The account the members run in (the caller's), once one was seen.
    pub(super) account: Option<String>,
    /// Launch spec (as [`spec_of`] names it) → its AMI (None: it could not be read).
    pub(super) spec_images: BTreeMap<String, Option<String>>,
    /// The AMIs EC2 showed, by id.
    pub(super) images: BTreeMap<String, Image>,
}

/// One region's groups of the component (in the asked environments), as rows.
async fn region<C: Cloud>(
    settings: &StatusSettings,
    component: &str,
    region: &str,
    cancel: &Cancel,
    cloud: &C,
    known: &Known,
) -> Result<Vec<GroupStatus>, Error> {
    let fleet = cloud.fleet(region).await?;
    let images = cloud.images(region).await?;
    let want = BTreeMap::from([(crate::tags::COMPONENT.to_owned(), component.to_owned())]);
    let groups: Vec<Group> = patiently(cancel, patience(settings), || fleet.groups(&want, &[]))
        .await?
        .into_iter()
        .filter(|g| {
            settings.environments.is_empty()
                || g.tags
                    .get(crate::tags::ENVIRONMENT)
                    .is_some_and(|e| settings.environments.contains(e))
        })
        .collect();
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen = Seen::default();
    let ids: Vec<String> = groups
        .iter()
        .flat_map(|g| g.members.iter())
        .filter(|m| !leaving(&m.lifecycle))
        .map(|m| m.id.clone())
        .collect();
    if !ids.is_empty() {
        let info = patiently(cancel, patience(settings), || fleet.describe_members(&ids)).await?;
        for (id, i) in info {
            seen.member_images.insert(id.clone(), i.image);
            if !i.account.is_empty() {
                seen.account.get_or_insert(i.account);
            }
            seen.member_tags.insert(id, i.tags);
        }
    }
    spec_images(settings, cancel, &fleet, &groups, &mut seen, known).await?;
    let mut wanted: BTreeSet<String> = seen.member_images.values().cloned().collect();
    wanted.extend(seen.spec_images.values().flatten().cloned());
    for g in &groups {
        if let Ok(OnGroup {
            recorded: Some(st), ..
        }) = OnGroup::read(g)
        {
            wanted.insert(st.ami);
        }
    }
    let wanted: Vec<String> = wanted.into_iter().filter(|i| !i.is_empty()).collect();
    if !wanted.is_empty() {
        seen.images = patiently(cancel, patience(settings), || {
            images.describe_images(&wanted)
        })
        .await?;
    }
    let facts = judge::Facts::new(settings, region);
    let mut rows: Vec<GroupStatus> = groups.iter().map(|g| row(g, &seen, &facts)).collect();
    judge::switches(&mut rows);
    Ok(rows)
}

/// The launch spec a group launches from, as a row names it.
pub(super) fn spec_of(g: &Group) -> String {
    match (&g.template, &g.launch_configuration) {
        (Some(t), _) if g.mixed => format!("{}:{} (mixed)", t.id, t.version),
        (Some(t), _) => format!("{}:{}", t.id, t.version),
        (None, Some(lc)) => format!("lc:{lc}"),
        (None, None) => String::new(),
    }
}

/// The AMI of each distinct launch spec of the groups: one look each. A template, version or
/// configuration that does not exist (or that AWS refuses to read as asked) leaves its AMI
/// unknown; throttling past the patience or a denied call fails the region.
async fn spec_images<F: Fleet>(
    settings: &StatusSettings,
    cancel: &Cancel,
    fleet: &F,
    groups: &[Group],
    seen: &mut Seen,
    known: &Known,
) -> Result<(), Error> {
    for g in groups {
        let spec = spec_of(g);
        if spec.is_empty() || seen.spec_images.contains_key(&spec) {
            continue;
        }
        // A numbered template version never changes: read once per `--watch`.
        let fixed = g
            .template
            .as_ref()
            .filter(|t| t.version.parse::<u64>().is_ok())
            .map(|t| format!("{}/{}/{}", fleet.region(), t.id, t.version));
        if let Some(was) = fixed.as_ref().and_then(|k| known.get(k)) {
            seen.spec_images.insert(spec, was);
            continue;
        }
        let got = match (&g.template, &g.launch_configuration) {
            (Some(t), _) => {
                let t = TemplateRef {
                    id: t.id.clone(),
                    version: t.version.clone(),
                };
                patiently(cancel, patience(settings), || fleet.template_image(&t)).await
            }
            (None, Some(lc)) => {
                patiently(cancel, patience(settings), || fleet.configuration_image(lc)).await
            }
            (None, None) => continue,
        };
        let image = match got {
            Ok(i) => Some(i).filter(|i| !i.is_empty()),
            Err(Error::Cloud(e))
                if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Invalid) =>
            {
                None
            }
            Err(e) => return Err(e),
        };
        if let Some(k) = fixed {
            known.put(k, image.clone());
        }
        seen.spec_images.insert(spec, image);
    }
    Ok(())
}

/// What one look learnt that the next need not ask again: the AMI of each numbered launch
/// template version (`region/lt-…/N`), which EC2 never changes.
#[derive(Default)]
pub struct Known(std::sync::Mutex<BTreeMap<String, Option<String>>>);

impl Known {
    fn get(&self, key: &str) -> Option<Option<String>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn put(&self, key: String, image: Option<String>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, image);
    }
}

/// An AMI id of group `g` with its version: from the AMI's tags where EC2 shows them (the
/// account that owns it); else from the tags deploy wrote on the group's members running it,
/// or on the group itself when it is the group's launch AMI (an account the AMI is shared with
/// sees none of the owner's tags); else, for a shared AMI, who shared it.
pub(super) fn ami(id: &str, seen: &Seen, g: &Group) -> Ami {
    let image = seen.images.get(id);
    let of_image = |k: &str| image.and_then(|i| i.tags.get(k)).filter(|v| !v.is_empty());
    let on_members = |k: &str| {
        (g.members.iter())
            .filter(|m| seen.member_images.get(&m.id).is_some_and(|i| i == id))
            .find_map(|m| {
                seen.member_tags
                    .get(&m.id)?
                    .get(k)
                    .filter(|v| !v.is_empty())
            })
    };
    let launches = seen.spec_images.get(&spec_of(g)).cloned().flatten();
    let on_group = |k: &str| {
        (launches.as_deref() == Some(id))
            .then(|| g.tags.get(k).filter(|v| !v.is_empty()))
            .flatten()
    };
    let tag = |k: &str| {
        of_image(k)
            .or_else(|| on_members(k))
            .or_else(|| on_group(k))
            .cloned()
    };
    let version = tag("COMPONENT_VERSION");
    let shared_from = image
        .filter(|i| version.is_none() && i.tags.is_empty() && !i.public && !i.owner.is_empty())
        // Only when the caller's account is known (from the members) and is not the owner.
        .filter(|i| seen.account.as_ref().is_some_and(|a| a != &i.owner))
        .map(|i| i.owner.clone());
    Ami {
        ami: id.to_owned(),
        version,
        ami_version: tag("AMI_VERSION"),
        shared_from,
    }
}

/// One group as a row: what runs, its health, its launch spec, what gears wrote on it, and
/// what of it needs a human.
pub(super) fn row(g: &Group, seen: &Seen, facts: &judge::Facts) -> GroupStatus {
    let tag = |k: &str| g.tags.get(k).filter(|v| !v.is_empty()).cloned();
    let members: Vec<_> = g
        .members
        .iter()
        .filter(|m| !leaving(&m.lifecycle))
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unknown = 0;
    for m in &members {
        match seen.member_images.get(&m.id) {
            Some(i) => *counts.entry(i.as_str()).or_default() += 1,
            None => unknown += 1,
        }
    }
    let mut running: Vec<Running> = counts
        .iter()
        .map(|(i, n)| Running {
            ami: ami(i, seen, g),
            members: *n,
        })
        .collect();
    running.sort_by(|a, b| b.members.cmp(&a.members).then(a.ami.cmp(&b.ami)));
    let spec = spec_of(g);
    let launch_ami = seen.spec_images.get(&spec).cloned().flatten();
    let drift = launch_ami
        .as_ref()
        .is_some_and(|l| counts.keys().any(|i| *i != l.as_str()));
    let mut row = GroupStatus {
        environment: tag(crate::tags::ENVIRONMENT).unwrap_or_default(),
        country: tag(crate::tags::COUNTRY),
        region: facts.region.clone(),
        group: g.name.clone(),
        cluster: tag(crate::tags::CLUSTER),
        min: g.min,
        max: g.max,
        desired: g.desired,
        in_service: members
            .iter()
            .filter(|m| m.lifecycle == "InService")
            .count(),
        healthy: members.iter().filter(|m| m.in_service()).count(),
        running,
        unknown,
        launch: Launch {
            spec,
            ami: launch_ami.map(|i| ami(&i, seen, g)),
        },
        drift,
        lock: None,
        deploy: None,
        suspended: g.suspended.clone(),
        retired: tag(crate::tags::RETIRED).map(|v| judge::retired(&v, facts.now)),
        bluegreen: tag(crate::tags::BLUEGREEN).map(|v| judge::switch(&v)),
        attention: Vec::new(),
    };
    judge::gears_state(&mut row, g, seen, facts);
    row
}
