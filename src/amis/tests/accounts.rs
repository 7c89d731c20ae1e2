//! `gears amis` across accounts on the fake: the use of an AMI in an environment's account
//! keeps it, an account that cannot be read keeps what is shared with it (exit 5), and with
//! `--include-shared` an AMI shared only with the accounts of `accounts:`, unused there, goes.

use super::{cloud, opts, with_accounts};
use crate::amis::accounts::{kept_for_shares, Looked};
use crate::amis::*;
use crate::aws::{AmiCloud, AmiUse, CloudError, ErrorKind, LaunchPermission};
use crate::cancel::Cancel;
use crate::exit::Exit;
use crate::testing::Faults;
use std::collections::BTreeMap;

const LIVE: &str = "222222222222";
const STAGE: &str = "111111111111";

fn include_shared() -> PruneOptions {
    PruneOptions {
        include_shared: true,
        ..opts(1, true)
    }
}

fn by_id(report: &PruneReport) -> BTreeMap<&str, &Pruned> {
    report.amis.iter().map(|p| (p.ami.id.as_str(), p)).collect()
}

fn instance(image: &str, id: &str) -> AmiUse {
    AmiUse {
        image_id: image.into(),
        kind: "instance",
        id: id.into(),
        detail: "running".into(),
    }
}

#[tokio::test]
async fn a_use_in_an_environments_account_keeps_the_ami_and_list_shows_it() {
    let cloud = cloud();
    cloud.add_launch_permission("ami-mid", &format!("account {LIVE}"));
    let live = cloud.add_account(LIVE);
    live.add_ami_use("us-east-1", instance("ami-mid", "i-live"));
    let settings = with_accounts(&[("live", LIVE)]);
    let listed = list(&settings, &Cancel::new(), &cloud).await.unwrap();
    assert_eq!(listed.exit(), Exit::Success);
    let mid = listed.amis.iter().find(|a| a.id == "ami-mid").unwrap();
    assert_eq!(mid.shares, [LaunchPermission::Account(LIVE.into())]);
    assert_eq!(
        mid.in_use,
        [format!("account {LIVE} (live): instance i-live (running)")]
    );
    // Read in live's account by image id, never through DescribeImages there.
    let there: Vec<String> = live.calls();
    assert!(
        there.iter().any(|c| c == "DescribeInstances us-east-1"),
        "{there:?}"
    );
    assert!(
        !there.iter().any(|c| c.starts_with("DescribeImages")),
        "{there:?}"
    );

    let report = prune(&settings, include_shared(), &Cancel::new(), &cloud)
        .await
        .unwrap();
    let mid = by_id(&report)["ami-mid"];
    assert_eq!(mid.action, AmiAction::Kept);
    assert!(
        mid.reason
            .starts_with("in use: account 222222222222 (live)"),
        "{mid:?}"
    );
    assert!(cloud.ami_ids("us-east-1").contains(&"ami-mid".to_owned()));
    assert_eq!(report.exit(), Exit::Success);
}

#[tokio::test]
async fn shared_only_with_accounts_that_do_not_use_it_goes_with_its_snapshots() {
    let cloud = cloud();
    cloud.add_launch_permission("ami-mid", &format!("account {LIVE}"));
    cloud.add_launch_permission("ami-mid", &format!("account {STAGE}"));
    let live = cloud.add_account(LIVE);
    cloud.add_account(STAGE);
    // live runs the other AMIs, not ami-mid.
    live.add_ami_use("us-east-1", instance("ami-new", "i-live"));
    let settings = with_accounts(&[("live", LIVE), ("stage", STAGE)]);
    // Without --include-shared a shared AMI stays, as before.
    let kept = prune(&settings, opts(1, true), &Cancel::new(), &cloud)
        .await
        .unwrap();
    assert_eq!(by_id(&kept)["ami-mid"].action, AmiAction::Kept);
    assert!(by_id(&kept)["ami-mid"].reason.contains("--include-shared"));
    let report = prune(&settings, include_shared(), &Cancel::new(), &cloud)
        .await
        .unwrap();
    let mid = by_id(&report)["ami-mid"];
    assert_eq!(mid.action, AmiAction::Deregistered, "{report:?}");
    assert_eq!(
        mid.snapshot_actions["snap-ami-mid"],
        SnapshotAction::Deleted
    );
    assert!(!cloud.ami_ids("us-east-1").contains(&"ami-mid".to_owned()));
    assert!(!cloud
        .snapshot_ids("us-east-1")
        .contains(&"snap-ami-mid".to_owned()));
    assert_eq!(report.exit(), Exit::Success);
}

#[tokio::test]
async fn shared_with_an_organization_a_unit_or_an_outside_account_stays_saying_why() {
    let cloud = cloud();
    cloud.add_image("us-east-1", super::image("ami-older", "202512010000"));
    cloud.add_image("us-east-1", super::image("ami-oldest", "202511010000"));
    let org = "arn:aws:organizations::123456789012:organization/o-abcd123456";
    let ou = "arn:aws:organizations::123456789012:ou/o-abcd123456/ou-ab12-cdefgh12";
    cloud.add_launch_permission("ami-mid", &format!("organization {org}"));
    cloud.add_launch_permission("ami-older", &format!("organizational-unit {ou}"));
    cloud.add_launch_permission("ami-oldest", &format!("account {LIVE}"));
    cloud.add_launch_permission("ami-oldest", "account 999999999999");
    cloud.add_account(LIVE);
    let settings = with_accounts(&[("live", LIVE)]);
    let report = prune(&settings, include_shared(), &Cancel::new(), &cloud)
        .await
        .unwrap();
    let by = by_id(&report);
    let reason = |id: &str| {
        assert_eq!(by[id].action, AmiAction::Kept, "{id}: {report:?}");
        by[id].reason.clone()
    };
    assert_eq!(
        reason("ami-mid"),
        format!("shared with organization {org}: gears cannot see its accounts' use")
    );
    assert_eq!(
        reason("ami-older"),
        format!("shared with organizational unit {ou}: gears cannot see its accounts' use")
    );
    assert_eq!(
        reason("ami-oldest"),
        "shared with account 999999999999, which is not in accounts: (gears cannot see its use)"
    );
    assert_eq!(cloud.ami_ids("us-east-1").len(), 6);
    assert_eq!(report.exit(), Exit::Success);
}

/// An account that cannot be read: its role refused, access denied, throttled past retries.
#[tokio::test(start_paused = true)]
async fn an_account_that_cannot_be_read_keeps_what_is_shared_with_it_and_exits_5() {
    for how in ["role refused", "access denied", "throttled"] {
        let cloud = cloud();
        cloud.add_image("us-east-1", super::image("ami-older", "202512010000"));
        cloud.add_snapshots("us-east-1", "ami-older", &["snap-ami-older"]);
        cloud.add_launch_permission("ami-mid", &format!("account {LIVE}"));
        match how {
            // No such account in the fake: STS refuses the role.
            "role refused" => {}
            "access denied" => cloud.add_account(LIVE).set_faults(Faults {
                fail_ops: vec![("DescribeLaunchConfigurations", "AccessDenied")],
                ..Default::default()
            }),
            _ => cloud.add_account(LIVE).set_faults(Faults {
                throttle_ops: vec!["DescribeInstances"],
                ..Default::default()
            }),
        }
        let settings = with_accounts(&[("live", LIVE)]);
        let report = prune(&settings, include_shared(), &Cancel::new(), &cloud)
            .await
            .unwrap();
        let by = by_id(&report);
        assert_eq!(by["ami-mid"].action, AmiAction::Kept, "{how}: {report:?}");
        assert_eq!(
            by["ami-mid"].reason,
            format!("shared with account {LIVE} (live), which could not be read"),
            "{how}"
        );
        // What is not shared with it goes: live cannot launch it.
        assert_eq!(by["ami-older"].action, AmiAction::Deregistered, "{how}");
        assert_eq!(report.unread.len(), 1, "{how}: {report:?}");
        let unread = &report.unread[0];
        assert_eq!(
            (unread.account.as_str(), unread.region.as_str()),
            (LIVE, "us-east-1")
        );
        let kind = match how {
            "role refused" => {
                assert!(matches!(unread.error, CloudError::Role { .. }), "{unread}");
                ErrorKind::AccessDenied
            }
            "access denied" => ErrorKind::AccessDenied,
            _ => ErrorKind::Throttled,
        };
        assert_eq!(unread.error.kind(), kind, "{how}: {unread}");
        assert!(
            unread.to_string().starts_with(&format!(
                "account {LIVE} (live) could not be read in us-east-1: "
            )),
            "{unread}"
        );
        assert_eq!(report.exit(), Exit::Cloud, "{how}");
        assert!(cloud.ami_ids("us-east-1").contains(&"ami-mid".to_owned()));
        // gears amis list says so too, and exits 5.
        let listed = list(&settings, &Cancel::new(), &cloud).await.unwrap();
        assert_eq!(listed.exit(), Exit::Cloud, "{how}");
    }
}

#[test]
fn environments_of_one_account_are_read_once() {
    let s = with_accounts(&[("live", LIVE), ("live-eu", LIVE), ("stage", STAGE)]);
    let got: Vec<(String, Vec<String>)> = s
        .consumers
        .iter()
        .map(|c| (c.account.clone(), c.environments.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (
                LIVE.to_owned(),
                vec!["live".to_owned(), "live-eu".to_owned()]
            ),
            (STAGE.to_owned(), vec!["stage".to_owned()]),
        ]
    );
    assert_eq!(
        s.consumers[0].label(),
        "account 222222222222 (live, live-eu)"
    );
    assert!(s.consumers[0]
        .session
        .session_name
        .starts_with("gears-amis-hello-"));
}

#[test]
fn what_shares_let_a_prune_do() {
    let ami = |shares: &[&str], public: bool| {
        let mut a = super::ami("ami-1", "web", "2026-01-01T00:00:00Z", &[]);
        a.shares = shares.iter().map(|s| s.parse().unwrap()).collect();
        a.public = public;
        a
    };
    let unread = Unread {
        region: "us-east-1".into(),
        account: STAGE.into(),
        environments: vec!["stage".into()],
        error: CloudError::api("DescribeInstances", "us-east-1", Some("AccessDenied"), "no"),
    };
    let mut looked = Looked::default();
    looked.read.insert(LIVE);
    looked.unread.insert(STAGE, &unread);
    let live = format!("account {LIVE}");
    let stage = format!("account {STAGE}");
    let cases: [(&[&str], bool, bool, Option<&str>); 7] = [
        (&[], false, false, None),
        (&[], false, true, None),
        (&[&live], false, false, Some("shared: account 222222222222 may launch it (--include-shared prunes it)")),
        (&[&live], false, true, None),
        (&[&live, &stage], false, true, Some("shared with account 111111111111 (stage), which could not be read")),
        (&["group all"], true, true, Some("public: any account may launch it, and gears cannot see their use")),
        (&[], true, false, Some("public: anyone may launch it (--include-shared prunes it only when shared with nothing but accounts of accounts:)")),
    ];
    for (shares, public, include, want) in cases {
        let got = kept_for_shares(&ami(shares, public), include, &looked);
        assert_eq!(
            got.as_deref(),
            want,
            "{shares:?} public {public} include {include}"
        );
    }
}

/// The cost of a look in an environment's account, per region: the templates, each template's
/// versions, the groups, the launch configurations, and one DescribeInstances per 200 AMIs
/// (the `image-id` filter's most values).
#[tokio::test]
async fn instances_are_read_by_image_id_200_ids_a_call() {
    use crate::aws::AmiHousekeeping;
    let live = super::cloud().add_account(LIVE);
    live.add_ami_use("us-east-1", instance("ami-00000000000000001", "i-1"));
    live.add_ami_use("us-east-1", instance("ami-other", "i-2"));
    let ids: Vec<String> = (1..=450).map(|i| format!("ami-{i:017x}")).collect();
    let port = live.amis("us-east-1").await.unwrap();
    let uses = port.uses_of(&ids).await.unwrap();
    assert_eq!(uses, [instance("ami-00000000000000001", "i-1")]);
    let instances = live
        .calls()
        .iter()
        .filter(|c| c.starts_with("DescribeInstances "))
        .count();
    assert_eq!(instances, 3, "{:?}", live.calls());
    assert!(port.uses_of(&[]).await.unwrap().is_empty());
    assert_eq!(
        live.calls().len(),
        6,
        "no ids, no calls: {:?}",
        live.calls()
    );
}
