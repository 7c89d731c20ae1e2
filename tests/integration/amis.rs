//! `gears amis list` and `gears amis prune` end to end against moto: three AMIs of a component,
//! tagged as a bake tags them, the oldest in a launch template.

use crate::common::{ec2_client, gears_moto, parts, tempdir, unique_name};
use std::path::Path;

pub(crate) const MOTO_AMI: &str = "ami-04681a1dbd79675a5";
pub(crate) const REGION: &str = "us-east-1";

/// An AMI of `component` made as a bake would leave it (an image of an instance, with bake's
/// tags); returns (AMI, its snapshots).
pub(crate) async fn bake_like(
    ec2: &aws_sdk_ec2::Client,
    component: &str,
    version: &str,
    created_at: &str,
) -> (String, Vec<String>) {
    let run = ec2
        .run_instances()
        .image_id(MOTO_AMI)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let instance = run.instances()[0].instance_id().unwrap().to_owned();
    let ami = ec2
        .create_image()
        .instance_id(&instance)
        .name(format!("{component}-{version}-web-{created_at}"))
        .send()
        .await
        .unwrap()
        .image_id()
        .unwrap()
        .to_owned();
    ec2.terminate_instances()
        .instance_ids(&instance)
        .send()
        .await
        .unwrap();
    let tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
    ec2.create_tags()
        .resources(&ami)
        .tags(tag("COMPONENT_NAME", component))
        .tags(tag("COMPONENT_VERSION", version))
        .tags(tag("GIT_SHA", &format!("{version:0>40}")))
        .tags(tag("CREATED_AT", created_at))
        .tags(tag("gears:component", component))
        .tags(tag("gears:builder", "web"))
        .tags(tag("gears:run-id", &format!("run-{version}")))
        .tags(tag("gears:managed-by", "gears"))
        .send()
        .await
        .unwrap();
    let snapshots = snapshots_of(ec2, &ami).await;
    assert!(!snapshots.is_empty(), "moto gives every image a snapshot");
    (ami, snapshots)
}

async fn snapshots_of(ec2: &aws_sdk_ec2::Client, ami: &str) -> Vec<String> {
    let out = ec2.describe_images().image_ids(ami).send().await.unwrap();
    out.images()[0]
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()))
        .map(str::to_owned)
        .collect()
}

/// Whether the AMI is still registered.
pub(crate) async fn registered(ec2: &aws_sdk_ec2::Client, ami: &str) -> bool {
    match ec2.describe_images().image_ids(ami).send().await {
        Ok(out) => !out.images().is_empty(),
        Err(_) => false,
    }
}

/// Whether the snapshot still exists.
pub(crate) async fn snapshot_exists(ec2: &aws_sdk_ec2::Client, id: &str) -> bool {
    match ec2.describe_snapshots().snapshot_ids(id).send().await {
        Ok(out) => !out.snapshots().is_empty(),
        Err(_) => false,
    }
}

fn component_file(dir: &Path, name: &str) {
    std::fs::write(
        dir.join("gears.yaml"),
        format!(
            "component: {name}\nrepo: r\nami_regions: [{REGION}]\nbase_ami: {{id: {MOTO_AMI}}}\n"
        ),
    )
    .unwrap();
}

#[tokio::test]
async fn prune_keeps_the_newest_and_the_one_in_use_and_deletes_snapshots() {
    let dir = tempdir();
    let component = unique_name("amis");
    component_file(dir.path(), &component);
    let ec2 = ec2_client(REGION).await;
    let (old, old_snaps) = bake_like(&ec2, &component, "1.0.1", "202601010000").await;
    let (mid, mid_snaps) = bake_like(&ec2, &component, "1.0.2", "202602010000").await;
    let (new, new_snaps) = bake_like(&ec2, &component, "1.0.3", "202603010000").await;
    let template = ec2
        .create_launch_template()
        .launch_template_name(format!("{component}-lt"))
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id(&old)
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .launch_template()
        .unwrap()
        .launch_template_id()
        .unwrap()
        .to_owned();

    // Older still, each in use another way: by a launch configuration, by a stopped instance,
    // and by a version of a template that only an (empty) Auto Scaling group pins by number.
    let (by_lc, _) = bake_like(&ec2, &component, "0.0.3", "202512010000").await;
    let (by_instance, _) = bake_like(&ec2, &component, "0.0.2", "202511010000").await;
    let (by_group, group_snaps) = bake_like(&ec2, &component, "0.0.1", "202510010000").await;
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .load()
        .await;
    let asg = aws_sdk_autoscaling::Client::new(&conf);
    asg.create_launch_configuration()
        .launch_configuration_name(format!("{component}-lc"))
        .image_id(&by_lc)
        .instance_type("t3.micro")
        .send()
        .await
        .unwrap();
    let instance = ec2
        .run_instances()
        .image_id(&by_instance)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_owned();
    ec2.stop_instances()
        .instance_ids(&instance)
        .send()
        .await
        .unwrap();
    let data = |image: &str| {
        aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
            .image_id(image)
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .build()
    };
    let pinned = ec2
        .create_launch_template()
        .launch_template_name(format!("{component}-pinned"))
        .launch_template_data(data(&by_group))
        .send()
        .await
        .unwrap()
        .launch_template()
        .unwrap()
        .launch_template_id()
        .unwrap()
        .to_owned();
    // Version 2 (latest) runs moto's AMI; the group stays on version 1.
    ec2.create_launch_template_version()
        .launch_template_id(&pinned)
        .launch_template_data(data(MOTO_AMI))
        .send()
        .await
        .unwrap();
    ec2.modify_launch_template()
        .launch_template_id(&pinned)
        .default_version("2")
        .send()
        .await
        .unwrap();
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(format!("{component}-pinned"))
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_id(&pinned)
                .version("1")
                .build(),
        )
        .min_size(0)
        .max_size(0)
        .desired_capacity(0)
        .availability_zones(format!("{REGION}a"))
        .send()
        .await
        .unwrap();

    // list: JSON, newest first, with where each is in use.
    let o = gears_moto(dir.path())
        .args(["amis", "list", "--output", "json"])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [&new, &mid, &old, &by_lc, &by_instance, &by_group].map(String::as_str),
        "{out}"
    );
    assert_eq!(listed[2]["version"], "1.0.1");
    assert_eq!(listed[2]["created"], "2026-01-01T00:00:00Z");
    assert_eq!(listed[2]["git_sha"], format!("{:0>40}", "1.0.1"));
    let in_use = listed[2]["in_use"].to_string();
    assert!(
        in_use.contains(&format!("launch-template {template}")) && in_use.contains("default"),
        "{in_use}"
    );
    assert_eq!(listed[1]["in_use"], serde_json::json!([]));
    assert_eq!(
        listed[3]["in_use"],
        serde_json::json!([format!("launch-configuration {component}-lc")])
    );
    assert_eq!(
        listed[4]["in_use"],
        serde_json::json!([format!("instance {instance} (stopped)")])
    );
    let in_use = listed[5]["in_use"].to_string();
    assert!(
        in_use.contains(&format!("launch-template {pinned}"))
            && in_use.contains(&format!("group {component}-pinned")),
        "{in_use}"
    );

    // list: the human table.
    let o = gears_moto(dir.path())
        .args(["amis", "list", "--region", REGION])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("REGION") && lines[0].contains("IN USE"),
        "{out}"
    );
    assert_eq!(lines.len(), 7, "{out}");
    eprintln!("{out}");
    assert!(
        lines[3].contains(&old) && lines[3].contains(&template),
        "{out}"
    );
    assert!(
        lines[2].contains(&mid) && lines[2].trim_end().ends_with('-'),
        "{out}"
    );

    // prune without --yes: says what would go, changes nothing.
    let o = gears_moto(dir.path())
        .args(["amis", "prune", "--keep", "1"])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.contains(&mid) && l.contains("would deregister")),
        "{out}"
    );
    eprintln!("{out}{err}");
    assert!(registered(&ec2, &mid).await);
    for s in &mid_snaps {
        assert!(snapshot_exists(&ec2, s).await);
    }

    // prune --yes: the middle one goes with its snapshots; the newest and the one in use stay.
    let o = gears_moto(dir.path())
        .args(["amis", "prune", "--keep", "1", "--yes", "--output", "json"])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 0, "{out}\n{err}");
    let pruned: serde_json::Value = serde_json::from_str(&out).unwrap();
    let actions: Vec<(&str, &str)> = pruned["amis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["action"].as_str().unwrap()))
        .collect();
    let want: Vec<(&str, &str)> = [
        (&new, "kept"),
        (&mid, "deregistered"),
        (&old, "kept"),
        (&by_lc, "kept"),
        (&by_instance, "kept"),
        (&by_group, "kept"),
    ]
    .iter()
    .map(|(a, b)| (a.as_str(), *b))
    .collect();
    assert_eq!(actions, want);
    assert!(registered(&ec2, &old).await, "in use, though the oldest");
    assert!(registered(&ec2, &new).await, "the newest");
    assert!(!registered(&ec2, &mid).await);
    for s in &mid_snaps {
        assert!(!snapshot_exists(&ec2, s).await, "{s} of {mid} is left");
    }
    for s in old_snaps.iter().chain(&new_snaps).chain(&group_snaps) {
        assert!(snapshot_exists(&ec2, s).await, "{s} of a kept AMI is gone");
    }
    assert!(err.contains("1 deregistered"), "{err}");

    // Once more: nothing left to prune.
    let o = gears_moto(dir.path())
        .args(["amis", "prune", "--keep", "1", "--yes"])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().all(|l| l.contains("\tkept\t")), "{out}");
}

#[test]
fn prune_needs_keep() {
    let o = crate::common::gears()
        .args(["amis", "prune", "--yes"])
        .output()
        .unwrap();
    let (_, err, code) = parts(&o);
    assert_eq!(code, 2);
    assert!(err.contains("--keep"), "{err}");
    // Keeping none would leave nothing to roll back to.
    let o = crate::common::gears()
        .args(["amis", "prune", "--keep", "0"])
        .output()
        .unwrap();
    let (_, err, code) = parts(&o);
    assert_eq!(code, 2, "{err}");
}

/// Tags a snapshot as packer's `snapshot_tags` do (the AMI's tags).
async fn tag_like_bake(ec2: &aws_sdk_ec2::Client, snapshot: &str, component: &str, run: &str) {
    let tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
    ec2.create_tags()
        .resources(snapshot)
        .tags(tag("COMPONENT_NAME", component))
        .tags(tag("gears:component", component))
        .tags(tag("gears:managed-by", "gears"))
        .tags(tag("gears:run-id", run))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn prune_keeps_any_template_version_and_sweeps_snapshots_a_killed_run_left() {
    let dir = tempdir();
    let component = unique_name("amisv");
    component_file(dir.path(), &component);
    let ec2 = ec2_client(REGION).await;
    // The previous version of a template (a rollback target): neither $Default nor $Latest.
    let (rollback, _) = bake_like(&ec2, &component, "1.0.1", "202601010000").await;
    let (mid, _) = bake_like(&ec2, &component, "1.0.2", "202602010000").await;
    let (new, _) = bake_like(&ec2, &component, "1.0.3", "202603010000").await;
    let data = |image: &str| {
        aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
            .image_id(image)
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .build()
    };
    let lt = ec2
        .create_launch_template()
        .launch_template_name(format!("{component}-lt"))
        .launch_template_data(data(&rollback))
        .send()
        .await
        .unwrap()
        .launch_template()
        .unwrap()
        .launch_template_id()
        .unwrap()
        .to_owned();
    for image in [&new, &new] {
        ec2.create_launch_template_version()
            .launch_template_id(&lt)
            .launch_template_data(data(image))
            .send()
            .await
            .unwrap();
    }
    ec2.modify_launch_template()
        .launch_template_id(&lt)
        .default_version("2")
        .send()
        .await
        .unwrap();
    // A prune killed (kill -9) between DeregisterImage and DeleteSnapshot of this one.
    let (killed, killed_snaps) = bake_like(&ec2, &component, "0.0.9", "202512010000").await;
    for s in &killed_snaps {
        tag_like_bake(&ec2, s, &component, "run-0.0.9").await;
    }
    ec2.deregister_image()
        .image_id(&killed)
        .send()
        .await
        .unwrap();

    let o = gears_moto(dir.path())
        .args(["amis", "prune", "--keep", "1", "--yes", "--output", "json"])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 0, "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let action = |id: &str| {
        report["amis"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .map(|p| (p["action"].clone(), p["reason"].clone()))
            .unwrap()
    };
    let (a, why) = action(&rollback);
    assert_eq!(a, "kept", "{out}");
    assert!(why.as_str().unwrap().contains("version 1"), "{why}");
    assert_eq!(action(&mid).0, "deregistered");
    assert!(registered(&ec2, &rollback).await);
    assert!(!registered(&ec2, &mid).await);
    let swept: Vec<&str> = report["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    for s in &killed_snaps {
        assert!(swept.contains(&s.as_str()), "{out}");
        assert!(!snapshot_exists(&ec2, s).await, "{s} is still there");
    }
}

/// A command's stdout whose reader is gone before it writes: every write is EPIPE.
fn closed_stdout() -> std::process::Stdio {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    unsafe { libc::close(fds[0]) };
    std::process::Stdio::from(unsafe { std::os::fd::OwnedFd::from_raw_fd(fds[1]) })
}

#[tokio::test]
async fn a_closed_stdout_never_panics() {
    let dir = tempdir();
    let component = unique_name("amisp");
    component_file(dir.path(), &component);
    let ec2 = ec2_client(REGION).await;
    bake_like(&ec2, &component, "1.0.1", "202601010000").await;
    let runs: [&[&str]; 6] = [
        &["completions", "bash"],
        &["validate", "--output", "json"],
        &["amis", "list"],
        &["amis", "list", "--output", "json"],
        &["amis", "prune", "--keep", "1"],
        &["reap", "--region", REGION],
    ];
    for args in runs {
        let o = gears_moto(dir.path())
            .args(args)
            .stdout(closed_stdout())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
        assert_ne!(o.status.code(), Some(101), "{args:?}: {err}");
    }
}

/// Issue 20 item 11: `gears amis list` and `gears reap` page their lists (every
/// DescribeImages, DescribeInstances and DescribeSecurityGroups of theirs carries
/// `MaxResults`), and reap asks DescribeNetworkInterfaces once for all its candidate security
/// groups, however many there are. Read from a counting proxy in front of moto.
#[tokio::test]
async fn lists_are_paged_and_network_interfaces_asked_once() {
    let moto = crate::common::need("GEARS_TEST_MOTO");
    let python = format!("{}/bin/python", crate::common::need("GEARS_TEST_VENV"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut proxy = std::process::Command::new(python)
        .arg(format!("{root}/scripts/count-proxy.py"))
        .arg(port.to_string())
        .arg(&moto)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    crate::common::wait_until(20, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let dir = tempdir();
    let component = unique_name("paged");
    component_file(dir.path(), &component);
    let ec2 = ec2_client(REGION).await;
    bake_like(&ec2, &component, "1.0.0", "202601010000").await;
    // Three packer-named groups old enough to be candidates: one look at the interfaces.
    for i in 0..3 {
        ec2.create_security_group()
            .group_name(format!(
                "packer_{:08x}-0000-7000-8000-{:012x}",
                1_600_000_000u32 / 1000,
                i
            ))
            .description("packer leftover")
            .send()
            .await
            .unwrap();
    }
    let run = |args: &[&str]| {
        let o = gears_moto(dir.path())
            .env("AWS_ENDPOINT_URL", &endpoint)
            .args(args)
            .output()
            .unwrap();
        let (_, err, code) = parts(&o);
        assert_eq!(code, 0, "{args:?}: {err}");
    };
    run(&["amis", "list"]);
    run(&["reap", "--region", REGION]);
    let log: Vec<(f64, String, String)> = serde_json::from_str(
        &std::process::Command::new("curl")
            .args(["-fsS", &format!("{endpoint}/log")])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap(),
    )
    .unwrap();
    let _ = proxy.kill();
    let _ = proxy.wait();
    for action in [
        "DescribeImages",
        "DescribeInstances",
        "DescribeSecurityGroups",
    ] {
        let calls: Vec<&(f64, String, String)> =
            log.iter().filter(|(_, a, _)| a == action).collect();
        assert!(!calls.is_empty(), "no {action} in {log:?}");
        assert!(
            calls.iter().all(|(_, _, d)| d.starts_with("MaxResults=")),
            "{action} without MaxResults: {calls:?}"
        );
    }
    let interfaces = log
        .iter()
        .filter(|(_, a, _)| a == "DescribeNetworkInterfaces")
        .count();
    assert_eq!(interfaces, 1, "{log:?}");
}
