//! `gears status` end to end against moto: a fleet mid-deploy after `kill -9`, a STOP lock and
//! drift made by hand, each row of the table and the JSON checked against what moto says.

use crate::common::{gears, parts, tempdir, unique};
use crate::deploy::{component_file, conf, deploy_cmd, fleet, start_until, MOTO_AMI};
use std::collections::BTreeMap;
use std::path::Path;

/// The group as moto describes it: its members' AMIs (by count), desired capacity, tags.
struct Seen {
    images: BTreeMap<String, usize>,
    desired: i32,
    in_service: usize,
    suspended: Vec<String>,
    tags: BTreeMap<String, String>,
}

async fn seen(group: &str) -> Seen {
    let c = conf("us-east-1").await;
    let g = aws_sdk_autoscaling::Client::new(&c)
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()[0]
        .clone();
    // Members on their way out are not counted (as status leaves them out).
    let ids: Vec<String> = g
        .instances()
        .iter()
        .filter(|i| {
            !i.lifecycle_state()
                .is_some_and(|s| s.as_str().starts_with("Terminat"))
        })
        .map(|i| i.instance_id().unwrap().to_owned())
        .collect();
    let out = aws_sdk_ec2::Client::new(&c)
        .describe_instances()
        .set_instance_ids(Some(ids))
        .send()
        .await
        .unwrap();
    let mut images = BTreeMap::new();
    for i in out.reservations().iter().flat_map(|r| r.instances()) {
        *images.entry(i.image_id().unwrap().to_owned()).or_default() += 1;
    }
    Seen {
        images,
        desired: g.desired_capacity().unwrap(),
        in_service: g
            .instances()
            .iter()
            .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
            .count(),
        suspended: g
            .suspended_processes()
            .iter()
            .map(|p| p.process_name().unwrap().to_owned())
            .collect(),
        tags: g
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
            .collect(),
    }
}

/// Tags `ami` as a bake does (its version tags).
async fn tag_versions(ami: &str, version: &str, ami_version: &str) {
    let c = conf("us-east-1").await;
    let tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
    aws_sdk_ec2::Client::new(&c)
        .create_tags()
        .resources(ami)
        .tags(tag("COMPONENT_VERSION", version))
        .tags(tag("AMI_VERSION", ami_version))
        .send()
        .await
        .unwrap();
}

async fn tag_group(group: &str, key: &str, value: &str) {
    let c = conf("us-east-1").await;
    aws_sdk_autoscaling::Client::new(&c)
        .create_or_update_tags()
        .tags(
            aws_sdk_autoscaling::types::Tag::builder()
                .resource_id(group)
                .resource_type("auto-scaling-group")
                .key(key)
                .value(value)
                .propagate_at_launch(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// The id of the launch template named `name`.
async fn lt_id(name: &str) -> String {
    let c = conf("us-east-1").await;
    aws_sdk_ec2::Client::new(&c)
        .describe_launch_templates()
        .launch_template_names(name)
        .send()
        .await
        .unwrap()
        .launch_templates()[0]
        .launch_template_id()
        .unwrap()
        .to_owned()
}

fn status(dir: &Path, extra: &[&str]) -> (String, String, i32) {
    parts(
        &gears()
            .current_dir(dir)
            .arg("status")
            .args(extra)
            .output()
            .unwrap(),
    )
}

/// The table's row of `group`: its cells (columns are two or more spaces apart).
fn row(out: &str, group: &str) -> Vec<String> {
    let re = regex::Regex::new(r"\s{2,}").unwrap();
    out.lines()
        .map(|l| re.split(l).map(str::to_owned).collect::<Vec<_>>())
        .find(|cells| cells.get(3).map(String::as_str) == Some(group))
        .unwrap_or_else(|| panic!("no row for {group}:\n{out}"))
}

/// The RUNNING cell moto's view gives: most members first, then by AMI.
fn running(images: &BTreeMap<String, usize>, label: impl Fn(&str) -> String) -> String {
    let mut v: Vec<(&String, &usize)> = images.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(i, n)| format!("{} ×{n}", label(i)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A real deploy killed with `kill -9` after its first batch launched: at once its lock is
/// alive and status says the deploy runs (exit 0); once the lock is older than the stale limit
/// the row needs a human (exit 7) and says how to continue or abort; the JSON carries the same.
#[tokio::test]
async fn a_deploy_killed_with_kill_9_is_in_flight_then_needs_a_human() {
    let dir = tempdir();
    let name = unique("st9");
    component_file(dir.path(), &name);
    let (group, old, new) = fleet(&name, "us-east-1", 4).await;
    assert_eq!(old, MOTO_AMI);
    tag_versions(&new, "2.0", "2.0-202612010000").await;
    let (mut child, _, _) = start_until(&mut deploy_cmd(dir.path(), &new), "batch 1: launching");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let g = seen(&group).await;
    let lock = g.tags["gears:deploy-lock"].clone();
    let (run, rest) = lock.split_once(' ').unwrap();
    let host = rest.rsplit_once(' ').unwrap().0;
    let label = |i: &str| {
        if i == new {
            format!("{i} 2.0/2.0-202612010000")
        } else {
            i.to_owned()
        }
    };
    let (out, err, code) = status(dir.path(), &[]);
    assert_eq!(
        code, 0,
        "a deploy running now is in flight, not an alarm:\n{out}\n{err}"
    );
    let cells = row(&out, &group);
    assert!(
        g.tags.contains_key("gears:deploy"),
        "the deploy is recorded: {:?}",
        g.tags
    );
    let on_new = g.images.get(&new).copied().unwrap_or(0);
    let want = [
        "live".to_owned(),
        "us-east-1".into(),
        "-".into(),
        group.clone(),
        running(&g.images, label),
        format!("{}/{}", g.in_service, g.desired),
        format!("{}/{}", g.in_service, g.desired),
    ];
    assert_eq!(cells[..7], want, "{out}");
    assert!(
        cells[7].starts_with(&format!("{new} 2.0/2.0-202612010000 (lt-")),
        "the launch spec is the deploy's new version: {}",
        cells[7]
    );
    assert!(
        cells[8].starts_with(&format!("run {run} on {host}, ")),
        "{}",
        cells[8]
    );
    assert_eq!(
        cells[9],
        format!(
            "deploy of {new} 2.0/2.0-202612010000 by run {run}: {on_new}/4 on it, running; suspended: {}",
            g.suspended.join(", ")
        ),
        "{out}"
    );
    let cmd = format!("gears deploy -e live --group {group} --ami {new} --region us-east-1");
    assert!(
        out.contains(&format!("  continue: {cmd}\n  abort:    {cmd} --abort\n")),
        "{out}"
    );

    // A second later, with a one-second stale limit: the run is gone, a human must look.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let mut cmd_json = gears();
    cmd_json
        .current_dir(dir.path())
        .args(["status", "--output", "json"])
        .env("GEARS_LOCK_STALE", "1");
    let (out, err, code) = parts(&cmd_json.output().unwrap());
    assert_eq!(code, 7, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["needs_human"], true);
    assert_eq!(v["exit"], 7);
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{out}");
    let j = &groups[0];
    assert_eq!(j["group"], group.as_str());
    assert_eq!(j["environment"], "live");
    assert_eq!(j["desired"], g.desired);
    assert_eq!(j["lock"]["kind"], "held");
    assert_eq!(j["lock"]["run"], run);
    assert_eq!(j["lock"]["host"], host);
    assert_eq!(j["lock"]["live"], false);
    assert_eq!(j["deploy"]["run"], run);
    assert_eq!(j["deploy"]["target"]["ami"], new.as_str());
    assert_eq!(j["deploy"]["target"]["version"], "2.0");
    assert_eq!(j["deploy"]["target"]["ami_version"], "2.0-202612010000");
    assert_eq!(j["deploy"]["of"], 4);
    assert_eq!(j["deploy"]["on_target"], on_new);
    assert_eq!(j["deploy"]["running"], false);
    assert_eq!(j["deploy"]["continue_with"], cmd.as_str());
    assert_eq!(j["deploy"]["abort_with"], format!("{cmd} --abort").as_str());
    assert_eq!(j["launch"]["ami"]["ami"], new.as_str());
    let members: usize = j["running"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["members"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(members, g.images.values().sum::<usize>());
    assert!(
        j["attention"][0].as_str().unwrap().starts_with(&format!(
            "the deploy of {new} by run {run} did not finish and its run is gone"
        )),
        "{out}"
    );
    // The human table says the same, and the command it names finishes the deploy.
    let (out, _, code) = parts(
        &gears()
            .current_dir(dir.path())
            .args(["status"])
            .env("GEARS_LOCK_STALE", "1")
            .output()
            .unwrap(),
    );
    assert_eq!(code, 7);
    assert!(
        row(&out, &group)[9].starts_with("NEEDS A HUMAN; deploy of "),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{group} (live, us-east-1):\n  needs a human: the deploy of {new}"
        )),
        "{out}"
    );
    let args: Vec<&str> = cmd.split(' ').skip(1).collect();
    let (o, e, code) = parts(
        &gears()
            .current_dir(dir.path())
            .args(&args)
            .args(["--batch", "1", "--poll", "0.5"])
            .env("GEARS_LOCK_STALE", "1")
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{o}\n{e}");
    let (out, err, code) = status(dir.path(), &["--watch"]);
    assert_eq!(code, 0, "not a terminal: --watch prints once\n{out}\n{err}");
    assert_eq!(
        row(&out, &group)[4..],
        [
            format!("{new} 2.0/2.0-202612010000 ×4"),
            "4/4".into(),
            "4/4".into(),
            row(&out, &group)[7].clone(),
            "-".into(),
            "ok".into()
        ]
    );
    assert!(!row(&out, &group)[7].ends_with("DRIFT"), "{out}");
}

/// A STOP lock and drift made by hand (a new template version pointed at by hand, its members
/// left on the old AMI), in two environments of one component: both need a human.
#[tokio::test]
async fn a_stop_lock_and_drift_made_by_hand_need_a_human() {
    let dir = tempdir();
    let name = unique("stx");
    component_file(dir.path(), &name);
    let (stopped, old, _) = fleet(&name, "us-east-1", 2).await;
    let other = format!("{name}d");
    let (drifted, _, new) = fleet(&other, "us-east-1", 2).await;
    tag_group(&drifted, "gears:component", &name).await;
    tag_group(&drifted, "gears:environment", "stage").await;
    tag_group(&stopped, "gears:deploy-lock", "STOP run-1: rollback failed").await;
    // Drift by hand: version 2 of the template with the new AMI, and the group pointed at it.
    let c = conf("us-east-1").await;
    let ec2 = aws_sdk_ec2::Client::new(&c);
    let lt = lt_id(&format!("{other}-lt")).await;
    ec2.create_launch_template_version()
        .launch_template_id(&lt)
        .source_version("1")
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id(&new)
                .build(),
        )
        .send()
        .await
        .unwrap();
    aws_sdk_autoscaling::Client::new(&c)
        .update_auto_scaling_group()
        .auto_scaling_group_name(&drifted)
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_id(&lt)
                .version("2")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (out, err, code) = status(dir.path(), &[]);
    assert_eq!(code, 7, "{out}\n{err}");
    let s = row(&out, &stopped);
    let d = row(&out, &drifted);
    // Environments in order: live, then stage.
    assert!(
        out.find(&stopped).unwrap() < out.find(&drifted).unwrap(),
        "{out}"
    );
    let lt_stopped = lt_id(&format!("{name}-lt")).await;
    assert_eq!(
        s,
        [
            "live".to_owned(),
            "us-east-1".into(),
            "-".into(),
            stopped.clone(),
            format!("{old} ×2"),
            "2/2".into(),
            "2/2".into(),
            format!("{old} ({lt_stopped}:$Latest)"),
            "STOP run run-1: rollback failed".into(),
            "NEEDS A HUMAN".into(),
        ]
    );
    assert_eq!(
        d,
        [
            "stage".to_owned(),
            "us-east-1".into(),
            "-".into(),
            drifted.clone(),
            format!("{old} ×2"),
            "2/2".into(),
            "2/2".into(),
            format!("{new} ({lt}:2) DRIFT"),
            "-".into(),
            "NEEDS A HUMAN".into(),
        ]
    );
    assert!(
        out.contains(&format!(
            "  needs a human: drift: members run {old} but the launch spec {lt}:2 launches {new}, and no deploy is recorded\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  needs a human: the line is stopped (run run-1: rollback failed): look at the group, then `gears deploy -e live --group {stopped} --ami {old} --region us-east-1 --unlock`\n"
        )),
        "{out}"
    );
    // `-e stage` alone: the drift; JSON says which group and why.
    let (out, _, code) = status(dir.path(), &["-e", "stage", "--output", "json"]);
    assert_eq!(code, 7);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{out}");
    assert_eq!(groups[0]["group"], drifted.as_str());
    assert_eq!(groups[0]["drift"], true);
    assert_eq!(groups[0]["running"][0]["ami"], old.as_str());
    assert_eq!(groups[0]["running"][0]["members"], 2);
    assert_eq!(groups[0]["launch"]["spec"], format!("{lt}:2").as_str());
    assert!(groups[0]["lock"].is_null());
    // The environment of neither: nothing there, exit 0.
    let (out, _, code) = status(dir.path(), &["-e", "prod"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(&format!(
            "no Auto Scaling group in us-east-1 is tagged gears:component={name} in prod\n"
        )),
        "{out}"
    );
}

/// `gears status --help` documents its exit codes and has examples; bad flags are usage
/// errors (exit 2) before any AWS call.
#[test]
fn status_help_names_its_exit_codes_and_bad_flags_are_exit_2() {
    let (out, _, code) = parts(&gears().args(["status", "--help"]).output().unwrap());
    assert_eq!(code, 0);
    for want in [
        "Examples:",
        "gears status --output json",
        "Exit 0: nothing needs a human. Exit 7:",
        "Exit 5: a region",
        "--watch",
        "exit 130",
    ] {
        assert!(out.contains(want), "--help lacks {want:?}:\n{out}");
    }
    for bad in [
        &["status", "--poll", "2"][..],
        &["status", "--watch", "--poll", "0"],
        &["status", "--output", "yaml"],
    ] {
        let (_, err, code) = parts(&gears().args(bad).output().unwrap());
        assert_eq!(code, 2, "{bad:?}: {err}");
    }
}

/// On a terminal (a pty from `script`), `--watch` redraws the look in place every `--poll`
/// seconds until a signal ends it (SIGTERM: 143; a background job ignores SIGINT); in CI it
/// prints once, with no escape codes, and exits with the look's code.
#[test]
fn watch_redraws_in_place_on_a_terminal_until_a_signal_and_prints_once_in_ci() {
    crate::common::need("GEARS_TEST_MOTO");
    let dir = tempdir();
    let name = unique("stw");
    component_file(dir.path(), &name);
    // Once, to wake moto's Auto Scaling up (its first call in a region takes seconds).
    let (_, err, code) = parts(
        &gears()
            .current_dir(dir.path())
            .arg("status")
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{err}");
    let inner = format!(
        "{} status --watch --poll 0.5 & pid=$!; sleep 3; kill -TERM $pid; wait $pid; echo \"exit=$?\"",
        env!("CARGO_BIN_EXE_gears")
    );
    let mut script = std::process::Command::new("script");
    script
        .args(["-qec", &inner, "/dev/null"])
        .current_dir(dir.path())
        .env("SHELL", "/bin/sh");
    for v in [
        "CI",
        "GO_SERVER_URL",
        "JENKINS_URL",
        "BUILD_NUMBER",
        "GO_PIPELINE_LABEL",
    ] {
        script.env_remove(v);
    }
    let (out, err, _) = parts(&script.output().unwrap());
    let draws = out.matches("\x1b[H\x1b[2J").count();
    assert!(draws >= 2, "{draws} draws in 3 s at 0.5 s:\n{out}\n{err}");
    assert!(
        out.contains(&format!(
            "no Auto Scaling group in us-east-1 is tagged gears:component={name}"
        )),
        "{out}"
    );
    assert!(out.contains("exit=143"), "{out}\n{err}");
    let (out, err, code) = parts(
        &gears()
            .current_dir(dir.path())
            .args(["status", "--watch"])
            .env("CI", "true")
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains('\x1b'), "{out:?}");
    assert_eq!(out.matches("status at ").count(), 1, "{out}");
}
