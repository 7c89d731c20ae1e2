//! The IAM policy in README.md ("On real AWS") against what each stage calls.
//!
//! Each stage runs a few representative scenarios on the fake AWS. Every operation the fake
//! logged becomes an IAM action through [`SERVICES`]. The stage's statement must list each
//! one, and the failure names what is missing. Two more tables add what the fake's log does not
//! show: [`UNLOGGED`], calls `src/aws` makes that the fake does not log, and [`IMPLIED`], actions
//! IAM checks beyond the operation's own. Packer's own calls during a bake are not Rust code; the
//! Bake statement keeps them as documented, and this test only checks the lookups gears makes
//! itself.

use crate::aws::fake::{FakeCloud, Faults};
use crate::aws::{Cloud, Group, Image, Instance, LockTable, SecurityGroup, TemplateRef};
use crate::cancel::{Cancel, Cleanup};
use crate::context::RunContext;
use crate::deploy::{defaults, Batch, DeploySettings, Strategy};
use crate::settings::AmiChoice;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// The AWS operations gears calls and the IAM service each belongs to. The IAM action is
/// `service:Operation`. An operation the fake logs that is missing here fails the test: add it
/// with its service (`ec2`, `autoscaling`, `elasticloadbalancing`, `dynamodb`, `cloudwatch`).
const SERVICES: &[(&str, &str)] = &[
    // EC2: images, instances, key pairs, security groups, launch templates, snapshots.
    ("DescribeImages", "ec2"),
    ("DescribeImageAttribute", "ec2"),
    ("DeregisterImage", "ec2"),
    ("DescribeSnapshots", "ec2"),
    ("DeleteSnapshot", "ec2"),
    ("RunInstances", "ec2"),
    ("DescribeInstances", "ec2"),
    ("DescribeInstanceStatus", "ec2"),
    ("TerminateInstances", "ec2"),
    ("GetConsoleOutput", "ec2"),
    ("CreateTags", "ec2"),
    ("DescribeKeyPairs", "ec2"),
    ("DeleteKeyPair", "ec2"),
    ("DescribeSecurityGroups", "ec2"),
    ("DeleteSecurityGroup", "ec2"),
    ("DescribeNetworkInterfaces", "ec2"),
    ("DescribeLaunchTemplates", "ec2"),
    ("DescribeLaunchTemplateVersions", "ec2"),
    ("CreateLaunchTemplateVersion", "ec2"),
    // Auto Scaling.
    ("DescribeAutoScalingGroups", "autoscaling"),
    ("DescribeAutoScalingInstances", "autoscaling"),
    ("UpdateAutoScalingGroup", "autoscaling"),
    ("TerminateInstanceInAutoScalingGroup", "autoscaling"),
    ("SuspendProcesses", "autoscaling"),
    ("ResumeProcesses", "autoscaling"),
    ("CreateOrUpdateTags", "autoscaling"),
    ("DeleteTags", "autoscaling"),
    ("DescribeLifecycleHooks", "autoscaling"),
    ("DescribeLaunchConfigurations", "autoscaling"),
    ("CreateLaunchConfiguration", "autoscaling"),
    ("DeleteLaunchConfiguration", "autoscaling"),
    ("StartInstanceRefresh", "autoscaling"),
    ("DescribeInstanceRefreshes", "autoscaling"),
    ("CancelInstanceRefresh", "autoscaling"),
    // Blue/green.
    ("CreateAutoScalingGroup", "autoscaling"),
    ("DeleteAutoScalingGroup", "autoscaling"),
    ("DescribePolicies", "autoscaling"),
    ("PutScalingPolicy", "autoscaling"),
    ("DescribeScheduledActions", "autoscaling"),
    ("PutScheduledUpdateGroupAction", "autoscaling"),
    ("PutLifecycleHook", "autoscaling"),
    ("AttachLoadBalancerTargetGroups", "autoscaling"),
    ("DetachLoadBalancerTargetGroups", "autoscaling"),
    ("AttachLoadBalancers", "autoscaling"),
    ("DetachLoadBalancers", "autoscaling"),
    // Target groups.
    ("DescribeTargetHealth", "elasticloadbalancing"),
    // Classic load balancers.
    ("DescribeInstanceHealth", "elasticloadbalancing"),
    // Alarm gates.
    ("DescribeAlarms", "cloudwatch"),
    // The lock table.
    ("PutItem", "dynamodb"),
    ("GetItem", "dynamodb"),
    ("UpdateItem", "dynamodb"),
    ("DeleteItem", "dynamodb"),
];

/// Calls `src/aws` makes that the fake does not log: when the fake logs the operation in the
/// middle column in one of the stages named, the real adapter also calls the last one. Each
/// entry is a gap in the fake's log.
const UNLOGGED: &[(&[&str], &str, &str)] = &[
    // aws/ec2.rs `key_pairs`: the key names live instances use.
    (&["Reap"], "DescribeKeyPairs", "DescribeInstances"),
    // aws/ec2.rs `security_groups`: one look at the network interfaces using them.
    (
        &["Reap"],
        "DescribeSecurityGroups",
        "DescribeNetworkInterfaces",
    ),
    // aws/housekeeping.rs `template_versions`: the templates, then each one's versions.
    (
        &["Amis", "Reap"],
        "DescribeLaunchTemplateVersions",
        "DescribeLaunchTemplates",
    ),
    // aws/locks.rs `acquire`: a refused conditional write reads who holds the lock.
    (&["Deploy"], "PutItem", "GetItem"),
    // aws/clone.rs `clone_from`: reads the source's lifecycle hooks and puts them on the
    // clone; `copy_scaling_from` puts each policy and scheduled action it read.
    (
        &["Deploy"],
        "CreateAutoScalingGroup",
        "DescribeLifecycleHooks",
    ),
    (&["Deploy"], "CreateAutoScalingGroup", "PutLifecycleHook"),
    (&["Deploy"], "DescribePolicies", "PutScalingPolicy"),
    (
        &["Deploy"],
        "DescribeScheduledActions",
        "PutScheduledUpdateGroupAction",
    ),
    // aws/fleet.rs `copy_configuration`: reads the source before it creates the copy.
    (
        &["Deploy"],
        "CreateLaunchConfiguration",
        "DescribeLaunchConfigurations",
    ),
];

/// Actions IAM checks beyond the operation's own (as AWS documents them), when the run called
/// the first operation (and, where a list follows, one of those too):
/// - RunInstances with tags in the call (gears tags its test instances as it launches them) also
///   needs ec2:CreateTags;
/// - UpdateAutoScalingGroup onto a launch template needs ec2:RunInstances (Auto Scaling checks
///   that the caller may launch from it); a run on launch configurations alone does not;
/// - DeregisterImage with DeleteAssociatedSnapshots (as `gears amis prune` calls it) needs
///   ec2:DeleteSnapshot.
const IMPLIED: &[(&str, &[&str], &str)] = &[
    ("RunInstances", &[], "ec2:CreateTags"),
    (
        "UpdateAutoScalingGroup",
        &[
            "DescribeLaunchTemplateVersions",
            "CreateLaunchTemplateVersion",
        ],
        "ec2:RunInstances",
    ),
    ("DeregisterImage", &[], "ec2:DeleteSnapshot"),
    // A group created on a launch template, with tags (a blue/green clone).
    ("CreateAutoScalingGroup", &[], "ec2:RunInstances"),
    (
        "CreateAutoScalingGroup",
        &[],
        "autoscaling:CreateOrUpdateTags",
    ),
];

/// The policy's statements in the README: Sid → the actions it allows.
fn policy() -> BTreeMap<String, BTreeSet<String>> {
    let readme = include_str!("../README.md");
    let section = readme
        .split("\n## On real AWS\n")
        .nth(1)
        .expect("README.md has a section `## On real AWS`");
    let section = section.split("\n## ").next().unwrap_or(section);
    let json = section
        .split("```json\n")
        .nth(1)
        .and_then(|s| s.split("\n```").next())
        .expect("the section `On real AWS` holds a ```json block: the IAM policy");
    let doc: serde_json::Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("README's IAM policy is not JSON: {e}"));
    let mut out = BTreeMap::new();
    for s in doc["Statement"].as_array().expect("a Statement list") {
        let sid = s["Sid"].as_str().expect("every statement has a Sid");
        let actions: BTreeSet<String> = match &s["Action"] {
            serde_json::Value::String(a) => BTreeSet::from([a.clone()]),
            serde_json::Value::Array(v) => v
                .iter()
                .map(|a| a.as_str().expect("an action is a string").to_owned())
                .collect(),
            other => panic!("statement {sid}: Action is neither a string nor a list: {other}"),
        };
        assert!(
            out.insert(sid.to_owned(), actions).is_none(),
            "two statements with Sid {sid}"
        );
    }
    out
}

/// The IAM actions behind what the fake logged (`Operation region` lines), for a stage.
fn actions(stage: &str, calls: &[String]) -> BTreeSet<String> {
    let service = |op: &str| {
        SERVICES
            .iter()
            .find(|(o, _)| *o == op)
            .map(|(_, s)| format!("{s}:{op}"))
            .unwrap_or_else(|| {
                panic!(
                    "the {stage} stage called `{op}`, an operation this test does not know: add \
                     it to SERVICES in src/iam_policy_tests.rs with its IAM service, then to the \
                     README's policy"
                )
            })
    };
    let mut ops: BTreeSet<&str> = calls
        .iter()
        .map(|c| c.split_whitespace().next().unwrap_or_default())
        .collect();
    for (stages, logged, also) in UNLOGGED {
        if stages.contains(&stage) && ops.contains(logged) {
            ops.insert(also);
        }
    }
    let mut out: BTreeSet<String> = ops.iter().map(|op| service(op)).collect();
    for (op, with, action) in IMPLIED {
        if ops.contains(op) && (with.is_empty() || with.iter().any(|w| ops.contains(w))) {
            out.insert((*action).to_owned());
        }
    }
    out
}

/// Each scenario's calls, as (scenario, fake log).
type Runs = Vec<(&'static str, Vec<String>)>;

/// The actions the runs needed that `allowed` lacks, each with the scenarios that called it.
fn missing(stage: &str, allowed: &BTreeSet<String>, runs: &Runs) -> Vec<String> {
    let mut needed: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (scenario, calls) in runs {
        assert!(!calls.is_empty(), "{stage}: `{scenario}` called nothing");
        for a in actions(stage, calls) {
            needed.entry(a).or_default().push(scenario);
        }
    }
    needed
        .iter()
        .filter(|(a, _)| !allowed.contains(*a))
        .map(|(a, by)| format!("{a} (called by: {})", by.join("; ")))
        .collect()
}

/// Asserts that the stage's statement in the README lists every action its runs needed,
/// naming each missing one.
fn assert_listed(stage: &str, runs: &Runs) {
    let policy = policy();
    let allowed = policy
        .get(stage)
        .unwrap_or_else(|| panic!("README's IAM policy has no statement with Sid {stage:?}"));
    let missing = missing(stage, allowed, runs);
    assert!(
        missing.is_empty(),
        "README.md, \"On real AWS\": the IAM statement {stage:?} lacks {} action(s) the stage \
         calls:\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

#[test]
fn a_missing_action_is_named_with_the_scenarios_that_call_it() {
    let allowed = BTreeSet::from(["autoscaling:DescribeAutoScalingGroups".to_owned()]);
    let calls = |ops: &[&str]| ops.iter().map(|o| format!("{o} us-east-1")).collect();
    let runs: Runs = vec![
        ("a", calls(&["DescribeAutoScalingGroups", "DescribeImages"])),
        ("b", calls(&["DescribeImages", "PutItem"])),
    ];
    assert_eq!(
        missing("Deploy", &allowed, &runs),
        [
            "dynamodb:GetItem (called by: b)",
            "dynamodb:PutItem (called by: b)",
            "ec2:DescribeImages (called by: a; b)",
        ]
    );
    // An action IAM implies: a launch with tags needs ec2:CreateTags.
    let runs: Runs = vec![("t", calls(&["RunInstances"]))];
    assert_eq!(
        missing(
            "Test",
            &BTreeSet::from(["ec2:RunInstances".to_owned()]),
            &runs
        ),
        ["ec2:CreateTags (called by: t)"]
    );
}

#[test]
#[should_panic(expected = "called `DescribeFleetWidgets`, an operation this test does not know")]
fn an_operation_the_table_does_not_know_fails_naming_it() {
    actions("Deploy", &["DescribeFleetWidgets us-east-1".to_owned()]);
}

#[test]
fn every_stage_has_a_statement_in_the_readme() {
    let policy = policy();
    for sid in ["Bake", "Test", "Deploy", "Reap", "Amis", "Status"] {
        assert!(policy.contains_key(sid), "no statement {sid}: {policy:?}");
    }
}

fn ctx() -> RunContext {
    RunContext::from_vars(Vec::<(String, String)>::new())
}

fn image(id: &str, tags: &[(&str, &str)]) -> Image {
    Image {
        id: id.into(),
        name: id.into(),
        state: "available".into(),
        creation_date: "2026-11-24T00:00:00.000Z".into(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn tags(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
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

/// The fake logged a call of `op`: a scenario does what it is there for.
fn called(cloud: &FakeCloud, op: &str) -> bool {
    let prefix = format!("{op} ");
    cloud.calls().iter().any(|c| c.starts_with(&prefix))
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const COMPONENT: &str =
    "component: hello\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-0b0b0b0b0b0b0b0b0}\n";

mod deploy {
    use super::*;
    use crate::deploy::{lock::LockValue, LOCK_STALE, LOCK_TAG};

    const OLD: &str = "ami-0000000000000001a";
    const NEW: &str = "ami-0000000000000002b";

    fn group(name: &str, template: Option<&str>, lc: Option<&str>, n: i32) -> Group {
        Group {
            name: name.into(),
            min: n,
            max: n,
            desired: n,
            template: template.map(|id| TemplateRef {
                id: id.into(),
                version: "1".into(),
            }),
            launch_configuration: lc.map(str::to_owned),
            mixed: false,
            override_templates: vec![],
            members: vec![],
            target_groups: vec!["tg-1".into()],
            load_balancers: vec![],
            other_traffic: vec![],
            units: None,
            warm_pool: false,
            suspended: vec![],
            tags: tags(&[("gears:component", "hello"), ("gears:environment", "live")]),
        }
    }

    /// A component with one group of 4 on launch template lt-1 (on OLD), NEW in EC2, and the
    /// settings of `gears deploy --ami NEW -e live`.
    fn setup(dir: &Path) -> (DeploySettings, FakeCloud) {
        std::fs::write(dir.join("gears.yaml"), COMPONENT).unwrap();
        let cloud = FakeCloud::new();
        cloud.add_image("us-east-1", image(NEW, &[]));
        cloud.add_group(group("hello-live", Some("lt-1"), None, 4), &[OLD]);
        let settings = DeploySettings {
            component_file: dir.join("gears.yaml"),
            ami: AmiChoice::Explicit {
                ami: NEW.into(),
                region: "us-east-1".into(),
            },
            environment: "live".into(),
            country: None,
            groups: vec![],
            batch: Some(Batch::Count(2)),
            strategy: Strategy::Rolling,
            gate_timeout: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            smoke_target: None,
            no_smoke: false,
            lock_stale: LOCK_STALE,
            lock_table: None,
            alarms: vec![],
            bake_time: Duration::ZERO,
            parallel: 1,
            min_healthy: 100,
            plan_only: false,
            abort: false,
            unlock: false,
            endpoint_flag: None,
            keep_old: defaults::KEEP_OLD,
            scale_old_to: None,
            keep_groups: defaults::KEEP_GROUPS,
            account: None,
            rollback: false,
        };
        (settings, cloud)
    }

    /// One deploy: its per-group results (`deployed`, `rolled back`, ...) or its error.
    async fn run(s: &DeploySettings, cloud: &FakeCloud, cancel: &Cancel) -> Result<String, String> {
        let ui = crate::ui::Recorded::default();
        match crate::deploy::deploy(s, &ctx(), cancel, &Cleanup::default(), cloud, &ui).await {
            Ok(d) => Ok(d
                .groups
                .iter()
                .map(|g| g.result.as_str())
                .collect::<Vec<_>>()
                .join(",")),
            Err(f) => Err(f.error.render()),
        }
    }

    async fn ok(s: &DeploySettings, cloud: &FakeCloud) -> String {
        run(s, cloud, &Cancel::new())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A deploy that ends in a failed rollback (every TerminateInstanceInAutoScalingGroup
    /// throttled): the group is left recorded and stopped, for --plan and --abort.
    async fn stopped(s: &DeploySettings, cloud: &FakeCloud) {
        cloud.set_unhealthy_images(&[NEW]);
        cloud.set_faults(Faults {
            throttle_ops: vec!["TerminateInstanceInAutoScalingGroup"],
            ..Default::default()
        });
        assert_eq!(ok(s, cloud).await, "rollback failed");
        cloud.set_faults(Faults::default());
        cloud.set_unhealthy_images(&[]);
    }

    async fn scenarios() -> Runs {
        let mut runs: Runs = Vec::new();
        let dir = tempfile::tempdir().unwrap();

        // First: gears reads lock ages from a wall clock that moves with the paused clock, and
        // this lock is written at the real time.
        let (mut s, cloud) = setup(dir.path());
        s.lock_table = Some("gears-locks".into());
        let locks = cloud.locks("us-east-1", "gears-locks").await.unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        locks
            .acquire("us-east-1/hello-live", "other-run", "ci-42", now, 0)
            .await
            .unwrap();
        let refused = run(&s, &cloud, &Cancel::new()).await.unwrap_err();
        assert!(
            refused.contains("holds the lock us-east-1/hello-live in the lock table"),
            "{refused}"
        );
        s.unlock = true;
        assert_eq!(ok(&s, &cloud).await, "unlocked");
        assert!(called(&cloud, "DeleteItem"));
        runs.push((
            "--lock-table: a deploy refused, then --unlock",
            cloud.calls(),
        ));

        let (s, cloud) = setup(dir.path());
        assert_eq!(ok(&s, &cloud).await, "deployed");
        runs.push(("a rolling deploy", cloud.calls()));

        let (mut s, cloud) = setup(dir.path());
        s.strategy = Strategy::BlueGreen;
        s.batch = None;
        // Old groups scaled to 0 at once: empty, so the one beyond --keep-groups is deleted.
        s.scale_old_to = Some(0);
        assert_eq!(ok(&s, &cloud).await, "deployed");
        s.rollback = true;
        assert_eq!(ok(&s, &cloud).await, "deployed");
        s.rollback = false;
        s.keep_groups = 1;
        assert_eq!(ok(&s, &cloud).await, "deployed");
        assert!(called(&cloud, "DeleteAutoScalingGroup"));
        runs.push((
            "blue/green: a deploy, --rollback, a deploy deleting an old group",
            cloud.calls(),
        ));
        let (mut s, cloud) = setup(dir.path());
        s.strategy = Strategy::BlueGreen;
        s.batch = None;
        cloud.set_unhealthy_images(&[NEW]);
        assert_eq!(ok(&s, &cloud).await, "rolled back");
        runs.push(("blue/green: a failed gate", cloud.calls()));

        let (s, cloud) = setup(dir.path());
        cloud.edit_group("hello-live", |g| g.load_balancers = vec!["web".into()]);
        assert_eq!(ok(&s, &cloud).await, "deployed");
        assert!(called(&cloud, "DescribeInstanceHealth"));
        runs.push(("a group behind a Classic load balancer", cloud.calls()));

        let (mut s, cloud) = setup(dir.path());
        s.alarms = vec!["hello-5xx".into()];
        cloud.set_alarm("hello-5xx", "OK", "");
        assert_eq!(ok(&s, &cloud).await, "deployed");
        assert!(called(&cloud, "DescribeAlarms"));
        runs.push(("a deploy gated on an alarm", cloud.calls()));

        let (s, cloud) = setup(dir.path());
        cloud.set_unhealthy_images(&[NEW]);
        assert_eq!(ok(&s, &cloud).await, "rolled back");
        runs.push(("a rollback after a failed gate", cloud.calls()));

        let (s, cloud) = setup(dir.path());
        stopped(&s, &cloud).await;
        runs.push(("a failed rollback", cloud.calls()));

        let (mut s, cloud) = setup(dir.path());
        s.plan_only = true;
        assert_eq!(ok(&s, &cloud).await, "planned");
        runs.push(("--plan", cloud.calls()));

        let (mut s, cloud) = setup(dir.path());
        stopped(&s, &cloud).await;
        s.plan_only = true;
        ok(&s, &cloud).await;
        s.plan_only = false;
        s.abort = true;
        assert_eq!(ok(&s, &cloud).await, "aborted");
        runs.push(("--plan, then --abort, of a stopped deploy", cloud.calls()));

        let (mut s, cloud) = setup(dir.path());
        let dead = LockValue::held_now("0190b7a2-0000-7000-8000-000000000009", "ci-host").write();
        cloud.fake_fleet_tag("hello-live", LOCK_TAG, &dead);
        s.unlock = true;
        s.lock_stale = Duration::ZERO;
        assert_eq!(ok(&s, &cloud).await, "unlocked");
        runs.push(("--unlock of a dead run's lock", cloud.calls()));

        let (mut s, cloud) = setup(dir.path());
        s.lock_table = Some("gears-locks".into());
        assert_eq!(ok(&s, &cloud).await, "deployed");
        runs.push(("--lock-table: a deploy", cloud.calls()));

        let (mut s, cloud) = setup(dir.path());
        s.lock_table = Some("gears-locks".into());
        cloud.set_unhealthy_images(&[NEW]);
        // A 60 s gate: the heartbeat renews the lease while it waits.
        assert_eq!(ok(&s, &cloud).await, "rolled back");
        assert!(called(&cloud, "UpdateItem"));
        runs.push(("--lock-table: a rollback", cloud.calls()));

        for healthy in [true, false] {
            let (mut s, cloud) = setup(dir.path());
            cloud.add_configuration("web-lc", OLD);
            cloud.add_group(group("hello-lc", None, Some("web-lc"), 3), &[]);
            s.groups = vec!["hello-lc".into()];
            if !healthy {
                cloud.set_unhealthy_images(&[NEW]);
            }
            let (want, scenario) = if healthy {
                ("deployed", "a group on a launch configuration")
            } else {
                (
                    "rolled back",
                    "a group on a launch configuration, rolled back",
                )
            };
            assert_eq!(ok(&s, &cloud).await, want);
            assert!(called(&cloud, "CreateLaunchConfiguration"));
            runs.push((scenario, cloud.calls()));
        }

        for healthy in [true, false] {
            let (mut s, cloud) = setup(dir.path());
            s.strategy = Strategy::InstanceRefresh;
            if !healthy {
                cloud.set_unhealthy_images(&[NEW]);
            }
            let (want, scenario) = if healthy {
                ("deployed", "instance refresh")
            } else {
                ("rolled back", "instance refresh, failed and rolled back")
            };
            assert_eq!(ok(&s, &cloud).await, want);
            assert!(called(&cloud, "StartInstanceRefresh"));
            runs.push((scenario, cloud.calls()));
        }

        // A signal mid refresh: the refresh is cancelled before the rollback.
        let (mut s, cloud) = setup(dir.path());
        s.strategy = Strategy::InstanceRefresh;
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            c2.cancel(crate::cancel::Signal::Term);
        });
        run(&s, &cloud, &cancel).await.unwrap_err();
        assert!(called(&cloud, "CancelInstanceRefresh"));
        runs.push(("instance refresh cancelled by a signal", cloud.calls()));
        runs
    }

    #[tokio::test(start_paused = true)]
    async fn the_deploy_statement_lists_every_action_deploy_calls() {
        assert_listed("Deploy", &scenarios().await);
    }
}

mod status {
    use super::*;
    use crate::status::{StatusSettings, PATIENCE, POLL};

    /// A screen that shows nothing.
    struct Blind;
    impl crate::ui::Screen for Blind {
        fn show(&self, _: &str) {}
        fn live(&self) -> bool {
            false
        }
    }

    /// `gears status` of a fleet: a group on a launch template with a deploy recorded on it, and
    /// one on a launch configuration.
    async fn look() -> FakeCloud {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gears.yaml"), COMPONENT).unwrap();
        let cloud = FakeCloud::new();
        cloud.add_image("us-east-1", image("ami-1", &[("COMPONENT_VERSION", "1.0")]));
        let mut g = deploy_group("hello-live", Some(("lt-1", "1")), None);
        g.tags.insert(
            crate::deploy::STATE_TAG.into(),
            r#"{"run":"r1","ami":"ami-2","lt":"lt-1","from":"1","min":2,"max":2,"desired":2,"susp":[]}"#.into(),
        );
        cloud.add_group(g, &["ami-1"]);
        cloud.add_configuration("hello-lc", "ami-1");
        cloud.add_group(deploy_group("hello-stage", None, Some("hello-lc")), &[]);
        let s = StatusSettings {
            account: None,
            component_file: dir.path().join("gears.yaml"),
            environments: vec![],
            regions: vec![],
            watch: false,
            poll: POLL.into(),
            lock_stale: crate::deploy::LOCK_STALE,
            patience: PATIENCE,
            json: false,
            endpoint_flag: None,
        };
        let st = crate::status::run(&s, &Cancel::new(), &cloud, &Blind)
            .await
            .unwrap();
        assert_eq!(st.groups.len(), 2, "{st:?}");
        cloud
    }

    fn deploy_group(name: &str, lt: Option<(&str, &str)>, lc: Option<&str>) -> Group {
        Group {
            name: name.into(),
            min: 2,
            max: 2,
            desired: 2,
            template: lt.map(|(id, v)| TemplateRef {
                id: id.into(),
                version: v.into(),
            }),
            launch_configuration: lc.map(str::to_owned),
            mixed: false,
            override_templates: vec![],
            members: vec![],
            target_groups: vec![],
            load_balancers: vec![],
            other_traffic: vec![],
            units: None,
            warm_pool: false,
            suspended: vec![],
            tags: tags(&[("gears:component", "hello"), ("gears:environment", "live")]),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_status_statement_lists_every_action_status_calls_and_reads_only() {
        let cloud = look().await;
        assert!(called(&cloud, "DescribeLaunchConfigurations"));
        assert!(called(&cloud, "DescribeLaunchTemplateVersions"));
        assert_listed("Status", &vec![("a fleet mid-deploy", cloud.calls())]);
        let policy = policy();
        let writes: Vec<&String> = policy["Status"]
            .iter()
            .filter(|a| {
                let op = a.split(':').nth(1).unwrap_or_default();
                !["Describe", "Get", "List"]
                    .iter()
                    .any(|p| op.starts_with(p))
            })
            .collect();
        assert!(writes.is_empty(), "status reads only: {writes:?}");
    }
}

mod test_stage {
    use super::*;
    use crate::smoke::target::Target;
    use crate::test_stage::settings::TestSettings;

    const AMI: &str = "ami-0123456789abcdef0";

    /// `gears test` of AMI with a one-test smoke file sent to 127.0.0.1:`port`.
    async fn run(port: u16) -> (bool, FakeCloud) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("gears.yaml"),
            format!("{COMPONENT}test:\n  smoke_file: smoke.yaml\n  port: 8080\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("smoke.yaml"),
            "tests:\n  - name: up\n    uri: /\n",
        )
        .unwrap();
        let s = TestSettings {
            account: None,
            component_file: dir.path().join("gears.yaml"),
            ami: AmiChoice::Explicit {
                ami: AMI.into(),
                region: "us-east-1".into(),
            },
            target_host: Some(Target::parse(&format!("127.0.0.1:{port}")).unwrap()),
            ready_timeout: Duration::from_secs(2),
            ttl: Duration::from_secs(3600),
            keep_on_failure: false,
            junit: None,
            output: crate::settings::OutputFormat::Human,
            heartbeat: Duration::from_secs(30),
            jobs: 4,
            endpoint_flag: None,
            work_dir: dir.path().join(".gears"),
        };
        let cloud = FakeCloud::new();
        cloud.add_image("us-east-1", image(AMI, &[("COMPONENT_VERSION", "1.0")]));
        cloud.set_faults(Faults {
            checks: Some(Duration::ZERO),
            ..Default::default()
        });
        cloud.set_console_output("boot: ok\n");
        let t = crate::test_stage::test(&s, &ctx(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert!(t.terminated, "{t:?}");
        if !t.passed {
            assert!(t.console_file.is_some(), "{t:?}");
        }
        (t.passed, cloud)
    }

    #[tokio::test]
    async fn the_test_statement_lists_every_action_test_calls() {
        let (passed, ok) = run(http_ok().await).await;
        assert!(passed);
        let (passed, failed) = run(closed_port()).await;
        assert!(!passed);
        assert!(called(&failed, "GetConsoleOutput"));
        let runs: Runs = vec![
            ("a passing test", ok.calls()),
            ("a failing test (console output)", failed.calls()),
        ];
        assert_listed("Test", &runs);
    }
}

mod amis {
    use super::*;
    use crate::amis::{AmisSettings, PruneOptions};
    use crate::aws::AmiUse;

    fn ours(id: &str, created_at: &str) -> Image {
        image(
            id,
            &[
                ("gears:component", "hello"),
                ("COMPONENT_NAME", "hello"),
                ("COMPONENT_VERSION", id),
                ("gears:builder", "web"),
                ("gears:managed-by", "gears"),
                ("gears:run-id", id),
                ("CREATED_AT", created_at),
            ],
        )
    }

    /// Three AMIs of the component (the oldest in use, the middle one shared), each with a
    /// snapshot, and a snapshot of ours whose AMI is gone.
    fn cloud() -> FakeCloud {
        let cloud = FakeCloud::new();
        for (id, at) in [
            ("ami-old", "202601010000"),
            ("ami-mid", "202602010000"),
            ("ami-new", "202603010000"),
        ] {
            cloud.add_image("us-east-1", ours(id, at));
            cloud.add_snapshots("us-east-1", id, &[&format!("snap-{id}")]);
        }
        cloud.add_ami_use(
            "us-east-1",
            AmiUse {
                image_id: "ami-old".into(),
                kind: "launch-template",
                id: "lt-1".into(),
                detail: "hello version 1 (default, latest)".into(),
            },
        );
        cloud.add_snapshots("us-east-1", "ami-gone", &["snap-orphan"]);
        cloud.tag_snapshot(
            "snap-orphan",
            &[
                ("gears:component", "hello"),
                ("gears:managed-by", "gears"),
                ("gears:run-id", "ami-gone"),
            ],
        );
        cloud
    }

    fn settings() -> AmisSettings {
        AmisSettings {
            account: None,
            component: "hello".into(),
            regions: vec!["us-east-1".into()],
            endpoint_flag: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_amis_statement_lists_every_action_amis_calls() {
        let mut runs: Runs = Vec::new();
        let c = cloud();
        assert_eq!(crate::amis::list(&settings(), &c).await.unwrap().len(), 3);
        runs.push(("list", c.calls()));
        for (yes, include_shared) in [(false, false), (true, false), (true, true)] {
            let c = cloud();
            let opts = PruneOptions {
                keep: 1,
                yes,
                include_shared,
            };
            let report = crate::amis::prune(&settings(), opts, &Cancel::new(), &c)
                .await
                .unwrap();
            if yes {
                assert!(
                    report
                        .amis
                        .iter()
                        .any(|p| p.action.to_string() == "deregistered"),
                    "{report:?}"
                );
            }
            let scenario = match (yes, include_shared) {
                (false, _) => "prune (what would go)",
                (true, false) => "prune --yes",
                (true, true) => "prune --yes --include-shared",
            };
            runs.push((scenario, c.calls()));
        }
        assert_listed("Amis", &runs);
    }
}

mod reap {
    use super::*;
    use crate::reap::ReapSettings;

    fn packer_name(secs_ago: i64) -> String {
        format!(
            "packer_{:08x}-0000-0000-0000-000000000000",
            chrono::Utc::now().timestamp() - secs_ago
        )
    }

    /// An expired test instance, an old packer key pair and an old unused packer security
    /// group.
    fn cloud() -> FakeCloud {
        let cloud = FakeCloud::new();
        cloud.add_instance(
            "us-east-1",
            Instance {
                id: "i-old".into(),
                state: "running".into(),
                private_ip: None,
                public_ip: None,
                tags: tags(&[
                    ("gears:managed-by", "gears"),
                    ("gears:purpose", "test"),
                    ("gears:expires-at", "2020-01-01T00:00:00Z"),
                ]),
                launched_at: Some("2020-01-01T00:00:00Z".into()),
            },
        );
        cloud.add_key_pair(&packer_name(5 * 3600));
        cloud.add_security_group(SecurityGroup {
            id: "sg-old".into(),
            name: packer_name(5 * 3600),
            in_use: false,
        });
        cloud
    }

    #[tokio::test(start_paused = true)]
    async fn the_reap_statement_lists_every_action_reap_calls() {
        let mut runs: Runs = Vec::new();
        for yes in [false, true] {
            let c = cloud();
            let s = ReapSettings {
                account: None,
                regions: vec!["us-east-1".into()],
                yes,
                ttl: Duration::from_secs(3 * 3600),
                json: false,
                endpoint_flag: None,
            };
            let found = crate::reap::reap(&s, &Cancel::new(), &c).await.unwrap();
            let want = if yes { "removed" } else { "listed" };
            assert_eq!(found.len(), 3, "{found:?}");
            assert!(
                found.iter().all(|l| l.action.to_string() == want),
                "{found:?}"
            );
            runs.push((if yes { "removing" } else { "listing" }, c.calls()));
        }
        assert_listed("Reap", &runs);
    }
}

mod bake {
    use super::*;
    use crate::bake::run::Baked;
    use crate::bake::settings::BakeSettings;

    /// A bake of hello 7.0.1 with a packer that does not exist (exit 4 once it is started).
    fn stage(dir: &Path) -> (BakeSettings, FakeCloud) {
        let file = dir.join("gears.yaml");
        std::fs::write(
            &file,
            format!("{COMPONENT}builders: [{{type: amazon-ebs, name: web}}]\ncommunicator: none\n"),
        )
        .unwrap();
        let settings = BakeSettings {
            component_file: file,
            overrides: crate::component::metadata::Overrides {
                version: Some("7.0.1".into()),
                git_sha: Some("abc".into()),
            },
            endpoint: None,
            endpoint_flag: None,
            manifest: dir.join("m.json"),
            work_dir: dir.join(".gears"),
            packer: "/nonexistent/packer".into(),
            dry_run: false,
            explain: false,
            force: false,
            output: crate::settings::OutputFormat::Human,
            heartbeat: Duration::from_secs(30),
        };
        let cloud = FakeCloud::new();
        cloud.add_image("us-east-1", image("ami-0b0b0b0b0b0b0b0b0", &[]));
        (settings, cloud)
    }

    /// What gears' own code calls in a bake: the base AMI and an earlier bake to reuse. What
    /// packer calls is its own (the rest of the Bake statement).
    #[tokio::test(start_paused = true)]
    async fn the_bake_statement_lists_every_action_bakes_own_lookups_call() {
        let mut runs: Runs = Vec::new();
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = stage(dir.path());
        let e = crate::bake::run::bake(&s, &ctx(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), crate::exit::Exit::Packer, "{}", e.render());
        runs.push(("a bake up to packer", cloud.calls()));

        let (s, cloud) = stage(dir.path());
        cloud.add_image(
            "us-east-1",
            image(
                "ami-old",
                &[
                    ("COMPONENT_NAME", "hello"),
                    ("COMPONENT_VERSION", "7.0.1"),
                    ("GIT_SHA", "abc"),
                    ("gears:run-id", "old-run"),
                    ("gears:builder", "web"),
                    ("CREATED_AT", "202601010000"),
                    ("AMI_VERSION", "7.0.1-202601010000"),
                ],
            ),
        );
        let baked = crate::bake::run::bake(&s, &ctx(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert!(
            matches!(baked, Baked::Manifest(ref m) if m.reused),
            "{baked:?}"
        );
        runs.push(("a bake that reuses an earlier one", cloud.calls()));
        assert_listed("Bake", &runs);
    }
}
