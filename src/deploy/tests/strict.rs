//! Where AWS is stricter than moto: what a deploy refuses before any change.
use crate::aws::Group;
use crate::cancel::Cancel;
use crate::deploy::tests::{
    all, as_before, deploy, rc, setup, Cleanup, FakeCloud, Faults, NEW, OLD,
};
use crate::deploy::{Batch, DeployAsk, DeploySettings, Strategy};
use crate::exit::Exit;
use crate::settings::AmiChoice;
use std::time::Duration;

/// A group of the component beside `hello-live` with these processes suspended.
fn add_suspended(cloud: &FakeCloud, processes: &[&str]) {
    let mut g = cloud.group("hello-live").unwrap();
    g.name = "hello-live-b".into();
    g.members = vec![];
    g.suspended = processes.iter().map(|p| p.to_string()).collect();
    cloud.add_group(g, &[OLD]);
}

#[tokio::test(start_paused = true)]
async fn a_group_with_a_process_the_deploy_needs_suspended_is_refused_before_any_change() {
    for (process, strategy) in [
        ("Launch", Strategy::Rolling),
        ("Terminate", Strategy::Rolling),
        ("AddToLoadBalancer", Strategy::Rolling),
        ("HealthCheck", Strategy::Rolling),
        ("ReplaceUnhealthy", Strategy::InstanceRefresh),
        ("InstanceRefresh", Strategy::InstanceRefresh),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 2);
        s.strategy = strategy;
        add_suspended(&cloud, &["AZRebalance", process]);
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        let text = e.render();
        assert_eq!(e.exit(), Exit::InvalidInput, "{text}");
        assert!(
            text.contains(&format!(
                "group hello-live-b: its {process} process is suspended"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "resume-processes --auto-scaling-group-name 'hello-live-b' --scaling-processes {process}"
            )),
            "{text}"
        );
        // Nothing changed on either group: the checks run before any region changes.
        assert!(all(&cloud, OLD));
        as_before(&cloud, 2);
        assert!(!cloud
            .calls()
            .iter()
            .any(|c| c.starts_with("CreateOrUpdateTags")
                || c.starts_with("CreateLaunchTemplateVersion")));
    }
    // InstanceRefresh suspended does not stop gears' own batches.
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 2);
    add_suspended(&cloud, &["InstanceRefresh"]);
    cloud.settle("hello-live-b");
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::Success, "{d:?}");
}

#[tokio::test(start_paused = true)]
async fn the_plan_says_a_deploy_would_be_refused_for_a_suspended_process() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    s.plan_only = true;
    add_suspended(&cloud, &["Launch"]);
    let ui = crate::ui::Recorded::default();
    let d = super::super::deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud, &ui)
        .await
        .map_err(|f| f.error.render())
        .unwrap();
    assert_eq!(d.exit(), Exit::Success, "{d:?}");
    let said: Vec<String> = ui.taken().into_iter().map(|(_, t)| t).collect();
    let said = said.join("\n");
    assert!(
        said.contains("warning: a deploy would be refused: group hello-live-b: its Launch process is suspended"),
        "{said}"
    );
}

#[test]
fn refresh_preferences_stay_within_what_aws_accepts() {
    use super::super::refresh::refresh_preferences;
    // 100% kept healthy, a quarter launched first: 100..125.
    assert_eq!(
        refresh_preferences(100, Batch::Percent(25), 8),
        Ok((100, 125))
    );
    // The maximum is at least 110% and at most 200%.
    assert_eq!(refresh_preferences(90, Batch::Count(1), 40), Ok((90, 110)));
    assert_eq!(
        refresh_preferences(100, Batch::Count(50), 4),
        Ok((100, 200))
    );
    // More than 100 points between them is refused, naming the smallest minimum that works.
    let e = refresh_preferences(0, Batch::Percent(25), 4).unwrap_err();
    assert!(e.contains("give --min-healthy 25% or more"), "{e}");
    assert_eq!(
        refresh_preferences(25, Batch::Percent(25), 4),
        Ok((25, 125))
    );
}

#[tokio::test(start_paused = true)]
async fn refresh_preferences_aws_refuses_are_refused_before_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 4);
    s.strategy = Strategy::InstanceRefresh;
    s.min_healthy = 0;
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::InvalidInput, "{}", e.render());
    assert!(e.render().contains("at most 100 points"), "{}", e.render());
    as_before(&cloud, 4);
    assert!(!cloud
        .calls()
        .iter()
        .any(|c| c.starts_with("StartInstanceRefresh") || c.starts_with("CreateOrUpdateTags")));
}

/// Issue 24 item 7: throttling never fails a deploy (or `--plan`, `--unlock`) by itself, from
/// its first call: each of the first calls throttled in turn, after the SDK's own retries.
#[tokio::test(start_paused = true)]
async fn a_throttled_first_call_never_fails_the_checks() {
    for mode in ["deploy", "plan", "unlock", "abort"] {
        for n in 1..=4 {
            let dir = tempfile::tempdir().unwrap();
            let (mut s, cloud) = setup(dir.path(), 2);
            s.plan_only = mode == "plan";
            s.unlock = mode == "unlock";
            s.abort = mode == "abort";
            cloud.set_faults(Faults {
                fail_at: Some((n, crate::aws::ErrorKind::Throttled)),
                ..Default::default()
            });
            let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .map_err(|e| format!("{mode}, call {n} throttled: {}", e.render()))
                .unwrap();
            assert_eq!(d.exit(), Exit::Success, "{mode}, call {n}: {d:?}");
            assert!(all(&cloud, if mode == "deploy" { NEW } else { OLD }));
        }
    }
}

/// Issue 24 item 11: a group with no room for gears' tags is refused before any change.
#[tokio::test(start_paused = true)]
async fn a_group_without_room_for_the_deploys_tags_is_refused_before_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 2);
    for i in 0..45 {
        cloud.fake_fleet_tag("hello-live", &format!("team:{i}"), "x");
    }
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    let text = e.render();
    assert_eq!(e.exit(), Exit::InvalidInput, "{text}");
    assert!(text.contains("it has 47 tags and a deploy adds"), "{text}");
    assert!(text.contains("AWS allows 50 on a group"), "{text}");
    assert!(all(&cloud, OLD));
    assert!(!cloud
        .calls()
        .iter()
        .any(|c| c.starts_with("CreateOrUpdateTags")));
}

/// Issue 24 item 11: in CI, a deploy on the tag lock alone says so; `GEARS_LOCK_TABLE` names a
/// table when no flag does.
#[tokio::test(start_paused = true)]
async fn in_ci_the_tag_lock_alone_is_warned_of_and_gears_lock_table_names_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 2);
    let ci = crate::context::RunContext::from_vars([("CI", "true")]);
    let ui = crate::ui::Recorded::default();
    super::super::deploy(&s, &ci, &Cancel::new(), &Cleanup::default(), &cloud, &ui)
        .await
        .map_err(|f| f.error.render())
        .unwrap();
    let warned: Vec<String> = ui
        .taken()
        .into_iter()
        .filter(|(k, _)| *k == "warning")
        .map(|(_, t)| t)
        .collect();
    assert!(
        warned.iter().any(|w| w.contains("tag lock alone")),
        "{warned:?}"
    );
    // Not outside CI.
    let (s, cloud) = setup(dir.path(), 2);
    let ui = crate::ui::Recorded::default();
    super::super::deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud, &ui)
        .await
        .map_err(|f| f.error.render())
        .unwrap();
    assert!(!ui.taken().iter().any(|(_, t)| t.contains("tag lock alone")));
    // The variable names the table when no flag does; the flag wins.
    let ask = || {
        DeployAsk::new(
            dir.path().join("gears.yaml"),
            AmiChoice::Explicit {
                ami: NEW.into(),
                region: "us-east-1".into(),
            },
            "live",
        )
    };
    let env = crate::context::RunContext::from_vars([("GEARS_LOCK_TABLE", "locks")]);
    let s = DeploySettings::resolve(ask(), &env, None).unwrap();
    assert_eq!(s.lock_table.as_deref(), Some("locks"));
    let mut flagged = ask();
    flagged.lock_table = Some("other".into());
    let s = DeploySettings::resolve(flagged, &env, None).unwrap();
    assert_eq!(s.lock_table.as_deref(), Some("other"));
    assert_eq!(
        DeploySettings::resolve(ask(), &rc(), None)
            .unwrap()
            .lock_table,
        None
    );
}

/// Issue 24 item 1: a group behind a Classic load balancer is gated on it. New instances that
/// Auto Scaling calls Healthy (its grace period) but the load balancer keeps OutOfService never
/// pass the gate: the group rolls back with its old instances serving throughout.
#[tokio::test(start_paused = true)]
async fn a_classic_load_balancer_gates_the_batch_and_old_instances_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 4);
    s.gate_timeout = Duration::from_secs(30);
    cloud.edit_group("hello-live", |g| {
        g.target_groups.clear();
        g.load_balancers = vec!["web-classic".into()];
    });
    cloud.set_out_of_service_images(&[NEW]);
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
    assert!(all(&cloud, OLD));
    // In service in the load balancer never fell below the group's 4.
    assert_eq!(cloud.healthy_floor("hello-live"), Some(4));
    assert!(cloud
        .calls()
        .iter()
        .any(|c| c.starts_with("DescribeInstanceHealth")));
    // And in service, the same deploy goes through.
    let (s, cloud) = setup(dir.path(), 4);
    cloud.edit_group("hello-live", |g| {
        g.load_balancers = vec!["web-classic".into()];
    });
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::Success, "{d:?}");
    assert!(all(&cloud, NEW));
}

/// Issue 24 item 1: `--plan` and the deploy say what the gate looks at, and say so when it is
/// Auto Scaling's health alone.
#[tokio::test(start_paused = true)]
async fn the_plan_says_what_the_gate_looks_at() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    s.plan_only = true;
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert!(
        d.groups[0]
            .detail
            .contains("gated on Auto Scaling health, 1 target group(s)"),
        "{d:?}"
    );
    cloud.edit_group("hello-live", |g| g.target_groups.clear());
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert!(
        d.groups[0]
            .detail
            .contains("gated on Auto Scaling health only"),
        "{d:?}"
    );
}

/// Issue 24 items 1, 2 and 4: what the deploy cannot gate or count is refused before any
/// change: a traffic source of another kind, capacity in units, a warm pool.
#[tokio::test(start_paused = true)]
async fn lattice_units_and_warm_pools_are_refused_before_any_change() {
    type Edit = fn(&mut Group);
    let cases: [(Edit, &str); 4] = [
        (
            |g| g.other_traffic = vec!["vpc-lattice arn:aws:vpc-lattice:tg/x".into()],
            "traffic sources gears cannot read the health of (vpc-lattice",
        ),
        (
            |g| g.units = Some("its overrides are weighted (m5.large weighs 2)".into()),
            "counts units, not instances",
        ),
        (
            |g| g.units = Some("its DesiredCapacityType is vcpu".into()),
            "its DesiredCapacityType is vcpu",
        ),
        (|g| g.warm_pool = true, "it has a warm pool"),
    ];
    for (edit, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 2);
        cloud.edit_group("hello-live", edit);
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        let text = e.render();
        assert_eq!(e.exit(), Exit::InvalidInput, "{text}");
        assert!(text.contains(want), "{text}");
        assert!(all(&cloud, OLD));
        assert!(!cloud
            .calls()
            .iter()
            .any(|c| c.starts_with("CreateOrUpdateTags")));
    }
}

/// Issue 24 item 6: a permanent error ends the step at once, with AWS's code in words; the
/// deploy's lock is given back and nothing is left changed. Throttling of the same call is
/// retried (the contrast).
#[tokio::test(start_paused = true)]
async fn a_permanent_error_ends_the_step_at_once_naming_its_code() {
    for code in [
        "InvalidLaunchTemplateId.VersionNotFound",
        "InvalidLaunchTemplateId.Malformed",
        "InvalidAMIID.Unavailable",
        "LimitExceeded",
        "UnauthorizedOperation",
        "SomethingGearsDoesNotKnow",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 2);
        cloud.set_faults(Faults {
            fail_ops: vec![("CreateLaunchTemplateVersion", code)],
            ..Default::default()
        });
        let start = tokio::time::Instant::now();
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        let text = e.render();
        assert!(text.contains(&format!("({code})")), "{code}: {text}");
        let attempts = cloud
            .calls()
            .iter()
            .filter(|c| c.starts_with("CreateLaunchTemplateVersion"))
            .count();
        assert_eq!(attempts, 1, "{code}: {attempts} attempts");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{code}: {:?}",
            start.elapsed()
        );
        cloud.set_faults(Faults::default());
        assert!(all(&cloud, OLD));
        as_before(&cloud, 2);
    }
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 2);
    cloud.set_faults(Faults {
        throttle_ops: vec!["CreateLaunchTemplateVersion"],
        ..Default::default()
    });
    let faulty = cloud.clone();
    let heal = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(20)).await;
        faulty.set_faults(Faults::default());
    });
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    heal.await.unwrap();
    assert_eq!(d.exit(), Exit::Success, "{d:?}");
    assert!(
        cloud
            .calls()
            .iter()
            .filter(|c| c.starts_with("CreateLaunchTemplateVersion"))
            .count()
            > 2
    );
}

/// A group on launch configuration `lc` (of `image`), named `hello-lc`.
fn add_lc_group(cloud: &FakeCloud, lc: &str, image: &str) {
    cloud.add_configuration(lc, image);
    let mut g = cloud.group("hello-live").unwrap();
    g.name = "hello-lc".into();
    g.template = None;
    g.launch_configuration = Some(lc.into());
    g.members = vec![];
    g.desired = 2;
    g.min = 2;
    g.max = 2;
    cloud.add_group(g, &[]);
    cloud.settle("hello-lc");
}

/// Issue 24 item 10: gears' launch configuration copies are deleted once no group uses them
/// (the quota is not used up deploy after deploy), their names do not grow, the user's own
/// configuration is never deleted, and a rollback deletes the copy it abandoned.
#[tokio::test(start_paused = true)]
async fn launch_configuration_copies_are_deleted_once_unused_and_names_do_not_grow() {
    use super::super::start::{copy_name, gears_copy_base};
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 0);
    s.groups = vec!["hello-lc".into()];
    add_lc_group(&cloud, "web-lc", OLD);
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::Success, "{d:?}");
    let first = cloud
        .group("hello-lc")
        .unwrap()
        .launch_configuration
        .unwrap();
    assert_eq!(gears_copy_base(&first), Some("web-lc"));
    // The user's own is kept (an AMI housekeeping or a rollback by hand may need it).
    assert!(cloud.configurations().contains_key("web-lc"));
    // The next deploy copies gears' copy: the name keeps one suffix, and the first copy,
    // now unused, is deleted.
    s.ami = AmiChoice::Explicit {
        ami: "ami-0000000000000003c".into(),
        region: "us-east-1".into(),
    };
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::Success, "{d:?}");
    let second = cloud
        .group("hello-lc")
        .unwrap()
        .launch_configuration
        .unwrap();
    assert_eq!(gears_copy_base(&second), Some("web-lc"), "{second}");
    assert!(
        !cloud.configurations().contains_key(&first),
        "{:?}",
        cloud.configurations()
    );
    assert!(cloud
        .calls()
        .iter()
        .any(|c| c.starts_with("DeleteLaunchConfiguration")));
    // A rollback deletes the copy it made and returns to the one in use.
    cloud.set_unhealthy_images(&[NEW]);
    s.ami = AmiChoice::Explicit {
        ami: NEW.into(),
        region: "us-east-1".into(),
    };
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
    assert_eq!(
        cloud.group("hello-lc").unwrap().launch_configuration,
        Some(second.clone())
    );
    let left: Vec<String> = cloud.configurations().into_keys().collect();
    assert_eq!(left, vec!["web-lc".to_owned(), second.clone()], "{left:?}");
    // Names: a copy of a copy has one suffix; a name that only looks like one is the user's.
    assert_eq!(
        copy_name("web-lc-gears-0123abcd", "0000-ffff"),
        "web-lc-gears-0000ffff"
    );
    assert_eq!(gears_copy_base("web-lc-gears-prod"), None);
    assert_eq!(gears_copy_base("-gears-0123abcd"), None);
}

/// Issue 24 item 10: an account that cannot create launch configurations (since October
/// 2024) is told so, pointing at launch templates, and nothing is left changed.
#[tokio::test(start_paused = true)]
async fn an_account_without_launch_configurations_is_told_to_use_templates() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 0);
    s.groups = vec!["hello-lc".into()];
    add_lc_group(&cloud, "web-lc", OLD);
    cloud.set_faults(Faults {
        fail_ops: vec![("CreateLaunchConfiguration", "UnsupportedOperation")],
        ..Default::default()
    });
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    let text = e.render();
    assert!(
        text.contains("since October 2024 cannot create launch configurations"),
        "{text}"
    );
    assert!(text.contains("launch template"), "{text}");
    cloud.set_faults(Faults::default());
    let g = cloud.group("hello-lc").unwrap();
    assert_eq!(g.launch_configuration.as_deref(), Some("web-lc"));
    assert!(
        !g.tags.keys().any(|k| k.starts_with("gears:deploy")),
        "{:?}",
        g.tags
    );
}

/// Issue 24 item 11: the component file names the lock table (`deploy: {lock_table: NAME}`),
/// used when no flag or variable names one; an unknown key in the section is refused.
#[tokio::test(start_paused = true)]
async fn the_component_files_lock_table_is_used_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 2);
    std::fs::write(
        dir.path().join("gears.yaml"),
        "component: hello\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-0123456789abcdef0}\ndeploy: {lock_table: gears-locks}\n",
    )
    .unwrap();
    // The settings' one resolve takes the file's section (after the flag and the variable).
    let file = crate::component::load(&dir.path().join("gears.yaml")).unwrap();
    let ask = DeployAsk::new(s.component_file.clone(), s.ami.clone(), &s.environment);
    let resolved = DeploySettings::resolve(ask, &rc(), Some(&file)).unwrap();
    assert_eq!(resolved.lock_table.as_deref(), Some("gears-locks"));
    let s = DeploySettings {
        lock_table: resolved.lock_table,
        ..s
    };
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::Success, "{d:?}");
    assert!(
        cloud.calls().iter().any(|c| c.starts_with("PutItem")),
        "{:?}",
        cloud.calls()
    );
    // Not in CI-warning territory either: the table is a compare-and-swap.
    std::fs::write(
        dir.path().join("gears.yaml"),
        "component: hello\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-0123456789abcdef0}\ndeploy: {lock_tabel: x}\n",
    )
    .unwrap();
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::InvalidInput, "{}", e.render());
    assert!(e.render().contains("lock_tabel"), "{}", e.render());
}

/// The fake enforces a suspended Launch process as AWS does (nothing launches), so the refusal
/// above is what stands between a deploy and a gate that could only time out.
#[tokio::test(start_paused = true)]
async fn the_fake_launches_nothing_while_launch_is_suspended() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cloud) = setup(dir.path(), 2);
    cloud.edit_group("hello-live", |g| {
        g.suspended.push("Launch".into());
        g.desired = 3;
    });
    cloud.settle("hello-live");
    assert_eq!(cloud.group("hello-live").unwrap().members.len(), 2);
}
