//! `gears status` on the in-memory fake, with tokio's paused clock: the rows of a quiet group,
//! one mid-deploy (running, then with its run gone), drift, a STOP lock, blue/green tags, an
//! unreadable tag; the calls a look costs; throttling retried.

use super::*;
use crate::aws::{Group, Image, Member, TemplateRef};
use crate::deploy::lock::LockValue;
use crate::deploy::state::State;
use crate::testing::{FakeCloud, Faults};
use std::collections::BTreeMap;
use std::sync::Mutex;

const OLD: &str = "ami-0000000000000001a";
const NEW: &str = "ami-0000000000000002b";
const RUN: &str = "0190b7a2-0000-7000-8000-000000000001";

fn image(id: &str, version: &str, ami_version: &str) -> Image {
    Image {
        id: id.into(),
        name: id.into(),
        state: "available".into(),
        owner: String::new(),
        public: false,
        creation_date: "2026-11-24T00:00:00.000Z".into(),
        tags: BTreeMap::from([
            ("COMPONENT_VERSION".to_owned(), version.to_owned()),
            ("AMI_VERSION".to_owned(), ami_version.to_owned()),
        ]),
        ..Default::default()
    }
}

/// A group of `n` on template `lt` version 1, tagged for `component` in `env`.
fn group(name: &str, component: &str, env: &str, lt: &str, n: i32) -> Group {
    Group {
        name: name.into(),
        min: n,
        max: n,
        desired: n,
        template: Some(TemplateRef {
            id: lt.into(),
            version: "1".into(),
        }),
        launch_configuration: None,
        mixed: false,
        override_templates: vec![],
        members: Vec::<Member>::new(),
        target_groups: vec![],
        load_balancers: vec![],
        other_traffic: vec![],
        units: None,
        warm_pool: false,
        suspended: vec![],
        tags: BTreeMap::from([
            (crate::tags::COMPONENT.to_owned(), component.to_owned()),
            (crate::tags::ENVIRONMENT.to_owned(), env.to_owned()),
        ]),
    }
}

/// The component `hello` in us-east-1, both AMIs in EC2 with their version tags, and no group.
fn setup(dir: &std::path::Path) -> (StatusSettings, FakeCloud) {
    crate::testing::component_file(dir, "");
    let cloud = FakeCloud::new();
    cloud.add_image("us-east-1", image(OLD, "1.0", "1.0-202611240000"));
    cloud.add_image("us-east-1", image(NEW, "2.0", "2.0-202612010000"));
    let settings = StatusSettings {
        account: None,
        component_file: std::path::PathBuf::from("gears.yaml"),
        environments: vec![],
        regions: vec![],
        watch: false,
        poll: POLL.into(),
        lock_stale: crate::deploy::LOCK_STALE,
        patience: PATIENCE,
        json: false,
        endpoint_flag: None,
    };
    (
        StatusSettings {
            component_file: dir.join("gears.yaml"),
            ..settings
        },
        cloud,
    )
}

/// A screen that keeps what it was shown.
#[derive(Default)]
struct Shown {
    looks: Mutex<Vec<String>>,
    live: bool,
}

impl crate::ui::Screen for Shown {
    fn show(&self, text: &str) {
        self.looks.lock().unwrap().push(text.to_owned());
    }
    fn live(&self) -> bool {
        self.live
    }
}

async fn look(s: &StatusSettings, cloud: &FakeCloud) -> Status {
    run(s, &Cancel::new(), cloud, &Shown::default())
        .await
        .unwrap_or_else(|e| panic!("{}", e.render()))
}

/// The table's row of `group`, cells as printed.
fn row_of(st: &Status, group: &str) -> Vec<String> {
    render::rows(st)
        .into_iter()
        .find(|r| r[3] == group)
        .unwrap_or_else(|| panic!("no row {group}: {:?}", render::rows(st)))
}

fn cells(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A lock of run [`RUN`] on a CI agent, last renewed `secs` ago.
fn lock_renewed(secs: i64) -> String {
    LockValue::Held {
        run: RUN.into(),
        who: "ci-7 gocd:hello/12/deploy/1/stage".into(),
        at: chrono::Utc::now() - chrono::Duration::seconds(secs),
    }
    .write()
}

/// A group mid-deploy on `lt-2`: 2 members on OLD, 2 launched on NEW (the template's version
/// 2), the deploy recorded and locked by `lock`.
fn mid_deploy(cloud: &FakeCloud, lock: &str) {
    cloud.add_group(
        group("hello-stage", "hello", "stage", "lt-2", 2),
        &[OLD, NEW],
    );
    cloud.edit_group("hello-stage", |g| {
        g.desired = 4;
        g.max = 4;
        g.template.as_mut().unwrap().version = "2".into();
        g.suspended = vec!["AZRebalance".into(), "ScheduledActions".into()];
    });
    cloud.settle("hello-stage");
    let st = State {
        run: RUN.into(),
        ami: NEW.into(),
        lt: "lt-2".into(),
        from: "1".into(),
        to: "2".into(),
        min: 2,
        max: 2,
        desired: 2,
        susp: vec!["AZRebalance".into(), "ScheduledActions".into()],
        lc: false,
        mx: false,
        fromn: "1".into(),
    };
    cloud.fake_fleet_tag("hello-stage", crate::deploy::STATE_TAG, &st.write());
    cloud.fake_fleet_tag("hello-stage", crate::deploy::LOCK_TAG, lock);
}

#[tokio::test(start_paused = true)]
async fn a_quiet_group_a_deploy_running_and_one_whose_run_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path());
    cloud.add_group(group("hello-live", "hello", "live", "lt-1", 4), &[OLD]);
    cloud.add_group(group("other-live", "other", "live", "lt-9", 2), &[OLD]);
    mid_deploy(&cloud, &lock_renewed(10));
    let st = look(&s, &cloud).await;
    assert_eq!(st.exit, 0, "{st:#?}");
    assert_eq!(st.groups.len(), 2, "another component's group is not shown");
    assert_eq!(
        row_of(&st, "hello-live"),
        cells(&[
            "live",
            "us-east-1",
            "-",
            "hello-live",
            &format!("{OLD} 1.0/1.0-202611240000 ×4"),
            "4/4",
            "4/4",
            &format!("{OLD} 1.0/1.0-202611240000 (lt-1:1)"),
            "-",
            "ok",
        ])
    );
    let running = row_of(&st, "hello-stage");
    assert_eq!(
        running,
        cells(&[
            "stage",
            "us-east-1",
            "-",
            "hello-stage",
            &format!("{OLD} 1.0/1.0-202611240000 ×2, {NEW} 2.0/2.0-202612010000 ×2"),
            "4/4",
            "4/4",
            &format!("{NEW} 2.0/2.0-202612010000 (lt-2:2) DRIFT"),
            &running[8],
            &format!(
                "deploy of {NEW} 2.0/2.0-202612010000 by run {RUN}: 2/2 on it, running; suspended: AZRebalance, ScheduledActions"
            ),
        ])
    );
    assert!(
        running[8].starts_with(&format!(
            "run {RUN} on ci-7 (gocd:hello/12/deploy/1/stage), 1"
        )),
        "renewed 10 s ago: {}",
        running[8]
    );
    let text = render::text(&st, &s);
    let cmd = format!(
        "gears deploy -c {} -e stage --group hello-stage --ami {NEW} --region us-east-1",
        s.component_file.display()
    );
    assert!(
        text.contains(&format!("  continue: {cmd}\n  abort:    {cmd} --abort\n")),
        "{text}"
    );
    assert!(text.contains("(running now: let it finish)"), "{text}");

    // The lock not renewed for two minutes: the run is gone, a human must look.
    mid_deploy(&cloud, &lock_renewed(120));
    let st = look(&s, &cloud).await;
    assert_eq!(st.exit, 7);
    let g = st.groups.iter().find(|g| g.group == "hello-stage").unwrap();
    assert_eq!(g.attention.len(), 1);
    assert!(
        g.attention[0].starts_with(&format!(
            "the deploy of {NEW} by run {RUN} did not finish and its run is gone (its lock was last renewed 2m0"
        )),
        "{:?}",
        g.attention
    );
    let r = row_of(&st, "hello-stage");
    assert!(
        r[8].starts_with(&format!(
            "stale: run {RUN} on ci-7 (gocd:hello/12/deploy/1/stage), 2m0"
        )),
        "{}",
        r[8]
    );
    assert!(r[9].starts_with("NEEDS A HUMAN; deploy of "), "{}", r[9]);
    assert!(r[9].contains(": 2/2 on it, its run is gone"), "{}", r[9]);
    let quiet = st.groups.iter().find(|g| g.group == "hello-live").unwrap();
    assert!(quiet.attention.is_empty());
    // `-e live` leaves the stage group out: nothing needs a human there.
    let live = StatusSettings {
        environments: vec!["live".into()],
        ..s.clone()
    };
    let st = look(&live, &cloud).await;
    assert_eq!((st.groups.len(), st.exit), (1, 0), "{st:#?}");
}

#[tokio::test(start_paused = true)]
async fn drift_a_stop_lock_and_an_unreadable_tag_need_a_human() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path());
    // Drift made by hand: the group pointed at a new version after its members launched.
    cloud.add_group(group("hello-a", "hello", "live", "lt-1", 2), &[OLD, NEW]);
    cloud.edit_group("hello-a", |g| {
        g.template.as_mut().unwrap().version = "2".into()
    });
    cloud.add_group(group("hello-b", "hello", "live", "lt-3", 2), &[OLD]);
    let stop = LockValue::Stop {
        run: RUN.into(),
        reason: crate::deploy::lock::STOP_REASON.into(),
    };
    cloud.fake_fleet_tag("hello-b", crate::deploy::LOCK_TAG, &stop.write());
    cloud.add_group(group("hello-c", "hello", "live", "lt-4", 1), &[OLD]);
    cloud.fake_fleet_tag("hello-c", crate::deploy::STATE_TAG, "{not json");
    let st = look(&s, &cloud).await;
    assert_eq!(st.exit, 7);
    let by = |n: &str| st.groups.iter().find(|g| g.group == n).unwrap().clone();
    assert_eq!(
        by("hello-a").attention,
        [format!(
            "drift: members run {OLD} but the launch spec lt-1:2 launches {NEW}, and no deploy is recorded"
        )]
    );
    assert_eq!(
        row_of(&st, "hello-a")[7],
        format!("{NEW} 2.0/2.0-202612010000 (lt-1:2) DRIFT")
    );
    let cmd = format!(
        "gears deploy -c {} -e live --group hello-b --ami {OLD} --region us-east-1 --unlock",
        s.component_file.display()
    );
    assert_eq!(
        by("hello-b").attention,
        [format!(
            "the line is stopped (run {RUN}: rollback failed): look at the group, then `{cmd}`"
        )]
    );
    assert_eq!(
        row_of(&st, "hello-b")[8],
        format!("STOP run {RUN}: rollback failed")
    );
    let c = by("hello-c");
    assert_eq!(c.attention.len(), 1);
    assert!(
        c.attention[0].starts_with(
            "a gears tag on it cannot be read: group hello-c: its gears:deploy tag cannot be read"
        ),
        "{:?}",
        c.attention
    );
    // The JSON carries the same.
    let v: serde_json::Value = serde_json::from_str(&render::json(&st)).unwrap();
    assert_eq!(v["exit"], 7);
    assert_eq!(v["needs_human"], true);
    let b = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "hello-b")
        .unwrap();
    assert_eq!(b["lock"]["kind"], "stop");
    assert_eq!(b["lock"]["reason"], "rollback failed");
    let a = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "hello-a")
        .unwrap();
    assert_eq!(a["drift"], true);
    assert_eq!(a["launch"]["ami"]["ami"], NEW);
    assert_eq!(a["launch"]["ami"]["version"], "2.0");
    assert_eq!(a["running"][0]["ami"], OLD);
    assert_eq!(a["running"][0]["ami_version"], "1.0-202611240000");
    assert_eq!(a["running"][0]["members"], 2);
}

#[tokio::test(start_paused = true)]
async fn blue_green_clusters_are_grouped_with_their_retired_groups_and_switches() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path());
    for (name, lt) in [("web-blue", "lt-1"), ("web-green", "lt-2"), ("api", "lt-3")] {
        cloud.add_group(group(name, "hello", "live", lt, 1), &[OLD]);
    }
    for g in ["web-blue", "web-green"] {
        cloud.fake_fleet_tag(g, crate::tags::CLUSTER, "web");
    }
    cloud.fake_fleet_tag(
        "web-blue",
        crate::tags::RETIRED,
        r#"{"run": "r", "at": "2026-01-01T00:00:00.000Z", "until": "2026-01-02T00:00:00Z", "min": 1, "max": 1, "desired": 1, "susp": []}"#,
    );
    let st = look(&s, &cloud).await;
    let names: Vec<&str> = st.groups.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(names, ["api", "web-blue", "web-green"]);
    let blue = row_of(&st, "web-blue");
    assert_eq!(blue[2], "web");
    assert_eq!(blue[9], "retired, kept until 2026-01-02T00:00:00Z (past)");
    assert_eq!(
        st.exit, 0,
        "a retired group kept past its time is said, not an alarm"
    );
    // A switch recorded with no live lock: a human must look.
    cloud.fake_fleet_tag(
        "web-green",
        crate::tags::BLUEGREEN,
        &format!(
            r#"{{"run": "{RUN}", "ami": "{NEW}", "new": "web-green", "phase": "grow", "susp": []}}"#
        ),
    );
    let st = look(&s, &cloud).await;
    assert_eq!(st.exit, 7);
    let green = st.groups.iter().find(|g| g.group == "web-green").unwrap();
    assert_eq!(
        green.attention,
        [format!("a blue/green switch by run {RUN} to web-green is recorded and no live lock holds its cluster")]
    );
    assert_eq!(green.bluegreen.as_ref().unwrap().ami.as_deref(), Some(NEW));
    assert!(row_of(&st, "web-green")[9]
        .starts_with("NEEDS A HUMAN; blue/green switch to web-green by run "));
    // Its run holds the lock on the cluster's other group: in flight, not an alarm.
    cloud.fake_fleet_tag("web-blue", crate::deploy::LOCK_TAG, &lock_renewed(5));
    let st = look(&s, &cloud).await;
    assert_eq!(st.exit, 0, "{st:#?}");
    assert!(st.groups.iter().all(|g| g.attention.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn a_look_costs_one_call_per_kind_per_region_whatever_the_number_of_groups() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path());
    for i in 0..6 {
        cloud.add_group(
            group(&format!("hello-{i}"), "hello", "live", "lt-1", 3),
            &[OLD],
        );
    }
    cloud.add_group(group("hello-x", "hello", "stage", "lt-2", 3), &[OLD, NEW]);
    let st = look(&s, &cloud).await;
    assert_eq!((st.groups.len(), st.exit), (7, 0));
    let calls = cloud.calls();
    let count = |op: &str| {
        calls
            .iter()
            .filter(|c| c.starts_with(&format!("{op} ")))
            .count()
    };
    assert_eq!(count("DescribeAutoScalingGroups"), 1, "{calls:?}");
    assert_eq!(count("DescribeInstances"), 1, "{calls:?}");
    assert_eq!(count("DescribeImages"), 1, "{calls:?}");
    // One per distinct launch spec (lt-1:1 and lt-2:1).
    assert_eq!(count("DescribeLaunchTemplateVersions"), 2, "{calls:?}");
    assert_eq!(calls.len(), 5, "reads only: {calls:?}");
}

#[tokio::test(start_paused = true)]
async fn throttling_is_retried_and_the_look_is_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path());
    cloud.add_group(group("hello-a", "hello", "live", "lt-1", 3), &[OLD]);
    cloud.add_group(group("hello-b", "hello", "live", "lt-2", 2), &[OLD, NEW]);
    cloud.edit_group("hello-b", |g| {
        g.template.as_mut().unwrap().version = "2".into()
    });
    let calm = look(&s, &cloud).await;
    let before = cloud.calls().len();
    // Every other call throttled (after the SDK's own retries, as AWS would leave it).
    cloud.set_faults(Faults {
        throttle_one_in: Some(2),
        ..Default::default()
    });
    let throttled = look(&s, &cloud).await;
    assert_eq!(render::rows(&throttled), render::rows(&calm));
    assert_eq!(throttled.exit, 7, "the drift on hello-b is still seen");
    assert!(
        cloud.calls().len() - before > before,
        "retried: {:?}",
        cloud.calls()
    );
    // Throttled for good: the region is reported, exit 5, never a partial row.
    cloud.set_faults(Faults {
        throttle_ops: vec!["DescribeAutoScalingGroups"],
        ..Default::default()
    });
    let s = StatusSettings {
        patience: Duration::from_secs(30),
        ..s
    };
    let failed = look(&s, &cloud).await;
    assert_eq!((failed.exit, failed.groups.len()), (5, 0));
    assert!(
        failed.errors[0]
            .error
            .contains("DescribeAutoScalingGroups failed in us-east-1"),
        "{:?}",
        failed.errors
    );
}

#[tokio::test(start_paused = true)]
async fn watch_prints_once_off_a_terminal_and_redraws_on_one_until_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path());
    cloud.add_group(group("hello-a", "hello", "live", "lt-1", 1), &[OLD]);
    s.watch = true;
    let plain = Shown::default();
    let st = run(&s, &Cancel::new(), &cloud, &plain).await.unwrap();
    assert_eq!((st.exit, plain.looks.lock().unwrap().len()), (0, 1));
    let screen = Shown {
        live: true,
        ..Default::default()
    };
    let cancel = Cancel::new();
    let stop = async {
        tokio::time::sleep(Duration::from_secs(12)).await;
        cancel.cancel(crate::cancel::Signal::Int);
    };
    let before = cloud.calls().len();
    let (r, ()) = tokio::join!(run(&s, &cancel, &cloud, &screen), stop);
    assert!(matches!(r, Err(Error::Interrupted(_))), "{r:?}");
    // Looks at 0, 5 and 10 s, then Ctrl-C at 12 s.
    assert_eq!(screen.looks.lock().unwrap().len(), 3);
    // The numbered template version is read once; each look reads the group, its members and
    // its AMIs again.
    let calls = &cloud.calls()[before..];
    let count = |op: &str| {
        calls
            .iter()
            .filter(|c| c.starts_with(&format!("{op} ")))
            .count()
    };
    assert_eq!(count("DescribeLaunchTemplateVersions"), 1, "{calls:?}");
    assert_eq!(count("DescribeAutoScalingGroups"), 3, "{calls:?}");
    assert_eq!(count("DescribeImages"), 3, "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn the_commands_name_the_country_and_quote_what_a_shell_would_split() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path());
    let mut g = group("hello de", "hello", "live", "lt-1", 1);
    g.tags
        .insert(crate::tags::COUNTRY.to_owned(), "de".to_owned());
    cloud.add_group(g, &[OLD]);
    let st = State {
        run: RUN.into(),
        ami: NEW.into(),
        lt: "lt-1".into(),
        from: "1".into(),
        to: String::new(),
        min: 1,
        max: 1,
        desired: 1,
        susp: vec![],
        lc: false,
        mx: false,
        fromn: "1".into(),
    };
    cloud.fake_fleet_tag("hello de", crate::deploy::STATE_TAG, &st.write());
    let look = look(&s, &cloud).await;
    let d = look.groups[0].deploy.clone().unwrap();
    assert_eq!(
        d.continue_with,
        format!(
            "gears deploy -c {} -e live --country de --group 'hello de' --ami {NEW} --region us-east-1",
            s.component_file.display()
        )
    );
    assert_eq!(d.abort_with, format!("{} --abort", d.continue_with));
    assert_eq!((d.on_target, d.of, d.running), (0, 1, false));
    assert_eq!(row_of(&look, "hello de")[0], "live/de");
    // No lock at all: the run is gone.
    assert_eq!(
        look.groups[0].attention,
        [format!(
            "the deploy of {NEW} by run {RUN} did not finish and its run is gone (no lock holds the group)"
        )]
    );
}

#[tokio::test]
async fn amis_are_described_200_ids_a_call_and_unknown_ids_are_left_out() {
    use crate::aws::{Cloud, Images};
    let cloud = FakeCloud::new();
    cloud.add_image("us-east-1", image(OLD, "1.0", "1.0-1"));
    let mut ids: Vec<String> = (0..449).map(|i| format!("ami-{i:017x}")).collect();
    ids.push(OLD.into());
    let found = cloud
        .images("us-east-1")
        .await
        .unwrap()
        .describe_images(&ids)
        .await
        .unwrap();
    assert_eq!(found.keys().collect::<Vec<_>>(), [OLD]);
    assert_eq!(cloud.calls(), ["DescribeImages us-east-1"; 3]);
}

/// Issue 33 item 3: in an account the AMIs are shared with, EC2 shows them without the owner's
/// tags; status takes versions from what deploy wrote on the instances, else on the group (for
/// its launch AMI), and otherwise says which account shared the AMI.
#[tokio::test(start_paused = true)]
async fn in_an_account_the_amis_are_shared_with_versions_come_from_instances_and_groups() {
    use crate::accounts::{AccountId, Shares};
    use crate::aws::{Cloud, GroupTags, Images};
    const BUILD: &str = "111111111111";
    const LIVE: &str = "222222222222";
    const THIRD: &str = "ami-0000000000000003c";
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = setup(dir.path());
    let cloud = FakeCloud::new();
    for (id, v) in [(OLD, "1.0"), (NEW, "2.0"), (THIRD, "3.0")] {
        cloud.add_owned_image("us-east-1", image(id, v, &format!("{v}-x")), BUILD);
    }
    let images = cloud.images("us-east-1").await.unwrap();
    let live = Shares {
        accounts: vec![AccountId(LIVE.into())],
        ..Shares::default()
    };
    for id in [OLD, NEW, THIRD] {
        images.share(id, &live).await.unwrap();
    }
    let cloud = cloud.as_account(LIVE);
    let images = cloud.images("us-east-1").await.unwrap();
    let seen = images.describe_images(&[NEW.into()]).await.unwrap();
    assert!(
        seen[NEW].tags.is_empty(),
        "the owner's tags stay with the owner"
    );
    assert_eq!(seen[NEW].owner, BUILD);
    let fleet = cloud.fleet("us-east-1").await.unwrap();
    let version = |v: &str| {
        BTreeMap::from([
            ("COMPONENT_VERSION".to_owned(), v.to_owned()),
            ("AMI_VERSION".to_owned(), format!("{v}-x")),
        ])
    };
    // Members launched after deploy tagged the group (the tags propagate to them).
    cloud.add_group(group("hello-live", "hello", "live", "lt-1", 0), &[NEW]);
    fleet
        .put_tags("hello-live", &version("2.0"), true)
        .await
        .unwrap();
    cloud.edit_group("hello-live", |g| (g.min, g.max, g.desired) = (2, 2, 2));
    cloud.settle("hello-live");
    // Members launched before: the group's tag names its launch AMI's version.
    cloud.add_group(group("hello-stage", "hello", "stage", "lt-2", 1), &[OLD]);
    fleet
        .put_tags("hello-stage", &version("1.0"), true)
        .await
        .unwrap();
    // Nothing here says the version.
    cloud.add_group(group("hello-qa", "hello", "qa", "lt-3", 1), &[THIRD]);
    let st = look(&s, &cloud).await;
    assert_eq!(row_of(&st, "hello-live")[4], format!("{NEW} 2.0/2.0-x ×2"));
    assert_eq!(row_of(&st, "hello-stage")[4], format!("{OLD} 1.0/1.0-x ×1"));
    assert_eq!(
        row_of(&st, "hello-qa")[4],
        format!("{THIRD} (shared from {BUILD}) ×1")
    );
    assert!(
        render::json(&st).contains(&format!("\"shared_from\": \"{BUILD}\"")),
        "{}",
        render::json(&st)
    );
    // An AMI owned elsewhere and not shared with this account is not seen at all.
    cloud.add_owned_image(
        "us-east-1",
        image("ami-0000000000000004d", "4.0", "4.0-x"),
        BUILD,
    );
    let seen = images
        .describe_images(&["ami-0000000000000004d".into()])
        .await
        .unwrap();
    assert!(seen.is_empty(), "{seen:?}");
}
