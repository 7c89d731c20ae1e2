//! The Reap statement against what `gears reap` calls, listing and removing.

use super::*;
use crate::reap::ReapSettings;

fn packer_name(secs_ago: i64) -> String {
    format!(
        "packer_{:08x}-0000-0000-0000-000000000000",
        chrono::Utc::now().timestamp() - secs_ago
    )
}

/// An expired test instance, an old packer key pair, an old unused packer security group and
/// an old Spot launch template of a bake.
fn cloud() -> FakeCloud {
    let cloud = FakeCloud::new();
    cloud.add_instance(
        "us-east-1",
        Instance {
            id: "i-old".into(),
            state: "running".into(),
            private_ip: None,
            public_ip: None,
            tags: tags(&[
                ("gears:managed-by", "gears"),
                ("gears:purpose", "test"),
                ("gears:expires-at", "2020-01-01T00:00:00Z"),
            ]),
            launched_at: Some("2020-01-01T00:00:00Z".into()),
        },
    );
    cloud.add_key_pair(&packer_name(5 * 3600));
    cloud.add_security_group(SecurityGroup {
        id: "sg-old".into(),
        name: packer_name(5 * 3600),
        in_use: false,
    });
    let made = chrono::Utc::now() - chrono::Duration::hours(5);
    cloud.add_named_template(crate::aws::NamedTemplate {
        id: "lt-0123456789abcdef0".into(),
        name: "packer-fleet-launch-template-Ab3dE5g".into(),
        created_at: Some(made.to_rfc3339()),
        tags: tags(&[
            ("gears:managed-by", "gears"),
            ("gears:purpose", "bake"),
            ("gears:run-id", "run-1"),
        ]),
    });
    cloud
}

#[tokio::test(start_paused = true)]
async fn the_reap_statement_lists_every_action_reap_calls() {
    let mut runs: Runs = Vec::new();
    for yes in [false, true] {
        let c = cloud();
        let s = ReapSettings {
            account: None,
            regions: vec!["us-east-1".into()],
            yes,
            ttl: Duration::from_secs(3 * 3600),
            json: false,
            endpoint_flag: None,
        };
        let found = crate::reap::reap(&s, &Cancel::new(), &c).await.unwrap();
        let want = if yes { "removed" } else { "listed" };
        assert_eq!(found.len(), 4, "{found:?}");
        assert_eq!(c.named_template_ids().is_empty(), yes);
        assert!(
            found.iter().all(|l| l.action.to_string() == want),
            "{found:?}"
        );
        runs.push((if yes { "removing" } else { "listing" }, c.calls()));
    }
    assert_listed("Reap", &runs);
}
