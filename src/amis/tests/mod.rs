//! Tests of `gears amis`: what a prune keeps (pure), and list and prune on the fake.

use super::*;
use crate::aws::{CloudError, ErrorKind, Image};
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
        shares: Vec::new(),
        snapshots: vec![format!("snap-{id}")],
        made_by_gears: true,
        public: false,
        protection: None,
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
        owner: String::new(),
        public: false,
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

/// The settings with these environments' accounts (`accounts:`), each through a role in it.
fn with_accounts(envs: &[(&str, &str)]) -> AmisSettings {
    let accounts: crate::accounts::Accounts = envs
        .iter()
        .map(|(env, account)| {
            let role = crate::accounts::Role {
                role_arn: format!("arn:aws:iam::{account}:role/gears-deploy")
                    .parse()
                    .unwrap(),
                external_id: None,
            };
            (env.to_string(), role)
        })
        .collect();
    AmisSettings {
        consumers: crate::amis::accounts::consumers("hello", &accounts),
        ..settings()
    }
}

fn settings() -> AmisSettings {
    AmisSettings {
        account: None,
        consumers: Vec::new(),
        component: "hello".into(),
        regions: vec!["us-east-1".into()],
        endpoint_flag: None,
    }
}

#[tokio::test]
async fn prune_lists_then_deregisters_and_deletes_snapshots() {
    let cloud = cloud();
    let listed = list(&settings(), &Cancel::new(), &cloud)
        .await
        .unwrap()
        .amis;
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

/// Issue 36 item 5: an AMI with deregistration protection is kept, saying why, and the prune
/// goes on with the others (EC2 would refuse its deregister).
#[tokio::test]
async fn a_protected_ami_is_kept_with_the_reason() {
    use crate::aws::{Cloud, Images};
    let cloud = cloud();
    let images = cloud.images("us-east-1").await.unwrap();
    images.protect("ami-mid", true).await.unwrap();
    let done = prune(&settings(), opts(1, true), &Cancel::new(), &cloud)
        .await
        .unwrap()
        .amis;
    let mid = done.iter().find(|p| p.ami.id == "ami-mid").unwrap();
    assert_eq!(mid.action, AmiAction::Kept, "{mid:?}");
    assert!(
        mid.reason
            .contains("deregistration protection is enabled-with-cooldown"),
        "{mid:?}"
    );
    assert!(!done.iter().any(Pruned::failed));
    assert!(!cloud
        .calls()
        .iter()
        .any(|c| c.starts_with("DeregisterImage")));
    assert!(cloud.ami_ids("us-east-1").contains(&"ami-mid".to_owned()));
}

#[tokio::test]
async fn a_failed_deregister_is_reported_and_the_others_go_on() {
    let cloud = cloud();
    cloud.add_image("us-east-1", image("ami-older", "202512010000"));
    cloud.add_snapshots("us-east-1", "ami-older", &["snap-ami-older"]);
    // The first deregister (ami-mid, the newer of the two that go) fails.
    // DescribeImages + the four of uses_of(), DescribeImageAttribute of each of the four, and
    // DescribeImages of every snapshot.
    let calls_before_deregister = 10;
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
    // --include-shared: 111122223333 is not in accounts:, so gears cannot see whether it runs
    // ami-mid, and it stays, saying why; the hand-made one still stays.
    let o = PruneOptions {
        include_shared: true,
        ..opts(1, true)
    };
    let done = prune(&settings(), o, &Cancel::new(), &cloud)
        .await
        .unwrap()
        .amis;
    let mid = done.iter().find(|p| p.ami.id == "ami-mid").unwrap();
    assert_eq!(mid.action, AmiAction::Kept);
    assert_eq!(
        mid.reason,
        "shared with account 111122223333, which is not in accounts: (gears cannot see its use)"
    );
    assert!(cloud.ami_ids("us-east-1").contains(&"ami-hand".to_owned()));
    // Once 111122223333 is an environment's account that gears reads, and it does not run
    // ami-mid, --include-shared prunes it.
    cloud.add_account("111122223333");
    let done = prune(
        &with_accounts(&[("live", "111122223333")]),
        o,
        &Cancel::new(),
        &cloud,
    )
    .await
    .unwrap()
    .amis;
    let mid = done.iter().find(|p| p.ami.id == "ami-mid").unwrap();
    assert_eq!(mid.action, AmiAction::Deregistered, "{done:?}");
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

mod accounts;
mod list;
