//! Tests of the deploy on the in-memory fake, with tokio's paused clock.

use super::*;
use crate::aws::fake::{FakeCloud, Faults};
use crate::aws::{Cloud, Member};
use crate::cancel::Cleanup;
use crate::exit::Exit;

const OLD: &str = "ami-0000000000000001a";

fn rc() -> crate::context::RunContext {
    crate::context::RunContext::from_vars(Vec::<(String, String)>::new())
}
const NEW: &str = "ami-0000000000000002b";

/// The deploy as the tests run it: progress kept, the error of a failed run (its report is
/// asserted through the fake's state).
async fn deploy<C: Cloud>(
    s: &DeploySettings,
    ctx: &crate::context::RunContext,
    cancel: &Cancel,
    cleanup: &Cleanup,
    cloud: &C,
) -> Result<Deployed, Error> {
    let ui = crate::ui::Recorded::default();
    super::deploy(s, ctx, cancel, cleanup, cloud, &ui)
        .await
        .map_err(|f| f.error)
}

fn setup(dir: &std::path::Path, desired: i32) -> (DeploySettings, FakeCloud) {
    std::fs::write(
        dir.join("gears.yaml"),
        "component: hello\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-0123456789abcdef0}\n",
    )
    .unwrap();
    let cloud = FakeCloud::new();
    // The AMIs deploys go to exist (deploy checks before it changes anything).
    for id in [NEW, "ami-0000000000000003c"] {
        cloud.add_image(
            "us-east-1",
            crate::aws::Image {
                id: id.into(),
                name: id.into(),
                state: "available".into(),
                creation_date: "2026-11-24T00:00:00.000Z".into(),
                tags: BTreeMap::new(),
            },
        );
    }
    cloud.add_group(
        Group {
            name: "hello-live".into(),
            min: desired,
            max: desired,
            desired,
            template: Some(TemplateRef {
                id: "lt-1".into(),
                version: "1".into(),
            }),
            launch_configuration: None,
            mixed: false,
            override_templates: vec![],
            members: Vec::<Member>::new(),
            target_groups: vec!["tg-1".into()],
            load_balancers: vec![],
            other_traffic: vec![],
            units: None,
            warm_pool: false,
            suspended: vec!["AlarmNotification".into()],
            tags: BTreeMap::from([
                ("gears:component".to_owned(), "hello".to_owned()),
                ("gears:environment".to_owned(), "live".to_owned()),
            ]),
        },
        &[OLD],
    );
    let settings = DeploySettings {
        component_file: dir.join("gears.yaml"),
        ami: AmiChoice::Explicit {
            ami: NEW.into(),
            region: "us-east-1".into(),
        },
        environment: "live".into(),
        country: None,
        groups: vec![],
        batch: Batch::Count(2),
        strategy: Strategy::Rolling,
        gate_timeout: Duration::from_secs(60),
        poll: Duration::from_secs(1),
        smoke_target: None,
        no_smoke: false,
        lock_stale: LOCK_STALE,
        lock_table: None,
        parallel: 1,
        min_healthy: 100,
        plan_only: false,
        abort: false,
        unlock: false,
        endpoint_flag: None,
    };
    (settings, cloud)
}

fn all(cloud: &FakeCloud, ami: &str) -> bool {
    let imgs = cloud.member_images("hello-live");
    !imgs.is_empty() && imgs.iter().all(|i| i == ami)
}

fn as_before(cloud: &FakeCloud, n: i32) {
    let g = cloud.group("hello-live").unwrap();
    assert_eq!(
        (g.min, g.max, g.desired, g.members.len() as i32),
        (n, n, n, n)
    );
    assert_eq!(
        g.suspended,
        ["AlarmNotification"],
        "what was suspended before stays"
    );
    assert!(
        !g.tags.contains_key(STATE_TAG)
            && !g.tags.contains_key(LOCK_TAG)
            && !g.tags.contains_key(TAGS_TAG),
        "{:?}",
        g.tags
    );
}

#[test]
fn the_lock_names_the_host_and_the_ci_job() {
    let ctx = crate::context::RunContext::from_vars([
        ("HOSTNAME", "agent 3"),
        ("BUILD_TAG", "jenkins-hello-7"),
    ]);
    let who = holder(&ctx);
    assert_eq!(who, "agent_3 jenkins:jenkins-hello-7");
    let value = LockValue::held_now("run-1", &who).write();
    let read = LockValue::parse(&value).unwrap();
    assert_eq!(read.run(), "run-1");
    assert!(read.is_live(LOCK_STALE), "{read:?}");
    assert!(
        value.starts_with("run-1 agent_3 jenkins:jenkins-hello-7 "),
        "{value}"
    );
}

#[test]
fn batches_parse_and_size() {
    assert_eq!(Batch::parse("2"), Ok(Batch::Count(2)));
    assert_eq!(Batch::parse("25%"), Ok(Batch::Percent(25)));
    for bad in ["0", "0%", "101%", "x", "-1", "4294967295"] {
        assert!(Batch::parse(bad).is_err(), "{bad}");
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
async fn overrides_with_launch_templates_of_their_own_are_refused_before_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 2);
    cloud.set_mixed("hello-live", &["m6g.large"]);
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::InvalidInput, "{}", e.render());
    assert!(
        e.render()
            .contains("gives m6g.large a launch template of its own"),
        "{}",
        e.render()
    );
    assert!(all(&cloud, OLD));
    let g = cloud.group("hello-live").unwrap();
    assert!(
        !g.tags.contains_key(LOCK_TAG) && !g.tags.contains_key(STATE_TAG),
        "{:?}",
        g.tags
    );
    assert_eq!(g.template.unwrap().version, "1");
}

#[tokio::test(start_paused = true)]
async fn a_batch_held_by_a_launch_hook_rolls_back_naming_the_hook() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 3);
    cloud.add_launch_hook(
        "hello-live",
        crate::aws::LaunchHook {
            name: "warm-cache".into(),
            heartbeat: 3600,
            default_result: "ABANDON".into(),
        },
        &[NEW],
    );
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
    let detail = &d.groups[0].detail;
    assert!(detail.contains("not healthy after 1m00s"), "{detail}");
    assert!(
        detail.contains("held in Pending:Wait by launch lifecycle hook warm-cache"),
        "{detail}"
    );
    assert!(all(&cloud, OLD));
    as_before(&cloud, 3);
    assert_eq!(cloud.healthy_floor("hello-live"), Some(3));
}

/// A second group of the component in the same region, on a template of its own.
fn add_second_group(cloud: &FakeCloud, name: &str, n: i32) {
    add_group_on(cloud, name, n, "lt-2", "1", &[OLD]);
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
async fn a_live_deploy_with_long_passes_keeps_its_lock() {
    for table in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        if table {
            s.lock_table = Some("gears-locks".into());
        }
        // A poll pass of ten minutes, far longer than the lock's stale limit (a minute).
        s.poll = Duration::from_secs(600);
        s.gate_timeout = Duration::from_secs(3600);
        let (ctx, cancel, cleanup) = (rc(), Cancel::new(), Cleanup::default());
        // The new instances take four minutes to become healthy: the first deploy's looks
        // back off towards its ten-minute poll meanwhile.
        cloud.set_unhealthy_images(&[NEW]);
        let first = deploy(&s, &ctx, &cancel, &cleanup, &cloud);
        let boot = async {
            tokio::time::sleep(Duration::from_secs(240)).await;
            cloud.set_unhealthy_images(&[]);
        };
        // The same command, three minutes later, while the first sleeps between polls.
        let second = async {
            tokio::time::sleep(Duration::from_secs(180)).await;
            deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud).await
        };
        let (first, second, ()) = tokio::join!(first, second, boot);
        let e = second.unwrap_err();
        assert_eq!(e.exit(), Exit::Cloud, "{}", e.render());
        assert!(
            e.render().contains("refreshed") || e.render().contains("renewed"),
            "{}",
            e.render()
        );
        let d = first.unwrap();
        assert_eq!(d.groups[0].result, "deployed", "table {table}: {d:?}");
        assert!(all(&cloud, NEW));
        as_before(&cloud, 4);
        assert!(cloud.lock_items().is_empty());
    }
}

/// A group on launch template `lt` at `version`, whose versions launch `images`.
fn add_group_on(cloud: &FakeCloud, name: &str, n: i32, lt: &str, version: &str, images: &[&str]) {
    let g = cloud.group("hello-live").unwrap();
    cloud.add_group(
        Group {
            name: name.into(),
            min: n,
            max: n,
            desired: n,
            template: Some(TemplateRef {
                id: lt.into(),
                version: version.into(),
            }),
            members: vec![],
            ..g
        },
        images,
    );
}

#[tokio::test(start_paused = true)]
async fn a_group_on_default_rolls_back_to_default_not_to_the_latest_version() {
    const UNREVIEWED: &str = "ami-0000000000000009d";
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    // Version 1 (the default) launches OLD; version 2, newer but not the default, an AMI
    // nobody reviewed.
    add_group_on(
        &cloud,
        "hello-default",
        3,
        "lt-d",
        "$Default",
        &[OLD, UNREVIEWED],
    );
    cloud.set_default_version("lt-d", 1);
    assert!(cloud
        .member_images("hello-default")
        .iter()
        .all(|i| i == OLD));
    s.groups = vec!["hello-default".into()];
    cloud.set_unhealthy_images(&[NEW]);
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
    let g = cloud.group("hello-default").unwrap();
    assert_eq!(g.template.unwrap().version, "$Default");
    assert!(cloud
        .member_images("hello-default")
        .iter()
        .all(|i| i == OLD));
    assert_eq!((g.min, g.max, g.desired), (3, 3, 3));
}

#[tokio::test(start_paused = true)]
async fn groups_sharing_a_latest_template_share_one_new_version_and_one_way_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    add_group_on(&cloud, "hello-a", 2, "lt-s", "$Latest", &[OLD]);
    add_group_on(&cloud, "hello-b", 2, "lt-s", "$Latest", &[OLD]);
    s.groups = vec!["hello-a".into(), "hello-b".into()];
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::Success, "{d:?}");
    // Both on the one new version (the second group's request had the same client token).
    assert_eq!(cloud.template_versions("lt-s"), [OLD, NEW]);
    for n in ["hello-a", "hello-b"] {
        assert_eq!(
            cloud.group(n).unwrap().template.unwrap().version,
            "2",
            "{n}"
        );
        assert!(cloud.member_images(n).iter().all(|i| i == NEW), "{n}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_latest_template_shared_or_already_on_the_new_ami_is_refused_before_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    add_group_on(&cloud, "hello-a", 2, "lt-s", "$Latest", &[OLD]);
    add_group_on(&cloud, "other-b", 2, "lt-s", "$Latest", &[OLD]);
    cloud.fake_fleet_tag("other-b", "gears:component", "other");
    // Another component's group launches from the same $Latest: refused, naming it.
    s.groups = vec!["hello-a".into()];
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::InvalidInput, "{}", e.render());
    assert!(
        e.render()
            .contains("other-b (lt-s) launch from the same template's $Latest"),
        "{}",
        e.render()
    );
    assert_eq!(cloud.template_versions("lt-s"), [OLD]);
    // Someone else already made the new AMI the template's $Latest (an earlier run of a
    // sibling group, by hand): nothing to roll back to, refused.
    add_group_on(&cloud, "hello-b", 2, "lt-t", "$Latest", &[OLD]);
    let fleet = cloud.fleet("us-east-1").await.unwrap();
    let base = TemplateRef {
        id: "lt-t".into(),
        version: "1".into(),
    };
    fleet
        .new_template_version(&base, NEW, "by-hand")
        .await
        .unwrap();
    s.groups = vec!["hello-b".into()];
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::InvalidInput, "{}", e.render());
    assert!(
        e.render()
            .contains("a rollback would have no version to return to"),
        "{}",
        e.render()
    );
    let b = cloud.group("hello-b").unwrap();
    assert_eq!(b.template.unwrap().version, "$Latest");
    assert!(
        !b.tags.contains_key(LOCK_TAG) && !b.tags.contains_key(STATE_TAG),
        "{:?}",
        b.tags
    );
    assert!(cloud.member_images("hello-b").iter().all(|i| i == OLD));
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
async fn a_default_version_moved_during_the_deploy_is_not_where_the_rollback_goes() {
    const UNREVIEWED: &str = "ami-0000000000000009d";
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    add_group_on(
        &cloud,
        "hello-default",
        3,
        "lt-d",
        "$Default",
        &[OLD, UNREVIEWED],
    );
    s.groups = vec!["hello-default".into()];
    cloud.set_unhealthy_images(&[NEW]);
    let mover = cloud.clone();
    tokio::spawn(async move {
        // Once the deploy made its version (3), someone makes version 2 the default.
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let v = mover
                .group("hello-default")
                .unwrap()
                .template
                .unwrap()
                .version;
            if v == "3" {
                mover.set_default_version("lt-d", 2);
                break;
            }
        }
    });
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
    assert_eq!(
        cloud
            .group("hello-default")
            .unwrap()
            .template
            .unwrap()
            .version,
        "1"
    );
    assert!(cloud
        .member_images("hello-default")
        .iter()
        .all(|i| i == OLD));
}

#[tokio::test(start_paused = true)]
async fn a_deploy_killed_before_its_new_version_is_continued_without_a_second_version() {
    for made in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        // What a run killed right after recording the deploy leaves: the state with no new
        // version yet (and, just after the request, maybe the version itself).
        let st = State {
            run: "0190b7a2-0000-7000-8000-000000000001".into(),
            ami: NEW.into(),
            lt: "lt-1".into(),
            from: "1".into(),
            fromn: "1".into(),
            to: String::new(),
            min: 4,
            max: 4,
            desired: 4,
            susp: vec!["AZRebalance".into(), "ScheduledActions".into()],
            lc: false,
            mx: false,
        };
        cloud.fake_fleet_tag(
            "hello-live",
            STATE_TAG,
            &serde_json::to_string(&st).unwrap(),
        );
        cloud.fake_fleet_tag(
            "hello-live",
            LOCK_TAG,
            &format!("{} host 2020-01-01T00:00:00Z", st.run),
        );
        if made {
            let fleet = cloud.fleet("us-east-1").await.unwrap();
            let base = TemplateRef {
                id: "lt-1".into(),
                version: "1".into(),
            };
            fleet
                .new_template_version(&base, NEW, &version_token(&st))
                .await
                .unwrap();
        }
        s.lock_stale = Duration::ZERO;
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.groups[0].result, "deployed", "{d:?}");
        assert_eq!(cloud.template_versions("lt-1"), [OLD, NEW], "made {made}");
        assert!(all(&cloud, NEW));
        let g = cloud.group("hello-live").unwrap();
        assert_eq!((g.min, g.max, g.desired), (4, 4, 4));
        assert!(!g.tags.contains_key(STATE_TAG) && !g.tags.contains_key(LOCK_TAG));
    }
}

#[tokio::test(start_paused = true)]
async fn an_ami_that_does_not_exist_is_refused_before_any_change() {
    for plan in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 2);
        s.plan_only = plan;
        s.ami = AmiChoice::Explicit {
            ami: "ami-deadbeef00000000".into(),
            region: "us-east-1".into(),
        };
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::InvalidInput, "{}", e.render());
        assert!(
            e.render()
                .contains("AMI ami-deadbeef00000000: it does not exist in us-east-1"),
            "{}",
            e.render()
        );
        assert!(all(&cloud, OLD));
        as_before(&cloud, 2);
        assert!(!cloud
            .calls()
            .iter()
            .any(|c| c.starts_with("CreateLaunchTemplateVersion")));
    }
}

#[tokio::test(start_paused = true)]
async fn a_named_group_of_another_component_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    add_group_on(&cloud, "other-live", 2, "lt-o", "1", &[OLD]);
    cloud.fake_fleet_tag("other-live", "gears:component", "other");
    s.groups = vec!["other-live".into()];
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Usage, "{}", e.render());
    assert!(
        e.render()
            .contains("--group other-live: the group is tagged gears:component=other, not hello"),
        "{}",
        e.render()
    );
    assert!(cloud.member_images("other-live").iter().all(|i| i == OLD));
}

#[tokio::test(start_paused = true)]
async fn unlock_refuses_the_lock_of_a_deploy_that_is_running() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    let live = LockValue::held_now("0190b7a2-0000-7000-8000-000000000009", "ci-host").write();
    cloud.fake_fleet_tag("hello-live", LOCK_TAG, &live);
    s.unlock = true;
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert!(
        e.render().contains("a deploy is running now"),
        "{}",
        e.render()
    );
    assert_eq!(cloud.group("hello-live").unwrap().tags[LOCK_TAG], live);
    // A minute later (here: a stale limit of zero) it is a dead run's lock: removed.
    s.lock_stale = Duration::ZERO;
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "unlocked");
    assert!(!cloud
        .group("hello-live")
        .unwrap()
        .tags
        .contains_key(LOCK_TAG));
}

#[tokio::test(start_paused = true)]
async fn a_continued_deploy_whose_start_fails_rolls_the_group_back() {
    // A killed run's deploy, half way: recorded, its lock stale, one batch launched.
    let killed = |cloud: &FakeCloud, s: &DeploySettings| {
        let s = s.clone();
        let cloud = cloud.clone();
        async move {
            let slow = Faults {
                latency: Duration::from_millis(100),
                ..Default::default()
            };
            cloud.set_faults(slow);
            let (ctx, cancel, cleanup) = (rc(), Cancel::new(), Cleanup::default());
            let _ = tokio::time::timeout(
                LOCK_SETTLE + Duration::from_secs(3),
                deploy(&s, &ctx, &cancel, &cleanup, &cloud),
            )
            .await;
            cloud.set_faults(Faults::default());
        }
    };
    let twin_dir = tempfile::tempdir().unwrap();
    let (s0, twin) = setup(twin_dir.path(), 4);
    killed(&twin, &s0).await;
    let mut s = s0.clone();
    s.lock_stale = Duration::ZERO;
    let before = twin.calls().len();
    deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &twin)
        .await
        .unwrap();
    let calls = twin.calls();
    let nth = before as u32
        + 1
        + calls[before..]
            .iter()
            .position(|c| c.starts_with("SuspendProcesses "))
            .unwrap() as u32;
    let dir = tempfile::tempdir().unwrap();
    let (_, cloud) = setup(dir.path(), 4);
    killed(&cloud, &s0).await;
    let imgs = cloud.member_images("hello-live");
    assert!(imgs.contains(&NEW.to_owned()), "half rolled: {imgs:?}");
    cloud.set_faults(Faults {
        fail_at: Some((nth, crate::aws::ErrorKind::AccessDenied)),
        ..Default::default()
    });
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Cloud, "{}", e.render());
    assert!(e.render().contains("SuspendProcesses"), "{}", e.render());
    cloud.set_faults(Faults::default());
    // Not left half rolled: back on the old AMI, as it was.
    assert!(all(&cloud, OLD), "{:?}", cloud.member_images("hello-live"));
    as_before(&cloud, 4);
}

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
async fn a_group_already_on_the_ami_is_left_alone_and_a_lock_without_a_record_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 3);
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "deployed");
    let versions = cloud.template_versions("lt-1").len();
    let calls = cloud.calls().len();
    // Again: nothing to do, nothing written, no new version.
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "nothing to do", "{d:?}");
    assert_eq!(cloud.template_versions("lt-1").len(), versions);
    let writes: Vec<String> = cloud.calls()[calls..]
        .iter()
        .filter(|c| !c.starts_with("Describe"))
        .cloned()
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    // A run killed between its lock and its record left only a lock: once stale, the
    // same command takes it over (nothing had changed).
    let dir = tempfile::tempdir().unwrap();
    let (_, cloud) = setup(dir.path(), 3);
    let orphan = LockValue::held_now("0190b7a2-0000-7000-8000-00000000000a", "ci-host").write();
    cloud.fake_fleet_tag("hello-live", LOCK_TAG, &orphan);
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert!(
        e.render().contains("another deploy holds the lock"),
        "{}",
        e.render()
    );
    s.lock_stale = Duration::ZERO;
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "deployed", "{d:?}");
    as_before(&cloud, 3);
}

#[tokio::test(start_paused = true)]
async fn two_deploys_racing_for_the_tag_lock_leave_one_to_deploy() {
    // The second starts a little after the first, at several offsets (calls take 100 ms
    // each): whatever the interleaving, one deploys and the other is refused. (The fake
    // does not reproduce the late overwrite seen on moto that the second look after
    // LOCK_SETTLE is for; --lock-table is the true compare-and-swap.)
    for offset in [50u64, 150, 250, 350, 450, 650, 850] {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 3);
        let mut other = s.clone();
        other.ami = AmiChoice::Explicit {
            ami: "ami-0000000000000003c".into(),
            region: "us-east-1".into(),
        };
        cloud.set_faults(Faults {
            latency: Duration::from_millis(100),
            ..Default::default()
        });
        let (c1, k1, l1) = (rc(), Cancel::new(), Cleanup::default());
        let (c2, k2, l2) = (rc(), Cancel::new(), Cleanup::default());
        let a = deploy(&s, &c1, &k1, &l1, &cloud);
        let b = async {
            tokio::time::sleep(Duration::from_millis(offset)).await;
            deploy(&other, &c2, &k2, &l2, &cloud).await
        };
        let (a, b) = tokio::join!(a, b);
        cloud.set_faults(Faults::default());
        let ok = [a.is_ok(), b.is_ok()];
        assert_eq!(
            ok.iter().filter(|x| **x).count(),
            1,
            "+{offset} ms: exactly one deploys: {a:?} {b:?}"
        );
        let (won, lost) = if a.is_ok() { (a, b) } else { (b, a) };
        assert_eq!(won.unwrap().groups[0].result, "deployed", "+{offset} ms");
        let e = lost.unwrap_err();
        assert_eq!(e.exit(), Exit::Cloud, "+{offset} ms: {}", e.render());
        // The group is on one AMI, template and instances alike.
        let imgs = cloud.member_images("hello-live");
        assert!(imgs.iter().all(|i| *i == imgs[0]), "+{offset} ms: {imgs:?}");
        as_before(&cloud, 3);
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
async fn a_killed_deploy_continues_when_run_again_or_is_aborted() {
    for (abort, table) in [(false, false), (true, false), (false, true), (true, true)] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 6);
        if table {
            s.lock_table = Some("gears-locks".into());
        }
        let slow = Faults {
            latency: Duration::from_millis(100),
            ..Default::default()
        };
        // How long a whole deploy takes, on a twin.
        let twin_dir = tempfile::tempdir().unwrap();
        let (_, twin) = setup(twin_dir.path(), 6);
        twin.set_faults(slow.clone());
        let start = Instant::now();
        deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &twin)
            .await
            .unwrap();
        let whole = start.elapsed();
        // kill -9 half way: the future is dropped, nothing of it runs again.
        cloud.set_faults(slow);
        let _ = whole;
        // Killed once the first batch's new instances are in the group, beside the old ones.
        let mid_roll = async {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let imgs = cloud.member_images("hello-live");
                if imgs.contains(&NEW.to_owned()) && imgs.contains(&OLD.to_owned()) {
                    break;
                }
            }
        };
        let (kctx, kcancel, kcleanup) = (rc(), Cancel::new(), Cleanup::default());
        let killed = tokio::select! {
            r = deploy(&s, &kctx, &kcancel, &kcleanup, &cloud) => Ok(r),
            _ = mid_roll => Err(()),
        };
        cloud.set_faults(Faults::default());
        assert!(killed.is_err(), "still running when killed");
        let imgs = cloud.member_images("hello-live");
        assert!(
            imgs.contains(&NEW.to_owned()) && imgs.contains(&OLD.to_owned()),
            "{imgs:?}"
        );
        // At once, the lock is fresh: refused, naming the holder (the lock table's, or
        // the group's tag without one).
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        let want = if table {
            "the lock table holds us-east-1/hello-live for run "
        } else {
            "another deploy holds the lock: run "
        };
        assert!(e.render().contains(want), "{}", e.render());
        if table {
            assert_eq!(cloud.lock_items().len(), 1);
        }
        // A minute later (here: a stale limit of zero), the same command takes over.
        s.lock_stale = Duration::ZERO;
        s.abort = abort;
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        let want = if abort { "aborted" } else { "deployed" };
        assert_eq!(d.groups[0].result, want, "{d:?}");
        assert_eq!(d.groups[0].from_ami, OLD, "what it came from: {d:?}");
        assert!(all(&cloud, if abort { OLD } else { NEW }));
        // The killed run's lease was taken over, then given back.
        assert!(cloud.lock_items().is_empty(), "{:?}", cloud.lock_items());
        as_before(&cloud, 6);
        assert_eq!(cloud.healthy_floor("hello-live"), Some(6));
    }
}

#[tokio::test(start_paused = true)]
async fn a_deploy_of_another_ami_is_refused_while_one_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 4);
    let slow = Faults {
        latency: Duration::from_millis(100),
        ..Default::default()
    };
    let twin_dir = tempfile::tempdir().unwrap();
    let (_, twin) = setup(twin_dir.path(), 4);
    twin.set_faults(slow.clone());
    let start = Instant::now();
    deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &twin)
        .await
        .unwrap();
    let whole = start.elapsed();
    cloud.set_faults(slow);
    let killed = tokio::time::timeout(
        whole / 2,
        deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud),
    )
    .await;
    assert!(killed.is_err());
    cloud.set_faults(Faults::default());
    let mut other = s.clone();
    other.ami = AmiChoice::Explicit {
        ami: "ami-0000000000000003c".into(),
        region: "us-east-1".into(),
    };
    other.lock_stale = Duration::ZERO;
    let e = deploy(&other, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Cloud);
    let text = e.render();
    assert!(
        text.contains("group hello-live: another deploy holds the lock: run "),
        "{text}"
    );
    assert!(text.contains("--abort"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_signal_mid_deploy_rolls_the_group_back_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 6);
    // New instances stay unhealthy, so the deploy waits at its first gate.
    cloud.set_unhealthy_images(&[NEW]);
    let cancel = Cancel::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        c2.cancel(crate::cancel::Signal::Term);
    });
    let e = deploy(&s, &rc(), &cancel, &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Terminated);
    assert!(all(&cloud, OLD));
    as_before(&cloud, 6);
    assert_eq!(cloud.healthy_floor("hello-live"), Some(6));
}

#[tokio::test(start_paused = true)]
async fn a_signal_whose_rollback_fails_is_exit_7_not_143() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 4);
    s.gate_timeout = Duration::from_secs(30);
    cloud.set_unhealthy_images(&[NEW]);
    let cancel = Cancel::new();
    let c2 = cancel.clone();
    let faulty = cloud.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        // From here on AWS will not terminate anything: the rollback cannot finish.
        faulty.set_faults(Faults {
            throttle_ops: vec!["TerminateInstanceInAutoScalingGroup"],
            ..Default::default()
        });
        c2.cancel(crate::cancel::Signal::Term);
    });
    let d = deploy(&s, &rc(), &cancel, &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::NeedsHuman, "{d:?}");
    assert_eq!(d.groups[0].result, "rollback failed", "{d:?}");
    assert!(d.groups[0].detail.starts_with("SIGTERM received"), "{d:?}");
    let lock = cloud.group("hello-live").unwrap().tags[LOCK_TAG].clone();
    assert!(lock.starts_with("STOP "), "{lock}");
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

/// A local HTTP server answering 200 to anything, and its port.
async fn http_ok() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    port
}

#[tokio::test]
async fn the_gate_runs_the_components_smoke_tests_at_each_new_instance() {
    for pass in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        std::fs::write(
            dir.path().join("gears.yaml"),
            "component: hello\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-0123456789abcdef0}\ntest: {smoke_file: smoke.yaml}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("smoke.yaml"),
            "tests:\n  - name: up\n    uri: /health\n",
        )
        .unwrap();
        let port = if pass {
            http_ok().await
        } else {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        s.smoke_target =
            Some(crate::smoke::target::Target::parse(&format!("127.0.0.1:{port}")).unwrap());
        s.gate_timeout = Duration::from_secs(2);
        s.poll = Duration::from_millis(100);
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        if pass {
            assert_eq!(d.groups[0].result, "deployed", "{d:?}");
            assert!(all(&cloud, NEW));
        } else {
            assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
            assert!(
                d.groups[0].detail.contains("smoke test `up` failed at i-"),
                "{d:?}"
            );
            assert!(all(&cloud, OLD));
        }
        as_before(&cloud, 4);
    }
}

#[tokio::test(start_paused = true)]
async fn a_group_on_a_launch_configuration_gets_a_copy_with_the_new_ami() {
    for healthy in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 0);
        cloud.add_configuration("web-lc", OLD);
        cloud.add_group(
            Group {
                name: "hello-lc".into(),
                min: 3,
                max: 3,
                desired: 3,
                template: None,
                launch_configuration: Some("web-lc".into()),
                mixed: false,
                override_templates: vec![],
                members: vec![],
                target_groups: vec!["tg-2".into()],
                load_balancers: vec![],
                other_traffic: vec![],
                units: None,
                warm_pool: false,
                suspended: vec![],
                tags: BTreeMap::from([
                    ("gears:component".to_owned(), "hello".to_owned()),
                    ("gears:environment".to_owned(), "live".to_owned()),
                ]),
            },
            &[],
        );
        if !healthy {
            cloud.set_unhealthy_images(&[NEW]);
        }
        let mut s = s;
        s.groups = vec!["hello-lc".into()];
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        let g = cloud.group("hello-lc").unwrap();
        let images = cloud.member_images("hello-lc");
        assert_eq!(d.groups[0].from_ami, OLD);
        if healthy {
            assert_eq!(d.groups[0].result, "deployed", "{d:?}");
            let lc = g.launch_configuration.unwrap();
            assert!(lc.starts_with("web-lc-gears-"), "{lc}");
            assert_eq!(cloud.configurations()[&lc], NEW);
            assert!(images.iter().all(|i| i == NEW), "{images:?}");
        } else {
            assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
            assert_eq!(g.launch_configuration.as_deref(), Some("web-lc"));
            assert!(images.iter().all(|i| i == OLD), "{images:?}");
        }
        assert_eq!((g.min, g.max, g.desired, images.len()), (3, 3, 3, 3));
        assert!(
            cloud.configurations().contains_key("web-lc"),
            "the old one stays"
        );
        assert_eq!(cloud.healthy_floor("hello-lc"), Some(3));
    }
}

#[tokio::test(start_paused = true)]
async fn a_deploy_killed_during_its_rollback_is_finished_by_the_same_command() {
    let mut during_rollback = 0;
    for after in [500u64, 1000, 1500, 2000, 2500, 3000, 3500, 4000] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        cloud.set_unhealthy_images(&[NEW]);
        cloud.set_faults(Faults {
            latency: Duration::from_millis(100),
            ..Default::default()
        });
        // Killed a little after the gate failed.
        let killed = tokio::time::timeout(
            s.gate_timeout + LOCK_SETTLE + Duration::from_millis(after),
            deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud),
        )
        .await;
        if killed.is_ok() {
            break;
        }
        let g = cloud.group("hello-live").unwrap();
        if g.template.unwrap().version == "1" && g.tags.contains_key(STATE_TAG) {
            during_rollback += 1;
        }
        // The new AMI is fine after all; the same command again finishes the deploy.
        cloud.set_unhealthy_images(&[]);
        cloud.set_faults(Faults::default());
        s.lock_stale = Duration::ZERO;
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(
            d.groups[0].result, "deployed",
            "killed at +{after} ms: {d:?}"
        );
        assert!(all(&cloud, NEW), "killed at +{after} ms");
        as_before(&cloud, 4);
        assert_eq!(
            cloud.group("hello-live").unwrap().template.unwrap().version,
            "2"
        );
    }
    assert!(during_rollback > 0, "some kill landed during the rollback");
}

#[tokio::test(start_paused = true)]
async fn another_components_manifest_and_unknown_groups_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    let m = dir.path().join("m.json");
    std::fs::write(
        &m,
        format!(r#"{{"format_version":1,"component":"other","version":"1","git_sha":"a","repo":"r","created_at":"c","ami_version":"v","base_ami":"b","run_id":"x","packer_run_uuid":null,"reused":false,"amis":{{"web":{{"us-east-1":"{NEW}"}}}}}}"#),
    )
    .unwrap();
    s.ami = AmiChoice::Manifest {
        path: m,
        builder: None,
        region: None,
    };
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::InvalidInput);
    assert!(
        e.render().contains("the manifest is of component `other`"),
        "{}",
        e.render()
    );
    let (mut s, _) = setup(dir.path(), 2);
    s.groups = vec!["nope".into()];
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Usage);
    assert!(
        e.render().contains("no Auto Scaling group named nope"),
        "{}",
        e.render()
    );
    s.groups = vec!["hello-live".into()];
    s.environment = "stage".into();
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert!(
        e.render()
            .contains("tagged gears:environment=live, not stage"),
        "{}",
        e.render()
    );
    assert!(all(&cloud, OLD));
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
}

#[tokio::test(start_paused = true)]
async fn instance_refresh_is_waited_on_and_its_failure_rolls_back() {
    for healthy in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        s.strategy = Strategy::InstanceRefresh;
        if !healthy {
            cloud.set_unhealthy_images(&[NEW]);
        }
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        if healthy {
            assert_eq!(d.groups[0].result, "deployed", "{d:?}");
            assert!(all(&cloud, NEW));
            assert!(cloud
                .calls()
                .iter()
                .any(|c| c.starts_with("StartInstanceRefresh")));
        } else {
            assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
            assert!(
                d.groups[0]
                    .detail
                    .contains("instance refresh refresh-1 Failed"),
                "{d:?}"
            );
            assert!(all(&cloud, OLD));
        }
        as_before(&cloud, 4);
        assert_eq!(cloud.healthy_floor("hello-live"), Some(4));
    }
}

#[tokio::test(start_paused = true)]
async fn a_signal_mid_refresh_cancels_the_refresh_before_rolling_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 4);
    s.strategy = Strategy::InstanceRefresh;
    let cancel = Cancel::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        c2.cancel(crate::cancel::Signal::Term);
    });
    let e = deploy(&s, &rc(), &cancel, &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Terminated, "{}", e.render());
    let calls = cloud.calls();
    let at = |op: &str| calls.iter().position(|c| c.starts_with(op));
    let cancelled = at("CancelInstanceRefresh ").expect("the refresh was cancelled");
    // Cancelled before the rollback's first change (the template set back).
    let back = calls
        .iter()
        .enumerate()
        .skip(at("StartInstanceRefresh ").unwrap())
        .find(|(_, c)| c.starts_with("UpdateAutoScalingGroup "))
        .map(|(i, _)| i)
        .unwrap();
    assert!(cancelled < back, "{calls:?}");
    assert!(all(&cloud, OLD));
    as_before(&cloud, 4);
}

#[tokio::test(start_paused = true)]
async fn the_lock_table_refuses_a_second_deploy_and_is_given_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 4);
    s.lock_table = Some("gears-locks".into());
    let now = chrono::Utc::now().timestamp_millis();
    let locks = cloud.locks("us-east-1", "gears-locks").await.unwrap();
    assert_eq!(
        locks
            .acquire("us-east-1/hello-live", "other-run", "ci-42", now, 0)
            .await
            .unwrap(),
        None
    );
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Cloud);
    assert!(
        e.render().contains(
            "the lock table holds us-east-1/hello-live for run other-run (ci-42), renewed "
        ),
        "{}",
        e.render()
    );
    assert!(all(&cloud, OLD), "nothing changed");
    // --unlock removes it (after a human looked); then the deploy runs and gives it back.
    let mut unlock = s.clone();
    unlock.unlock = true;
    deploy(&unlock, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "deployed", "{d:?}");
    assert!(cloud.lock_items().is_empty(), "{:?}", cloud.lock_items());
    as_before(&cloud, 4);
}

#[tokio::test(start_paused = true)]
async fn plan_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 10);
    s.batch = Batch::Percent(30);
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

mod plan;
mod state;
mod strict;
