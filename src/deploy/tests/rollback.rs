//! A failing gate or an AWS error rolls the group back (exit 6); a rollback that cannot
//! finish, or whose lock is lost, stops the line (exit 7) or leaves it to the new holder.

use crate::aws::{Cloud, LockTable};
use crate::cancel::Cancel;
use crate::deploy::tests::{
    add_second_group, all, as_before, deploy, rc, setup, Cleanup, Faults, NEW, OLD,
};
use crate::deploy::LOCK_TAG;
use crate::exit::Exit;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn once_a_group_rolls_back_the_groups_not_started_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 2);
    add_second_group(&cloud, "hello-live-b", 2);
    cloud.set_unhealthy_images(&[NEW]);
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
    assert_eq!(d.groups[0].result, "rolled back", "{d:?}");
    assert_eq!(d.groups[1].result, "skipped", "{d:?}");
    assert!(
        d.groups[1]
            .detail
            .contains("not started: hello-live in us-east-1: rolled back"),
        "{d:?}"
    );
    assert!(cloud.member_images("hello-live-b").iter().all(|i| i == OLD));
    let b = cloud.group("hello-live-b").unwrap();
    assert_eq!(b.template.unwrap().version, "1");
    assert!(!b.tags.contains_key(LOCK_TAG), "untouched: {:?}", b.tags);
}

#[tokio::test(start_paused = true)]
async fn below_100_percent_a_failing_gate_still_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 4);
    s.min_healthy = 50;
    cloud.set_unhealthy_images(&[NEW]);
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
    assert!(d.groups[0].detail.contains("batch 1 not healthy"), "{d:?}");
    assert!(all(&cloud, OLD));
    as_before(&cloud, 4);
    assert!(cloud.healthy_floor("hello-live").unwrap() >= 2);
}

#[tokio::test(start_paused = true)]
async fn a_lock_lost_during_the_rollback_stops_it_without_stopping_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 4);
    s.lock_table = Some("gears-locks".into());
    s.gate_timeout = Duration::from_secs(30);
    cloud.set_unhealthy_images(&[NEW]);
    // Slow calls: the rollback (from about 35 s on) takes longer than a heartbeat.
    cloud.set_faults(Faults {
        latency: Duration::from_secs(2),
        ..Default::default()
    });
    let taker = cloud.clone();
    tokio::spawn(async move {
        // Once the rollback pointed the group back at version 1 (after version 2)...
        let mut saw_new = false;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let v = taker.group("hello-live").unwrap().template.unwrap().version;
            saw_new |= v == "2";
            if saw_new && v == "1" {
                break;
            }
        }
        // ...another run takes the lock over (as if this one had looked dead).
        let locks = taker.locks("us-east-1", "gears-locks").await.unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        locks
            .acquire("us-east-1/hello-live", "other-run", "ci-9", now, i64::MAX)
            .await
            .unwrap();
    });
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Cloud, "{}", e.render());
    assert!(e.render().contains("took the lock over"), "{}", e.render());
    // No STOP written over the new holder's lock.
    let g = cloud.group("hello-live").unwrap();
    assert!(
        !g.tags.get(LOCK_TAG).is_some_and(|l| l.starts_with("STOP")),
        "{:?}",
        g.tags
    );
    assert_eq!(cloud.lock_items()["us-east-1/hello-live"].0, "other-run");
}

#[tokio::test(start_paused = true)]
async fn unhealthy_new_instances_roll_back_to_the_old_ami_with_exit_6() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 4);
    cloud.fake_fleet_tag("hello-live", "ENVIRONMENT", "was-live");
    cloud.set_unhealthy_images(&[NEW]);
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
    assert!(
        d.groups[0].detail.contains("not healthy after 1m00s"),
        "{d:?}"
    );
    assert!(all(&cloud, OLD));
    as_before(&cloud, 4);
    let g = cloud.group("hello-live").unwrap();
    assert_eq!(g.template.unwrap().version, "1");
    // The instance tags are back as they were: ENVIRONMENT was there, COMPONENT_NAME not.
    assert_eq!(g.tags["ENVIRONMENT"], "was-live");
    assert!(!g.tags.contains_key("COMPONENT_NAME"), "{:?}", g.tags);
}

#[tokio::test(start_paused = true)]
async fn a_failing_rollback_is_exit_7_and_stops_the_line() {
    for table in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        if table {
            s.lock_table = Some("gears-locks".into());
        }
        // The new AMI fails its health checks, and AWS will not terminate anything (throttled
        // past every deadline): the rollback cannot finish.
        cloud.set_unhealthy_images(&[NEW]);
        cloud.set_faults(Faults {
            throttle_ops: vec!["TerminateInstanceInAutoScalingGroup"],
            ..Default::default()
        });
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.exit(), Exit::NeedsHuman, "{d:?}");
        assert!(
            d.groups[0]
                .detail
                .contains("rollback failed: AWS TerminateInstanceInAutoScalingGroup failed"),
            "{d:?}"
        );
        let lock = cloud.group("hello-live").unwrap().tags[LOCK_TAG].clone();
        assert!(lock.starts_with("STOP "), "{lock}");
        if table {
            // Kept in the lock table too, however long it waits.
            let items = cloud.lock_items();
            assert!(
                items["us-east-1/hello-live"].1.starts_with("STOP "),
                "{items:?}"
            );
            let mut later = s.clone();
            later.lock_stale = Duration::ZERO;
            let e = deploy(&later, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap_err();
            assert_eq!(e.exit(), Exit::NeedsHuman, "{}", e.render());
            assert!(
                e.render().contains("kept until a human unlocks it"),
                "{}",
                e.render()
            );
        }
        // The next deploy is refused until a human unlocks.
        cloud.set_unhealthy_images(&[]);
        cloud.set_faults(Faults::default());
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::NeedsHuman);
        assert!(e.render().contains("the line is stopped"), "{}", e.render());
        let mut unlock = s.clone();
        unlock.unlock = true;
        assert_eq!(
            deploy(&unlock, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap()
                .groups[0]
                .result,
            "unlocked"
        );
        assert!(!cloud
            .group("hello-live")
            .unwrap()
            .tags
            .contains_key(LOCK_TAG));
        assert!(cloud.lock_items().is_empty(), "{:?}", cloud.lock_items());
    }
}

#[tokio::test(start_paused = true)]
async fn an_aws_error_mid_deploy_rolls_back_and_a_failed_start_gives_the_lock_back() {
    // Which call is which, from a deploy of a twin without faults.
    let twin_dir = tempfile::tempdir().unwrap();
    let (s, twin) = setup(twin_dir.path(), 4);
    deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &twin)
        .await
        .unwrap();
    let calls = twin.calls();
    let nth = |op: &str| 1 + calls.iter().position(|c| c.starts_with(op)).unwrap() as u32;
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 4);
    // The first retirement: half way through the roll.
    cloud.set_faults(Faults {
        fail_at: Some((
            nth("TerminateInstanceInAutoScalingGroup "),
            crate::aws::ErrorKind::AccessDenied,
        )),
        ..Default::default()
    });
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
    assert!(d.groups[0].detail.starts_with("AWS error"), "{d:?}");
    assert!(all(&cloud, OLD));
    as_before(&cloud, 4);
    // Denied at the new template version: nothing changed, no lock left.
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 4);
    cloud.set_faults(Faults {
        fail_at: Some((
            nth("CreateLaunchTemplateVersion "),
            crate::aws::ErrorKind::AccessDenied,
        )),
        ..Default::default()
    });
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Cloud, "{}", e.render());
    assert!(
        e.render().contains("CreateLaunchTemplateVersion"),
        "{}",
        e.render()
    );
    as_before(&cloud, 4);
}

#[tokio::test(start_paused = true)]
async fn an_old_instance_unhealthy_before_the_deploy_does_not_block_the_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 4);
    // One old instance already fails its health check, and the new AMI fails too.
    cloud.set_unhealthy_member("i-f0000000000000001");
    cloud.set_unhealthy_images(&[NEW]);
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
    assert!(all(&cloud, OLD));
    as_before(&cloud, 4);
}
