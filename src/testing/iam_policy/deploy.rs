//! The Deploy statement against what `gears deploy` calls: every strategy, the lock table,
//! rollbacks, `--plan`, `--abort` and `--unlock`, on the fake AWS.

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

/// Every scenario, in this order: the first reads lock ages from a wall clock that moves with
/// the paused clock.
async fn scenarios() -> Runs {
    let dir = tempfile::tempdir().unwrap();
    let mut runs: Runs = Vec::new();
    runs.extend(refused_then_unlocked(dir.path()).await);
    runs.extend(strategies(dir.path()).await);
    runs.extend(gates(dir.path()).await);
    runs.extend(admin(dir.path()).await);
    runs.extend(lock_table(dir.path()).await);
    runs.extend(launch_configurations(dir.path()).await);
    runs.extend(instance_refresh(dir.path()).await);
    runs
}

/// A deploy the lock table refuses, then `--unlock`: first, as it reads the wall clock.
async fn refused_then_unlocked(dir: &Path) -> Runs {
    let mut runs: Runs = Vec::new();
    // First: gears reads lock ages from a wall clock that moves with the paused clock, and
    // this lock is written at the real time.
    let (mut s, cloud) = setup(dir);
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
    runs
}

/// A rolling deploy, and blue/green: a deploy, `--rollback`, old groups deleted, a failed gate.
async fn strategies(dir: &Path) -> Runs {
    let mut runs: Runs = Vec::new();
    let (s, cloud) = setup(dir);
    assert_eq!(ok(&s, &cloud).await, "deployed");
    runs.push(("a rolling deploy", cloud.calls()));

    let (mut s, cloud) = setup(dir);
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
    let (mut s, cloud) = setup(dir);
    s.strategy = Strategy::BlueGreen;
    s.batch = None;
    cloud.set_unhealthy_images(&[NEW]);
    assert_eq!(ok(&s, &cloud).await, "rolled back");
    runs.push(("blue/green: a failed gate", cloud.calls()));
    runs
}

/// Gates: a Classic load balancer, an alarm, and a failed gate rolled back.
async fn gates(dir: &Path) -> Runs {
    let mut runs: Runs = Vec::new();
    let (s, cloud) = setup(dir);
    cloud.edit_group("hello-live", |g| g.load_balancers = vec!["web".into()]);
    assert_eq!(ok(&s, &cloud).await, "deployed");
    assert!(called(&cloud, "DescribeInstanceHealth"));
    runs.push(("a group behind a Classic load balancer", cloud.calls()));

    let (mut s, cloud) = setup(dir);
    s.alarms = vec!["hello-5xx".into()];
    cloud.set_alarm("hello-5xx", "OK", "");
    assert_eq!(ok(&s, &cloud).await, "deployed");
    assert!(called(&cloud, "DescribeAlarms"));
    runs.push(("a deploy gated on an alarm", cloud.calls()));

    let (s, cloud) = setup(dir);
    cloud.set_unhealthy_images(&[NEW]);
    assert_eq!(ok(&s, &cloud).await, "rolled back");
    runs.push(("a rollback after a failed gate", cloud.calls()));
    runs
}

/// A failed rollback, `--plan`, `--abort` and `--unlock`.
async fn admin(dir: &Path) -> Runs {
    let mut runs: Runs = Vec::new();
    let (s, cloud) = setup(dir);
    stopped(&s, &cloud).await;
    runs.push(("a failed rollback", cloud.calls()));

    let (mut s, cloud) = setup(dir);
    s.plan_only = true;
    assert_eq!(ok(&s, &cloud).await, "planned");
    runs.push(("--plan", cloud.calls()));

    let (mut s, cloud) = setup(dir);
    stopped(&s, &cloud).await;
    s.plan_only = true;
    ok(&s, &cloud).await;
    s.plan_only = false;
    s.abort = true;
    assert_eq!(ok(&s, &cloud).await, "aborted");
    runs.push(("--plan, then --abort, of a stopped deploy", cloud.calls()));

    let (mut s, cloud) = setup(dir);
    let dead = LockValue::held_now("0190b7a2-0000-7000-8000-000000000009", "ci-host").write();
    cloud.fake_fleet_tag("hello-live", LOCK_TAG, &dead);
    s.unlock = true;
    s.lock_stale = Duration::ZERO;
    assert_eq!(ok(&s, &cloud).await, "unlocked");
    runs.push(("--unlock of a dead run's lock", cloud.calls()));
    runs
}

/// A deploy and a rollback with `--lock-table`.
async fn lock_table(dir: &Path) -> Runs {
    let mut runs: Runs = Vec::new();
    let (mut s, cloud) = setup(dir);
    s.lock_table = Some("gears-locks".into());
    assert_eq!(ok(&s, &cloud).await, "deployed");
    runs.push(("--lock-table: a deploy", cloud.calls()));

    let (mut s, cloud) = setup(dir);
    s.lock_table = Some("gears-locks".into());
    cloud.set_unhealthy_images(&[NEW]);
    // A 60 s gate: the heartbeat renews the lease while it waits.
    assert_eq!(ok(&s, &cloud).await, "rolled back");
    assert!(called(&cloud, "UpdateItem"));
    runs.push(("--lock-table: a rollback", cloud.calls()));
    runs
}

/// A group on a launch configuration, deployed and rolled back.
async fn launch_configurations(dir: &Path) -> Runs {
    let mut runs: Runs = Vec::new();
    for healthy in [true, false] {
        let (mut s, cloud) = setup(dir);
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
    runs
}

/// Instance refresh: deployed, rolled back, and cancelled by a signal.
async fn instance_refresh(dir: &Path) -> Runs {
    let mut runs: Runs = Vec::new();
    for healthy in [true, false] {
        let (mut s, cloud) = setup(dir);
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
    let (mut s, cloud) = setup(dir);
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
