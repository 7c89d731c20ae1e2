//! What is refused before any change: an AMI that does not exist, another component's
//! manifest or group, unknown groups, overrides and shared `$Latest` templates.
use crate::aws::Launches;

use crate::aws::{Cloud, TemplateRef};
use crate::cancel::Cancel;
use crate::deploy::tests::{add_group_on, all, as_before, deploy, rc, setup, Cleanup, NEW, OLD};
use crate::deploy::{LOCK_TAG, STATE_TAG};
use crate::exit::Exit;
use crate::settings::AmiChoice;

#[tokio::test(start_paused = true)]
async fn overrides_with_launch_templates_of_their_own_are_refused_before_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 2);
    cloud.set_mixed("hello-live", &["m6g.large"]);
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::InvalidInput, "{}", e.render());
    assert!(
        e.render()
            .contains("gives m6g.large a launch template of its own"),
        "{}",
        e.render()
    );
    assert!(all(&cloud, OLD));
    let g = cloud.group("hello-live").unwrap();
    assert!(
        !g.tags.contains_key(LOCK_TAG) && !g.tags.contains_key(STATE_TAG),
        "{:?}",
        g.tags
    );
    assert_eq!(g.template.unwrap().version, "1");
}

#[tokio::test(start_paused = true)]
async fn a_latest_template_shared_or_already_on_the_new_ami_is_refused_before_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    add_group_on(&cloud, "hello-a", 2, "lt-s", "$Latest", &[OLD]);
    add_group_on(&cloud, "other-b", 2, "lt-s", "$Latest", &[OLD]);
    cloud.fake_fleet_tag("other-b", "gears:component", "other");
    // Another component's group launches from the same $Latest: refused, naming it.
    s.groups = vec!["hello-a".into()];
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::InvalidInput, "{}", e.render());
    assert!(
        e.render()
            .contains("other-b (lt-s) launch from the same template's $Latest"),
        "{}",
        e.render()
    );
    assert_eq!(cloud.template_versions("lt-s"), [OLD]);
    // Someone made the new AMI the template's $Latest by hand (perhaps with other changes):
    // nothing gears may step back past, nothing to roll back to, refused.
    add_group_on(&cloud, "hello-b", 2, "lt-t", "$Latest", &[OLD]);
    let fleet = cloud.fleet("us-east-1").await.unwrap();
    cloud.add_version_by_hand("lt-t", NEW);
    s.groups = vec!["hello-b".into()];
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::InvalidInput, "{}", e.render());
    assert!(
        e.render()
            .contains("a rollback would have no version to return to"),
        "{}",
        e.render()
    );
    let b = cloud.group("hello-b").unwrap();
    assert_eq!(b.template.unwrap().version, "$Latest");
    assert!(
        !b.tags.contains_key(LOCK_TAG) && !b.tags.contains_key(STATE_TAG),
        "{:?}",
        b.tags
    );
    assert!(cloud.member_images("hello-b").iter().all(|i| i == OLD));
    // A version gears made with the AMI (a killed run's, for another group) is stepped back
    // past: the deploy starts from the version the instances came from, and a rollback returns
    // there.
    add_group_on(&cloud, "hello-c", 2, "lt-u", "$Latest", &[OLD]);
    let one = TemplateRef {
        id: "lt-u".into(),
        version: "1".into(),
    };
    fleet
        .new_template_version(&one, NEW, "run-0")
        .await
        .unwrap();
    s.groups = vec!["hello-c".into()];
    cloud.set_unhealthy_images(&[NEW]);
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
    let c = cloud.group("hello-c").unwrap();
    assert_eq!(c.template.unwrap().version, "1");
    assert!(cloud.member_images("hello-c").iter().all(|i| i == OLD));
}

#[tokio::test(start_paused = true)]
async fn an_ami_that_does_not_exist_is_refused_before_any_change() {
    for plan in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 2);
        s.plan_only = plan;
        s.ami = AmiChoice::Explicit {
            ami: "ami-deadbeef00000000".into(),
            region: "us-east-1".into(),
        };
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::InvalidInput, "{}", e.render());
        assert!(
            e.render()
                .contains("AMI ami-deadbeef00000000: it does not exist in us-east-1"),
            "{}",
            e.render()
        );
        assert!(all(&cloud, OLD));
        as_before(&cloud, 2);
        assert!(!cloud
            .calls()
            .iter()
            .any(|c| c.starts_with("CreateLaunchTemplateVersion")));
    }
}

#[tokio::test(start_paused = true)]
async fn a_named_group_of_another_component_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    add_group_on(&cloud, "other-live", 2, "lt-o", "1", &[OLD]);
    cloud.fake_fleet_tag("other-live", "gears:component", "other");
    s.groups = vec!["other-live".into()];
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Usage, "{}", e.render());
    assert!(
        e.render()
            .contains("--group other-live: the group is tagged gears:component=other, not hello"),
        "{}",
        e.render()
    );
    assert!(cloud.member_images("other-live").iter().all(|i| i == OLD));
}

#[tokio::test(start_paused = true)]
async fn another_components_manifest_and_unknown_groups_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    let m = dir.path().join("m.json");
    std::fs::write(
        &m,
        format!(r#"{{"format_version":1,"component":"other","version":"1","git_sha":"a","repo":"r","created_at":"c","ami_version":"v","base_ami":"b","run_id":"x","packer_run_uuid":null,"reused":false,"amis":{{"web":{{"us-east-1":"{NEW}"}}}}}}"#),
    )
    .unwrap();
    s.ami = AmiChoice::Manifest {
        path: m,
        builder: None,
        region: None,
    };
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::InvalidInput);
    assert!(
        e.render().contains("the manifest is of component `other`"),
        "{}",
        e.render()
    );
    let (mut s, _) = setup(dir.path(), 2);
    s.groups = vec!["nope".into()];
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Usage);
    assert!(
        e.render().contains("no Auto Scaling group named nope"),
        "{}",
        e.render()
    );
    s.groups = vec!["hello-live".into()];
    s.environment = "stage".into();
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert!(
        e.render()
            .contains("tagged gears:environment=live, not stage"),
        "{}",
        e.render()
    );
    assert!(all(&cloud, OLD));
}
