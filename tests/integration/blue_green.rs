//! `gears deploy --strategy blue-green` end to end against moto: groups in two regions behind
//! target groups switched to clones on the new AMI, the old groups kept out of traffic and put
//! back by `--rollback`; a failed gate; a deploy killed with `kill -9`, continued and aborted.

use crate::common::{gears, parts, tempdir, unique};
use crate::deploy::{component_file, conf, fleet, images_of_group, start_until, MOTO_AMI};
use std::collections::BTreeMap;

/// The group's tags, or `None` when the group does not exist.
async fn group(region: &str, name: &str) -> Option<aws_sdk_autoscaling::types::AutoScalingGroup> {
    let c = conf(region).await;
    aws_sdk_autoscaling::Client::new(&c)
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()
        .first()
        .cloned()
}

fn tags(g: &aws_sdk_autoscaling::types::AutoScalingGroup) -> BTreeMap<String, String> {
    g.tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
        .collect()
}

#[tokio::test]
async fn blue_green_in_two_regions_switches_keeps_the_old_groups_and_rolls_back() {
    let dir = tempdir();
    let name = unique("bg");
    component_file(dir.path(), &name);
    let regions = ["us-east-1", "eu-west-1"];
    let mut fleets = Vec::new();
    for r in regions {
        let (g, base, new) = fleet(&name, r, 3).await;
        let tg = group(r, &g).await.unwrap().target_group_arns().to_vec();
        fleets.push((g, base, new, tg));
    }
    std::fs::write(
        dir.path().join("gears-manifest.json"),
        serde_json::json!({
            "format_version": 1, "component": name, "version": "2.0", "git_sha": "abc",
            "repo": "r", "created_at": "202611240000", "ami_version": "2.0-202611240000",
            "base_ami": MOTO_AMI, "run_id": "r1", "packer_run_uuid": null, "reused": false,
            "amis": {"web": {"us-east-1": fleets[0].2, "eu-west-1": fleets[1].2}}
        })
        .to_string(),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        parts(
            &gears()
                .current_dir(dir.path())
                .args([
                    "deploy",
                    "--environment",
                    "live",
                    "--strategy",
                    "blue-green",
                ])
                .args(["--poll", "0.2", "--gate-timeout", "30"])
                .args(extra)
                .output()
                .unwrap(),
        )
    };
    let (out, err, code) = run(&["--plan"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("3 old + 3 new").count(), 2, "{out}");
    let (out, err, code) = run(&[]);
    assert_eq!(code, 0, "{out}\n{err}");
    for (r, (old, base, new, tg)) in regions.iter().zip(&fleets) {
        let clone = format!("{old}-v001");
        let (images, g) = images_of_group(r, &clone).await;
        assert_eq!(images.len(), 3, "{r}");
        assert!(images.iter().all(|i| i == new), "{r}: {images:?}");
        assert_eq!(
            g.target_group_arns(),
            tg.as_slice(),
            "{r}: the new group serves"
        );
        assert_eq!(
            (g.min_size(), g.max_size(), g.desired_capacity()),
            (Some(3), Some(3), Some(3))
        );
        let t = tags(&g);
        assert_eq!(t.get("gears:cluster"), Some(old), "{t:?}");
        assert_eq!(t.get("COMPONENT_VERSION").map(String::as_str), Some("2.0"));
        assert!(
            !t.contains_key("gears:deploy-lock") && !t.contains_key("gears:bluegreen"),
            "{t:?}"
        );
        assert!(
            g.suspended_processes().is_empty(),
            "{:?}",
            g.suspended_processes()
        );
        let (images, g) = images_of_group(r, old).await;
        assert!(
            images.iter().all(|i| i == base) && images.len() == 3,
            "{r}: {images:?}"
        );
        assert!(
            g.target_group_arns().is_empty(),
            "{r}: the old group left traffic"
        );
        assert!(tags(&g).contains_key("gears:retired"), "{r}");
        assert_eq!(
            g.suspended_processes().len(),
            4,
            "{:?}",
            g.suspended_processes()
        );
    }
    // `gears status` shows each cluster: the new group serving, the old one kept, until when.
    let st = parts(
        &gears()
            .current_dir(dir.path())
            .args(["status", "--output", "json", "--region", "us-east-1"])
            .output()
            .unwrap(),
    );
    assert_eq!(st.2, 0, "{}\n{}", st.0, st.1);
    let v: serde_json::Value = serde_json::from_str(&st.0).unwrap();
    let rows = v["groups"].as_array().unwrap();
    let row = |g: &str| rows.iter().find(|r| r["group"] == g).unwrap().clone();
    let (old, _, new, _) = &fleets[0];
    let kept = row(old);
    assert_eq!(kept["cluster"], old.as_str(), "{kept}");
    assert!(kept["retired"]["until"].as_str().is_some(), "{kept}");
    let serving = row(&format!("{old}-v001"));
    assert_eq!(serving["cluster"], old.as_str());
    assert_eq!(serving["running"][0]["ami"], new.as_str(), "{serving}");
    assert!(serving["retired"].is_null() && serving["bluegreen"].is_null());

    // Back: the old groups in traffic again, the clones out.
    let (out, err, code) = run(&["--rollback"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        out.matches("back in traffic and healthy in").count(),
        2,
        "{out}"
    );
    for (r, (old, _, _, tg)) in regions.iter().zip(&fleets) {
        let g = group(r, old).await.unwrap();
        assert_eq!(g.target_group_arns(), tg.as_slice(), "{r}");
        assert!(!tags(&g).contains_key("gears:retired"));
        assert!(
            g.suspended_processes().is_empty(),
            "{:?}",
            g.suspended_processes()
        );
        let n = group(r, &format!("{old}-v001")).await.unwrap();
        assert!(n.target_group_arns().is_empty());
        assert!(tags(&n).contains_key("gears:retired"));
    }
}

fn bg_cmd(dir: &std::path::Path, new: &str) -> std::process::Command {
    let mut c = gears();
    c.current_dir(dir)
        .args([
            "deploy",
            "--environment",
            "live",
            "--ami",
            new,
            "--region",
            "us-east-1",
        ])
        .args([
            "--strategy",
            "blue-green",
            "--poll",
            "0.2",
            "--gate-timeout",
            "30",
        ]);
    c
}

/// An alarm in ALARM fails the gate (exit 6): the new group is deleted, the old one never left
/// traffic. A deploy killed with `kill -9` while the new group bakes is undone by `--abort`, and
/// another is continued to its end by the same command.
#[tokio::test]
async fn a_failed_gate_and_a_killed_blue_green_deploy_leave_the_old_group_serving() {
    let dir = tempdir();
    let name = unique("bgk");
    component_file(dir.path(), &name);
    let (old, base, new) = fleet(&name, "us-east-1", 2).await;
    let tg = group("us-east-1", &old)
        .await
        .unwrap()
        .target_group_arns()
        .to_vec();
    let clone = format!("{old}-v001");
    let cw = aws_sdk_cloudwatch::Client::new(&conf("us-east-1").await);
    let alarm = format!("{name}-5xx");
    cw.put_metric_alarm()
        .alarm_name(&alarm)
        .metric_name("HTTPCode_Target_5XX_Count")
        .namespace("AWS/ApplicationELB")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    cw.set_alarm_state()
        .alarm_name(&alarm)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("5xx above 5")
        .send()
        .await
        .unwrap();
    let (out, err, code) = parts(
        &bg_cmd(dir.path(), &new)
            .args(["--alarm", &alarm])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(
        out.contains(&format!("alarm {alarm} is in ALARM: 5xx above 5")),
        "{out}"
    );
    assert!(
        group("us-east-1", &clone).await.is_none(),
        "the new group is deleted"
    );
    let g = group("us-east-1", &old).await.unwrap();
    assert_eq!(g.target_group_arns(), tg.as_slice());
    assert!(
        !tags(&g)
            .keys()
            .any(|k| k.starts_with("gears:deploy") || k == "gears:bluegreen"),
        "{:?}",
        tags(&g)
    );

    for abort in [true, false] {
        let (mut child, _, _) = start_until(
            bg_cmd(dir.path(), &new).args(["--bake-time", "60"]),
            "baking",
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let t = tags(&group("us-east-1", &old).await.unwrap());
        assert!(
            t.contains_key("gears:bluegreen") && t.contains_key("gears:deploy-lock"),
            "{t:?}"
        );
        assert!(group("us-east-1", &clone).await.is_some());
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let mut cmd = bg_cmd(dir.path(), &new);
        cmd.env("GEARS_LOCK_STALE", "1");
        if abort {
            cmd.arg("--abort");
        }
        let (out, err, code) = parts(&cmd.output().unwrap());
        assert_eq!(code, 0, "{out}\n{err}");
        let g = group("us-east-1", &old).await.unwrap();
        let t = tags(&g);
        assert!(
            !t.contains_key("gears:bluegreen") && !t.contains_key("gears:deploy-lock"),
            "{t:?}"
        );
        if abort {
            assert!(out.contains("\taborted\t"), "{out}");
            // The killed run's template version (3, after the failed gate's 2) is deleted with
            // its group: `$Latest` is the version before it again.
            assert!(err.contains("deleted launch template"), "{err}");
            let lt = g.launch_template().and_then(|t| t.launch_template_id());
            let latest = aws_sdk_ec2::Client::new(&conf("us-east-1").await)
                .describe_launch_template_versions()
                .set_launch_template_id(lt.map(str::to_owned))
                .versions("$Latest")
                .send()
                .await
                .unwrap();
            let n = latest.launch_template_versions()[0].version_number();
            assert_eq!(n, Some(2), "{latest:?}");
            assert!(group("us-east-1", &clone).await.is_none());
            assert_eq!(g.target_group_arns(), tg.as_slice());
            let (images, _) = images_of_group("us-east-1", &old).await;
            assert!(images.iter().all(|i| i == &base));
        } else {
            assert!(err.contains("continuing the blue/green deploy"), "{err}");
            let (images, n) = images_of_group("us-east-1", &clone).await;
            assert!(
                images.len() == 2 && images.iter().all(|i| i == &new),
                "{images:?}"
            );
            assert_eq!(n.target_group_arns(), tg.as_slice());
            assert!(g.target_group_arns().is_empty());
        }
    }
}

/// A rolling deploy's bake time, in real time: the batch says it bakes as soon as it is
/// healthy; an alarm set to ALARM during the bake rolls the deploy back (exit 6), naming it.
#[tokio::test]
async fn an_alarm_during_a_rolling_deploys_bake_time_rolls_it_back() {
    let dir = tempdir();
    let name = unique("bake");
    component_file(dir.path(), &name);
    let (old, base, new) = fleet(&name, "us-east-1", 2).await;
    let cw = aws_sdk_cloudwatch::Client::new(&conf("us-east-1").await);
    let alarm = format!("{name}-latency");
    cw.put_metric_alarm()
        .alarm_name(&alarm)
        .metric_name("TargetResponseTime")
        .namespace("AWS/ApplicationELB")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    let mut cmd = gears();
    cmd.current_dir(dir.path())
        .args([
            "deploy",
            "--environment",
            "live",
            "--ami",
            &new,
            "--region",
            "us-east-1",
        ])
        .args([
            "--batch",
            "1",
            "--poll",
            "0.2",
            "--bake-time",
            "60",
            "--alarm",
            &alarm,
        ]);
    let started = std::time::Instant::now();
    let (mut child, seen, rest) = start_until(&mut cmd, "healthy: baking");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "the bake was said late: {seen:#?}"
    );
    cw.set_alarm_state()
        .alarm_name(&alarm)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("latency above 1 s")
        .send()
        .await
        .unwrap();
    let status = child.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    let err: Vec<String> = rest.try_iter().collect();
    assert_eq!(status.code(), Some(6), "{out}\n{err:#?}");
    assert!(
        out.contains(&format!("alarm {alarm} is in ALARM: latency above 1 s")),
        "{out}"
    );
    let (images, _) = images_of_group("us-east-1", &old).await;
    assert!(
        images.len() == 2 && images.iter().all(|i| i == &base),
        "{images:?}"
    );
}

/// Issue 34's case on moto: a blue/green deploy killed with `kill -9` right after its last
/// `DeleteTags` of the switch record leaves its lock on the old group and on the new one (a
/// clone, lock and all). The same command run again once that lock is stale has nothing to do
/// and ends with no lock on either group; `gears status` then exits 0.
#[tokio::test]
async fn a_blue_green_deploy_killed_after_its_switch_leaves_no_lock_once_run_again() {
    let dir = tempdir();
    let name = unique("bgl");
    component_file(dir.path(), &name);
    let (old, _base, new) = fleet(&name, "us-east-1", 1).await;
    let clone = format!("{old}-v001");
    let (out, err, code) = parts(&bg_cmd(dir.path(), &new).output().unwrap());
    assert_eq!(code, 0, "{out}\n{err}");
    // What the killed run left: its lock on both groups, renewed a while ago.
    let dead = "0190b7a2-0000-7000-8000-0000000000dd ci-host 2026-01-01T00:00:00Z";
    for g in [&old, &clone] {
        let c = conf("us-east-1").await;
        aws_sdk_autoscaling::Client::new(&c)
            .create_or_update_tags()
            .tags(
                aws_sdk_autoscaling::types::Tag::builder()
                    .resource_id(g.as_str())
                    .resource_type("auto-scaling-group")
                    .key("gears:deploy-lock")
                    .value(dead)
                    .propagate_at_launch(false)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let (out, err, code) = parts(&bg_cmd(dir.path(), &new).output().unwrap());
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("nothing to do"), "{out}\n{err}");
    for g in [&old, &clone] {
        let t = tags(&group("us-east-1", g).await.unwrap());
        assert!(!t.contains_key("gears:deploy-lock"), "{g}: {t:?}");
        assert!(!t.contains_key("gears:bluegreen"), "{g}: {t:?}");
    }
    let (out, err, code) = parts(
        &gears()
            .current_dir(dir.path())
            .args(["status", "--environment", "live", "--region", "us-east-1"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{out}\n{err}");
}
