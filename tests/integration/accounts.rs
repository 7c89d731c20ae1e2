//! gears across accounts on moto: `AssumeRole` of `arn:aws:iam::<account>:role/<any>` gives
//! credentials that act in that account, so a fleet made there is seen and deployed only
//! through the environment's role; a role STS refuses (from a proxy that answers AccessDenied)
//! stops the run with exit 5 before any other call.

use crate::common::{gears, httpbin, parts, tempdir, unique, wait_until};
use crate::deploy::{conf, fleet, fleet_in, images_of_group_in, MOTO_AMI};
use std::path::Path;

const LIVE: &str = "111111111111";
const OTHER: &str = "222222222222";

/// The SDK configuration of `account` on moto: its role assumed from the test's credentials.
async fn conf_in(account: &str, region: &str) -> aws_config::SdkConfig {
    let base = conf(region).await;
    let role = aws_config::sts::AssumeRoleProvider::builder(format!(
        "arn:aws:iam::{account}:role/test-setup"
    ))
    .session_name("gears-tests")
    .configure(&base)
    .build()
    .await;
    base.into_builder()
        .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(role))
        .build()
}

/// A component file whose live environment runs in [`LIVE`].
fn component_with_accounts(dir: &Path, name: &str) {
    std::fs::write(
        dir.join("gears.yaml"),
        format!(
            "component: {name}\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {{id: {MOTO_AMI}}}\naccounts:\n  live: {{role_arn: \"arn:aws:iam::{LIVE}:role/gears-deploy\", external_id: ci}}\n"
        ),
    )
    .unwrap();
}

fn run(dir: &Path, args: &[&str]) -> (String, String, i32) {
    parts(&gears().current_dir(dir).args(args).output().unwrap())
}

#[tokio::test]
async fn the_environments_role_is_where_status_looks_and_deploy_rolls() {
    let dir = tempdir();
    let name = unique("acct");
    component_with_accounts(dir.path(), &name);
    let live = conf_in(LIVE, "us-east-1").await;
    let (group, _, new) = fleet_in(&live, &name, "us-east-1", 2, false).await;

    // Seen through live's role (from `accounts:`), not in the caller's own account nor in
    // another role's.
    let (out, err, code) = run(dir.path(), &["status", "-e", "live"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&group), "{out}\n{err}");
    let other = format!("arn:aws:iam::{OTHER}:role/gears-deploy");
    // Both looks succeed (the role is assumed, the account read), and see no such group.
    let (out, err, code) = run(dir.path(), &["status", "-e", "live", "--role-arn", &other]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(&group), "{out}\n{err}");
    let (out, err, code) = run(dir.path(), &["status", "-e", "stage"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(&group), "{out}\n{err}");

    // An AMI of the caller's own account (the fleet helper's), not shared with live: exit 3
    // before any change.
    let (_, _, unshared) = fleet(&format!("{name}-own"), "us-east-1", 1).await;
    let (_, err, code) = run(
        dir.path(),
        &[
            "deploy",
            "-e",
            "live",
            "--ami",
            &unshared,
            "--region",
            "us-east-1",
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!("{unshared} is not shared with account {LIVE}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("add it to share.accounts: \"{LIVE}\"")),
        "{err}"
    );
    let (images, g) = images_of_group_in(&live, &group).await;
    assert!(images.iter().all(|i| i != &unshared), "{images:?}");
    assert!(!g
        .tags()
        .iter()
        .any(|t| t.key() == Some("gears:deploy-lock")));

    // The deploy rolls the group of the live account onto the AMI made there.
    let (out, err, code) = run(
        dir.path(),
        &[
            "deploy",
            "-e",
            "live",
            "--ami",
            &new,
            "--region",
            "us-east-1",
            "--batch",
            "1",
            "--poll",
            "0.5",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let (images, _) = images_of_group_in(&live, &group).await;
    assert!(
        !images.is_empty() && images.iter().all(|i| i == &new),
        "{images:?}"
    );
}

/// scripts/count-proxy.py in front of moto with `env`, killed when dropped; its endpoint.
struct Proxy {
    child: std::process::Child,
    endpoint: String,
}

impl Proxy {
    fn start(env: &[(&str, &str)]) -> Proxy {
        let moto = crate::common::need("GEARS_TEST_MOTO");
        let python = format!("{}/bin/python", crate::common::need("GEARS_TEST_VENV"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = env!("CARGO_MANIFEST_DIR");
        let child = std::process::Command::new(python)
            .arg(format!("{root}/scripts/count-proxy.py"))
            .arg(port.to_string())
            .arg(&moto)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_until(20, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Proxy {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// What the proxy counted or logged (`counts`, `log`), as JSON.
    fn get(&self, what: &str) -> serde_json::Value {
        let out = std::process::Command::new("curl")
            .args(["-fsS", &format!("{}/{what}", self.endpoint)])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const STAGE: &str = "333333333333";

/// Issue 33, done when: `gears pipeline run` bakes in the build account (the caller's), shares
/// with stage's and live's accounts, tests, and deploys stage and live into their own accounts
/// through their roles; `gears status -e live` shows the live version from the live account.
/// moto hides a shared AMI in the accounts it is shared with: the proxy gives AWS's answer
/// (GEARS_PROXY_SHARED_IMAGES). The roles' credentials expire 20 s after each AssumeRole
/// (GEARS_PROXY_STS_EXPIRY), so the deploys (a bake time of 6 s a batch) outlive them and the
/// SDK renews them mid-run.
#[tokio::test]
async fn a_pipeline_bakes_shares_and_deploys_stage_and_live_into_their_accounts() {
    let proxy = Proxy::start(&[
        ("GEARS_PROXY_SHARED_IMAGES", "1"),
        ("GEARS_PROXY_STS_EXPIRY", "20"),
    ]);
    let dir = tempdir();
    let name = unique("across");
    std::fs::write(
        dir.path().join("gears.yaml"),
        format!(
            "component: {name}\nrepo: r\nami_regions: [us-east-1]\nbuilders: [{{type: amazon-ebs, name: web}}]\nbase_ami: {{id: {MOTO_AMI}}}\ncommunicator: none\ntest:\n  smoke_file: smoke.yaml\ndeploy:\n  bake_time: 6\nshare:\n  accounts: [\"{STAGE}\", \"{LIVE}\"]\naccounts:\n  stage: {{role_arn: \"arn:aws:iam::{STAGE}:role/gears-deploy\"}}\n  live: {{role_arn: \"arn:aws:iam::{LIVE}:role/gears-deploy\", external_id: ci}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("smoke.yaml"),
        "tests:\n  - name: up\n    uri: /get\n",
    )
    .unwrap();
    let p = dir.path().join("pipeline.yaml");
    std::fs::write(
        &p,
        "component: gears.yaml\nbake: {}\ntest: {ready_timeout: 5}\ndeploy:\n  - {environment: stage, batch: 50%, poll: 0.2, gate_timeout: 30}\n  - {environment: live, batch: 50%, poll: 0.2, gate_timeout: 30}\n",
    )
    .unwrap();
    let stage = conf_in(STAGE, "us-east-1").await;
    let (stage_group, _, _) = fleet_in(&stage, &name, "us-east-1", 2, false).await;
    aws_sdk_autoscaling::Client::new(&stage)
        .create_or_update_tags()
        .tags(
            aws_sdk_autoscaling::types::Tag::builder()
                .key("gears:environment")
                .value("stage")
                .propagate_at_launch(false)
                .resource_id(&stage_group)
                .resource_type("auto-scaling-group")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let live = conf_in(LIVE, "us-east-1").await;
    let (live_group, _, _) = fleet_in(&live, &name, "us-east-1", 2, false).await;

    let (out, err, code) = parts(
        &gears()
            .current_dir(dir.path())
            .env("AWS_ENDPOINT_URL", &proxy.endpoint)
            .args(["pipeline", "run", p.to_str().unwrap()])
            .args(["--version", "1.0", "--git-sha", "abc"])
            .args(["--target-host", &httpbin(), "--output", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{out}\n{err}\n{}", proxy.get("log"));
    let m = gears::manifest::read(&dir.path().join("gears-manifest.json")).unwrap();
    let ami = m.ami(None, "us-east-1").unwrap().to_owned();
    assert_eq!(m.shares.accounts.len(), 2, "{m:?}");
    for (conf, group) in [(&stage, &stage_group), (&live, &live_group)] {
        let (images, g) = images_of_group_in(conf, group).await;
        assert!(
            !images.is_empty() && images.iter().all(|i| i == &ami),
            "{group}: {images:?}"
        );
        let version = (g.tags().iter()).find(|t| t.key() == Some("COMPONENT_VERSION"));
        assert_eq!(version.and_then(|t| t.value()), Some("1.0"), "{group}");
    }
    // The live role was assumed more than once in the run: its credentials were renewed.
    let live_arn = format!("arn:aws:iam::{LIVE}:role/gears-deploy");
    let assumed = (proxy.get("log").as_array().unwrap().iter())
        .filter(|e| e[1] == "AssumeRole" && e[2] == live_arn.as_str())
        .count();
    assert!(assumed >= 2, "AssumeRole of {live_arn}: {assumed}");

    // Status in the live account: the version from what deploy wrote there (AWS shows the
    // shared AMI without its tags; moto, without the proxy, not at all).
    let (out, err, code) = parts(
        &gears()
            .current_dir(dir.path())
            .args(["status", "-e", "live", "--output", "json"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = (v["groups"].as_array().unwrap().iter())
        .find(|g| g["group"] == live_group.as_str())
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(row["running"][0]["ami"], ami.as_str(), "{row}");
    assert_eq!(row["running"][0]["version"], "1.0", "{row}");
}

#[tokio::test]
async fn a_role_sts_refuses_is_exit_5_before_any_other_call() {
    let (err, code, counts) = deploy_live_behind(("GEARS_PROXY_DENY", "AssumeRole"), "denied");
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains(&format!(
            "cannot assume the role arn:aws:iam::{LIVE}:role/gears-deploy of the environment live"
        )),
        "{err}"
    );
    assert!(err.contains("hint: the role's trust policy"), "{err}");
    assert!(
        counts.keys().all(|a| a == "AssumeRole"),
        "nothing but AssumeRole was called: {counts:?}"
    );
}

/// `gears deploy -e live` of moto's AMI through the counting proxy started with `fault`, from a
/// component with accounts: its stderr, exit code and the AWS calls the proxy counted.
fn deploy_live_behind(
    fault: (&str, &str),
    name: &str,
) -> (String, i32, std::collections::BTreeMap<String, u64>) {
    let proxy = Proxy::start(&[fault]);
    let dir = tempdir();
    component_with_accounts(dir.path(), &unique(name));
    let o = gears()
        .current_dir(dir.path())
        .env("AWS_ENDPOINT_URL", &proxy.endpoint)
        .args([
            "deploy",
            "-e",
            "live",
            "--ami",
            MOTO_AMI,
            "--region",
            "us-east-1",
        ])
        .output()
        .unwrap();
    let counts = proxy.get("counts");
    drop(proxy);
    let (_, err, code) = parts(&o);
    (err, code, serde_json::from_value(counts).unwrap())
}

/// STS throttling AssumeRole past the SDK's retries stops the run before any other call with
/// exit 5, said as throttling ("retry later"), not as a role that refuses.
#[tokio::test]
async fn a_throttled_assume_role_is_exit_5_as_throttling_before_any_other_call() {
    let (err, code, counts) =
        deploy_live_behind(("GEARS_PROXY_THROTTLE", "AssumeRole"), "throttled");
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("STS throttled AssumeRole even after retries"),
        "{err}"
    );
    assert!(!err.contains("trust policy"), "{err}");
    assert!(
        counts.keys().all(|a| a == "AssumeRole"),
        "nothing but AssumeRole was called: {counts:?}"
    );
}
