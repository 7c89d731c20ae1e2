//! Rolling a group: batches, the healthy floor, min-healthy below 100 %, mixed instances,
//! members in standby, throttling, and the groups of a region rolled at once.

use crate::cancel::Cancel;
use crate::deploy::tests::{
    add_second_group, all, as_before, deploy, rc, setup, Cleanup, Faults, NEW, OLD,
};
use crate::deploy::Batch;
use crate::exit::Exit;
use tokio::time::Instant;

#[test]
fn batches_parse_and_size() {
    assert_eq!("2".parse(), Ok(Batch::Count(2)));
    assert_eq!("25%".parse(), Ok(Batch::Percent(25)));
    for bad in ["0", "0%", "101%", "x", "-1", "4294967295"] {
        assert!(bad.parse::<Batch>().is_err(), "{bad}");
    }
    assert_eq!(Batch::Percent(25).size(10), 3);
    assert_eq!(Batch::Percent(1).size(3), 1);
    assert_eq!(Batch::Count(5).size(2), 5);
}

#[tokio::test(start_paused = true)]
async fn rolls_every_instance_in_batches_never_below_the_healthy_floor() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 5);
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::Success, "{d:?}");
    let g = &d.groups[0];
    assert_eq!(
        (g.result.as_str(), g.batches, g.from_ami.as_str()),
        ("deployed", 3, OLD)
    );
    assert!(all(&cloud, NEW));
    as_before(&cloud, 5);
    assert_eq!(cloud.healthy_floor("hello-live"), Some(5));
    let tags = cloud.group("hello-live").unwrap().tags;
    assert_eq!(tags["COMPONENT_NAME"], "hello");
    assert_eq!(tags["ENVIRONMENT"], "live");
    // Members are described once: polls while nothing new appeared describe nothing.
    let calls = cloud.calls();
    let count = |op: &str| calls.iter().filter(|c| c.starts_with(op)).count();
    let (polls, described) = (
        count("DescribeAutoScalingGroups "),
        count("DescribeInstances "),
    );
    assert!(
        described <= 1 + 3,
        "{polls} polls, {described} DescribeInstances"
    );
}

#[tokio::test(start_paused = true)]
async fn a_mixed_instances_group_keeps_its_policy_through_a_deploy_and_a_rollback() {
    for unhealthy in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 4);
        cloud.set_mixed("hello-live", &[]);
        if unhealthy {
            cloud.set_unhealthy_images(&[NEW]);
        }
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        let g = cloud.group("hello-live").unwrap();
        // The fake drops the policy when a plain LaunchTemplate is sent, as AWS does.
        assert!(g.mixed, "the mixed-instances policy was replaced");
        if unhealthy {
            assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
            assert!(all(&cloud, OLD));
            assert_eq!(g.template.unwrap().version, "1");
        } else {
            assert_eq!(d.groups[0].result, "deployed", "{d:?}");
            assert!(all(&cloud, NEW));
            assert_eq!(g.template.unwrap().version, "2");
        }
        as_before(&cloud, 4);
        assert_eq!(cloud.healthy_floor("hello-live"), Some(4));
    }
}

#[tokio::test(start_paused = true)]
async fn groups_of_a_region_roll_at_once_with_parallel() {
    let mut took = Vec::new();
    for parallel in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        add_second_group(&cloud, "hello-live-b", 4);
        s.parallel = parallel;
        let start = Instant::now();
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        took.push(start.elapsed());
        assert_eq!(d.exit(), Exit::Success, "{d:?}");
        assert_eq!(d.groups.len(), 2);
        assert!(d.groups.iter().all(|g| g.result == "deployed"), "{d:?}");
        for name in ["hello-live", "hello-live-b"] {
            assert!(cloud.member_images(name).iter().all(|i| i == NEW), "{name}");
            assert_eq!(cloud.healthy_floor(name), Some(4), "{name}");
        }
        as_before(&cloud, 4);
    }
    // On the paused clock: two groups at once take the time of one (the polls overlap),
    // one after another twice that.
    assert!(took[1] * 3 / 2 < took[0], "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn below_100_percent_min_healthy_batches_are_replaced_in_place_above_the_floor() {
    // (share, batch, surge per batch expected: none at 50%, one at 75%)
    for (share, raised) in [(50, false), (75, true)] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        s.min_healthy = share;
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.groups[0].result, "deployed", "{share}%: {d:?}");
        assert_eq!(d.groups[0].batches, 2, "{share}%: {d:?}");
        assert!(all(&cloud, NEW));
        as_before(&cloud, 4);
        let floor = (4 * share as usize).div_ceil(100);
        let low = cloud.healthy_floor("hello-live").unwrap();
        assert!(low >= floor, "{share}%: {low} healthy at the lowest");
        if !raised {
            assert!(low < 4, "{share}%: replaced in place");
        }
        // Capacity changes: the template pointed at, the restore, and one per surging batch.
        let updates = cloud
            .calls()
            .iter()
            .filter(|c| c.starts_with("UpdateAutoScalingGroup "))
            .count();
        assert_eq!(updates, if raised { 4 } else { 2 }, "{share}%");
    }
}

#[tokio::test(start_paused = true)]
async fn a_third_of_calls_throttled_still_completes() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 4);
    cloud.set_faults(Faults {
        throttle_one_in: Some(3),
        ..Default::default()
    });
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "deployed", "{d:?}");
    assert!(all(&cloud, NEW));
    cloud.set_faults(Faults::default());
    as_before(&cloud, 4);
    assert_eq!(cloud.healthy_floor("hello-live"), Some(4));
}

#[tokio::test(start_paused = true)]
async fn a_member_in_standby_is_left_alone_and_does_not_hold_the_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 4);
    cloud.set_lifecycle("i-f0000000000000002", "Standby");
    // The group launched a replacement for it, as AWS does.
    cloud.settle("hello-live");
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "deployed", "{d:?}");
    // Said, since it may still run the old AMI.
    assert!(
        d.groups[0]
            .detail
            .ends_with("left alone, maybe on the old AMI: i-f0000000000000002 (Standby)"),
        "{d:?}"
    );
    let g = cloud.group("hello-live").unwrap();
    let standby: Vec<&crate::aws::Member> = g
        .members
        .iter()
        .filter(|m| m.lifecycle == "Standby")
        .collect();
    assert_eq!(standby.len(), 1);
    assert_eq!(standby[0].id, "i-f0000000000000002", "left alone");
    let counted: Vec<&crate::aws::Member> = g.members.iter().filter(|m| m.counts()).collect();
    assert_eq!(counted.len(), 4);
    assert_eq!((g.min, g.max, g.desired), (4, 4, 4));
    // The same command again: nothing to do (the member in Standby does not count).
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "nothing to do", "{d:?}");
}
