//! `gears amis` across accounts on moto: AMIs of the build account shared with live's account
//! (moto acts in the account of any role it is asked to assume); live runs one as an
//! instance and one in a launch template. Prune with `--include-shared` keeps those, deletes
//! the unused one with its snapshots, keeps one shared with an outside account, and when
//! live's role is refused keeps what is shared with live and exits 5.

use crate::amis::{bake_like, registered, snapshot_exists, REGION};
use crate::common::{ec2_client, gears_moto, parts, tempdir, unique_name, wait_until};
use std::path::Path;

/// An account of its own for this test (moto keeps resources per account).
const LIVE: &str = "444444444444";
const OUTSIDE: &str = "999999999999";

/// An EC2 client acting in `account` on moto: a role there assumed from the test's
/// credentials.
async fn ec2_in(account: &str) -> aws_sdk_ec2::Client {
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .load()
        .await;
    let role = aws_config::sts::AssumeRoleProvider::builder(format!(
        "arn:aws:iam::{account}:role/test-setup"
    ))
    .session_name("gears-tests")
    .configure(&base)
    .build()
    .await;
    let conf = base
        .into_builder()
        .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(role))
        .build();
    aws_sdk_ec2::Client::new(&conf)
}

async fn share_with(ec2: &aws_sdk_ec2::Client, ami: &str, account: &str) {
    use aws_sdk_ec2::types::{LaunchPermission, LaunchPermissionModifications};
    ec2.modify_image_attribute()
        .image_id(ami)
        .launch_permission(
            LaunchPermissionModifications::builder()
                .add(LaunchPermission::builder().user_id(account).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
}

fn component_file(dir: &Path, name: &str) {
    std::fs::write(
        dir.join("gears.yaml"),
        format!(
            "component: {name}\nrepo: r\nami_regions: [{REGION}]\nbase_ami: {{id: {}}}\naccounts:\n  live: {{role_arn: \"arn:aws:iam::{LIVE}:role/gears-deploy\"}}\n",
            crate::amis::MOTO_AMI
        ),
    )
    .unwrap();
}

/// `gears amis prune --keep 1 --yes --include-shared --output json` (through `endpoint` when
/// given): the exit code, stderr, and each AMI's (action, reason).
fn prune(
    dir: &Path,
    endpoint: Option<&str>,
) -> (
    i32,
    String,
    std::collections::BTreeMap<String, (String, String)>,
) {
    let mut c = gears_moto(dir);
    if let Some(e) = endpoint {
        c.env("AWS_ENDPOINT_URL", e);
    }
    let o = c
        .args([
            "amis",
            "prune",
            "--keep",
            "1",
            "--yes",
            "--include-shared",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    let report: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let by_id = report["amis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
            (s("id"), (s("action"), s("reason")))
        })
        .collect();
    (code, err, by_id)
}

#[tokio::test]
async fn prune_keeps_what_another_account_runs_and_deletes_the_unused_share_with_its_snapshots() {
    let dir = tempdir();
    let component = unique_name("amisx");
    component_file(dir.path(), &component);
    let ec2 = ec2_client(REGION).await;
    let (by_instance, _) = bake_like(&ec2, &component, "1.0.1", "202601010000").await;
    let (by_template, _) = bake_like(&ec2, &component, "1.0.2", "202602010000").await;
    let (unused, unused_snaps) = bake_like(&ec2, &component, "1.0.3", "202603010000").await;
    let (outside, _) = bake_like(&ec2, &component, "1.0.4", "202604010000").await;
    let (newest, _) = bake_like(&ec2, &component, "1.0.5", "202605010000").await;
    for ami in [&by_instance, &by_template, &unused, &outside] {
        share_with(&ec2, ami, LIVE).await;
    }
    share_with(&ec2, &outside, OUTSIDE).await;
    // live runs one AMI and launches another from a template, in its own account.
    let live = ec2_in(LIVE).await;
    let instance = live
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
    let template = live
        .create_launch_template()
        .launch_template_name(format!("{component}-live"))
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id(&by_template)
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

    // list: the shares, and the use in live's account.
    let o = gears_moto(dir.path())
        .args(["amis", "list", "--output", "json"])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let row = |id: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        row(&by_instance)["in_use"],
        serde_json::json!([format!(
            "account {LIVE} (live): instance {instance} (running)"
        )])
    );
    assert!(
        row(&by_template)["in_use"].to_string().contains(&format!(
            "account {LIVE} (live): launch-template {template}"
        )),
        "{out}"
    );
    assert_eq!(
        row(&outside)["shares"],
        serde_json::json!([format!("account {LIVE}"), format!("account {OUTSIDE}")])
    );
    assert_eq!(row(&unused)["in_use"], serde_json::json!([]));

    // prune --include-shared: the unused share goes, with its snapshots.
    let (code, err, by_id) = prune(dir.path(), None);
    assert_eq!(code, 0, "{err}");
    let action = |id: &str| by_id[id].clone();
    assert_eq!(action(&unused).0, "deregistered", "{by_id:?}");
    assert_eq!(action(&newest).0, "kept");
    for used in [&by_instance, &by_template] {
        let (a, why) = action(used);
        assert_eq!(a, "kept");
        assert!(
            why.starts_with(&format!("in use: account {LIVE} (live)")),
            "{why}"
        );
        assert!(registered(&ec2, used).await);
    }
    assert_eq!(
        action(&outside),
        (
            "kept".to_owned(),
            format!("shared with account {OUTSIDE}, which is not in accounts: (gears cannot see its use)")
        )
    );
    assert!(!registered(&ec2, &unused).await);
    for s in &unused_snaps {
        assert!(!snapshot_exists(&ec2, s).await, "{s} of {unused} is left");
    }
}

#[tokio::test]
async fn an_account_whose_role_is_refused_keeps_its_shares_and_exits_5() {
    let moto = crate::common::need("GEARS_TEST_MOTO");
    let python = format!("{}/bin/python", crate::common::need("GEARS_TEST_VENV"));
    let dir = tempdir();
    let component = unique_name("amisr");
    component_file(dir.path(), &component);
    let ec2 = ec2_client(REGION).await;
    let (shared, snaps) = bake_like(&ec2, &component, "1.0.1", "202601010000").await;
    bake_like(&ec2, &component, "1.0.2", "202602010000").await;
    share_with(&ec2, &shared, LIVE).await;

    // STS refuses live's role (a proxy answers AssumeRole with AccessDenied).
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
    let (code, err, by_id) = prune(dir.path(), Some(&endpoint));
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert_eq!(code, 5, "{err}");
    assert_eq!(
        by_id[&shared],
        (
            "kept".to_owned(),
            format!("shared with account {LIVE} (live), which could not be read")
        )
    );
    assert!(
        err.contains(&format!(
            "error: account {LIVE} (live) could not be read in {REGION}: cannot assume the role"
        )),
        "{err}"
    );
    assert!(registered(&ec2, &shared).await);

    // Once live can be read (and runs nothing of it), it goes with its snapshots.
    let (code, err, by_id) = prune(dir.path(), None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(by_id[&shared].0, "deregistered");
    for s in &snaps {
        assert!(!snapshot_exists(&ec2, s).await, "{s} is left");
    }
}
