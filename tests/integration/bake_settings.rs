//! The build instance's settings in the component file (issue 36.2): checked without AWS,
//! rendered into both template formats, accepted by Packer 1.6.6's `packer validate`, and the
//! SSH-from-anywhere warning.

use crate::common::{gears, parts, tempdir, unique};
use std::path::Path;

/// A component using every setting, at the component and overridden by a builder.
const EVERY: &str = "repo: r
ami_regions: [us-east-1, eu-west-1]
base_ami: {id: ami-04681a1dbd79675a5}
instance_profile: bake-profile
security_group_ids: [sg-0123456789abcdef0]
ssh_cidrs: [10.0.0.0/16]
ssh_interface: private_ip
root_volume: {size_gb: 20, type: gp3, iops: 3000, throughput: 250, encrypted: true}
spot: {max_price: auto, instance_types: [t3.small, t3a.small]}
tags: {Team: platform, CostCenter: \"42\"}
run_tags: {Owner: ci}
encrypt: {kms_key_id: alias/bake, region_kms_key_ids: {eu-west-1: alias/copy}}
builders:
  - {type: amazon-ebs, name: web}
  - type: amazon-ebs
    name: arm
    base_ami: {id: ami-0a0a0a0a0a0a0a0a0}
    architecture: arm64
    instance_type: t4g.small
    instance_profile: arm-profile
    ssh_interface: session_manager
    root_volume: {size_gb: 30, device_name: /dev/sda1}
    spot: {max_price: 0.05}
    tags: {Arch: arm64}
    run_tags: {Arch: arm64}
";

/// `gears validate` of `text` in a fresh folder: stdout, stderr, exit code and the rendered
/// template.
fn validate(text: &str) -> (String, String, i32, String) {
    let dir = tempdir();
    std::fs::write(dir.path().join("gears.yaml"), text).unwrap();
    let o = gears()
        .current_dir(dir.path())
        .args(["validate", "--work-dir", "w"])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    let template = rendered(&dir.path().join("w"));
    (out, err, code, template)
}

fn rendered(work: &Path) -> String {
    let Ok(mut runs) = std::fs::read_dir(work) else {
        return String::new();
    };
    let run = runs.next().unwrap().unwrap().path();
    ["template.json", "template.pkr.hcl"]
        .iter()
        .find_map(|f| std::fs::read_to_string(run.join(f)).ok())
        .unwrap_or_default()
}

#[test]
fn every_setting_passes_packer_validate_and_is_in_the_template() {
    for format in ["json", "hcl2"] {
        let text = format!(
            "component: {}\ntemplate_format: {format}\n{EVERY}",
            unique("every")
        );
        let (out, err, code, t) = validate(&text);
        assert_eq!(code, 0, "{format}: {err}");
        assert!(out.contains("ok: packer validate"), "{format}: {out}");
        assert!(!err.contains("accepts SSH from anywhere"), "{err}");
        for seen in [
            "iam_instance_profile",
            "bake-profile",
            "arm-profile",
            "security_group_ids",
            "sg-0123456789abcdef0",
            "temporary_security_group_source_cidrs",
            "10.0.0.0/16",
            "ssh_interface",
            "private_ip",
            "session_manager",
            "launch_block_device_mappings",
            "volume_size",
            "volume_type",
            "gp3",
            "iops",
            "3000",
            "throughput",
            "250",
            "encrypted",
            "/dev/xvda",
            "/dev/sda1",
            "30",
            "spot_instance_types",
            "t3a.small",
            "spot_price",
            "spot_tags",
            "auto",
            "0.05",
            "Team",
            "platform",
            "CostCenter",
            "Owner",
            "Arch",
            "arm64",
            "t4g.small",
            "ami-0a0a0a0a0a0a0a0a0",
            "ami-04681a1dbd79675a5",
        ] {
            assert!(t.contains(seen), "{format}: `{seen}` not in\n{t}");
        }
        // Packer 1.6.6 has no metadata_options: not written for it.
        assert!(!t.contains("metadata_options"), "{t}");
    }
}

#[test]
fn ssh_from_anywhere_warns_only_when_it_is_so() {
    let base = "repo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-04681a1dbd79675a5}\n";
    let warns = |extra: &str| {
        let (_, err, code, _) = validate(&format!("component: {}\n{base}{extra}", unique("ssh")));
        assert_eq!(code, 0, "{err}");
        err.contains("the build instance accepts SSH from anywhere")
    };
    assert!(warns(""));
    assert!(warns(
        "builders: [amazon-ebs, {type: amazon-ebs, name: b, ssh_cidrs: [10.0.0.0/8]}]\n"
    ));
    assert!(!warns("ssh_cidrs: [10.0.0.0/8]\n"));
    assert!(!warns("security_group_ids: [sg-0123456789abcdef0]\n"));
    assert!(!warns(
        "ssh_interface: session_manager\ninstance_profile: ssm\n"
    ));
    assert!(!warns("communicator: none\n"));
}

#[test]
fn settings_gears_cannot_carry_are_refused_at_their_place() {
    let base =
        "component: c\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-04681a1dbd79675a5}\n";
    for (extra, at, said) in [
        (
            "tags:\n  Team: a\n  gears:run-id: mine\n",
            (7, 3),
            "`tags` may not set `gears:run-id`: gears writes that tag itself",
        ),
        (
            "builders:\n  - {type: amazon-ebs, run_tags: {Name: x}}\n",
            (6, 35),
            "`run_tags` may not set `Name`",
        ),
        (
            "ssh_cidrs: [10.0.0.0/8, everywhere]\n",
            (5, 1),
            "`everywhere` is not a CIDR",
        ),
        (
            "root_volume: {type: gp2, throughput: 300}\n",
            (5, 26),
            "`throughput` needs `type: gp3`",
        ),
        (
            "spot: {max_price: cheap}\n",
            (5, 7),
            "`cheap` is not a Spot price",
        ),
        (
            "ssh_interface: public_dns\n",
            (5, 16),
            "unknown value `public_dns`",
        ),
        (
            "builders: [{type: amazon-ebs, architecture: arm}]\n",
            (5, 45),
            "unknown value `arm`",
        ),
        ("root_volume: {size: 8}\n", (5, 15), "unknown key `size`"),
        ("builders: [{type: amazon-chroot, name: agent, spot: {max_price: auto}}]\n", (5, 47), "builder `agent` is amazon-chroot, which launches no build instance: `spot` is for amazon-ebs builders"),
        (
            "ssh_interface: session_manager\n",
            (5, 1),
            "`ssh_interface: session_manager` needs an `instance_profile`",
        ),
    ] {
        let (out, err, code, _) = validate(&format!("{base}{extra}"));
        assert_eq!(code, 3, "{extra}: {err}");
        assert_eq!(out, "");
        assert!(err.contains(said), "{extra}: {err}");
        assert!(
            err.contains(&format!("gears.yaml:{}:{}", at.0, at.1)),
            "{extra}: {err}"
        );
    }
}

/// `gears bake --explain` shows each setting per builder and where it came from, before any
/// AWS call (the endpoint is a closed port).
#[test]
fn explain_shows_each_setting_and_its_source() {
    let dir = tempdir();
    let text = format!("component: {}\n{EVERY}", unique("expl"));
    std::fs::write(dir.path().join("gears.yaml"), text).unwrap();
    let o = gears()
        .current_dir(dir.path())
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://{}", crate::common::no_server()),
        )
        .args(["bake", "--explain", "--version", "1", "--git-sha", "a"])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 0, "{err}");
    for line in [
        "  web: instance_profile bake-profile    (from gears.yaml)",
        "  arm: instance_profile arm-profile    (from builders[arm] over the component's, in gears.yaml)",
        "  arm: base AMI ami-0a0a0a0a0a0a0a0a0    (from builders[arm] in gears.yaml)",
        "  arm: architecture arm64    (from builders[arm] in gears.yaml;",
        "  arm: ssh_cidrs [\"10.0.0.0/16\"]    (from gears.yaml)",
        "  arm: ssh_interface session_manager    (from builders[arm] over the component's, in gears.yaml)",
        "  arm: root_volume {\"size_gb\":30,\"type\":\"gp3\",\"iops\":3000,\"throughput\":250,\"encrypted\":true,\"device_name\":\"/dev/sda1\"}    (from builders[arm] over the component's, in gears.yaml)",
        "  arm: spot {\"max_price\":\"0.05\",\"instance_types\":[]}    (from builders[arm] over the component's, in gears.yaml)",
        "  arm: tags {\"Arch\":\"arm64\",\"CostCenter\":\"42\",\"Team\":\"platform\"}    (from builders[arm] over the component's, in gears.yaml)",
        "  web: run_tags {\"Owner\":\"ci\"}    (from gears.yaml)",
        "template format    json    (from the default on Packer 1.6.6)",
    ] {
        assert!(out.contains(line), "`{line}` not in\n{out}");
    }
}
