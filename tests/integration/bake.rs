//! `gears bake` and `gears validate` end to end: the real packer binary against moto.
//! Every test bakes its own component name, so tests share one moto without resetting it.

use crate::common::{gears, need, parts, tempdir, unique};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// gears with moto's environment (set by scripts/test.sh) and ansible on PATH.
fn gears_aws(dir: &Path) -> Command {
    need("GEARS_TEST_MOTO");
    let mut c = gears();
    let path = format!(
        "{}/bin:{}",
        need("GEARS_TEST_VENV"),
        std::env::var("PATH").unwrap_or_default()
    );
    c.env("PATH", path).current_dir(dir);
    c
}

/// gears for tests that end before any AWS call (bad input, --explain, no credentials): no
/// server needed; the endpoint is a closed port, so a call made by mistake fails.
fn gears_local(dir: &Path) -> Command {
    let mut c = gears();
    c.current_dir(dir)
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://{}", crate::common::no_server()),
        )
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    c
}

/// A component file using the example's playbook and roles.
fn component(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let ansible = format!("{ROOT}/examples/hello-service/ansible");
    let text = format!(
        "component: {name}\nrepo: https://git.example.com/team/{name}.git\nami_regions: [us-east-1, eu-west-1]\nbuilders:\n  - {{type: amazon-ebs, name: web}}\n  - {{type: amazon-ebs, name: worker, instance_type: t3.small}}\nbase_ami:\n  name: amzn2-ami-hvm-2.0.*-x86_64-gp2\n  owners: [amazon]\ncommunicator: none\nansible:\n  playbook: {ansible}/site.yml\n  roles: [{ansible}/roles]\n  vars:\n    greeting: hello\n{extra}"
    );
    let path = dir.join("gears.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn ec2(region: &str) -> aws_sdk_ec2::Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .load()
        .await;
    aws_sdk_ec2::Client::new(&conf)
}

async fn images_of(region: &str, component: &str) -> Vec<aws_sdk_ec2::types::Image> {
    ec2(region)
        .await
        .describe_images()
        .owners("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:COMPONENT_NAME")
                .values(component)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .images()
        .to_vec()
}

fn tags(img: &aws_sdk_ec2::types::Image) -> BTreeMap<String, String> {
    img.tags()
        .iter()
        .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
        .collect()
}

/// Instances gears launched for this component that are not terminated.
async fn live_instances(component: &str) -> Vec<String> {
    let out = ec2("us-east-1")
        .await
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:gears:component")
                .values(component)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()) != Some("terminated"))
        .map(|i| i.instance_id().unwrap_or_default().to_owned())
        .collect()
}

/// `gears bake` of version 1.0.0 at revision abc on moto in `dir`, writing the manifest `m`:
/// stdout, stderr and the exit code.
fn bake_1_0_0(dir: &Path, m: &Path) -> (String, String, i32) {
    parts(
        &gears_aws(dir)
            .args(["bake", "--version", "1.0.0", "--git-sha", "abc"])
            .args(["--manifest", m.to_str().unwrap()])
            .output()
            .unwrap(),
    )
}

fn manifest(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A `gears bake` of version 1 (git sha `a`) in `dir`, against moto: stdout, stderr, exit code.
fn bake_v1(dir: &Path) -> (String, String, i32) {
    parts(
        &gears_aws(dir)
            .args(["bake", "--version", "1", "--git-sha", "a"])
            .output()
            .unwrap(),
    )
}

/// Component file `f` with `from` replaced by `to` (which must be there).
fn edit(f: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(f).unwrap();
    assert!(text.contains(from), "{from:?} not in {text}");
    std::fs::write(f, text.replace(from, to)).unwrap();
}

#[tokio::test]
async fn bake_two_builders_into_two_regions_then_reuse() {
    let dir = tempdir();
    let name = unique("svc");
    component(dir.path(), &name, "");
    let m = dir.path().join("out/manifest.json");
    let run = |extra: &[&str]| {
        let mut c = gears_aws(dir.path());
        c.args([
            "bake",
            "--version",
            "2.5.0",
            "--git-sha",
            "0a1b2c3d",
            "--manifest",
            m.to_str().unwrap(),
        ])
        .args(extra);
        parts(&c.output().unwrap())
    };
    let (out, err, code) = run(&[]);
    assert_eq!(code, 0, "{err}");
    let first = manifest(&m);
    assert_eq!(first["reused"], false);
    assert_eq!(first["component"], name.as_str());
    assert_eq!(first["version"], "2.5.0");
    assert!(
        first["packer_run_uuid"]
            .as_str()
            .is_some_and(|u| u.len() == 36),
        "{first}"
    );
    assert_eq!(
        out.lines().count(),
        4,
        "one line per builder and region:\n{out}"
    );
    for builder in ["web", "worker"] {
        for region in ["us-east-1", "eu-west-1"] {
            let ami = first["amis"][builder][region]
                .as_str()
                .unwrap_or_else(|| panic!("{first}"));
            assert!(
                out.contains(&format!("{region}\t{builder}\t{ami}\n")),
                "{out}"
            );
            // Read the tags back from the AMI in its own region.
            let imgs = images_of(region, &name).await;
            let img = imgs
                .iter()
                .find(|i| i.image_id() == Some(ami))
                .unwrap_or_else(|| panic!("{ami} not in {region}"));
            let t = tags(img);
            assert_eq!(t["COMPONENT_NAME"], name);
            assert_eq!(t["COMPONENT_VERSION"], "2.5.0");
            assert_eq!(t["GIT_SHA"], "0a1b2c3d");
            assert_eq!(
                t["COMPONENT_REPO"],
                format!("https://git.example.com/team/{name}.git")
            );
            let created = &t["CREATED_AT"];
            assert!(
                created.len() == 12 && created.bytes().all(|b| b.is_ascii_digit()),
                "{created}"
            );
            assert_eq!(t["AMI_VERSION"], format!("2.5.0-{created}"));
            assert_eq!(t["gears:builder"], builder);
            assert_eq!(t["gears:base-ami"], first["base_ami"].as_str().unwrap());
            assert_eq!(t["gears:run-id"], first["run_id"].as_str().unwrap());
            let run = first["run_id"].as_str().unwrap();
            assert_eq!(
                img.name().unwrap(),
                format!("{name}-2.5.0-{builder}-{created}-{}", &run[run.len() - 8..])
            );
        }
    }
    // The snapshots behind the AMIs carry the same tags, in both regions.
    for region in ["us-east-1", "eu-west-1"] {
        let snaps = ec2(region)
            .await
            .describe_snapshots()
            .owner_ids("self")
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag:gears:run-id")
                    .values(first["run_id"].as_str().unwrap())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert!(
            snaps.snapshots().len() >= 2,
            "a snapshot per builder in {region}: {snaps:?}"
        );
        for snap in snaps.snapshots() {
            let t: BTreeMap<_, _> = snap
                .tags()
                .iter()
                .map(|t| (t.key().unwrap(), t.value().unwrap()))
                .collect();
            assert_eq!(t["COMPONENT_VERSION"], "2.5.0");
            assert_eq!(t["GIT_SHA"], "0a1b2c3d");
        }
    }
    let env = std::fs::read_to_string(dir.path().join("out/manifest.env")).unwrap();
    assert!(
        env.contains(&format!(
            "GEARS_AMI_WEB_EU_WEST_1='{}'",
            first["amis"]["web"]["eu-west-1"].as_str().unwrap()
        )),
        "{env}"
    );
    assert!(
        err.contains("web: Creating AMI"),
        "progress per builder:\n{err}"
    );
    for builder in ["web", "worker"] {
        // packer says it per artifact (the builder's, the manifest's copy): shown once.
        let said = format!("{builder}: AMIs were created:");
        assert_eq!(err.matches(&said).count(), 1, "{said}\n{err}");
        let ami = first["amis"][builder]["eu-west-1"].as_str().unwrap();
        assert_eq!(
            err.matches(&format!("eu-west-1: {ami}")).count(),
            1,
            "{err}"
        );
    }
    assert!(
        live_instances(&name).await.is_empty(),
        "the build instances are terminated"
    );

    // The same component, version and sha again: the AMIs are reused, nothing is baked.
    let (out2, err2, code2) = run(&[]);
    assert_eq!(code2, 0, "{err2}");
    let second = manifest(&m);
    assert_eq!(second["reused"], true);
    assert_eq!(second["amis"], first["amis"]);
    for same in ["run_id", "created_at", "ami_version", "base_ami"] {
        assert_eq!(
            second[same], first[same],
            "the reused manifest describes the AMIs found: {same}"
        );
    }
    assert_eq!(out2, out);
    assert!(err2.contains("already baked: reusing"), "{err2}");
    assert_eq!(images_of("us-east-1", &name).await.len(), 2, "no new AMI");

    // --force bakes again.
    let (out3, err3, code3) = run(&["--force", "--output", "json"]);
    assert_eq!(code3, 0, "{err3}");
    let third = manifest(&m);
    assert_eq!(third["reused"], false);
    let printed: serde_json::Value =
        serde_json::from_str(&out3).expect("stdout is the manifest as JSON");
    assert_eq!(printed, third);
    assert_ne!(
        third["amis"]["web"]["us-east-1"],
        first["amis"]["web"]["us-east-1"]
    );
}

const NASTY_VERSION: &str = "1.0 it's $HOME; `id` }} {% \"q\"";

#[tokio::test]
async fn values_with_shell_and_template_metacharacters_arrive_intact() {
    hostile_values_arrive_intact("meta", "", NASTY_VERSION).await;
}

/// The same through an HCL2 template (Packer 1.6.6 reads it too), with HCL2's own template
/// syntax in the values besides: `${`, `%{` and an escape already written, `$${`.
#[tokio::test]
async fn values_arrive_intact_through_an_hcl2_template() {
    let version = format!("{NASTY_VERSION} ${{v}} %{{w}} $${{x}}");
    let t = hostile_values_arrive_intact("hcl", "template_format: hcl2\n", &version).await;
    assert!(t.contains("build {"), "{t}");
    assert!(t.contains("source \"amazon-ebs\" \"worker\""), "{t}");
}

/// The second builder of the hostile-value bakes: arm64, with its own base AMI (a lookup
/// among moto's Amazon Linux 2 arm64 images), on a Graviton type.
const ARM_WORKER: &str = "  - {type: amazon-ebs, name: worker, architecture: arm64, instance_type: t4g.small, base_ami: {name: \"amzn2-ami-kernel-5.10-hvm-2.0.*-arm64-gp2\", owners: [amazon]}}\n";

/// Bakes a component whose version and vars hold what shells, Packer and HCL2 would read as
/// syntax, and checks that the rendered template, the extra vars, the vars file and the tags
/// hold them exactly. Returns the rendered template.
async fn hostile_values_arrive_intact(prefix: &str, top: &str, version: &str) -> String {
    let dir = tempdir();
    let name = unique(prefix);
    let nasty_var = "a b\n'c' $HOME; rm -rf / }} {% \\ \"d\" $(id) `id` ${HOME} %{if} $${x}";
    let extra = format!(
        "    nasty: {}\n    list: [\"x y\", \"$(id)\"]\n{top}",
        serde_json::to_string(nasty_var).unwrap()
    );
    let file = component(dir.path(), &name, &extra);
    if top.contains("hcl2") {
        let text = std::fs::read_to_string(&file).unwrap().replace(
            "  - {type: amazon-ebs, name: worker, instance_type: t3.small}\n",
            ARM_WORKER,
        );
        assert!(text.contains("arm64"), "{text}");
        std::fs::write(&file, text).unwrap();
    }

    // The rendered template is valid JSON, and its ansible arguments, after Packer's template
    // engine and `sh -c`, give back the exact values.
    let o = gears_aws(dir.path())
        .args([
            "bake",
            "--dry-run",
            "--version",
            version,
            "--git-sha",
            "beef",
        ])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("packer validate: ok"), "{err}");
    let inline = match serde_json::from_str::<serde_json::Value>(&out) {
        Ok(t) => {
            assert_eq!(t["builders"][0]["tags"]["COMPONENT_VERSION"], version);
            t["provisioners"][0]["inline"][0]
                .as_str()
                .unwrap()
                .to_owned()
        }
        Err(_) => hcl_inline(&out),
    };
    let args_str = inline.split_once(" --extra-vars ").map(|(_, a)| a).unwrap();
    let sh = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "python3 -c 'import sys, json; print(json.dumps(sys.argv[1:]))' {args_str}"
        ))
        .output()
        .unwrap();
    let argv: Vec<String> = serde_json::from_slice(&sh.stdout).unwrap();
    assert_eq!(argv.len(), 1, "one word: {argv:?}");
    let vars: serde_json::Value = serde_json::from_str(&argv[0]).unwrap();
    assert_eq!(vars["COMPONENT_NAME"], name.as_str());
    assert_eq!(vars["COMPONENT_VERSION"], version);
    assert_eq!(vars["nasty"], nasty_var);
    assert_eq!(vars["list"], serde_json::json!(["x y", "$(id)"]));

    // A real bake: packer's template engine and shell-local's sh run on these values (the
    // playbook syntax check gets the extra vars), and the tags come back exact. It runs from
    // the parent folder with relative paths, as a CI job at the top of a monorepo would.
    let sub = dir.path().file_name().unwrap().to_str().unwrap().to_owned();
    let o = gears_aws(dir.path().parent().unwrap())
        .args([
            "bake",
            "-c",
            &format!("{sub}/gears.yaml"),
            "--version",
            version,
            "--git-sha",
            "beef",
        ])
        .args([
            "--manifest",
            &format!("{sub}/m.json"),
            "--work-dir",
            &format!("{sub}/work"),
        ])
        .output()
        .unwrap();
    let (_, err, code) = parts(&o);
    assert_eq!(code, 0, "{err}");
    assert!(dir.path().join("m.json").is_file() && dir.path().join("m.env").is_file());
    assert!(dir.path().join("work").is_dir());
    let m = manifest(&dir.path().join("m.json"));
    let vars_file = dir
        .path()
        .join("work")
        .join(m["run_id"].as_str().unwrap())
        .join("gears-vars/extra-vars.yml");
    let vars_text = std::fs::read_to_string(&vars_file).unwrap();
    let from_file: serde_json::Value = yaml_unsafe(&vars_text);
    assert_eq!(from_file["COMPONENT_VERSION"], version, "{vars_text}");
    assert_eq!(from_file["nasty"], nasty_var, "{vars_text}");
    for region in ["us-east-1", "eu-west-1"] {
        let imgs = images_of(region, &name).await;
        assert_eq!(imgs.len(), 2, "{region}");
        for img in &imgs {
            let t = tags(img);
            assert_eq!(t["COMPONENT_VERSION"], version);
            assert_eq!(t["AMI_VERSION"], format!("{version}-{}", t["CREATED_AT"]));
            assert!(t["gears:base-ami"].starts_with("ami-"), "{t:?}");
            if top.contains("hcl2") {
                // The arm64 builder was baked from its own base AMI, an arm64 one.
                let base = &t["gears:base-ami"];
                let want = if t["gears:builder"] == "worker" {
                    "arm64"
                } else {
                    "x86_64"
                };
                let found = ec2("us-east-1")
                    .await
                    .describe_images()
                    .image_ids(base)
                    .send()
                    .await
                    .unwrap();
                let arch = found.images()[0]
                    .architecture()
                    .unwrap()
                    .as_str()
                    .to_owned();
                assert_eq!(arch, want, "{t:?}");
            }
            assert!(
                img.name()
                    .unwrap()
                    .starts_with(&format!("{name}-1.0 it's -HOME- -id- -- -- -q-")),
                "{:?}",
                img.name()
            );
        }
    }
    out
}

/// The shell-local `inline` command of a rendered HCL2 template, its HCL2 string read back
/// (the escapes `hcl` writes: `\\`, `\"`, `\n`, `$${`, `%%{`).
fn hcl_inline(t: &str) -> String {
    let line = t
        .lines()
        .find(|l| l.trim_start().starts_with("inline = [\""))
        .unwrap_or_else(|| panic!("no inline in {t}"));
    let quoted = line
        .trim()
        .trim_start_matches("inline = [")
        .trim_end_matches(']');
    // An HCL2 string with these escapes is a JSON string once HCL2's own are undone.
    let json = quoted.replace("$${", "${").replace("%%{", "%{");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {quoted}"))
}

/// The vars file's YAML read back with PyYAML, `!unsafe` taken as a plain string (as Ansible
/// reads it), as JSON.
fn yaml_unsafe(text: &str) -> serde_json::Value {
    let py = "import sys, json, yaml\nclass L(yaml.SafeLoader): pass\nL.add_constructor('!unsafe', lambda l, n: l.construct_scalar(n))\nprint(json.dumps(yaml.load(sys.stdin.read(), Loader=L)))";
    let mut c = Command::new(format!("{}/bin/python3", need("GEARS_TEST_VENV")))
        .args(["-c", py])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn values_that_cannot_be_carried_are_refused() {
    let dir = tempdir();
    component(dir.path(), &unique("ctl"), "    bell: \"ring\\a\"\n");
    let o = gears_local(dir.path())
        .args(["bake", "--dry-run", "--version", "1", "--git-sha", "a"])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 3, "{err}");
    assert_eq!(out, "");
    assert!(
        err.contains("ansible var `bell` contains the control character U+0007"),
        "{err}"
    );
    // Packer 1.6 evaluates `{{` wherever it appears (measured: escapes and -var-file values
    // come back evaluated), so such a value is refused rather than changed.
    let dir = tempdir();
    component(dir.path(), &unique("tpl"), "");
    let o = gears_local(dir.path())
        .args([
            "bake",
            "--dry-run",
            "--version",
            "1.0-{{timestamp}}",
            "--git-sha",
            "a",
        ])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 3, "{err}");
    assert_eq!(out, "");
    assert!(
        err.contains("error: --version flag: version contains `{{`, which Packer 1.6 evaluates"),
        "{err}"
    );
    // HCL2 does not lift it: Packer runs HCL2 strings through the same Go template engine.
    let dir = tempdir();
    component(dir.path(), &unique("tplh"), "template_format: hcl2\n");
    let o = gears_local(dir.path())
        .args([
            "bake",
            "--dry-run",
            "--version",
            "1.0-{{timestamp}}",
            "--git-sha",
            "a",
        ])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!((code, out.as_str()), (3, ""), "{err}");
    assert!(err.contains("version contains `{{`"), "{err}");
}

#[tokio::test]
async fn unknown_base_ami_is_a_clear_error_and_launches_nothing() {
    let dir = tempdir();
    let name = unique("noami");
    let f = component(dir.path(), &name, "");
    edit(
        &f,
        "base_ami:\n  name: amzn2-ami-hvm-2.0.*-x86_64-gp2\n  owners: [amazon]\n",
        "base_ami: {id: ami-0123456789abcdef0}\n",
    );
    let (out, err, code) = bake_v1(dir.path());
    assert_eq!(code, 3, "{err}");
    assert_eq!(out, "");
    assert!(
        err.contains("base AMI ami-0123456789abcdef0 does not exist in us-east-1"),
        "{err}"
    );
    assert!(err.contains("hint: check `base_ami`"), "{err}");
    assert!(live_instances(&name).await.is_empty());
    let f2 = component(dir.path(), &name, "");
    edit(&f2, "amzn2-ami-hvm-2.0.*", "no-such-image-*");
    let (_, err, code) = bake_v1(dir.path());
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("no base AMI in us-east-1 matches name \"no-such-image-*-x86_64-gp2\""),
        "{err}"
    );
}

/// A builder that asks for arm64 on an x86_64 base AMI (moto's DescribeImages says which) is
/// exit 3 naming both, before anything is launched.
#[tokio::test]
async fn an_architecture_unlike_the_base_amis_is_exit_3_and_launches_nothing() {
    let dir = tempdir();
    let name = unique("arch");
    let f = component(dir.path(), &name, "");
    edit(
        &f,
        "  - {type: amazon-ebs, name: worker, instance_type: t3.small}\n",
        "  - {type: amazon-ebs, name: worker, architecture: arm64}\n",
    );
    let (out, err, code) = bake_v1(dir.path());
    assert_eq!(code, 3, "{err}");
    assert_eq!(out, "");
    assert!(
        err.contains("builder `worker` is arm64, but its base AMI ami-"),
        "{err}"
    );
    assert!(err.contains(") is x86_64"), "{err}");
    assert!(live_instances(&name).await.is_empty());
}

#[tokio::test]
async fn failing_provisioner_is_exit_4_with_packers_error_and_the_log() {
    let dir = tempdir();
    let name = unique("fail");
    component(
        dir.path(),
        &name,
        &format!("template: {ROOT}/tests/fixtures/bake/failing-provisioner.json.tera\n"),
    );
    let (out, err, code) = bake_v1(dir.path());
    assert_eq!(code, 4, "{err}");
    assert_eq!(out, "");
    assert!(
        err.contains("error: packer build failed (exit code 1):"),
        "{err}"
    );
    assert!(
        err.contains("Script exited with non-zero exit status: 3"),
        "{err}"
    );
    let log = err
        .lines()
        .find_map(|l| l.strip_prefix("hint: the full packer log is in "))
        .unwrap_or_else(|| panic!("{err}"));
    let log = dir.path().join(log);
    assert!(
        std::fs::read_to_string(&log).unwrap().contains(",error,"),
        "the log is packer's machine-readable output"
    );
    assert!(
        !dir.path().join("gears-manifest.json").exists(),
        "no manifest for a failed bake"
    );
    assert!(
        live_instances(&name).await.is_empty(),
        "packer cleaned up its instances"
    );
    assert!(images_of("us-east-1", &name).await.is_empty());
}

#[tokio::test]
async fn sigint_waits_for_packers_cleanup_then_exits_130() {
    interrupt("INT", 130, false).await;
}

#[tokio::test]
async fn sigterm_waits_for_packers_cleanup_then_exits_143_with_heartbeats_meanwhile() {
    interrupt("TERM", 143, true).await;
}

async fn interrupt(signal: &str, code: i32, heartbeat: bool) {
    use std::io::{BufRead, BufReader};
    let dir = tempdir();
    let name = unique("int");
    component(
        dir.path(),
        &name,
        &format!("template: {ROOT}/tests/fixtures/bake/slow-provisioner.json.tera\n"),
    );
    let mut child = gears_aws(dir.path())
        .args([
            "bake",
            "--version",
            "1",
            "--git-sha",
            "a",
            "--heartbeat",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if seen.contains("provisioning-started")
            && (!heartbeat || line.contains("bake: still running after"))
        {
            break;
        }
        line.clear();
    }
    assert!(seen.contains("provisioning-started"), "{seen}");
    assert!(
        !live_instances(&name).await.is_empty(),
        "a build instance is running"
    );
    assert!(Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(code), "{seen}{rest}");
    assert!(
        rest.contains(&format!(
            "SIG{signal} received: waiting for packer to clean up"
        )),
        "{rest}"
    );
    assert!(
        rest.contains(&format!("interrupted by SIG{signal}; cleanup finished")),
        "{rest}"
    );
    assert!(
        live_instances(&name).await.is_empty(),
        "packer terminated the build instance before gears exited"
    );
    assert!(images_of("us-east-1", &name).await.is_empty());
}

#[test]
fn malformed_component_file_names_the_place() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("gears.yaml"),
        "component: svc\nami_regions: [us-east-1]\nbase_ami: {id: ami-04681a1dbd79675a5}\nbuilders:\n  - type: amazon-ebs\n    instnce_type: t3.large\n",
    )
    .unwrap();
    let (out, err, code) = parts(
        &gears_local(dir.path())
            .args(["bake", "--version", "1", "--git-sha", "a"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 3);
    assert_eq!(out, "");
    assert!(err.contains("error: gears.yaml:6:5: "), "{err}");
    assert!(err.contains("hint: did you mean `instance_type`?"), "{err}");
    let (_, err, code) = parts(
        &gears_local(dir.path())
            .args(["bake", "-c", "missing.yaml"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 3);
    assert!(err.contains("cannot read missing.yaml"), "{err}");
}

#[test]
fn missing_packer_and_missing_credentials_are_clear() {
    let dir = tempdir();
    component(dir.path(), &unique("nopk"), "");
    let (_, err, code) = parts(
        &gears_aws(dir.path())
            .args([
                "bake",
                "--version",
                "1",
                "--git-sha",
                "a",
                "--packer",
                "/nonexistent/packer",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("packer is not installed"), "{err}");
    assert!(err.contains("hint: install Packer"), "{err}");

    let (_, err, code) = parts(
        &gears_local(dir.path())
            .args(["bake", "--version", "1", "--git-sha", "a"])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap(),
    );
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("no AWS credentials"), "{err}");
}

#[test]
fn explain_shows_where_values_come_from() {
    let dir = tempdir();
    component(dir.path(), &unique("expl"), "");
    let (out, err, code) = parts(
        &gears_local(dir.path())
            .args(["bake", "--explain"])
            .env("GO_PIPELINE_LABEL", "77")
            .env("GO_REVISION_SERVICE", "f00d")
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("version            77    (from GO_PIPELINE_LABEL (GoCD))"),
        "{out}"
    );
    assert!(
        out.contains("git sha            f00d    (from GO_REVISION_SERVICE (GoCD))"),
        "{out}"
    );
    assert!(out.contains("(from component file `repo`)"), "{out}");
}

/// The AMI name `--explain` shows is the one the bake then makes: the parts only the bake
/// knows (its minute and run id) are placeholders, everything else is exact.
#[tokio::test]
async fn explain_shows_the_ami_name_the_bake_then_uses() {
    let dir = tempdir();
    let name = unique("explname");
    small_component(dir.path(), &name, &["web"], "");
    let (out, err, code) = bake_version(dir.path(), "4.2.0", "e1", &["--explain"]);
    assert_eq!(code, 0, "{err}");
    let explained = out
        .lines()
        .find_map(|l| l.split_once("web (amazon-ebs): AMI name ").map(|(_, n)| n))
        .unwrap_or_else(|| panic!("{out}"))
        .trim()
        .to_owned();
    assert_eq!(explained, format!("{name}-4.2.0-web-<created-at>-<run-id>"));
    let (_, err, code) = bake_version(dir.path(), "4.2.0", "e1", &[]);
    assert_eq!(code, 0, "{err}");
    let m = manifest(&dir.path().join("gears-manifest.json"));
    let run = m["run_id"].as_str().unwrap();
    let baked = explained
        .replace("<created-at>", m["created_at"].as_str().unwrap())
        .replace("<run-id>", &run[run.len() - 8..]);
    let images = images_of("us-east-1", &name).await;
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].name(), Some(baked.as_str()));
}

#[test]
fn validate_checks_template_with_packer_and_playbook_with_ansible() {
    let dir = tempdir();
    let f = component(dir.path(), &unique("val"), "");
    // amazon-chroot cannot run off EC2, but its template is rendered and validated.
    let text = std::fs::read_to_string(&f).unwrap().replace(
        "name: worker, instance_type: t3.small",
        "type: amazon-chroot, name: agent",
    );
    std::fs::write(
        &f,
        text.replace(
            "{type: amazon-ebs, type: amazon-chroot",
            "{type: amazon-chroot",
        ),
    )
    .unwrap();
    let (out, err, code) = parts(&gears_aws(dir.path()).args(["validate"]).output().unwrap());
    let (json, _, jcode) = parts(
        &gears_aws(dir.path())
            .args(["validate", "--output", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(jcode, 0);
    let checks: serde_json::Value = serde_json::from_str(&json).expect("a JSON list");
    assert!(
        checks
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["status"] == "ok" && c["check"] == "packer validate"),
        "{json}"
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok: packer validate"), "{out}");
    assert!(out.contains("ok: ansible-playbook --syntax-check"), "{out}");
    // With SSH (real AWS) the ansible-local provisioner is rendered, and packer accepts it.
    let ssh = std::fs::read_to_string(&f)
        .unwrap()
        .replace("communicator: none\n", "");
    std::fs::write(&f, &ssh).unwrap();
    let (out, err, code) = parts(&gears_aws(dir.path()).args(["validate"]).output().unwrap());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok: packer validate"), "{out}");
    let (out, _, _) = parts(
        &gears_aws(dir.path())
            .args(["bake", "--dry-run", "--version", "1", "--git-sha", "a"])
            .output()
            .unwrap(),
    );
    let t: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(t["provisioners"][0]["type"], "ansible-local", "{out}");

    let pb = dir.path().join("broken.yml");
    std::fs::write(
        &pb,
        "- hosts: all\n  tasks:\n    - name: x\n      no_such_module_xyz: {}\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&f).unwrap();
    let start = text.find("  playbook: ").unwrap();
    let end = start + text[start..].find('\n').unwrap();
    std::fs::write(
        &f,
        format!("{}  playbook: broken.yml{}", &text[..start], &text[end..]),
    )
    .unwrap();
    let (_, err, code) = parts(&gears_aws(dir.path()).args(["validate"]).output().unwrap());
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("ansible-playbook --syntax-check failed"),
        "{err}"
    );
}

#[test]
fn live_view_on_a_terminal() {
    // `script` gives gears a pseudo-terminal, as a person at a terminal would have; outside CI
    // gears then draws a live view per builder instead of timestamped lines.
    let dir = tempdir();
    component(dir.path(), &unique("tty"), "");
    let cmd = format!(
        "{} bake --version 3.0 --git-sha ab",
        env!("CARGO_BIN_EXE_gears")
    );
    let path = format!(
        "{}/bin:{}",
        need("GEARS_TEST_VENV"),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("PATH", path)
        .env_remove("CI")
        .env_remove("BUILD_NUMBER")
        .env_remove("JENKINS_URL")
        .env_remove("GO_SERVER_URL")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let (out, _, code) = parts(&o);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("web") && out.contains("worker") && out.contains("done"),
        "{out}"
    );
    assert!(
        out.contains("\x1b["),
        "a live view redraws with escape sequences:\n{out}"
    );
    let plain = regex::Regex::new(r"\[\d\d:\d\d:\d\d\] web: ").unwrap();
    assert!(
        !plain.is_match(&out),
        "no timestamped lines on a terminal:\n{out}"
    );
}

/// A fault proxy standing in for EC2: moto never throttles, so this answers every call with
/// EC2's throttling error and counts the calls.
async fn throttling_endpoint() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut seen = Vec::new();
                // Read the head and the body (Content-Length), then answer.
                loop {
                    let Ok(n) = sock.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if seen.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>";
                let resp = format!("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (url, calls)
}

/// `gears bake` of the component in `dir` against the EC2 endpoint `url`.
fn bake_against(dir: &Path, url: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::from(gears_aws(dir));
    c.args([
        "bake",
        "--version",
        "1",
        "--git-sha",
        "a",
        "--endpoint-url",
        url,
    ]);
    c
}

#[tokio::test]
async fn throttled_aws_is_exit_5_after_retries() {
    let dir = tempdir();
    let name = unique("thr");
    component(dir.path(), &name, "");
    let (url, calls) = throttling_endpoint().await;
    let o = bake_against(dir.path(), &url).output().await.unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 5, "{err}");
    assert_eq!(out, "");
    assert!(
        err.contains("error: AWS DescribeImages failed in us-east-1: Request limit exceeded."),
        "{err}"
    );
    assert!(
        err.contains("hint: AWS throttled the calls even after retries"),
        "{err}"
    );
    assert!(
        calls.load(std::sync::atomic::Ordering::SeqCst) >= 3,
        "the SDK retried before giving up"
    );
}

#[test]
fn templates_packer_or_tera_refuse_are_exit_3_naming_the_template() {
    for (fixture, want) in [
        (
            "invalid-for-packer.json.tera",
            "packer validate rejected the rendered template",
        ),
        ("undefined-variable.json.tera", "cannot render"),
    ] {
        let dir = tempdir();
        component(
            dir.path(),
            &unique("tpl"),
            &format!("template: {ROOT}/tests/fixtures/bake/{fixture}\n"),
        );
        for mode in [&["--dry-run"][..], &[]] {
            let o = gears_aws(dir.path())
                .args(["bake", "--version", "1", "--git-sha", "a"])
                .args(mode)
                .output()
                .unwrap();
            let (_, err, code) = parts(&o);
            assert_eq!(code, 3, "{fixture} {mode:?}: {err}");
        }
        let o = gears_aws(dir.path())
            .args(["bake", "--dry-run", "--version", "1", "--git-sha", "a"])
            .output()
            .unwrap();
        let (out, err, code) = parts(&o);
        assert_eq!(code, 3, "{fixture}: {err}");
        assert_eq!(out, "", "{fixture}");
        assert!(err.contains(want), "{fixture}: {err}");
        if fixture.starts_with("undefined") {
            assert!(
                err.contains(&format!("error: {ROOT}/tests/fixtures/bake/{fixture}: ")),
                "{err}"
            );
            assert!(err.contains("no_such_variable"), "{err}");
        } else {
            assert!(
                err.contains("no_such_option"),
                "packer's reason is shown: {err}"
            );
        }
    }
}

#[tokio::test]
async fn sigint_during_aws_retries_stops_at_once_with_130() {
    let dir = tempdir();
    let name = unique("intaws");
    component(dir.path(), &name, "");
    let (url, calls) = throttling_endpoint().await;
    let child = bake_against(dir.path(), &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the SDK is retrying, then interrupt.
    while calls.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let o = child.wait_with_output().await.unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 130, "{err}");
    assert_eq!(out, "");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    assert!(
        !err.contains("RequestLimitExceeded") && !err.contains("Request limit exceeded"),
        "the interruption, not the retried error: {err}"
    );
}

/// A step printing bytes that are not UTF-8. Measured: packer 1.6 already replaces them with
/// U+FFFD in its machine-readable output; gears' reader splits on bytes anyway, so a pipe is
/// never abandoned (and packer never blocked) whatever a future packer prints.
#[test]
fn output_that_is_not_utf8_does_not_stop_the_reading() {
    let dir = tempdir();
    let name = unique("bin");
    component(
        dir.path(),
        &name,
        &format!("template: {ROOT}/tests/fixtures/bake/binary-output.json.tera\n"),
    );
    let (out, err, code) = bake_v1(dir.path());
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().count(),
        4,
        "the artifact lines after the bytes were read: {out}"
    );
    assert!(err.contains("caf\u{fffd} \u{fffd} not UTF-8"), "{err}");
    assert!(err.contains("after the bytes"), "{err}");
}

/// A one-region component with the given builders, and no ansible (faster bakes).
fn small_component(dir: &Path, name: &str, builders: &[&str], extra: &str) -> PathBuf {
    let list: Vec<String> = builders
        .iter()
        .map(|b| format!("  - {{type: amazon-ebs, name: {b}}}\n"))
        .collect();
    let text = format!(
        "component: {name}\nrepo: https://git.example.com/team/{name}.git\nami_regions: [us-east-1]\nbuilders:\n{}base_ami:\n  name: amzn2-ami-hvm-2.0.*-x86_64-gp2\n  owners: [amazon]\ncommunicator: none\n{extra}",
        list.concat()
    );
    let path = dir.join("gears.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn bake_version(dir: &Path, version: &str, sha: &str, extra: &[&str]) -> (String, String, i32) {
    parts(
        &gears_aws(dir)
            .args(["bake", "--version", version, "--git-sha", sha])
            .args(extra)
            .output()
            .unwrap(),
    )
}

#[tokio::test]
async fn reuse_compares_versions_exactly_never_as_patterns() {
    let dir = tempdir();
    let name = unique("wild");
    small_component(dir.path(), &name, &["web"], "");
    let m = dir.path().join("gears-manifest.json");
    let (_, err, code) = bake_version(dir.path(), "7.0.1", "abc", &[]);
    assert_eq!(code, 0, "{err}");
    let first = manifest(&m);
    // EC2 reads `*` in a filter value as a wildcard: 7.0.* must not reuse 7.0.1's AMIs.
    for version in ["7.0.*", "7.0.?", "7.0.[1]"] {
        let (_, err, code) = bake_version(dir.path(), version, "abc", &[]);
        assert_eq!(code, 0, "{version}: {err}");
        let next = manifest(&m);
        assert_eq!(next["reused"], false, "{version}: {err}");
        assert_eq!(next["version"], version);
        assert_ne!(
            next["amis"]["web"]["us-east-1"],
            first["amis"]["web"]["us-east-1"]
        );
        // The same odd version again is found, exactly.
        let (_, err, code) = bake_version(dir.path(), version, "abc", &[]);
        assert_eq!(code, 0, "{err}");
        let again = manifest(&m);
        assert_eq!(again["reused"], true, "{version}: {err}");
        assert_eq!(again["run_id"], next["run_id"]);
        assert_eq!(again["amis"], next["amis"]);
    }
    // A one-character difference in a pattern-like sha is another bake too.
    let (_, err, code) = bake_version(dir.path(), "7.0.1", "ab*", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(manifest(&m)["reused"], false, "{err}");
}

#[tokio::test]
async fn ami_names_are_unique_per_builder_and_bake_and_env_follows_the_file() {
    let dir = tempdir();
    let name = unique("names");
    // Builders out of alphabetical order: the file's first is `zeta`.
    small_component(dir.path(), &name, &["zeta", "alpha"], "");
    let m = dir.path().join("gears-manifest.json");
    let long = format!("3.{}", "1".repeat(198));
    let (_, err, code) = bake_version(dir.path(), &long, "sha1", &[]);
    assert_eq!(code, 0, "{err}");
    let first = manifest(&m);
    // A second bake of the same version with another sha, within the same minute.
    let (_, err, code) = bake_version(dir.path(), &long, "sha2", &[]);
    assert_eq!(code, 0, "{err}");
    let second = manifest(&m);
    assert_eq!(second["reused"], false);

    let images = images_of("us-east-1", &name).await;
    assert_eq!(images.len(), 4);
    let names: std::collections::BTreeSet<String> = images
        .iter()
        .map(|i| i.name().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 4, "every AMI name is unique: {names:?}");
    for img in &images {
        let n = img.name().unwrap();
        let t = tags(img);
        assert!(n.chars().count() <= 128, "{n}");
        assert!(n.contains(&format!("-{}-", t["gears:builder"])), "{n}");
        // Run ids are UUIDs (v7), the reuse key and the reaper's tag.
        let run = &t["gears:run-id"];
        assert_eq!(run.len(), 36, "{run}");
        assert_eq!(&run[14..15], "7", "{run}");
        assert_eq!(
            t["COMPONENT_VERSION"], long,
            "the tag keeps the whole version"
        );
    }
    assert_ne!(first["run_id"], second["run_id"]);

    // Builders in the manifest, and GEARS_AMI_<REGION>, follow the component file.
    let keys: Vec<&String> = second["amis"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["zeta", "alpha"]);
    let env = std::fs::read_to_string(dir.path().join("gears-manifest.env")).unwrap();
    let zeta = second["amis"]["zeta"]["us-east-1"].as_str().unwrap();
    assert!(
        env.contains(&format!("GEARS_AMI_US_EAST_1='{zeta}'\n")),
        "{env}"
    );
    let back = gears::manifest::read(&m).unwrap();
    assert_eq!(back.ami(None, "us-east-1"), Some(zeta));
}

#[tokio::test]
async fn values_over_ec2_limits_are_refused_before_anything_launches() {
    let dir = tempdir();
    let name = unique("limits");
    small_component(dir.path(), &name, &["web"], "");
    let (out, err, code) = bake_version(dir.path(), &"1".repeat(300), "abc", &[]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(out, "");
    assert!(
        err.contains("error: --version flag: the version is too long"),
        "{err}"
    );
    assert!(err.contains("EC2 allows at most 256"), "{err}");
    let (_, err, code) = bake_version(dir.path(), "1", &"f".repeat(257), &[]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("the git sha is too long: the AMI tag GIT_SHA would be 257"),
        "{err}"
    );
    assert!(live_instances(&name).await.is_empty());
    assert!(images_of("us-east-1", &name).await.is_empty());
}

#[tokio::test]
async fn a_fresh_bake_without_packers_manifest_is_not_called_reused() {
    let dir = tempdir();
    let name = unique("nomani");
    small_component(
        dir.path(),
        &name,
        &["web"],
        &format!("template: {ROOT}/tests/fixtures/bake/no-manifest.json.tera\n"),
    );
    let (_, err, code) = bake_version(dir.path(), "1.0", "abc", &[]);
    assert_eq!(code, 0, "{err}");
    let m = manifest(&dir.path().join("gears-manifest.json"));
    assert_eq!(m["reused"], false, "{m}");
    assert_eq!(m["packer_run_uuid"], serde_json::Value::Null);
    assert_eq!(m["format_version"], 1);
}

/// Issue 33 item 1: a bake shares every AMI in every region with the accounts of `share:`
/// (launch permission, and create-volume permission on its snapshots), read back from moto;
/// the manifest records them. An account id that is not 12 digits is exit 3 at its place,
/// before anything is launched.
#[tokio::test]
async fn a_bake_shares_its_amis_in_every_region_and_a_bad_account_is_placed() {
    let dir = tempdir();
    let name = unique("share");
    let accounts = ["111111111111", "222222222222"];
    std::fs::write(
        dir.path().join("gears.yaml"),
        format!(
            "component: {name}\nrepo: r\nami_regions: [us-east-1, eu-west-1]\nbase_ami:\n  name: amzn2-ami-hvm-2.0.*-x86_64-gp2\n  owners: [amazon]\ncommunicator: none\nshare:\n  accounts: [\"{}\", \"{}\"]\n",
            accounts[0], accounts[1]
        ),
    )
    .unwrap();
    let m = dir.path().join("manifest.json");
    let (_, err, code) = bake_1_0_0(dir.path(), &m);
    assert_eq!(code, 0, "{err}");
    let manifest = manifest(&m);
    assert_eq!(manifest["shares"]["accounts"], serde_json::json!(accounts));
    assert_eq!(manifest["owner_account"], "123456789012", "moto's account");
    let amis = manifest["amis"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    for region in ["us-east-1", "eu-west-1"] {
        let ami = amis[region].as_str().unwrap();
        let ec2 = ec2(region).await;
        let attr = ec2
            .describe_image_attribute()
            .image_id(ami)
            .attribute(aws_sdk_ec2::types::ImageAttributeName::LaunchPermission)
            .send()
            .await
            .unwrap();
        let mut users: Vec<&str> = attr
            .launch_permissions()
            .iter()
            .filter_map(|p| p.user_id())
            .collect();
        users.sort();
        assert_eq!(users, accounts, "{region} {ami}");
        let image = &ec2
            .describe_images()
            .image_ids(ami)
            .send()
            .await
            .unwrap()
            .images()[0]
            .clone();
        let snapshots: Vec<&str> = image
            .block_device_mappings()
            .iter()
            .filter_map(|b| b.ebs().and_then(|e| e.snapshot_id()))
            .collect();
        assert!(!snapshots.is_empty(), "{image:?}");
        for s in snapshots {
            let perms = ec2
                .describe_snapshot_attribute()
                .snapshot_id(s)
                .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
                .send()
                .await
                .unwrap();
            let mut users: Vec<&str> = perms
                .create_volume_permissions()
                .iter()
                .filter_map(|p| p.user_id())
                .collect();
            users.sort();
            assert_eq!(users, accounts, "{region} {s}");
        }
    }

    let text = std::fs::read_to_string(dir.path().join("gears.yaml")).unwrap();
    std::fs::write(
        dir.path().join("gears.yaml"),
        text.replace("\"222222222222\"", "\"22222222222\""),
    )
    .unwrap();
    let (_, err, code) = parts(&gears_local(dir.path()).arg("bake").output().unwrap());
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(
            "gears.yaml:9:30: share.accounts[1]: `22222222222`: expected an AWS account id"
        ),
        "{err}"
    );
}

/// Issue 33 item 1: shared AMIs encrypted with the AWS-managed key cannot be shared: `encrypt:`
/// without a customer managed key in every region is exit 3 at its place, before anything is
/// launched; with keys, a real Packer bake on moto encrypts (moto's CopyImage ignores the key:
/// the template carries it), shares and records the shares.
#[tokio::test]
async fn shared_amis_need_customer_managed_keys_and_bake_with_them() {
    let dir = tempdir();
    let name = unique("encrypt");
    let head = format!(
        "component: {name}\nrepo: r\nami_regions: [us-east-1, eu-west-1]\nbase_ami:\n  name: amzn2-ami-hvm-2.0.*-x86_64-gp2\n  owners: [amazon]\ncommunicator: none\nshare:\n  accounts: [\"111111111111\"]\n"
    );
    let write = |tail: &str| {
        std::fs::write(dir.path().join("gears.yaml"), format!("{head}{tail}")).unwrap()
    };
    write("encrypt: {}\n");
    let (_, err, code) = parts(&gears_local(dir.path()).arg("bake").output().unwrap());
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(
            "gears.yaml:10:1: AWS cannot share an AMI encrypted with the AWS-managed key aws/ebs"
        ),
        "{err}"
    );
    write("encrypt:\n  kms_key_id: alias/amis\n");
    let (_, err, code) = parts(&gears_local(dir.path()).arg("bake").output().unwrap());
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("gears.yaml:10:1:") && err.contains("`eu-west-1`"),
        "{err}"
    );
    write("encrypt:\n  kms_key_id: alias/aws/ebs\n  region_kms_key_ids: {eu-west-1: alias/amis}\n");
    let (_, err, code) = parts(&gears_local(dir.path()).arg("validate").output().unwrap());
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("gears.yaml:11:3:"), "{err}");

    write("encrypt:\n  kms_key_id: alias/amis\n  region_kms_key_ids: {eu-west-1: \"arn:aws:kms:eu-west-1:123456789012:alias/amis\"}\n");
    let m = dir.path().join("manifest.json");
    let bake = || bake_1_0_0(dir.path(), &m);
    let (_, err, code) = bake();
    assert_eq!(code, 0, "{err}");
    let first = manifest(&m);
    // The same keys: reused. Another key for a region: passed over, saying why, and baked again.
    let (_, err, code) = bake();
    assert_eq!(
        (code, &manifest(&m)["reused"]),
        (0, &serde_json::json!(true)),
        "{err}"
    );
    write("encrypt:\n  kms_key_id: alias/amis\n  region_kms_key_ids: {eu-west-1: alias/amis-2}\n");
    let (_, err, code) = bake();
    assert_eq!(
        (code, &manifest(&m)["reused"]),
        (0, &serde_json::json!(false)),
        "{err}"
    );
    assert!(err.contains("but its AMIs record the encryption `eu-west-1=arn:aws:kms:eu-west-1:123456789012:alias/amis us-east-1=alias/amis` and the component file asks for `eu-west-1=alias/amis-2 us-east-1=alias/amis`: baking again"), "{err}");
    let manifest = first;
    assert_eq!(
        manifest["shares"]["accounts"],
        serde_json::json!(["111111111111"])
    );
    let amis = manifest["amis"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    for region in ["us-east-1", "eu-west-1"] {
        assert!(amis[region].as_str().unwrap().starts_with("ami-"), "{amis}");
    }
}

/// Issue 36 item 4: `base_ami: {ssm: ...}` bakes on moto from an Amazon Linux public parameter
/// (moto serves them from its bundled data); the manifest records the parameter, its version and
/// the AMI. A parameter that does not exist is exit 3 naming it, before anything is launched.
#[tokio::test]
async fn a_base_ami_from_an_ssm_parameter_bakes_and_a_missing_one_is_exit_3() {
    const PARAM: &str = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";
    let dir = tempdir();
    let name = unique("ssm");
    let write = |param: &str| {
        std::fs::write(
            dir.path().join("gears.yaml"),
            format!("component: {name}\nrepo: r\nami_regions: [us-east-1]\nbase_ami:\n  ssm: {param}\ncommunicator: none\n"),
        )
        .unwrap()
    };
    write("/gears/no-such-parameter");
    let (_, err, code) = parts(
        &gears_aws(dir.path())
            .args(["bake", "--version", "1.0.0", "--git-sha", "abc"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("the parameter /gears/no-such-parameter does not exist in us-east-1"),
        "{err}"
    );
    write(PARAM);
    let m = dir.path().join("manifest.json");
    let (_, err, code) = bake_1_0_0(dir.path(), &m);
    assert_eq!(code, 0, "{err}");
    let manifest = manifest(&m);
    let p = &manifest["base_ami_parameter"];
    assert_eq!(p["name"], PARAM, "{manifest}");
    assert!(p["version"].as_i64().unwrap() >= 1, "{manifest}");
    assert_eq!(p["ami"], manifest["base_ami"], "{manifest}");
    assert!(
        err.contains(&format!("from the parameter {PARAM} version")),
        "{err}"
    );
    // A rerun reuses the bake and records the parameter its AMIs record they were made from
    // (gears:base-ami-parameter, written by packer with the tags).
    let (_, err, code) = bake_1_0_0(dir.path(), &m);
    assert_eq!(code, 0, "{err}");
    let again = self::manifest(&m);
    assert_eq!(again["reused"], true, "{again}");
    assert_eq!(
        again["base_ami_parameter"], manifest["base_ami_parameter"],
        "{again}"
    );
    assert!(!err.contains("do not record the parameter"), "{err}");
}

/// Issue 35 item 3: `--explain` names GitHub's and GitLab's variables as the sources, and on a
/// real shallow clone (one commit deep, its tag out of sight) warns that the version from
/// `git describe` is a bare commit id, on stderr and in `--explain`.
#[test]
fn explain_names_github_and_gitlab_variables_and_a_shallow_clone_warns() {
    let dir = tempdir();
    component(dir.path(), &unique("ghgl"), "");
    let explain = |vars: &[(&str, &str)], cwd: &Path| {
        let mut c = gears_local(cwd);
        c.args(["bake", "--explain"]);
        for (k, v) in vars {
            c.env(k, v);
        }
        parts(&c.output().unwrap())
    };
    let (out, err, code) = explain(
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_RUN_NUMBER", "42"),
            ("GITHUB_RUN_ATTEMPT", "2"),
            ("GITHUB_SHA", "0123abcd0123abcd"),
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("version            42.2    (from GITHUB_RUN_NUMBER.GITHUB_RUN_ATTEMPT (GitHub Actions))"),
        "{out}"
    );
    assert!(out.contains("(from GITHUB_SHA (GitHub Actions))"), "{out}");
    let (out, err, code) = explain(
        &[
            ("GITLAB_CI", "true"),
            ("CI_PIPELINE_IID", "17"),
            ("CI_COMMIT_SHA", "feedf00dfeedf00d"),
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("version            17    (from CI_PIPELINE_IID (GitLab CI))"),
        "{out}"
    );
    assert!(out.contains("(from CI_COMMIT_SHA (GitLab CI))"), "{out}");

    // A repository with a tag behind the last commit, cloned one commit deep.
    let git = |cwd: &Path, args: &[&str]| {
        let o = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let origin = dir.path().join("origin");
    std::fs::create_dir_all(&origin).unwrap();
    git(&origin, &["init", "-q"]);
    git(&origin, &["commit", "-q", "--allow-empty", "-m", "one"]);
    git(&origin, &["tag", "v1.0.0"]);
    git(&origin, &["commit", "-q", "--allow-empty", "-m", "two"]);
    let url = format!("file://{}", origin.display());
    git(
        dir.path(),
        &["clone", "-q", "--depth", "1", &url, "shallow"],
    );
    let shallow = dir.path().join("shallow");
    component(&shallow, &unique("shal"), "");
    let (out, err, code) = explain(&[], &shallow);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(from git describe --tags --always)"), "{out}");
    assert!(out.contains("warning            the version `"), "{out}");
    assert!(out.contains("this clone is shallow"), "{out}");
    assert!(err.contains("warning: the version `"), "{err}");
    // The full history sees the tag: a version, no warning.
    component(&origin, &unique("full"), "");
    let (out, err, code) = explain(&[], &origin);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("version            v1.0.0-1-g"), "{out}");
    assert!(!out.contains("warning"), "{out}");
}

/// Issue 35 item 4 on GitHub Actions: a real Packer bake's output sits inside one
/// `::group::gears bake` … `::endgroup::`, and what gears says after the stage (the manifest)
/// comes after the group.
#[tokio::test]
async fn on_github_actions_packers_output_sits_inside_a_group() {
    let dir = tempdir();
    let name = unique("grp");
    std::fs::write(
        dir.path().join("gears.yaml"),
        format!(
            "component: {name}\nrepo: r\nami_regions: [us-east-1]\nbase_ami:\n  name: amzn2-ami-hvm-2.0.*-x86_64-gp2\n  owners: [amazon]\ncommunicator: none\n"
        ),
    )
    .unwrap();
    let (_, err, code) = parts(
        &gears_aws(dir.path())
            .env("GITHUB_ACTIONS", "true")
            .args(["bake", "--version", "1.0.0", "--git-sha", "abc"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{err}");
    let open = err.find("::group::gears bake").expect(&err);
    let close = err.find("::endgroup::").expect(&err);
    let packer = err.find("packer finished in").expect(&err);
    let manifest = err.find("manifest: ").expect(&err);
    assert!(open < packer && packer < close && close < manifest, "{err}");
    assert_eq!(err.matches("::group::").count(), 1, "{err}");
}
