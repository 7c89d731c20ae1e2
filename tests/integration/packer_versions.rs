//! gears on the Packer versions it supports, where this machine has only Debian's 1.6.6: a
//! stand-in `packer` that answers `packer version` as current Packer does and records what
//! gears asks it, passing everything else to the real 1.6.6. No AWS is reached: the endpoint
//! is a closed port, so a call made by mistake would be exit 5, not the exit asserted.

use crate::common::{gears, parts, script, tempdir, unique};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// What `packer version` of HashiCorp's 1.11.2 printed with the version check on.
const CURRENT: &str = "Packer v1.11.2\n\nYour version of Packer is out of date! The latest version\nis 1.14.3. You can update by downloading from www.packer.io/downloads\n";

/// A stand-in packer of `version_text`: `plugins installed` lists `installed`, `init` fails as
/// it does without network (unless `init_ok`), every call is appended to `calls.log`.
fn stand_in(dir: &Path, version_text: &str, installed: &str, init_ok: bool) -> PathBuf {
    let fake = dir.join("packer");
    let log = dir.join("calls.log");
    script(
        &fake,
        &format!(
            r#"echo "$*" >> '{log}'
case "$1" in
  version) printf '%s' '{version_text}'; exit 0 ;;
  plugins) printf '%s' '{installed}'; exit 0 ;;
  init) cp "$2" '{dir}/init-input.pkr.hcl'; {init}; exit 0 ;;
  *) exec packer "$@" ;;
esac
"#,
            log = log.display(),
            dir = dir.display(),
            init = if init_ok {
                "true"
            } else {
                "echo 'Failed getting the \"github.com/hashicorp/amazon\" plugin: could not reach api.github.com' >&2; exit 1"
            },
        ),
    );
    fake
}

fn component(dir: &Path, name: &str, extra: &str) {
    std::fs::write(
        dir.join("gears.yaml"),
        format!("component: {name}\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {{id: ami-04681a1dbd79675a5}}\ncommunicator: none\n{extra}"),
    )
    .unwrap();
}

fn bake(dir: &Path, packer: &Path, extra: &[&str]) -> (String, String, i32) {
    let o = gears()
        .current_dir(dir)
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://{}", crate::common::no_server()),
        )
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .args(["bake", "--version", "1", "--git-sha", "a", "--packer"])
        .arg(packer)
        .args(extra)
        .output()
        .unwrap();
    parts(&o)
}

/// Packer 1.11.2 without the amazon plugin and a component's own JSON template: stops before
/// any AWS call with the command that installs it, exit 4 (as a missing packer).
#[test]
fn a_missing_plugin_on_current_packer_stops_before_aws_naming_the_install_command() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("own.json.tera"),
        std::fs::read_to_string(format!("{ROOT}/templates/packer.json.tera")).unwrap(),
    )
    .unwrap();
    component(dir.path(), &unique("plug"), "template: own.json.tera\n");
    let packer = stand_in(dir.path(), CURRENT, "", true);
    let (out, err, code) = bake(dir.path(), &packer, &[]);
    assert_eq!(code, 4, "{err}");
    assert_eq!(out, "");
    assert!(
        err.contains("Packer 1.11.2 ships no builders or provisioners, and the amazon plugin is not installed"),
        "{err}"
    );
    assert!(
        err.contains("packer plugins install github.com/hashicorp/amazon"),
        "{err}"
    );
    let calls = std::fs::read_to_string(dir.path().join("calls.log")).unwrap();
    assert_eq!(calls, "version\nplugins installed\n", "no init for JSON");

    // Once installed, the check passes and the bake goes on (to AWS: the closed port, exit 5).
    let listed = "/root/.config/packer/plugins/github.com/hashicorp/amazon/packer-plugin-amazon_v1.3.3_x5.0_linux_amd64\n";
    let packer = stand_in(dir.path(), CURRENT, listed, true);
    let (_, err, code) = bake(dir.path(), &packer, &[]);
    assert_eq!(code, 5, "{err}");
}

/// Current Packer renders HCL2 by default and runs `packer init` on the `required_plugins`
/// block before any AWS call; a failed init is exit 4 naming the install command.
#[test]
fn current_packer_gets_hcl2_and_packer_init_before_aws() {
    let dir = tempdir();
    component(dir.path(), &unique("init"), "");
    let packer = stand_in(dir.path(), CURRENT, "", false);
    let (_, err, code) = bake(dir.path(), &packer, &[]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("packer init could not install the plugins"),
        "{err}"
    );
    assert!(err.contains("could not reach api.github.com"), "{err}");
    assert!(
        err.contains("packer plugins install github.com/hashicorp/amazon"),
        "{err}"
    );
    let block = std::fs::read_to_string(dir.path().join("init-input.pkr.hcl")).unwrap();
    assert!(
        block.contains("source  = \"github.com/hashicorp/amazon\""),
        "{block}"
    );
    assert!(!block.contains("ansible"), "no ansible-local here: {block}");

    let (out, err, code) = bake(dir.path(), &packer, &["--explain"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("packer             1.11.2"), "{out}");
    assert!(
        out.contains("template format    hcl2    (from the default on Packer 1.11.2)"),
        "{out}"
    );
    assert!(
        out.contains("build instance IMDS as test.imds (metadata_options, Packer 1.7 and later)"),
        "{out}"
    );

    // Debian's 1.6.6: JSON by default, no init, no plugin check.
    let (out, err, code) = bake(dir.path(), Path::new("packer"), &["--explain"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("template format    json    (from the default on Packer 1.6.6)"),
        "{out}"
    );
    assert!(!out.contains("packer plugins"), "{out}");
    assert!(
        out.contains(
            "build instance IMDS the account's default: Packer 1.6.6 has no metadata_options"
        ),
        "{out}"
    );
}

/// The built-in HCL2 template with each builder type and ansible-local over SSH passes Packer
/// 1.6.6's `packer validate`, as the JSON one does (`gears validate`, no AWS).
#[test]
fn the_hcl2_template_of_every_builder_passes_packer_validate() {
    let dir = tempdir();
    let ansible = format!("{ROOT}/examples/hello-service/ansible");
    std::fs::write(
        dir.path().join("gears.yaml"),
        format!("component: {}\nrepo: r\nami_regions: [us-east-1, eu-west-1]\nbuilders: [amazon-ebs, {{type: amazon-chroot, name: agent}}]\nbase_ami: {{name: \"amzn2-*\", owners: [amazon]}}\ntemplate_format: hcl2\nansible:\n  playbook: {ansible}/site.yml\n  roles: [{ansible}/roles]\n  vars: {{v: \"${{x}} %{{y}}\"}}\n", unique("hclv")),
    )
    .unwrap();
    let o = gears()
        .current_dir(dir.path())
        .args(["validate", "--work-dir", "w"])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok: template renders to HCL2 (Packer 1.6.6)"),
        "{out}"
    );
    assert!(out.contains("ok: packer validate"), "{out}");
    let run = std::fs::read_dir(dir.path().join("w"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let t = std::fs::read_to_string(run.path().join("template.pkr.hcl")).unwrap();
    assert!(t.contains("source \"amazon-chroot\" \"agent\""), "{t}");
    assert!(t.contains("provisioner \"ansible-local\""), "{t}");
    assert!(
        !t.contains("required_plugins"),
        "1.6.6 knows no packer block: {t}"
    );
}
