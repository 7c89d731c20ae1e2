//! `--plan` and `--abort`.

use crate::cancel::Cancel;
use crate::deploy::tests::{all, deploy, rc, setup, Cleanup, Faults, NEW, OLD};
use crate::deploy::Batch;
use crate::exit::Exit;
use crate::settings::AmiChoice;

#[tokio::test(start_paused = true)]
async fn the_plan_says_what_is_on_the_group_and_abort_names_the_recorded_ami() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 4);
    cloud.set_unhealthy_images(&[NEW]);
    cloud.set_faults(Faults {
        throttle_ops: vec!["TerminateInstanceInAutoScalingGroup"],
        ..Default::default()
    });
    // A failed rollback: STOP, a recorded deploy, the group half rolled.
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::NeedsHuman);
    assert!(d.groups[0].detail.contains("the group now: min 4"), "{d:?}");
    cloud.set_faults(Faults::default());
    s.plan_only = true;
    let p = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    let detail = &p.groups[0].detail;
    assert!(detail.contains("the line is stopped"), "{detail}");
    assert!(detail.contains("recorded a deploy of"), "{detail}");
    assert!(detail.contains("capacity was 4/4/4"), "{detail}");
    assert_eq!(p.groups[0].from_ami, OLD, "{p:?}");
    // --abort of another AMI than the recorded one: refused, naming it.
    s.plan_only = false;
    s.abort = true;
    s.ami = AmiChoice::Explicit {
        ami: "ami-0000000000000003c".into(),
        region: "us-east-1".into(),
    };
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Usage, "{}", e.render());
    assert!(
        e.render().contains(&format!("is of {NEW}")),
        "{}",
        e.render()
    );
}

#[tokio::test(start_paused = true)]
async fn plan_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 10);
    s.batch = Some(Batch::Percent(30));
    s.plan_only = true;
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    let g = &d.groups[0];
    assert_eq!((g.result.as_str(), g.batches), ("planned", 4));
    assert!(
        g.detail.contains(
            "10 of 10 instances to replace, 4 batch(es) of 3: capacity 10..13 (max 10 → 13"
        ),
        "{}",
        g.detail
    );
    let changes: Vec<String> = cloud
        .calls()
        .into_iter()
        .filter(|c| !c.starts_with("Describe"))
        .collect();
    assert!(changes.is_empty(), "{changes:?}");
    assert!(all(&cloud, OLD));
}

/// `--abort` of a stopped line (a failed rollback) killed at its first write leaves the STOP:
/// it never writes a lock of its own over it, which would go stale and let a deploy continue
/// the deploy whose rollback failed.
#[tokio::test(start_paused = true)]
async fn an_abort_killed_on_a_stopped_line_leaves_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 4);
    cloud.set_unhealthy_images(&[NEW]);
    cloud.set_faults(Faults {
        throttle_ops: vec!["TerminateInstanceInAutoScalingGroup"],
        ..Default::default()
    });
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::NeedsHuman);
    cloud.set_faults(Faults::default());
    let lock = |c: &crate::aws::fake::FakeCloud| {
        c.group("hello-live").unwrap().tags[crate::deploy::LOCK_TAG].clone()
    };
    let stop = lock(&cloud);
    assert!(stop.starts_with("STOP "), "{stop}");
    s.abort = true;
    assert!(crate::deploy::tests::killed_at(&s, &cloud, 1, true).await);
    assert_eq!(lock(&cloud), stop);
}
