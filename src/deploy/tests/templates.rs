//! Launch templates and configurations: `$Default` and `$Latest`, versions shared by groups
//! and moved during a deploy, a launch configuration copied with the new AMI.

use crate::aws::fake::FakeCloud;
use crate::aws::{Cloud, Group, Launches, TemplateRef};
use crate::cancel::Cancel;
use crate::deploy::tests::{
    add_group_on, deploy, killed_at, rc, setup, writes_of, Cleanup, NEW, OLD,
};
use crate::deploy::{DeploySettings, Strategy, LOCK_STALE};
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

/// Two groups on one template's `$Latest`, the run killed at every write (before and after it
/// lands), rolling and blue/green: the same command deploys both (the second from the version
/// before the killed run's, not refused or pinned to the new AMI), and `--abort` leaves every
/// group launching the AMI it runs (the killed run's version, which `$Latest` pointed the
/// untouched group at, deleted once no group uses it).
#[tokio::test(start_paused = true)]
async fn groups_sharing_latest_killed_at_any_write_are_continued_or_aborted() {
    for strategy in [Strategy::Rolling, Strategy::BlueGreen] {
        let points = sharing_latest_killed(strategy).await;
        assert!(points > 10, "{strategy:?}: {points}");
    }
}

/// [`groups_sharing_latest_killed_at_any_write_are_continued_or_aborted`] for one strategy: the
/// number of kill points.
async fn sharing_latest_killed(strategy: Strategy) -> u32 {
    let fresh = |dir: &std::path::Path| -> (DeploySettings, FakeCloud) {
        let (mut s, cloud) = setup(dir, 2);
        add_group_on(&cloud, "hello-a", 2, "lt-s", "$Latest", &[OLD]);
        add_group_on(&cloud, "hello-b", 2, "lt-s", "$Latest", &[OLD]);
        // The two groups found by their tags (a blue/green cluster's group in traffic changes).
        cloud.edit_group("hello-live", |g| g.tags.clear());
        s.strategy = strategy;
        (s, cloud)
    };
    let writes = writes_of(fresh).await;
    let mut points = 0;
    for k in 1..=writes {
        for lands in [false, true] {
            for abort in [false, true] {
                let what = format!(
                    "{strategy:?} killed at write {k} of {writes} (landed: {lands}), abort: {abort}"
                );
                let dir = tempfile::tempdir().unwrap();
                let (s, cloud) = fresh(dir.path());
                if !killed_at(&s, &cloud, k, lands).await {
                    continue;
                }
                points += u32::from(!abort);
                tokio::time::sleep(LOCK_STALE + Duration::from_secs(1)).await;
                let mut next = s.clone();
                next.abort = abort;
                let d = deploy(&next, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {}", e.render()));
                assert!(d.groups.iter().all(|g| !g.result.failed()), "{what}: {d:?}");
                launch_what_they_run(&cloud, abort, &what);
            }
        }
    }
    points
}

/// Every group in traffic runs one AMI and launches it (the new one unless `abort`). A group
/// whose deploy finished before the kill stays deployed after `--abort` (and the template's
/// `$Latest` with it): the same command deploys the other.
fn launch_what_they_run(cloud: &FakeCloud, abort: bool, what: &str) {
    let serving: Vec<String> = cloud
        .group_names()
        .into_iter()
        .filter(|n| n.starts_with("hello-a") || n.starts_with("hello-b"))
        .filter(|n| {
            !cloud
                .group(n)
                .unwrap()
                .tags
                .contains_key(crate::tags::RETIRED)
        })
        .collect();
    let finished = serving
        .iter()
        .any(|n| cloud.member_images(n).iter().any(|i| i == NEW));
    if abort && finished {
        return;
    }
    for n in &serving {
        let imgs = cloud.member_images(n);
        if !abort {
            assert!(imgs.iter().all(|i| i == NEW), "{what}: {n} {imgs:?}");
        }
        assert!(imgs.iter().all(|i| *i == imgs[0]), "{what}: {n} {imgs:?}");
        assert_eq!(
            cloud.launches(n).as_ref(),
            Some(&imgs[0]),
            "{what}: {n} launches another AMI than it runs ({:?}, versions {:?})",
            cloud.group(n).unwrap().template,
            cloud.template_versions("lt-s")
        );
    }
}

/// `--abort` of one group never deletes the template version a deploy recorded on another group
/// of the template may still need (the same run's client token gets it back when that deploy is
/// continued). A run killed once its version existed, with its deploy recorded on both groups
/// (the fake runs them one after the other, so the second record is copied over), the first
/// aborted: the same command then deploys both.
#[tokio::test(start_paused = true)]
async fn an_abort_keeps_the_version_a_sibling_deploy_still_needs() {
    for same_run in [true, false] {
        assert!(
            sibling_recorded(same_run).await,
            "no kill point with the version made and not recorded"
        );
    }
}

/// [`an_abort_keeps_the_version_a_sibling_deploy_still_needs`]: the sibling's record of the same
/// run keeps the version (and the same command then deploys both); another run's record does not
/// (its continued deploy could never get this version back). Whether a kill point served.
async fn sibling_recorded(same_run: bool) -> bool {
    use crate::deploy::{LOCK_TAG, STATE_TAG};
    for k in 1..=12 {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 2);
        add_group_on(&cloud, "hello-a", 2, "lt-s", "$Latest", &[OLD]);
        add_group_on(&cloud, "hello-b", 2, "lt-s", "$Latest", &[OLD]);
        cloud.edit_group("hello-live", |g| g.tags.clear());
        killed_at(&s, &cloud, k, true).await;
        let a = cloud.group("hello-a").unwrap();
        let recorded = a.tags.get(STATE_TAG).filter(|v| !v.contains("\"to\""));
        let (Some(state), 2) = (recorded, cloud.template_versions("lt-s").len()) else {
            continue;
        };
        assert!(state.contains("\"fromn\":\"1\""), "{state}");
        let run = crate::deploy::state::State::parse(state).unwrap().run;
        for tag in [STATE_TAG, LOCK_TAG] {
            let v = a.tags[tag].clone();
            // Another run's record, of another version than this one.
            let v = if same_run {
                v
            } else {
                v.replace(&run, "another-run")
                    .replace("\"from\":\"1\"", "\"from\":\"1\",\"to\":\"9\"")
            };
            cloud.fake_fleet_tag("hello-b", tag, &v);
        }
        tokio::time::sleep(LOCK_STALE + Duration::from_secs(1)).await;
        let mut abort = s.clone();
        abort.abort = true;
        abort.groups = vec!["hello-a".into()];
        deploy(&abort, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        let fleet = cloud.fleet("us-east-1").await.unwrap();
        let latest = TemplateRef {
            id: "lt-s".into(),
            version: "$Latest".into(),
        };
        let now = fleet.resolve_version(&latest).await.unwrap();
        assert_eq!(
            now,
            if same_run { "2" } else { "1" },
            "same run: {same_run}"
        );
        if same_run {
            let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap();
            assert!(d.groups.iter().all(|g| !g.result.failed()), "{d:?}");
            launch_what_they_run(&cloud, false, &format!("killed at write {k}"));
        }
        return true;
    }
    false
}

/// `--abort` never deletes a version gears did not make: someone's own version of the template
/// with the AMI, made after the killed run, stays whatever write that run died at.
#[tokio::test(start_paused = true)]
async fn an_abort_never_deletes_a_version_made_by_hand() {
    let fresh = |dir: &std::path::Path| -> (DeploySettings, FakeCloud) {
        let (mut s, cloud) = setup(dir, 2);
        add_group_on(&cloud, "hello-a", 2, "lt-s", "$Latest", &[OLD]);
        s.groups = vec!["hello-a".into()];
        (s, cloud)
    };
    let writes = writes_of(fresh).await;
    let mut aborted = 0;
    for k in 1..=writes {
        let what = format!("killed at write {k} of {writes}");
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = fresh(dir.path());
        if !killed_at(&s, &cloud, k, true).await {
            continue;
        }
        let mine = cloud.add_version_by_hand("lt-s", NEW);
        tokio::time::sleep(LOCK_STALE + Duration::from_secs(1)).await;
        let mut abort = s.clone();
        abort.abort = true;
        let d = deploy(&abort, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_or_else(|e| panic!("{what}: {}", e.render()));
        aborted += u32::from(d.groups[0].result == "aborted");
        let fleet = cloud.fleet("us-east-1").await.unwrap();
        let latest = TemplateRef {
            id: "lt-s".into(),
            version: "$Latest".into(),
        };
        let now = fleet.resolve_version(&latest).await.unwrap();
        assert_eq!(now, mine.to_string(), "{what}: {d:?}");
    }
    assert!(aborted > 3, "{aborted}");
}
