//! The Status statement against what `gears status` calls; status only reads.

use super::*;
use crate::status::{StatusSettings, PATIENCE, POLL};

/// A screen that shows nothing.
struct Blind;
impl crate::ui::Screen for Blind {
    fn show(&self, _: &str) {}
    fn live(&self) -> bool {
        false
    }
}

/// `gears status` of a fleet: a group on a launch template with a deploy recorded on it, and
/// one on a launch configuration.
async fn look() -> FakeCloud {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gears.yaml"), COMPONENT).unwrap();
    let cloud = FakeCloud::new();
    cloud.add_image("us-east-1", image("ami-1", &[("COMPONENT_VERSION", "1.0")]));
    let mut g = deploy_group("hello-live", Some(("lt-1", "1")), None);
    g.tags.insert(
        crate::deploy::STATE_TAG.into(),
        r#"{"run":"r1","ami":"ami-02222222222222222","lt":"lt-1","from":"1","min":2,"max":2,"desired":2,"susp":[]}"#.into(),
    );
    cloud.add_group(g, &["ami-1"]);
    cloud.add_configuration("hello-lc", "ami-1");
    cloud.add_group(deploy_group("hello-stage", None, Some("hello-lc")), &[]);
    let s = StatusSettings {
        component_file: dir.path().join("gears.yaml"),
        environments: vec![],
        regions: vec![],
        watch: false,
        poll: POLL.into(),
        account: None,
        lock_stale: crate::deploy::LOCK_STALE,
        patience: PATIENCE,
        json: false,
        endpoint_flag: None,
    };
    let st = crate::status::run(&s, &Cancel::new(), &cloud, &Blind)
        .await
        .unwrap();
    assert_eq!(st.groups.len(), 2, "{st:?}");
    cloud
}

fn deploy_group(name: &str, lt: Option<(&str, &str)>, lc: Option<&str>) -> Group {
    Group {
        name: name.into(),
        min: 2,
        max: 2,
        desired: 2,
        template: lt.map(|(id, v)| TemplateRef {
            id: id.into(),
            version: v.into(),
        }),
        launch_configuration: lc.map(str::to_owned),
        mixed: false,
        override_templates: vec![],
        members: vec![],
        target_groups: vec![],
        load_balancers: vec![],
        other_traffic: vec![],
        units: None,
        warm_pool: false,
        suspended: vec![],
        tags: tags(&[("gears:component", "hello"), ("gears:environment", "live")]),
    }
}

#[tokio::test(start_paused = true)]
async fn the_status_statement_lists_every_action_status_calls_and_reads_only() {
    let cloud = look().await;
    assert!(called(&cloud, "DescribeLaunchConfigurations"));
    assert!(called(&cloud, "DescribeLaunchTemplateVersions"));
    assert_listed("Status", &vec![("a fleet mid-deploy", cloud.calls())]);
    let policy = policy();
    let writes: Vec<&String> = policy["Status"]
        .iter()
        .filter(|a| {
            let op = a.split(':').nth(1).unwrap_or_default();
            !["Describe", "Get", "List"]
                .iter()
                .any(|p| op.starts_with(p))
        })
        .collect();
    assert!(writes.is_empty(), "status reads only: {writes:?}");
}
