//! The blue/green strategy on the fake: the clone grown beside the group in traffic and switched
//! to, the healthy floor through the switch, a failed gate, `--rollback`, old groups tidied, a
//! killed deploy continued and aborted.
use crate::aws::Cloning;
use crate::aws::Groups;
use crate::aws::Launches;
use crate::aws::Traffic;

use crate::aws::{CloneAsk, Cloud, LockTable, TemplateRef};
use crate::cancel::Cancel;
use crate::deploy::blue_green::record::{parse_retired, Switch};
use crate::deploy::state::OnGroup;
use crate::deploy::tests::{
    all, as_before, deploy, rc, setup, Cleanup, FakeCloud, Faults, NEW, OLD,
};
use crate::deploy::{defaults, DeploySettings, Strategy, LOCK_TAG};
use crate::exit::Exit;
use crate::settings::AmiChoice;
use std::collections::BTreeMap;
use std::time::Duration;

const NEW_GROUP: &str = "hello-live-v001";

fn blue_green(dir: &std::path::Path) -> (DeploySettings, FakeCloud) {
    let (mut s, cloud) = setup(dir, 4);
    s.strategy = Strategy::BlueGreen;
    // No batch asked: the clone grows at once (a batch makes it grow in steps).
    s.batch = None;
    cloud.add_scaling("hello-live", &["cpu-target"], &["nightly"]);
    (s, cloud)
}

/// Healthy targets of tg-1 (every group behind it), the fewest seen while `fut` ran.
async fn floor_during<T>(
    cloud: &FakeCloud,
    fut: impl std::future::Future<Output = T>,
) -> (T, usize) {
    let fleet = cloud.fleet("us-east-1").await.unwrap();
    tokio::pin!(fut);
    let mut low = usize::MAX;
    loop {
        tokio::select! {
            t = &mut fut => return (t, low),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                if let Ok(h) = fleet.target_health("tg-1").await {
                    low = low.min(h.values().filter(|v| *v == "healthy").count());
                }
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn blue_green_grows_a_clone_switches_traffic_and_keeps_the_old_group() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = blue_green(dir.path());
    let (d, low) = floor_during(
        &cloud,
        deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud),
    )
    .await;
    let d = d.unwrap();
    assert_eq!(d.groups[0].result, "deployed", "{d:?}");
    assert!(
        d.groups[0].detail.contains("hello-live-v001 serves"),
        "{d:?}"
    );
    assert!(
        low >= 4,
        "in service behind tg-1 fell to {low} during the switch"
    );
    let new = cloud.group(NEW_GROUP).unwrap();
    assert_eq!((new.min, new.max, new.desired), (4, 4, 4));
    let imgs = cloud.member_images(NEW_GROUP);
    assert_eq!(imgs.len(), 4);
    assert!(imgs.iter().all(|i| i == NEW), "{imgs:?}");
    assert_eq!(new.target_groups, ["tg-1"]);
    assert_eq!(
        new.suspended,
        ["AlarmNotification"],
        "the user's suspension carried, gears' resumed"
    );
    assert_eq!(
        new.tags.get("gears:cluster").map(String::as_str),
        Some("hello-live")
    );
    assert_eq!(
        new.tags.get("ENVIRONMENT").map(String::as_str),
        Some("live")
    );
    assert!(!new.tags.contains_key(LOCK_TAG) && !new.tags.contains_key("gears:bluegreen"));
    assert_eq!(
        cloud.scaling(NEW_GROUP),
        (vec!["cpu-target".into()], vec!["nightly".into()])
    );
    // The old group: out of traffic, at its size, its processes suspended, recorded as kept.
    let old = cloud.group("hello-live").unwrap();
    assert!(old.target_groups.is_empty());
    assert_eq!(old.desired, 4);
    assert!(all(&cloud, OLD));
    for p in [
        "AlarmNotification",
        "ScheduledActions",
        "AZRebalance",
        "AddToLoadBalancer",
    ] {
        assert!(
            old.suspended.iter().any(|s| s == p),
            "{p} not suspended: {:?}",
            old.suspended
        );
    }
    let r = parse_retired(&old.tags["gears:retired"]).unwrap();
    assert_eq!((r.min, r.max, r.desired), (4, 4, 4));
    assert!(r.until > r.at);
    assert_eq!(
        r.susp,
        ["ScheduledActions", "AZRebalance", "AddToLoadBalancer"],
        "AlarmNotification was the user's"
    );
    assert!(!old.tags.contains_key(LOCK_TAG) && !old.tags.contains_key("gears:bluegreen"));
    // The next deploy of the cluster starts from the new group and makes -v002.
    let again = DeploySettings {
        ami: AmiChoice::Explicit {
            ami: "ami-0000000000000003c".into(),
            region: "us-east-1".into(),
        },
        ..s.clone()
    };
    let d = deploy(&again, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups.len(), 1, "the old group is left alone: {d:?}");
    assert_eq!(d.groups[0].group, NEW_GROUP);
    assert!(cloud.group("hello-live-v002").is_some());
}

#[tokio::test(start_paused = true)]
async fn a_failed_gate_removes_the_new_group_and_the_old_one_never_stops_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = blue_green(dir.path());
    cloud.set_unhealthy_images(&[NEW]);
    let (d, low) = floor_during(
        &cloud,
        deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud),
    )
    .await;
    let d = d.unwrap();
    assert_eq!(d.groups[0].result, "rolled back", "{d:?}");
    assert_eq!(d.exit(), Exit::RolledBack);
    assert!(d.groups[0].detail.contains("not healthy"), "{d:?}");
    assert!(low >= 4, "{low}");
    assert!(cloud.group(NEW_GROUP).is_none(), "the new group is deleted");
    as_before(&cloud, 4);
    let old = cloud.group("hello-live").unwrap();
    assert_eq!(old.target_groups, ["tg-1"]);
    assert!(!old.tags.contains_key("gears:bluegreen") && !old.tags.contains_key("gears:retired"));
}

#[tokio::test(start_paused = true)]
async fn an_alarm_during_the_bake_fails_the_gate_before_the_old_group_leaves_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = blue_green(dir.path());
    cloud.set_alarm("hello-5xx", "OK", "fine");
    s.alarms = vec!["hello-5xx".into()];
    s.bake_time = Duration::from_secs(120);
    let c2 = cloud.clone();
    let fire = async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        c2.set_alarm("hello-5xx", "ALARM", "5xx above 1%");
    };
    let (ctx, cancel, cleanup) = (rc(), Cancel::new(), Cleanup::default());
    let (d, ()) = tokio::join!(deploy(&s, &ctx, &cancel, &cleanup, &cloud), fire);
    let d = d.unwrap();
    assert_eq!(d.groups[0].result, "rolled back", "{d:?}");
    assert!(
        d.groups[0]
            .detail
            .contains("hello-5xx is in ALARM: 5xx above 1%"),
        "{d:?}"
    );
    assert!(cloud.group(NEW_GROUP).is_none());
    assert_eq!(cloud.group("hello-live").unwrap().target_groups, ["tg-1"]);
}

#[tokio::test(start_paused = true)]
async fn rollback_puts_the_old_group_back_then_takes_the_new_one_out() {
    for scale_old_to in [None, Some(0)] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = blue_green(dir.path());
        s.scale_old_to = scale_old_to;
        deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        let old = cloud.group("hello-live").unwrap();
        assert_eq!(old.desired, if scale_old_to.is_some() { 0 } else { 4 });
        let back = DeploySettings {
            rollback: true,
            scale_old_to: None,
            ..s.clone()
        };
        let started = tokio::time::Instant::now();
        let (d, low) = floor_during(
            &cloud,
            deploy(&back, &rc(), &Cancel::new(), &Cleanup::default(), &cloud),
        )
        .await;
        let d = d.unwrap();
        assert_eq!(d.groups[0].result, "deployed", "{d:?}");
        assert!(
            d.groups[0].detail.contains("hello-live back in traffic"),
            "{d:?}"
        );
        assert!(low >= 4, "{low} with scale_old_to {scale_old_to:?}");
        if scale_old_to.is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );
        }
        let old = cloud.group("hello-live").unwrap();
        assert_eq!(
            (old.desired, old.target_groups.clone()),
            (4, vec!["tg-1".to_owned()])
        );
        assert_eq!(old.suspended, ["AlarmNotification"]);
        assert!(!old.tags.contains_key("gears:retired") && !old.tags.contains_key(LOCK_TAG));
        assert!(all(&cloud, OLD));
        let new = cloud.group(NEW_GROUP).unwrap();
        assert!(new.target_groups.is_empty());
        assert!(parse_retired(&new.tags["gears:retired"]).is_ok());
    }
}

#[tokio::test(start_paused = true)]
async fn old_groups_beyond_keep_groups_are_scaled_to_zero_then_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = blue_green(dir.path());
    s.keep_groups = 1;
    deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    let second = DeploySettings {
        ami: AmiChoice::Explicit {
            ami: "ami-0000000000000003c".into(),
            region: "us-east-1".into(),
        },
        ..s.clone()
    };
    deploy(&second, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    // -v001 is the one kept; hello-live is beyond it: scaled to 0 now (it had instances).
    assert_eq!(cloud.group("hello-live").unwrap().desired, 0);
    assert_eq!(cloud.group(NEW_GROUP).unwrap().desired, 4);
    let third = DeploySettings {
        ami: AmiChoice::Explicit {
            ami: NEW.into(),
            region: "us-east-1".into(),
        },
        ..s.clone()
    };
    deploy(&third, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    // Empty and beyond: deleted. Never a group with a lock.
    assert!(
        cloud.group("hello-live").is_none(),
        "{:?}",
        cloud.group_names()
    );
    assert_eq!(
        cloud.group_names(),
        ["hello-live-v001", "hello-live-v002", "hello-live-v003"]
    );
    assert_eq!(
        cloud.group(NEW_GROUP).unwrap().desired,
        0,
        "beyond now: scaled to 0"
    );
}

#[tokio::test(start_paused = true)]
async fn a_killed_blue_green_deploy_is_continued_or_aborted() {
    for abort in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = blue_green(dir.path());
        let sw = Switch {
            run: "0190b7a2-0000-7000-8000-000000000009".into(),
            ami: NEW.into(),
            new: NEW_GROUP.into(),
            phase: "grow".into(),
            susp: vec!["ScheduledActions".into()],
        };
        cloud.fake_fleet_tag(
            "hello-live",
            "gears:bluegreen",
            &serde_json::to_string(&sw).unwrap(),
        );
        cloud.fake_fleet_tag(
            "hello-live",
            LOCK_TAG,
            &format!("{} host 2020-01-01T00:00:00Z", sw.run),
        );
        // The killed run had made the new group and grown it part way.
        let fleet = cloud.fleet("us-east-1").await.unwrap();
        let v = fleet
            .new_template_version(
                &TemplateRef {
                    id: "lt-1".into(),
                    version: "1".into(),
                },
                NEW,
                "t",
            )
            .await
            .unwrap();
        let ask = CloneAsk {
            name: NEW_GROUP.into(),
            template: TemplateRef {
                id: "lt-1".into(),
                version: v,
            },
            tags: BTreeMap::new(),
            drop_tags: vec![],
        };
        fleet.clone_group("hello-live", &ask).await.unwrap();
        fleet.set_capacity(NEW_GROUP, 0, 4, 2).await.unwrap();
        s.lock_stale = Duration::ZERO;
        s.abort = abort;
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        let old = cloud.group("hello-live").unwrap();
        assert!(
            !old.tags.contains_key("gears:bluegreen") && !old.tags.contains_key(LOCK_TAG),
            "{:?}",
            old.tags
        );
        if abort {
            assert_eq!(d.groups[0].result, "aborted", "{d:?}");
            assert!(cloud.group(NEW_GROUP).is_none());
            assert_eq!(old.target_groups, ["tg-1"]);
        } else {
            assert_eq!(d.groups[0].result, "deployed", "{d:?}");
            assert_eq!(cloud.member_images(NEW_GROUP).len(), 4);
            assert!(old.target_groups.is_empty());
            assert_eq!(
                cloud.group_names(),
                ["hello-live", NEW_GROUP],
                "no second new group"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_signal_while_the_new_group_grows_removes_it_before_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = blue_green(dir.path());
    cloud.set_unhealthy_images(&[NEW]);
    let cancel = Cancel::new();
    let c = cancel.clone();
    let stop = async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        c.cancel(crate::cancel::Signal::Term);
    };
    let (ctx, cleanup) = (rc(), Cleanup::default());
    let (r, ()) = tokio::join!(deploy(&s, &ctx, &cancel, &cleanup, &cloud), stop);
    let e = r.unwrap_err();
    assert_eq!(e.exit(), Exit::Terminated);
    assert!(cloud.group(NEW_GROUP).is_none());
    as_before(&cloud, 4);
}

#[tokio::test(start_paused = true)]
async fn the_plan_names_the_new_group_and_the_capacity_during_the_switch() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = blue_green(dir.path());
    s.plan_only = true;
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    let detail = &d.groups[0].detail;
    assert_eq!(d.groups[0].result, "planned");
    assert!(
        detail.contains("would clone hello-live as hello-live-v001"),
        "{detail}"
    );
    assert!(detail.contains("4 old + 4 new"), "{detail}");
    assert_eq!(cloud.group_names(), ["hello-live"], "nothing made");
}

#[tokio::test(start_paused = true)]
async fn a_new_group_that_cannot_be_deleted_stops_the_line_with_exit_7() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = blue_green(dir.path());
    cloud.set_unhealthy_images(&[NEW]);
    cloud.set_faults(Faults {
        fail_ops: vec![("DeleteAutoScalingGroup", "AccessDenied")],
        ..Faults::default()
    });
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "rollback failed", "{d:?}");
    assert_eq!(d.exit(), Exit::NeedsHuman);
    assert!(d.groups[0].detail.contains("AccessDenied"), "{d:?}");
    let old = cloud.group("hello-live").unwrap();
    assert_eq!(old.target_groups, ["tg-1"], "the old group still serves");
    let on = OnGroup::read(&old).unwrap();
    assert!(
        on.lock.as_ref().is_some_and(|l| l.is_stop()),
        "{:?}",
        old.tags
    );
    assert!(on.switch.is_some(), "the record stays for --abort");
    // The new group is out of traffic and empty: no instance of the new AMI serves.
    let new = cloud.group(NEW_GROUP).unwrap();
    assert!(
        new.target_groups.is_empty() && new.members.is_empty(),
        "{new:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn throttling_throughout_never_fails_a_blue_green_deploy_and_the_table_locks_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = blue_green(dir.path());
    s.lock_table = Some("gears-locks".into());
    // Another run holds the cluster in the lock table: refused before any change.
    let locks = cloud.locks("us-east-1", "gears-locks").await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    locks
        .acquire("us-east-1/cluster:hello-live", "other", "ci-1", now, 0)
        .await
        .unwrap();
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert!(e.render().contains("cluster:hello-live"), "{}", e.render());
    assert_eq!(cloud.group_names(), ["hello-live"]);
    locks
        .force_release("us-east-1/cluster:hello-live")
        .await
        .unwrap();
    cloud.set_faults(Faults {
        throttle_percent: Some(30),
        ..Faults::default()
    });
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "deployed", "{d:?}");
    assert_eq!(cloud.member_images(NEW_GROUP).len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_rollback_whose_old_group_is_not_healthy_leaves_the_new_one_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = blue_green(dir.path());
    deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    // The old instances fail their health checks now.
    cloud.set_unhealthy_images(&[OLD]);
    let back = DeploySettings {
        rollback: true,
        ..s.clone()
    };
    let d = deploy(&back, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "rolled back", "{d:?}");
    assert_eq!(d.exit(), Exit::RolledBack);
    assert!(
        d.groups[0]
            .detail
            .contains("hello-live out of traffic again, hello-live-v001 still serves"),
        "{d:?}"
    );
    let new = cloud.group(NEW_GROUP).unwrap();
    assert_eq!(new.target_groups, ["tg-1"]);
    assert!(!new.tags.contains_key(LOCK_TAG));
    let old = cloud.group("hello-live").unwrap();
    assert!(old.target_groups.is_empty());
    assert!(parse_retired(&old.tags["gears:retired"]).is_ok());
    assert!(!old.tags.contains_key(LOCK_TAG));
}

#[tokio::test(start_paused = true)]
async fn a_group_without_room_for_blue_greens_tags_is_refused_before_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = blue_green(dir.path());
    // 43 tags: a rolling deploy adds 5 (48), blue/green 3 more (51 > 50).
    for i in 0..41 {
        cloud.fake_fleet_tag("hello-live", &format!("team:{i}"), "x");
    }
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::InvalidInput, "{}", e.render());
    assert!(e.render().contains("gears:cluster"), "{}", e.render());
    assert_eq!(cloud.group_names(), ["hello-live"]);
    let rolling = DeploySettings {
        strategy: Strategy::Rolling,
        ..s.clone()
    };
    let d = deploy(&rolling, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "deployed");
}

#[tokio::test(start_paused = true)]
async fn an_old_group_past_its_keep_time_is_scaled_to_zero_by_the_next_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = blue_green(dir.path());
    s.keep_old = Duration::from_secs(1);
    deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(
        cloud.group("hello-live").unwrap().desired,
        4,
        "kept at its size"
    );
    // The wall clock moves on past `until` (written to the second).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let next = DeploySettings {
        ami: AmiChoice::Explicit {
            ami: "ami-0000000000000003c".into(),
            region: "us-east-1".into(),
        },
        keep_old: defaults::KEEP_OLD,
        ..s.clone()
    };
    deploy(&next, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(
        cloud.group("hello-live").unwrap().desired,
        0,
        "its keep time is over"
    );
    assert_eq!(
        cloud.group(NEW_GROUP).unwrap().desired,
        4,
        "kept: its hour has just begun"
    );
    assert_eq!(
        cloud.group_names().len(),
        3,
        "nothing deleted within --keep-groups 2"
    );
}
