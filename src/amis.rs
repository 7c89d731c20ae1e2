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

use crate::aws::{AmiCloud, AmiHousekeeping, AmiUse, CloudError, OwnedImage};
use crate::cancel::Cancel;
use crate::error::Error;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What `gears amis` needs.
#[derive(Debug, Clone)]
pub struct AmisSettings {
    /// The component's name (its AMIs' `gears:component` and `COMPONENT_NAME` tags).
    pub component: String,
    pub regions: Vec<String>,
    pub endpoint_flag: Option<String>,
}

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
}

/// One AMI in a prune: kept or not, why, and what was done.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pruned {
    #[serde(flatten)]
    pub ami: Ami,
    pub keep: bool,
    pub reason: String,
    /// `kept`, `would deregister` (without `--yes`), `deregistered`, or `failed: <why>`.
    pub action: String,
    /// Snapshot id → `would delete`, `deleted`, `kept: ...` or `failed: <why>` (for AMIs that
    /// go).
    pub snapshot_actions: BTreeMap<String, String>,
}

impl Pruned {
    /// Whether a removal of this AMI or one of its snapshots failed.
    pub fn failed(&self) -> bool {
        self.action.starts_with("failed")
            || self
                .snapshot_actions
                .values()
                .any(|a| a.starts_with("failed"))
    }
}

/// The tags of the component's AMIs.
pub fn component_tags(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("gears:component".to_owned(), component.to_owned()),
        ("COMPONENT_NAME".to_owned(), component.to_owned()),
    ])
}

/// When an AMI was baked: its `CREATED_AT` tag (bake writes `%Y%m%d%H%M`, UTC; RFC 3339 is
/// accepted too), else EC2's creation date.
pub fn created(tags: &BTreeMap<String, String>, creation_date: &str) -> Option<DateTime<Utc>> {
    let rfc = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    tags.get("CREATED_AT")
        .and_then(|s| {
            NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M")
                .ok()
                .map(|t| t.and_utc())
                .or_else(|| rfc(s))
        })
        .or_else(|| rfc(creation_date))
}

/// An age as people say it: `45s`, `12m`, `5h12m`, `3d4h`.
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
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
            let when = created(&o.image.tags, &o.image.creation_date);
            Ami {
                region: region.to_owned(),
                in_use: by_image
                    .get(o.image.id.as_str())
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default(),
                version: tag("COMPONENT_VERSION"),
                git_sha: tag("GIT_SHA"),
                builder: tag("gears:builder"),
                run_id: tag("gears:run-id"),
                created: when.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                age_secs: when.map(|t| now.signed_duration_since(t).num_seconds()),
                id: o.image.id,
                name: o.image.name,
                state: o.image.state,
                snapshots: o.snapshots,
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
        if a.state == "available" {
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
) -> Result<Vec<Ami>, CloudError> {
    let port = cloud.amis(region).await?;
    let tags = component_tags(&settings.component);
    let (images, uses) = futures::try_join!(port.owned_images(&tags), port.uses())?;
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

/// Lists what a prune keeping the newest `keep` would do and, with `yes`, does it: deregisters
/// each AMI that goes, then deletes its snapshots (never one that a kept AMI also uses). A
/// failure is recorded on its AMI and the prune goes on with the others.
pub async fn prune<C: AmiCloud>(
    settings: &AmisSettings,
    keep: usize,
    yes: bool,
    cancel: &Cancel,
    cloud: &C,
) -> Result<Vec<Pruned>, Error> {
    let amis = list(settings, cloud).await?;
    let verdicts = select(&amis, keep);
    let held: BTreeSet<(&str, &str)> = amis
        .iter()
        .zip(&verdicts)
        .filter(|(_, (k, _))| *k)
        .flat_map(|(a, _)| a.snapshots.iter().map(|s| (a.region.as_str(), s.as_str())))
        .collect();
    let mut out = Vec::with_capacity(amis.len());
    let mut ports: BTreeMap<String, C::Amis> = BTreeMap::new();
    for (ami, (keep_it, reason)) in amis.iter().zip(&verdicts) {
        let mut p = Pruned {
            ami: ami.clone(),
            keep: *keep_it,
            reason: reason.clone(),
            action: if *keep_it { "kept" } else { "would deregister" }.to_owned(),
            snapshot_actions: BTreeMap::new(),
        };
        if !*keep_it {
            for s in &ami.snapshots {
                let a = if held.contains(&(ami.region.as_str(), s.as_str())) {
                    "kept: a kept AMI uses it too"
                } else {
                    "would delete"
                };
                p.snapshot_actions.insert(s.clone(), a.to_owned());
            }
        }
        if yes && !*keep_it {
            if let Some(sig) = cancel.signal() {
                return Err(Error::Interrupted(sig));
            }
            if !ports.contains_key(&ami.region) {
                ports.insert(ami.region.clone(), cloud.amis(&ami.region).await?);
            }
            let port = &ports[&ami.region];
            match port.deregister(&ami.id).await {
                Ok(()) => {
                    p.action = "deregistered".into();
                    for (s, a) in p.snapshot_actions.iter_mut() {
                        if a != "would delete" {
                            continue;
                        }
                        *a = match port.delete_snapshot(s).await {
                            Ok(()) => "deleted".into(),
                            Err(e) => format!("failed: {e}"),
                        };
                    }
                }
                Err(e) => {
                    p.action = format!("failed: {e}");
                    for a in p.snapshot_actions.values_mut() {
                        *a = "kept: the AMI is still registered".into();
                    }
                }
            }
        }
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::fake::{FakeCloud, Faults};
    use crate::aws::{ErrorKind, Image};

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
        let tags = |v: &str| BTreeMap::from([("CREATED_AT".to_owned(), v.to_owned())]);
        let t = created(&tags("202611240405"), "2020-01-01T00:00:00.000Z").unwrap();
        assert_eq!(
            t.to_rfc3339_opts(SecondsFormat::Secs, true),
            "2026-11-24T04:05:00Z"
        );
        let t = created(&tags("garbage"), "2020-01-01T00:00:00.000Z").unwrap();
        assert_eq!(
            t.to_rfc3339_opts(SecondsFormat::Secs, true),
            "2020-01-01T00:00:00Z"
        );
        assert!(created(&BTreeMap::new(), "").is_none());
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(3599), "59m");
        assert_eq!(human_age(3 * 3600 + 5 * 60), "3h05m");
        assert_eq!(human_age(2 * 86_400 + 7200), "2d2h");
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
                ("CREATED_AT", created_at),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
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

    fn settings() -> AmisSettings {
        AmisSettings {
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

        let dry = prune(&settings(), 1, false, &Cancel::new(), &cloud)
            .await
            .unwrap();
        let actions: Vec<(&str, &str)> = dry
            .iter()
            .map(|p| (p.ami.id.as_str(), p.action.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("ami-new", "kept"),
                ("ami-mid", "would deregister"),
                ("ami-old", "kept")
            ]
        );
        assert_eq!(dry[1].snapshot_actions["snap-ami-mid"], "would delete");
        assert_eq!(
            cloud.ami_ids("us-east-1").len(),
            4,
            "without --yes nothing changes"
        );

        let done = prune(&settings(), 1, true, &Cancel::new(), &cloud)
            .await
            .unwrap();
        assert_eq!(done[1].action, "deregistered");
        assert_eq!(done[1].snapshot_actions["snap-ami-mid"], "deleted");
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
        let calls_before_deregister = 5; // DescribeImages + the four of uses()
        cloud.set_faults(Faults {
            fail_at: Some((calls_before_deregister + 1, ErrorKind::AccessDenied)),
            ..Default::default()
        });
        let done = prune(&settings(), 1, true, &Cancel::new(), &cloud)
            .await
            .unwrap();
        let by_id: BTreeMap<&str, &Pruned> = done.iter().map(|p| (p.ami.id.as_str(), p)).collect();
        assert!(by_id["ami-mid"].action.starts_with("failed: "), "{done:?}");
        assert!(by_id["ami-mid"].failed());
        assert_eq!(
            by_id["ami-mid"].snapshot_actions["snap-ami-mid"],
            "kept: the AMI is still registered"
        );
        assert_eq!(by_id["ami-older"].action, "deregistered");
        assert_eq!(
            by_id["ami-older"].snapshot_actions["snap-ami-older"],
            "deleted"
        );
        assert!(cloud.ami_ids("us-east-1").contains(&"ami-mid".to_owned()));
        assert!(cloud
            .snapshot_ids("us-east-1")
            .contains(&"snap-ami-mid".to_owned()));
    }

    #[tokio::test]
    async fn aws_errors_while_looking_are_errors_and_nothing_is_removed() {
        let cloud = cloud();
        cloud.set_faults(Faults {
            throttle_ops: vec!["DescribeLaunchConfigurations"],
            ..Default::default()
        });
        // Without knowing every use, nothing may go.
        let e = prune(&settings(), 1, true, &Cancel::new(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), crate::exit::Exit::Cloud);
        assert_eq!(cloud.ami_ids("us-east-1").len(), 4);
        assert!(!cloud.calls().iter().any(|c| c.starts_with("Deregister")));
    }

    #[tokio::test]
    async fn a_snapshot_shared_with_a_kept_ami_stays() {
        let cloud = cloud();
        // ami-mid is also backed by ami-new's snapshot.
        cloud.add_snapshots("us-east-1", "ami-mid", &["snap-ami-new"]);
        let done = prune(&settings(), 1, true, &Cancel::new(), &cloud)
            .await
            .unwrap();
        assert_eq!(done[1].ami.id, "ami-mid");
        assert_eq!(done[1].snapshot_actions["snap-ami-mid"], "deleted");
        assert_eq!(
            done[1].snapshot_actions["snap-ami-new"],
            "kept: a kept AMI uses it too"
        );
        assert!(cloud
            .snapshot_ids("us-east-1")
            .contains(&"snap-ami-new".to_owned()));
    }
}
