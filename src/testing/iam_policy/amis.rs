//! The Amis statement against what `gears amis list` and `gears amis prune` call.

use super::*;
use crate::amis::{AmisSettings, PruneOptions};
use crate::aws::AmiUse;

fn ours(id: &str, created_at: &str) -> Image {
    image(
        id,
        &[
            ("gears:component", "hello"),
            ("COMPONENT_NAME", "hello"),
            ("COMPONENT_VERSION", id),
            ("gears:builder", "web"),
            ("gears:managed-by", "gears"),
            ("gears:run-id", id),
            ("CREATED_AT", created_at),
        ],
    )
}

/// Three AMIs of the component (the oldest in use, the middle one shared), each with a
/// snapshot, and a snapshot of ours whose AMI is gone.
fn cloud() -> FakeCloud {
    let cloud = FakeCloud::new();
    for (id, at) in [
        ("ami-old", "202601010000"),
        ("ami-mid", "202602010000"),
        ("ami-new", "202603010000"),
    ] {
        cloud.add_image("us-east-1", ours(id, at));
        cloud.add_snapshots("us-east-1", id, &[&format!("snap-{id}")]);
    }
    cloud.add_ami_use(
        "us-east-1",
        AmiUse {
            image_id: "ami-old".into(),
            kind: "launch-template",
            id: "lt-1".into(),
            detail: "hello version 1 (default, latest)".into(),
        },
    );
    cloud.add_snapshots("us-east-1", "ami-gone", &["snap-orphan"]);
    cloud.tag_snapshot(
        "snap-orphan",
        &[
            ("gears:component", "hello"),
            ("gears:managed-by", "gears"),
            ("gears:run-id", "ami-gone"),
        ],
    );
    cloud
}

fn settings() -> AmisSettings {
    AmisSettings {
        account: None,
        consumers: Vec::new(),
        component: "hello".into(),
        regions: vec!["us-east-1".into()],
        endpoint_flag: None,
    }
}

#[tokio::test(start_paused = true)]
async fn the_amis_statement_lists_every_action_amis_calls() {
    let mut runs: Runs = Vec::new();
    let c = cloud();
    assert_eq!(
        crate::amis::list(&settings(), &crate::cancel::Cancel::new(), &c)
            .await
            .unwrap()
            .amis
            .len(),
        3
    );
    runs.push(("list", c.calls()));
    for (yes, include_shared) in [(false, false), (true, false), (true, true)] {
        let c = cloud();
        let opts = PruneOptions {
            keep: 1,
            yes,
            include_shared,
        };
        let report = crate::amis::prune(&settings(), opts, &Cancel::new(), &c)
            .await
            .unwrap();
        if yes {
            assert!(
                report
                    .amis
                    .iter()
                    .any(|p| p.action.to_string() == "deregistered"),
                "{report:?}"
            );
        }
        let scenario = match (yes, include_shared) {
            (false, _) => "prune (what would go)",
            (true, false) => "prune --yes",
            (true, true) => "prune --yes --include-shared",
        };
        runs.push((scenario, c.calls()));
    }
    assert_listed("Amis", &runs);
}

/// What `gears amis` reads in each environment's account (through its role): the uses of the
/// AMIs, never anything else.
#[tokio::test(start_paused = true)]
async fn the_environments_statement_lists_what_amis_reads_there() {
    let mut runs: Runs = Vec::new();
    let mut settings = settings();
    let accounts = crate::accounts::Accounts::from([(
        "live".to_owned(),
        crate::accounts::Role {
            role_arn: "arn:aws:iam::222222222222:role/gears-deploy"
                .parse()
                .unwrap(),
            external_id: None,
        },
    )]);
    settings.consumers = crate::amis::accounts::consumers("hello", &accounts);
    for (scenario, prune) in [("list", false), ("prune --yes --include-shared", true)] {
        let c = cloud();
        c.add_launch_permission("ami-mid", "account 222222222222");
        let live = c.add_account("222222222222");
        if prune {
            let opts = PruneOptions {
                keep: 1,
                yes: true,
                include_shared: true,
            };
            let report = crate::amis::prune(&settings, opts, &Cancel::new(), &c)
                .await
                .unwrap();
            assert!(report.unread.is_empty(), "{report:?}");
        } else {
            let listed = crate::amis::list(&settings, &crate::cancel::Cancel::new(), &c)
                .await
                .unwrap();
            assert!(listed.unread.is_empty(), "{listed:?}");
        }
        let writes = ["Deregister", "Delete", "Create", "Modify"];
        let there = live.calls();
        assert!(
            !there
                .iter()
                .any(|c| writes.iter().any(|w| c.starts_with(w))),
            "{there:?}"
        );
        runs.push((scenario, there));
    }
    assert_listed("AmisInEnvironments", &runs);
}
