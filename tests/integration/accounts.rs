//! gears across accounts on moto: `AssumeRole` of `arn:aws:iam::<account>:role/<any>` gives
//! credentials that act in that account, so a fleet made there is seen and deployed only
//! through the environment's role; a role STS refuses (from a proxy that answers AccessDenied)
//! stops the run with exit 5 before any other call.

use crate::common::{gears, parts, tempdir, unique, wait_until};
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

#[tokio::test]
async fn a_role_sts_refuses_is_exit_5_before_any_other_call() {
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
        .env("GEARS_PROXY_DENY", "AssumeRole")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_until(20, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let dir = tempdir();
    component_with_accounts(dir.path(), &unique("denied"));
    let o = gears()
        .current_dir(dir.path())
        .env("AWS_ENDPOINT_URL", &endpoint)
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
    let counts = std::process::Command::new("curl")
        .args(["-fsS", &format!("{endpoint}/counts")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap();
    let _ = proxy.kill();
    let _ = proxy.wait();
    let (_, err, code) = parts(&o);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains(&format!(
            "cannot assume the role arn:aws:iam::{LIVE}:role/gears-deploy of the environment live"
        )),
        "{err}"
    );
    assert!(err.contains("hint: the role's trust policy"), "{err}");
    let counts: std::collections::BTreeMap<String, u64> = serde_json::from_str(&counts).unwrap();
    assert!(
        counts.keys().all(|a| a == "AssumeRole"),
        "nothing but AssumeRole was called: {counts:?}"
    );
}
