//! Interrupting a bake where bake.rs does not: a Ctrl-C while packer validates a component's
//! own template (or gears validates a component), and a `kill -9` of gears mid-build (a CI
//! agent's hard kill), after which packer must still clean up.

use crate::common::{gears, gears_moto, parts, script, tempdir, unique_name, wait_until};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A component file with the example's playbook, built by `template` (a file under
/// tests/fixtures/bake, or None for the built-in one), against moto.
fn component(dir: &Path, name: &str, template: Option<&str>) -> PathBuf {
    let ansible = format!("{ROOT}/examples/hello-service/ansible");
    let template = template
        .map(|t| format!("template: {t}\n"))
        .unwrap_or_default();
    let text = format!(
        "component: {name}\nrepo: https://git.example.com/team/{name}.git\nami_regions: [us-east-1]\nbuilders: [{{type: amazon-ebs, name: web}}]\nbase_ami: {{id: ami-04681a1dbd79675a5}}\ncommunicator: none\nansible:\n  playbook: {ansible}/site.yml\n  roles: [{ansible}/roles]\n{template}"
    );
    let path = dir.join("gears.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A `packer` that announces `validate` by creating `$GEARS_TEST_MARKER`, then takes long
/// (as a cold packer on a loaded agent can); `build` goes to the real packer.
fn slow_validating_packer(dir: &Path) -> (PathBuf, PathBuf) {
    let fake = dir.join("packer");
    let marker = dir.join("validating");
    script(
        &fake,
        "if [ \"$1\" = validate ]; then : > \"$GEARS_TEST_MARKER\"; exec sleep 60; fi\nexec packer \"$@\"\n",
    );
    (fake, marker)
}

/// Starts `cmd` in a process group of its own, as a shell starts a foreground job, waits for
/// `marker`, then sends SIGINT to the whole group, as a terminal's Ctrl-C does.
fn ctrl_c_once(cmd: &mut Command, marker: &Path) -> (String, String, i32, std::time::Duration) {
    let child = cmd
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = wait_until(120, || marker.exists());
    if started.is_none() {
        // SAFETY: kill(2) on the group of the child this test started.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    }
    let at = std::time::Instant::now();
    // SAFETY: kill(2) on the group of the child this test started; no memory involved.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    let (out, err, code) = parts(&o);
    assert!(started.is_some(), "packer validate never started: {err}");
    (out, err, code, at.elapsed())
}

#[test]
fn ctrl_c_during_packer_validate_before_the_build_is_130_not_a_refused_template() {
    let dir = tempdir();
    let name = unique_name("ctrlc-val");
    component(
        dir.path(),
        &name,
        Some(&format!(
            "{ROOT}/tests/fixtures/bake/slow-provisioner.json.tera"
        )),
    );
    let (packer, marker) = slow_validating_packer(dir.path());
    let (out, err, code, took) = ctrl_c_once(
        gears_moto(dir.path())
            .args(["bake", "--version", "1", "--git-sha", "a", "--packer"])
            .arg(&packer)
            .env("GEARS_TEST_MARKER", &marker),
        &marker,
    );
    assert_eq!(code, 130, "{err}");
    assert_eq!(out, "");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    assert!(!err.contains("rejected"), "{err}");
    assert!(took.as_secs() < 10, "stopped the check at once: {took:?}");
}

#[test]
fn ctrl_c_during_gears_validate_is_130() {
    let dir = tempdir();
    component(dir.path(), &unique_name("ctrlc-gv"), None);
    let (packer, marker) = slow_validating_packer(dir.path());
    let (out, err, code, took) = ctrl_c_once(
        gears()
            .current_dir(dir.path())
            .args(["validate", "--packer"])
            .arg(&packer)
            .env("GEARS_TEST_MARKER", &marker),
        &marker,
    );
    assert_eq!(code, 130, "{err}");
    assert_eq!(out, "");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
    assert!(took.as_secs() < 10, "stopped the check at once: {took:?}");
}

/// What is left in moto of one bake: its instances that are not terminated and its volumes (both
/// tagged with the component), and the named key pairs and security groups.
async fn leftovers(component: &str, key_pairs: &[String], groups: &[String]) -> Vec<String> {
    use aws_sdk_ec2::types::Filter;
    let ec2 = crate::common::ec2_client("us-east-1").await;
    let by_component = || {
        Filter::builder()
            .name("tag:gears:component")
            .values(component)
            .build()
    };
    let mut left = Vec::new();
    let out = ec2
        .describe_instances()
        .filters(by_component())
        .send()
        .await
        .unwrap();
    for i in out.reservations().iter().flat_map(|r| r.instances()) {
        let state = i
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_owned());
        if state.as_deref() != Some("terminated") {
            left.push(format!("instance {:?} {state:?}", i.instance_id()));
        }
    }
    let vols = ec2
        .describe_volumes()
        .filters(by_component())
        .send()
        .await
        .unwrap();
    for v in vols.volumes() {
        left.push(format!("volume {:?} {:?}", v.volume_id(), v.state()));
    }
    let kps = ec2.describe_key_pairs().send().await.unwrap();
    for k in kps.key_pairs() {
        if key_pairs.iter().any(|n| Some(n.as_str()) == k.key_name()) {
            left.push(format!("key pair {:?}", k.key_name()));
        }
    }
    let sgs = ec2.describe_security_groups().send().await.unwrap();
    for g in sgs.security_groups() {
        if groups.iter().any(|n| Some(n.as_str()) == g.group_name()) {
            left.push(format!("security group {:?}", g.group_name()));
        }
    }
    left
}

/// A CI agent's hard kill: `kill -9` of gears while packer waits for SSH to its build instance.
/// packer must still cancel and clean up (instance, volume, `packer_*` key pair and security
/// group) as on Ctrl-C; before the watchdog it ran on until its next output line (here after
/// the 10-minute SSH timeout), died on the broken pipe and left them all behind.
#[tokio::test]
async fn kill_9_of_gears_while_packer_waits_for_ssh_still_has_packer_clean_up() {
    let (key_pairs, groups) =
        kill_9_mid_build("ssh-wait.json.tera", "Waiting for SSH to become available").await;
    assert_eq!((key_pairs.len(), groups.len()), (1, 1));
}

/// The same during a provisioner (a shell-local `sleep 60`, a child in packer's process group):
/// the watchdog's SIGINT reaches the whole group, as a terminal's Ctrl-C would.
#[tokio::test]
async fn kill_9_of_gears_during_a_provisioner_still_has_packer_clean_up() {
    kill_9_mid_build("slow-provisioner.json.tera", "provisioning-started").await;
}

/// Bakes with `template` (under tests/fixtures/bake), kills gears with SIGKILL once its
/// stderr shows `when`, and waits for moto to show nothing left of the bake. Returns the
/// names of packer's temporary key pairs and security groups.
async fn kill_9_mid_build(template: &str, when: &str) -> (Vec<String>, Vec<String>) {
    use std::io::{BufRead, BufReader};
    let dir = tempdir();
    let name = unique_name("kill9");
    component(
        dir.path(),
        &name,
        Some(&format!("{ROOT}/tests/fixtures/bake/{template}")),
    );
    let work = dir.path().join("work");
    let mut child = gears_moto(dir.path())
        .args(["bake", "--version", "1", "--git-sha", "a", "--work-dir"])
        .arg(&work)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (mut seen, mut line) = (String::new(), String::new());
    let (mut key_pairs, mut groups) = (Vec::new(), Vec::new());
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        let word_after = |what: &str| {
            line.split_once(what)
                .map(|(_, rest)| rest.trim().to_owned())
        };
        key_pairs.extend(word_after("Creating temporary keypair: "));
        groups.extend(word_after(
            "Creating temporary security group for this instance: ",
        ));
        if line.contains(when) {
            break;
        }
        line.clear();
    }
    assert!(seen.contains(when), "{seen}");
    let before = leftovers(&name, &key_pairs, &groups).await;
    assert!(
        before.iter().any(|l| l.starts_with("instance")),
        "{before:?}"
    );

    // SAFETY: kill(2) on the gears process this test started; no memory involved.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    let killed = std::time::Instant::now();
    child.wait().unwrap();
    drop(stderr);

    let mut left = Vec::new();
    while killed.elapsed() < std::time::Duration::from_secs(60) {
        left = leftovers(&name, &key_pairs, &groups).await;
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let took = killed.elapsed();
    assert!(left.is_empty(), "left behind after {took:?}: {left:?}");
    eprintln!(
        "{template}: kill -9 of gears to packer's cleanup done in moto: {took:?} ({before:?})"
    );
    // packer itself says so in its log, which it kept writing after gears was gone.
    let logs: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().path().join("packer.log"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let cancelled = wait_until(30, || {
        std::fs::read_to_string(&logs[0])
            .unwrap_or_default()
            .contains("Cleanly cancelled builds after being interrupted.")
    });
    assert!(
        cancelled.is_some(),
        "{}",
        std::fs::read_to_string(&logs[0]).unwrap_or_default()
    );
    (key_pairs, groups)
}

/// Ends, when dropped, the process group of every process whose command line names `work`
/// (the packer a test's gears started there; its plugins share packer's group). A gears that
/// exits on a second signal leaves packer cleaning up, as it says; once the test has stopped
/// the endpoint packer talks to, that packer would retry for many minutes after the test.
struct ReapPackersUnder(PathBuf);

impl Drop for ReapPackersUnder {
    fn drop(&mut self) {
        let work = self.0.to_string_lossy().into_owned();
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return;
        };
        for p in procs.flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&work) {
                // SAFETY: getpgid(2) and kill(2) on a process of this test's own packer.
                unsafe {
                    let pgid = libc::getpgid(pid);
                    if pgid > 1 && pgid != libc::getpgid(0) {
                        libc::kill(-pgid, libc::SIGKILL);
                    }
                }
            }
        }
    }
}

/// Issue 21 item 2: a bake interrupted twice, the second signal during packer's cleanup (held
/// there by a proxy that keeps TerminateInstances waiting, as a slow AWS would), exits 7 and
/// names in `left undone` each resource packer made (its instance, temporary key pair and
/// security group), with the command that removes it.
#[tokio::test]
async fn a_second_sigint_during_packers_cleanup_names_what_packer_made() {
    use std::io::{BufRead, BufReader, Read};
    let moto = crate::common::need("GEARS_TEST_MOTO");
    let python = format!("{}/bin/python", crate::common::need("GEARS_TEST_VENV"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut proxy = Command::new(python)
        .arg(format!("{ROOT}/scripts/count-proxy.py"))
        .arg(port.to_string())
        .arg(&moto)
        .env("GEARS_PROXY_HOLD", "TerminateInstances=20")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_until(20, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let dir = tempdir();
    let _reap = ReapPackersUnder(dir.path().join("work"));
    let name = unique_name("twice");
    component(
        dir.path(),
        &name,
        Some(&format!("{ROOT}/tests/fixtures/bake/ssh-wait.json.tera")),
    );
    let mut child = gears_moto(dir.path())
        .args(["bake", "--version", "1", "--git-sha", "a", "--work-dir"])
        .arg(dir.path().join("work"))
        .env("AWS_ENDPOINT_URL", &endpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (mut seen, mut line) = (String::new(), String::new());
    let mut signalled = false;
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if !signalled && line.contains("Waiting for SSH to become available") {
            // SAFETY: kill(2) on the gears process this test started.
            assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
            signalled = true;
        }
        if signalled && line.contains("waiting for packer to clean up") {
            break;
        }
        line.clear();
    }
    assert!(signalled, "{seen}");
    // packer is cleaning up now; its TerminateInstances is held by the proxy.
    std::thread::sleep(std::time::Duration::from_secs(3));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let code = child.wait().unwrap().code();
    let _ = proxy.kill();
    let _ = proxy.wait();
    let err = seen + &rest;
    assert_eq!(code, Some(7), "{err}");
    let undone = err
        .lines()
        .find(|l| l.starts_with("left undone: packer's cleanup of"))
        .unwrap_or_else(|| panic!("no left-undone line for packer: {err}"));
    assert!(undone.contains("instance i-"), "{undone}");
    assert!(
        undone.contains("aws ec2 terminate-instances --region us-east-1 --instance-ids i-"),
        "{undone}"
    );
    assert!(undone.contains("key pair packer_"), "{undone}");
    assert!(
        undone.contains("aws ec2 delete-key-pair --region us-east-1 --key-name packer_"),
        "{undone}"
    );
    assert!(undone.contains("security group packer_"), "{undone}");
    assert!(undone.contains("gears:run-id="), "{undone}");
}

/// Issue 20 item 7: a bake renews its build instance's `gears:expires-at` while packer runs
/// (at once, then every half hour), so a bake longer than the instance's `gears:ttl` is never
/// reaped mid-build, and one whose gears was killed expires three hours after its last renewal.
#[tokio::test]
async fn a_bake_renews_its_build_instances_expiry_while_packer_runs() {
    use std::io::{BufRead, BufReader, Read};
    let dir = tempdir();
    let name = unique_name("renew");
    component(
        dir.path(),
        &name,
        Some(&format!("{ROOT}/tests/fixtures/bake/ssh-wait.json.tera")),
    );
    let mut child = gears_moto(dir.path())
        .args(["bake", "--version", "1", "--git-sha", "a", "--work-dir"])
        .arg(dir.path().join("work"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (mut seen, mut line) = (String::new(), String::new());
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if line.contains("Waiting for SSH to become available") {
            break;
        }
        line.clear();
    }
    assert!(seen.contains("Waiting for SSH"), "{seen}");
    let ec2 = crate::common::ec2_client("us-east-1").await;
    let mut expires = None;
    for _ in 0..50 {
        let out = ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag:gears:component")
                    .values(&name)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        expires = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .flat_map(|i| i.tags())
            .find(|t| t.key() == Some("gears:expires-at"))
            .and_then(|t| t.value().map(str::to_owned));
        if expires.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // SAFETY: kill(2) on the gears process this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(130), "{seen}{rest}");
    let expires =
        expires.unwrap_or_else(|| panic!("no gears:expires-at on the build instance: {seen}"));
    let at = chrono::DateTime::parse_from_rfc3339(&expires).unwrap();
    let left = at.signed_duration_since(chrono::Utc::now());
    assert!(
        left > chrono::Duration::minutes(170) && left <= chrono::Duration::minutes(181),
        "{expires}: {left:?} from now"
    );
}
