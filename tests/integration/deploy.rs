//! `gears deploy` end to end against moto: a launch-template group behind a target group,
//! rolled onto a new AMI in batches, then read back from moto.

use crate::common::{gears, need, parts, tempdir, unique};
use std::path::Path;

pub const MOTO_AMI: &str = "ami-04681a1dbd79675a5";

pub async fn conf(region: &str) -> aws_config::SdkConfig {
    need("GEARS_TEST_MOTO");
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .load()
        .await
}

/// moto's stock Amazon Linux 2 AMI in `region`.
async fn stock_ami(region: &str) -> String {
    if region == "us-east-1" {
        return MOTO_AMI.to_owned();
    }
    let c = conf(region).await;
    let out = aws_sdk_ec2::Client::new(&c)
        .describe_images()
        .owners("amazon")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("name")
                .values("amzn2-ami-hvm-2.0.*-x86_64-gp2")
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.images()[0].image_id().unwrap().to_owned()
}

/// A group of `n` instances of moto's AMI in `region`, behind a target group; returns (group,
/// old AMI, new AMI).
pub async fn fleet(component: &str, region: &str, n: i32) -> (String, String, String) {
    fleet_of(component, region, n, false).await
}

/// [`fleet`], with the launch template in a mixed-instances policy (two instance types) when
/// `mixed`.
async fn fleet_of(component: &str, region: &str, n: i32, mixed: bool) -> (String, String, String) {
    fleet_in(&conf(region).await, component, region, n, mixed).await
}

/// [`fleet_of`] in the account of `c`'s credentials.
pub async fn fleet_in(
    c: &aws_config::SdkConfig,
    component: &str,
    region: &str,
    n: i32,
    mixed: bool,
) -> (String, String, String) {
    let base = stock_ami(region).await;
    let ec2 = aws_sdk_ec2::Client::new(c);
    let asg = aws_sdk_autoscaling::Client::new(c);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(c);
    // The new AMI: an image of a running instance.
    let i = ec2
        .run_instances()
        .image_id(&base)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let id = i.instances()[0].instance_id().unwrap().to_owned();
    let new = ec2
        .create_image()
        .instance_id(&id)
        .name(format!("{component}-2"))
        .send()
        .await
        .unwrap()
        .image_id()
        .unwrap()
        .to_owned();
    ec2.terminate_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let lt = ec2
        .create_launch_template()
        .launch_template_name(format!("{component}-lt"))
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id(&base)
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
    let vpc = ec2
        .describe_vpcs()
        .send()
        .await
        .unwrap()
        .vpcs()
        .iter()
        .find(|v| v.is_default() == Some(true))
        .and_then(|v| v.vpc_id())
        .unwrap()
        .to_owned();
    let tg = elb
        .create_target_group()
        // ELB names: letters, digits and single hyphens (no `--`, none at the end).
        .name(format!(
            "tg-{}",
            component[component.len() - 10..]
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
        ))
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(80)
        .vpc_id(vpc)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_owned();
    let name = format!("{component}-live");
    let tag = |k: &str, v: &str| {
        aws_sdk_autoscaling::types::Tag::builder()
            .key(k)
            .value(v)
            .propagate_at_launch(false)
            .resource_id(&name)
            .resource_type("auto-scaling-group")
            .build()
    };
    let spec = aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
        .launch_template_id(&lt)
        .version("$Latest")
        .build();
    let create = asg
        .create_auto_scaling_group()
        .auto_scaling_group_name(&name);
    let create = if mixed {
        use aws_sdk_autoscaling::types::{
            LaunchTemplate, LaunchTemplateOverrides, MixedInstancesPolicy,
        };
        create.mixed_instances_policy(
            MixedInstancesPolicy::builder()
                .launch_template(
                    LaunchTemplate::builder()
                        .launch_template_specification(spec)
                        .overrides(
                            LaunchTemplateOverrides::builder()
                                .instance_type("t3.micro")
                                .build(),
                        )
                        .overrides(
                            LaunchTemplateOverrides::builder()
                                .instance_type("t3.small")
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
    } else {
        create.launch_template(spec)
    };
    create
        .min_size(n)
        .max_size(n)
        .desired_capacity(n)
        .availability_zones(format!("{region}a"))
        .target_group_arns(tg)
        .tags(tag("gears:component", component))
        .tags(tag("gears:environment", "live"))
        .send()
        .await
        .unwrap();
    (name, base, new)
}

pub fn component_file(dir: &Path, name: &str) {
    std::fs::write(
        dir.join("gears.yaml"),
        format!(
            "component: {name}\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {{id: {MOTO_AMI}}}\n"
        ),
    )
    .unwrap();
}

pub async fn images_of_group(
    region: &str,
    group: &str,
) -> (Vec<String>, aws_sdk_autoscaling::types::AutoScalingGroup) {
    images_of_group_in(&conf(region).await, group).await
}

/// [`images_of_group`] in the account of `c`'s credentials.
pub async fn images_of_group_in(
    c: &aws_config::SdkConfig,
    group: &str,
) -> (Vec<String>, aws_sdk_autoscaling::types::AutoScalingGroup) {
    let g = aws_sdk_autoscaling::Client::new(c)
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()[0]
        .clone();
    let ids: Vec<String> = g
        .instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_owned())
        .collect();
    let out = aws_sdk_ec2::Client::new(c)
        .describe_instances()
        .set_instance_ids(Some(ids))
        .send()
        .await
        .unwrap();
    let images = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| i.image_id().unwrap().to_owned())
        .collect();
    (images, g)
}

#[tokio::test]
async fn groups_in_two_regions_roll_onto_the_manifests_amis_and_are_left_as_they_were() {
    let dir = tempdir();
    let name = unique("dep");
    component_file(dir.path(), &name);
    let regions = ["us-east-1", "eu-west-1"];
    let mut fleets = Vec::new();
    for r in regions {
        fleets.push(fleet(&name, r, 8).await);
    }
    // bake's manifest, naming the new AMI of each region.
    let manifest = dir.path().join("gears-manifest.json");
    std::fs::write(
        &manifest,
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
                .args(["deploy", "--environment", "live"])
                .args(["--batch", "3", "--poll", "0.2", "--gate-timeout", "30"])
                .args(extra)
                .output()
                .unwrap(),
        )
    };
    let (out, err, code) = run(&["--plan"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.matches("8 of 8 instances to replace, 3 batch(es) of 3")
            .count(),
        2,
        "{out}"
    );
    for (r, (group, old, _)) in regions.iter().zip(&fleets) {
        let (before, _) = images_of_group(r, group).await;
        assert!(before.iter().all(|i| i == old), "--plan changed nothing");
    }

    let (out, err, code) = run(&["--output", "json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["groups"].as_array().unwrap().len(), 2, "{out}");
    for (r, (group, old, new)) in regions.iter().zip(&fleets) {
        let g = v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["region"] == *r)
            .unwrap();
        assert_eq!(g["result"], "deployed", "{out}");
        assert_eq!(g["from_ami"], old.as_str());
        let (images, g) = images_of_group(r, group).await;
        assert_eq!(images.len(), 8);
        assert!(images.iter().all(|i| i == new), "{r}: {images:?}");
        assert_eq!(
            (g.min_size(), g.max_size(), g.desired_capacity()),
            (Some(8), Some(8), Some(8))
        );
        assert!(
            g.suspended_processes().is_empty(),
            "{:?}",
            g.suspended_processes()
        );
        let tags: std::collections::BTreeMap<&str, &str> = g
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value()?)))
            .collect();
        assert!(
            !tags.contains_key("gears:deploy")
                && !tags.contains_key("gears:deploy-lock")
                && !tags.contains_key("gears:deploy-tags"),
            "{tags:?}"
        );
        assert_eq!(tags["COMPONENT_VERSION"], "2.0");
        assert_eq!(tags["AMI_VERSION"], "2.0-202611240000");
        assert_eq!(tags["ENVIRONMENT"], "live");
    }

    // Again: nothing to replace, nothing changes (not even a lock or a template version).
    let (out, err, code) = run(&[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.matches("\tnothing to do\t").count(), 2, "{out}");
}

#[test]
fn bad_deploy_flags_are_usage_errors() {
    for (args, want) in [
        (
            &["--batch", "0"][..],
            "'0' for '--batch <N|P%>': expected a count",
        ),
        (&["--batch", "150%"][..], "'150%' for '--batch <N|P%>'"),
        (&["--poll=-1"][..], "'-1' for '--poll <SECS>': give seconds"),
        (
            &["--min-healthy", "150%"][..],
            "'150%' for '--min-healthy <P%>'",
        ),
        (&["--parallel", "0"][..], "--parallel"),
        (
            &["--poll", "700"][..],
            "--poll 700 s is not shorter than the gate timeout (600 s)",
        ),
        (
            &["--poll", "30", "--gate-timeout", "20"][..],
            "--poll 30 s is not shorter than the gate timeout (20 s)",
        ),
        (&["--gate-timeout", "0"][..], "more than 0"),
    ] {
        let (_, err, code) = parts(
            &gears()
                .args(["deploy", "--environment", "live"])
                .args(args)
                .output()
                .unwrap(),
        );
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{err}");
    }
    let (_, err, code) = parts(
        &gears()
            .args(["deploy", "--environment", " "])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--environment empty"), "{err}");
}

/// A manifest of two regions whose second has none of the component's groups: refused before
/// any region changes (the first region's group stays as it was).
#[tokio::test]
async fn a_region_without_the_groups_stops_every_region_before_any_change() {
    let dir = tempdir();
    let name = unique("reg");
    component_file(dir.path(), &name);
    let (group, old, new) = fleet(&name, "us-east-1", 2).await;
    let eu = stock_ami("eu-west-1").await;
    let manifest = dir.path().join("gears-manifest.json");
    std::fs::write(
        &manifest,
        serde_json::json!({
            "format_version": 1, "component": name, "version": "2.0", "git_sha": "abc",
            "repo": "r", "created_at": "202611240000", "ami_version": "2.0-202611240000",
            "base_ami": MOTO_AMI, "run_id": "r1", "packer_run_uuid": null, "reused": false,
            "amis": {"web": {"us-east-1": new, "eu-west-1": eu}}
        })
        .to_string(),
    )
    .unwrap();
    let (out, err, code) = parts(
        &gears()
            .current_dir(dir.path())
            .args(["deploy", "--environment", "live", "--poll", "0.2"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(err.contains("no Auto Scaling group in eu-west-1"), "{err}");
    let (images, g) = images_of_group("us-east-1", &group).await;
    assert!(images.iter().all(|i| i == &old), "{images:?}");
    assert!(
        !g.tags()
            .iter()
            .any(|t| t.key().is_some_and(|k| k.starts_with("gears:deploy"))),
        "untouched"
    );
}

/// A group whose launch template is its mixed-instances policy's is rolled like any other. moto
/// drops the policy on any UpdateAutoScalingGroup that does not send it (moto 5.2 sets it to
/// whatever the request carries, read in its code), so whether the policy is kept is checked on
/// the fake AWS; here: that AWS's own request and answer shapes work, and that every instance
/// ends on the new AMI with capacity as before.
#[tokio::test]
async fn a_mixed_instances_group_rolls_onto_the_new_ami() {
    let dir = tempdir();
    let name = unique("mix");
    component_file(dir.path(), &name);
    let (group, _, new) = fleet_of(&name, "us-east-1", 3, true).await;
    let (_, g) = images_of_group("us-east-1", &group).await;
    assert!(g.mixed_instances_policy().is_some() && g.launch_template().is_none());
    let (out, err, code) = parts(
        &gears()
            .current_dir(dir.path())
            .args([
                "deploy",
                "--environment",
                "live",
                "--ami",
                &new,
                "--region",
                "us-east-1",
            ])
            // Half the group may be replaced in place: moto launches the replacements.
            .args(["--batch", "2", "--poll", "0.2", "--min-healthy", "50%"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("\tdeployed\t"), "{out}");
    assert!(err.contains("in place (--min-healthy 50%)"), "{err}");
    let (after, g) = images_of_group("us-east-1", &group).await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.iter().all(|i| i == &new), "{after:?}");
    assert_eq!(
        (g.min_size(), g.max_size(), g.desired_capacity()),
        (Some(3), Some(3), Some(3))
    );
    assert!(!g
        .tags()
        .iter()
        .any(|t| t.key().is_some_and(|k| k.starts_with("gears:deploy"))));
}

/// Issue 36 item 3: the launch template version deploy makes keeps its source's metadata
/// options (IMDSv2 required, a hop limit of 2): AWS inherits them from the source version, and
/// gears also sends them, because moto's copy drops them.
#[tokio::test]
async fn the_new_template_version_keeps_the_sources_metadata_options() {
    use aws_sdk_ec2::types::{
        LaunchTemplateHttpTokensState, LaunchTemplateInstanceMetadataOptionsRequest,
        RequestLaunchTemplateData,
    };
    let dir = tempdir();
    let name = unique("imds");
    component_file(dir.path(), &name);
    let (group, _, new) = fleet(&name, "us-east-1", 2).await;
    let (_, g) = images_of_group("us-east-1", &group).await;
    let lt = g
        .launch_template()
        .unwrap()
        .launch_template_id()
        .unwrap()
        .to_owned();
    let ec2 = aws_sdk_ec2::Client::new(&conf("us-east-1").await);
    ec2.create_launch_template_version()
        .launch_template_id(&lt)
        .source_version("1")
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .metadata_options(
                    LaunchTemplateInstanceMetadataOptionsRequest::builder()
                        .http_tokens(LaunchTemplateHttpTokensState::Required)
                        .http_put_response_hop_limit(2)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (out, err, code) = parts(&deploy_cmd(dir.path(), &new).output().unwrap());
    assert_eq!(code, 0, "{out}\n{err}");
    let (after, g) = images_of_group("us-east-1", &group).await;
    assert!(after.iter().all(|i| i == &new), "{after:?}");
    let version = g.launch_template().unwrap().version().unwrap().to_owned();
    assert_ne!(version, "2", "deploy made a version of its own");
    let made = ec2
        .describe_launch_template_versions()
        .launch_template_id(&lt)
        .versions(&version)
        .send()
        .await
        .unwrap();
    let data = made.launch_template_versions()[0]
        .launch_template_data()
        .unwrap();
    assert_eq!(data.image_id(), Some(new.as_str()));
    let m = data.metadata_options().expect("metadata options kept");
    assert_eq!(
        m.http_tokens(),
        Some(&LaunchTemplateHttpTokensState::Required)
    );
    assert_eq!(m.http_put_response_hop_limit(), Some(2));
}

#[tokio::test]
async fn a_dynamodb_lock_table_refuses_a_held_group_and_is_given_back() {
    let dir = tempdir();
    let name = unique("ddb");
    component_file(dir.path(), &name);
    let (group, _, new) = fleet(&name, "us-east-1", 2).await;
    let c = conf("us-east-1").await;
    let ddb = aws_sdk_dynamodb::Client::new(&c);
    let table = format!("{name}-locks");
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
        ScalarAttributeType,
    };
    ddb.create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("key")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("key")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let key = format!("us-east-1/{group}");
    // Another deploy holds it, renewed a moment ago (`ago` milliseconds).
    let hold = |ago: i64| {
        ddb.put_item()
            .table_name(&table)
            .item("key", AttributeValue::S(key.clone()))
            .item("run", AttributeValue::S("other-run".into()))
            .item("holder", AttributeValue::S("ci-7".into()))
            .item(
                "at",
                AttributeValue::N((chrono::Utc::now().timestamp_millis() - ago).to_string()),
            )
            .send()
    };
    hold(1_000).await.unwrap();
    let run = || {
        parts(
            &gears()
                .current_dir(dir.path())
                .args([
                    "deploy",
                    "--environment",
                    "live",
                    "--ami",
                    &new,
                    "--region",
                    "us-east-1",
                ])
                .args(["--batch", "1", "--poll", "0.2", "--lock-table", &table])
                .output()
                .unwrap(),
        )
    };
    let (_, err, code) = run();
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains(&format!(
            "another deploy holds the lock {key} in the lock table: run other-run on ci-7, renewed at "
        )),
        "{err}"
    );
    let (before, _) = images_of_group("us-east-1", &group).await;
    assert!(before.iter().all(|i| i != &new), "nothing changed");

    // Not renewed for two minutes: its deploy was killed, and this one takes the lock over (a
    // conditional write on DynamoDB's own comparison).
    hold(120_000).await.unwrap();
    let (out, err, code) = run();
    assert_eq!(code, 0, "{out}\n{err}");
    let (after, _) = images_of_group("us-east-1", &group).await;
    assert!(after.iter().all(|i| i == &new), "{after:?}");
    let left = ddb
        .get_item()
        .table_name(&table)
        .key("key", AttributeValue::S(key))
        .send()
        .await
        .unwrap();
    assert!(left.item().is_none(), "the lock was given back: {left:?}");
}

/// A server that accepts connections and never answers (a hung load balancer): every AWS call
/// fails in bounded time, naming the operation, and gears exits with its AWS error code instead
/// of hanging. The test itself gives up after 60 s, so a hang fails it rather than blocking.
#[test]
fn a_hung_aws_endpoint_fails_the_call_instead_of_hanging() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s); // read nothing, answer nothing, close nothing
        }
    });
    let dir = tempfile::tempdir().unwrap();
    component_file(dir.path(), "hung");
    let mut child = gears()
        .args(["deploy", "-c"])
        .arg(dir.path().join("gears.yaml"))
        .args([
            "--environment",
            "live",
            "--ami",
            "ami-0123456789abcdef0",
            "--region",
            "us-east-1",
            "--plan",
            // The checks retry a call that gets no answer within the gate's deadline.
            "--gate-timeout",
            "5",
            "--poll",
            "1",
        ])
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("GEARS_AWS_TIMEOUT", "0.5")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("gears deploy still waiting on a hung endpoint after 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (_, err, code) = parts(&child.wait_with_output().unwrap());
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("DescribeImages failed in us-east-1"), "{err}");
    assert!(err.contains("no answer within"), "{err}");
    assert!(!err.contains("MaybeTimeoutError"), "{err}");
}

/// Starts `cmd` and returns it once a line of its standard error contains `marker` (or panics
/// after 60 s), with the lines so far and the reader of the rest.
pub fn start_until(
    cmd: &mut std::process::Command,
    marker: &str,
) -> (
    std::process::Child,
    Vec<String>,
    std::sync::mpsc::Receiver<String>,
) {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let hit = line.contains(marker);
                seen.push(line);
                if hit {
                    return (child, seen, rx);
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no `{marker}` within 60 s: {seen:#?}");
            }
        }
    }
}

pub fn deploy_cmd(dir: &Path, new: &str) -> std::process::Command {
    let mut c = gears();
    c.current_dir(dir)
        .args(["deploy", "--environment", "live", "--ami", new])
        .args(["--region", "us-east-1", "--batch", "1", "--poll", "0.5"]);
    c
}

/// A real process, really killed: `kill -9` after the first batch launched leaves the group
/// half rolled; the same command refuses while the lock is fresh, then (the lock's stale limit
/// shortened to a second with GEARS_LOCK_STALE) continues the deploy to its end, and the group
/// is left as it was but on the new AMI.
#[tokio::test]
async fn a_deploy_killed_with_kill_9_is_finished_by_the_same_command() {
    let dir = tempdir();
    let name = unique("k9");
    component_file(dir.path(), &name);
    let (group, _, new) = fleet(&name, "us-east-1", 4).await;
    let (mut child, _, _) = start_until(&mut deploy_cmd(dir.path(), &new), "batch 1: launching");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (_, g) = images_of_group("us-east-1", &group).await;
    assert!(
        g.tags()
            .iter()
            .any(|t| t.key() == Some("gears:deploy-lock")),
        "the killed run's lock is on the group"
    );
    // At once: refused, naming the holder.
    let (_, err, code) = parts(&deploy_cmd(dir.path(), &new).output().unwrap());
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("another deploy holds the lock: run "), "{err}");
    // A second later, with a one-second stale limit: continued and finished.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (out, err, code) = parts(
        &deploy_cmd(dir.path(), &new)
            .env("GEARS_LOCK_STALE", "1")
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("continuing the deploy of"), "{err}");
    let (images, g) = images_of_group("us-east-1", &group).await;
    assert_eq!(images.len(), 4, "{images:?}");
    assert!(images.iter().all(|i| i == &new), "{images:?}");
    assert_eq!(
        (g.min_size(), g.max_size(), g.desired_capacity()),
        (Some(4), Some(4), Some(4))
    );
    assert!(
        g.suspended_processes().is_empty(),
        "{:?}",
        g.suspended_processes()
    );
    assert!(!g
        .tags()
        .iter()
        .any(|t| t.key().is_some_and(|k| k.starts_with("gears:deploy"))));
}

/// A rolling deploy killed with `kill -9` mid-batch, undone by `--abort` with the tag lock: the
/// group back on its AMI at its capacity, no gears tag left, its instance tags as before, and the
/// template version the killed run made deleted, so the template's `$Latest` launches the old AMI
/// again (DeleteLaunchTemplateVersions on moto).
#[tokio::test]
async fn a_deploy_killed_with_kill_9_is_undone_by_abort_and_latest_is_as_before() {
    let dir = tempdir();
    let name = unique("k9a");
    component_file(dir.path(), &name);
    let (group, base, new) = fleet(&name, "us-east-1", 2).await;
    let (mut child, _, _) = start_until(&mut deploy_cmd(dir.path(), &new), "batch 1: launching");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (out, err, code) = parts(
        &deploy_cmd(dir.path(), &new)
            .arg("--abort")
            .env("GEARS_LOCK_STALE", "1")
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("\taborted\t"), "{out}");
    assert!(err.contains("deleted launch template"), "{err}");
    let (images, g) = images_of_group("us-east-1", &group).await;
    assert!(images.iter().all(|i| i == &base), "{images:?}");
    assert_eq!(g.desired_capacity(), Some(2));
    let keys: Vec<&str> = g.tags().iter().filter_map(|t| t.key()).collect();
    assert!(
        !keys
            .iter()
            .any(|k| k.starts_with("gears:deploy") || *k == "COMPONENT_NAME"),
        "{keys:?}"
    );
    let lt = g.launch_template().unwrap().launch_template_id().unwrap();
    let latest = aws_sdk_ec2::Client::new(&conf("us-east-1").await)
        .describe_launch_template_versions()
        .launch_template_id(lt)
        .versions("$Latest")
        .send()
        .await
        .unwrap();
    let v = &latest.launch_template_versions()[0];
    let image = v.launch_template_data().and_then(|d| d.image_id());
    assert_eq!(image, Some(base.as_str()), "{v:?}");
}

/// Two SIGINTs in quick succession: the second stops the rollback the first started; gears says
/// what is left undone, with the command that finishes or undoes it, and exits 7 (a human must
/// look), not 130.
#[tokio::test]
async fn a_second_sigint_during_the_rollback_is_exit_7_naming_what_is_left_undone() {
    let dir = tempdir();
    let name = unique("int2");
    component_file(dir.path(), &name);
    let (group, _, new) = fleet(&name, "us-east-1", 4).await;
    let (child, _, rx) = start_until(&mut deploy_cmd(dir.path(), &new), "batch 1: launching");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let rest: Vec<String> = rx.iter().collect();
    assert_eq!(out.status.code(), Some(7), "{rest:#?}");
    assert!(
        rest.iter()
            .any(|l| l.starts_with("left undone: the deploy of") && l.contains(&group)),
        "{rest:#?}"
    );
    // The same command then finishes it.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (out, err, code) = parts(
        &deploy_cmd(dir.path(), &new)
            .env("GEARS_LOCK_STALE", "1")
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let (images, _) = images_of_group("us-east-1", &group).await;
    assert!(images.iter().all(|i| i == &new), "{images:?}");
}

/// SIGTERM (a CI cancel) mid-deploy: gears rolls the group back before it exits 143, and the
/// group is as it was, on the old AMI.
#[tokio::test]
async fn sigterm_mid_deploy_rolls_back_before_exiting_143() {
    let dir = tempdir();
    let name = unique("term");
    component_file(dir.path(), &name);
    let (group, old, new) = fleet(&name, "us-east-1", 4).await;
    let (child, _, rx) = start_until(&mut deploy_cmd(dir.path(), &new), "batch 1: launching");
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    let rest: Vec<String> = rx.iter().collect();
    assert_eq!(out.status.code(), Some(143), "{rest:#?}");
    // The report is on stdout whatever ended the run.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\trolled back\t"), "{stdout}");
    assert!(stdout.contains("SIGTERM received"), "{stdout}");
    assert!(
        rest.iter()
            .any(|l| l.contains("rolling") && l.contains("back")),
        "{rest:#?}"
    );
    let (images, g) = images_of_group("us-east-1", &group).await;
    assert_eq!(images.len(), 4, "{images:?}");
    assert!(images.iter().all(|i| i == &old), "{images:?}");
    assert_eq!(
        (g.min_size(), g.max_size(), g.desired_capacity()),
        (Some(4), Some(4), Some(4))
    );
    assert!(g.suspended_processes().is_empty());
    assert!(!g
        .tags()
        .iter()
        .any(|t| t.key().is_some_and(|k| k.starts_with("gears:deploy"))));
}

/// A group behind a Classic load balancer (issue 24 item 1): the gate reads the load
/// balancer's instance health (DescribeInstanceHealth on moto) and the roll goes through.
#[tokio::test]
async fn a_group_behind_a_classic_load_balancer_is_gated_on_it_and_rolls() {
    let dir = tempdir();
    let name = unique("clb");
    component_file(dir.path(), &name);
    let (group, _, new) = fleet(&name, "us-east-1", 2).await;
    let c = conf("us-east-1").await;
    let lb = format!("clb{}", &name[name.len() - 8..])
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>();
    aws_sdk_elasticloadbalancing::Client::new(&c)
        .create_load_balancer()
        .load_balancer_name(&lb)
        .availability_zones("us-east-1a")
        .listeners(
            aws_sdk_elasticloadbalancing::types::Listener::builder()
                .protocol("HTTP")
                .load_balancer_port(80)
                .instance_port(8080)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    aws_sdk_autoscaling::Client::new(&c)
        .attach_load_balancers()
        .auto_scaling_group_name(&group)
        .load_balancer_names(&lb)
        .send()
        .await
        .unwrap();
    let (out, err, code) = parts(
        &gears()
            .current_dir(dir.path())
            .args(["deploy", "--environment", "live", "--ami", &new])
            .args(["--region", "us-east-1", "--batch", "1", "--poll", "0.2"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("\tdeployed\t"), "{out}");
    assert!(
        err.contains(&format!("Classic load balancer(s) {lb}")),
        "{err}"
    );
    let (after, _) = images_of_group("us-east-1", &group).await;
    assert!(after.iter().all(|i| i == &new), "{after:?}");
}

/// A Spot group on a launch configuration (issue 24 item 10): the copy keeps everything of
/// the source (its Spot price, kernel and ramdisk included), and the next deploy deletes the
/// copy no group uses any more.
#[tokio::test]
async fn a_spot_launch_configuration_is_copied_whole_and_old_copies_are_deleted() {
    let dir = tempdir();
    let name = unique("lcs");
    component_file(dir.path(), &name);
    let (_, base, new) = fleet(&name, "us-east-1", 1).await;
    let c = conf("us-east-1").await;
    let asg = aws_sdk_autoscaling::Client::new(&c);
    let lc = format!("{name}-lc");
    asg.create_launch_configuration()
        .launch_configuration_name(&lc)
        .image_id(&base)
        .instance_type("t3.micro")
        .spot_price("0.0123")
        .kernel_id("aki-12345678")
        .ramdisk_id("ari-12345678")
        .send()
        .await
        .unwrap();
    let group = format!("{name}-spot");
    let tag = |k: &str, v: &str| {
        aws_sdk_autoscaling::types::Tag::builder()
            .key(k)
            .value(v)
            .propagate_at_launch(false)
            .resource_id(&group)
            .resource_type("auto-scaling-group")
            .build()
    };
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(&group)
        .launch_configuration_name(&lc)
        .min_size(1)
        .max_size(1)
        .desired_capacity(1)
        .availability_zones("us-east-1a")
        .tags(tag("gears:component", &name))
        .tags(tag("gears:environment", "spot"))
        .send()
        .await
        .unwrap();
    let deploy = |ami: &str| {
        parts(
            &gears()
                .current_dir(dir.path())
                .args(["deploy", "--environment", "spot", "--ami", ami])
                .args(["--region", "us-east-1", "--batch", "1", "--poll", "0.2"])
                .output()
                .unwrap(),
        )
    };
    let config_of = |group: String| {
        let asg = asg.clone();
        async move {
            let g = asg
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(group)
                .send()
                .await
                .unwrap();
            g.auto_scaling_groups()[0]
                .launch_configuration_name()
                .unwrap()
                .to_owned()
        }
    };
    let (out, err, code) = deploy(&new);
    assert_eq!(code, 0, "{out}\n{err}");
    let first = config_of(group.clone()).await;
    assert!(first.starts_with(&format!("{lc}-gears-")), "{first}");
    let copy = asg
        .describe_launch_configurations()
        .launch_configuration_names(&first)
        .send()
        .await
        .unwrap();
    let copy = &copy.launch_configurations()[0];
    assert_eq!(copy.image_id(), Some(new.as_str()));
    assert_eq!(copy.spot_price(), Some("0.0123"), "{copy:?}");
    assert_eq!(copy.kernel_id(), Some("aki-12345678"), "{copy:?}");
    assert_eq!(copy.ramdisk_id(), Some("ari-12345678"), "{copy:?}");
    // Back to the base AMI: a copy of the copy (one suffix), and the first copy deleted; the
    // user's own configuration stays.
    let (out, err, code) = deploy(&base);
    assert_eq!(code, 0, "{out}\n{err}");
    let second = config_of(group.clone()).await;
    assert_ne!(second, first);
    assert_eq!(second.matches("-gears-").count(), 1, "{second}");
    let left: Vec<String> = asg
        .describe_launch_configurations()
        .launch_configuration_names(&lc)
        .launch_configuration_names(&first)
        .launch_configuration_names(&second)
        .send()
        .await
        .unwrap()
        .launch_configurations()
        .iter()
        .filter_map(|c| c.launch_configuration_name().map(str::to_owned))
        .collect();
    assert!(left.contains(&lc) && left.contains(&second), "{left:?}");
    assert!(!left.contains(&first), "{left:?}");
}

/// A CloudWatch alarm in ALARM (moto's `set_alarm_state`) fails the deploy's gate: the group
/// rolls back (exit 6) naming the alarm and its reason; a missing alarm is refused (exit 3).
#[tokio::test]
async fn an_alarm_in_alarm_rolls_the_deploy_back_naming_it() {
    let dir = tempdir();
    let name = unique("alm");
    component_file(dir.path(), &name);
    let (group, base, new) = fleet(&name, "us-east-1", 2).await;
    let c = conf("us-east-1").await;
    let cw = aws_sdk_cloudwatch::Client::new(&c);
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
        .state_reason("5xx above 5 for a minute")
        .send()
        .await
        .unwrap();
    let deploy = |alarm: &str| {
        parts(
            &gears()
                .current_dir(dir.path())
                .args(["deploy", "--environment", "live", "--ami", &new])
                .args(["--region", "us-east-1", "--batch", "1", "--poll", "0.2"])
                .args(["--alarm", alarm])
                .output()
                .unwrap(),
        )
    };
    let (out, err, code) = deploy("no-such-alarm");
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(
        err.contains("no CloudWatch alarm named no-such-alarm"),
        "{err}"
    );
    let (out, err, code) = deploy(&alarm);
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "alarm {alarm} is in ALARM: 5xx above 5 for a minute"
        )),
        "{out}"
    );
    let (after, _) = images_of_group("us-east-1", &group).await;
    assert!(after.iter().all(|i| i == &base), "{after:?}");
}
