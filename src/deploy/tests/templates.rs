//! Launch templates and configurations: `$Default` and `$Latest`, versions shared by groups
//! and moved during a deploy, a launch configuration copied with the new AMI.

use crate::aws::Group;
use crate::cancel::Cancel;
use crate::deploy::tests::{add_group_on, deploy, rc, setup, Cleanup, NEW, OLD};
use crate::exit::Exit;
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn a_group_on_default_rolls_back_to_default_not_to_the_latest_version() {
    const UNREVIEWED: &str = "ami-0000000000000009d";
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    // Version 1 (the default) launches OLD; version 2, newer but not the default, an AMI
    // nobody reviewed.
    add_group_on(
        &cloud,
        "hello-default",
        3,
        "lt-d",
        "$Default",
        &[OLD, UNREVIEWED],
    );
    cloud.set_default_version("lt-d", 1);
    assert!(cloud
        .member_images("hello-default")
        .iter()
        .all(|i| i == OLD));
    s.groups = vec!["hello-default".into()];
    cloud.set_unhealthy_images(&[NEW]);
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
    let g = cloud.group("hello-default").unwrap();
    assert_eq!(g.template.unwrap().version, "$Default");
    assert!(cloud
        .member_images("hello-default")
        .iter()
        .all(|i| i == OLD));
    assert_eq!((g.min, g.max, g.desired), (3, 3, 3));
}

#[tokio::test(start_paused = true)]
async fn groups_sharing_a_latest_template_share_one_new_version_and_one_way_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    add_group_on(&cloud, "hello-a", 2, "lt-s", "$Latest", &[OLD]);
    add_group_on(&cloud, "hello-b", 2, "lt-s", "$Latest", &[OLD]);
    s.groups = vec!["hello-a".into(), "hello-b".into()];
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::Success, "{d:?}");
    // Both on the one new version (the second group's request had the same client token).
    assert_eq!(cloud.template_versions("lt-s"), [OLD, NEW]);
    for n in ["hello-a", "hello-b"] {
        assert_eq!(
            cloud.group(n).unwrap().template.unwrap().version,
            "2",
            "{n}"
        );
        assert!(cloud.member_images(n).iter().all(|i| i == NEW), "{n}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_default_version_moved_during_the_deploy_is_not_where_the_rollback_goes() {
    const UNREVIEWED: &str = "ami-0000000000000009d";
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    add_group_on(
        &cloud,
        "hello-default",
        3,
        "lt-d",
        "$Default",
        &[OLD, UNREVIEWED],
    );
    s.groups = vec!["hello-default".into()];
    cloud.set_unhealthy_images(&[NEW]);
    let mover = cloud.clone();
    tokio::spawn(async move {
        // Once the deploy made its version (3), someone makes version 2 the default.
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let v = mover
                .group("hello-default")
                .unwrap()
                .template
                .unwrap()
                .version;
            if v == "3" {
                mover.set_default_version("lt-d", 2);
                break;
            }
        }
    });
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
    assert_eq!(
        cloud
            .group("hello-default")
            .unwrap()
            .template
            .unwrap()
            .version,
        "1"
    );
    assert!(cloud
        .member_images("hello-default")
        .iter()
        .all(|i| i == OLD));
}

#[tokio::test(start_paused = true)]
async fn a_group_on_a_launch_configuration_gets_a_copy_with_the_new_ami() {
    for healthy in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 0);
        cloud.add_configuration("web-lc", OLD);
        cloud.add_group(
            Group {
                name: "hello-lc".into(),
                min: 3,
                max: 3,
                desired: 3,
                template: None,
                launch_configuration: Some("web-lc".into()),
                mixed: false,
                override_templates: vec![],
                members: vec![],
                target_groups: vec!["tg-2".into()],
                load_balancers: vec![],
                other_traffic: vec![],
                units: None,
                warm_pool: false,
                suspended: vec![],
                tags: BTreeMap::from([
                    ("gears:component".to_owned(), "hello".to_owned()),
                    ("gears:environment".to_owned(), "live".to_owned()),
                ]),
            },
            &[],
        );
        if !healthy {
            cloud.set_unhealthy_images(&[NEW]);
        }
        let mut s = s;
        s.groups = vec!["hello-lc".into()];
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        let g = cloud.group("hello-lc").unwrap();
        let images = cloud.member_images("hello-lc");
        assert_eq!(d.groups[0].from_ami, OLD);
        if healthy {
            assert_eq!(d.groups[0].result, "deployed", "{d:?}");
            let lc = g.launch_configuration.unwrap();
            assert!(lc.starts_with("web-lc-gears-"), "{lc}");
            assert_eq!(cloud.configurations()[&lc], NEW);
            assert!(images.iter().all(|i| i == NEW), "{images:?}");
        } else {
            assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
            assert_eq!(g.launch_configuration.as_deref(), Some("web-lc"));
            assert!(images.iter().all(|i| i == OLD), "{images:?}");
        }
        assert_eq!((g.min, g.max, g.desired, images.len()), (3, 3, 3, 3));
        assert!(
            cloud.configurations().contains_key("web-lc"),
            "the old one stays"
        );
        assert_eq!(cloud.healthy_floor("hello-lc"), Some(3));
    }
}
