//! Tests of the deploy on the in-memory fake, with tokio's paused clock: here the helpers they
//! share, in the files below one subject each.

use crate::aws::fake::{FakeCloud, Faults};
use crate::aws::{Cloud, Member};
use crate::aws::{Group, TemplateRef};
use crate::cancel::Cancel;
use crate::cancel::Cleanup;
use crate::deploy::{
    defaults, Batch, DeploySettings, Deployed, Strategy, LOCK_STALE, LOCK_TAG, STATE_TAG, TAGS_TAG,
};
use crate::error::Error;
use crate::settings::AmiChoice;
use std::collections::BTreeMap;
use std::time::Duration;

pub(super) const OLD: &str = "ami-0000000000000001a";

pub(super) fn rc() -> crate::context::RunContext {
    crate::testing::ctx()
}
pub(super) const NEW: &str = "ami-0000000000000002b";

/// The deploy as the tests run it: progress kept, the error of a failed run (its report is
/// asserted through the fake's state).
pub(super) async fn deploy<C: Cloud>(
    s: &DeploySettings,
    ctx: &crate::context::RunContext,
    cancel: &Cancel,
    cleanup: &Cleanup,
    cloud: &C,
) -> Result<Deployed, Error> {
    let ui = crate::ui::Recorded::default();
    super::deploy(s, ctx, cancel, cleanup, cloud, &ui)
        .await
        .map_err(|f| f.error)
}

pub(super) fn setup(dir: &std::path::Path, desired: i32) -> (DeploySettings, FakeCloud) {
    std::fs::write(
        dir.join("gears.yaml"),
        "component: hello\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-0123456789abcdef0}\n",
    )
    .unwrap();
    let cloud = FakeCloud::new();
    // The AMIs deploys go to exist (deploy checks before it changes anything).
    for id in [NEW, "ami-0000000000000003c"] {
        cloud.add_image(
            "us-east-1",
            crate::aws::Image {
                id: id.into(),
                name: id.into(),
                state: "available".into(),
                owner: String::new(),
                public: false,
                creation_date: "2026-11-24T00:00:00.000Z".into(),
                tags: BTreeMap::new(),
                ..Default::default()
            },
        );
    }
    cloud.add_group(
        Group {
            name: "hello-live".into(),
            min: desired,
            max: desired,
            desired,
            template: Some(TemplateRef {
                id: "lt-1".into(),
                version: "1".into(),
            }),
            launch_configuration: None,
            mixed: false,
            override_templates: vec![],
            members: Vec::<Member>::new(),
            target_groups: vec!["tg-1".into()],
            load_balancers: vec![],
            other_traffic: vec![],
            units: None,
            warm_pool: false,
            suspended: vec!["AlarmNotification".into()],
            tags: BTreeMap::from([
                ("gears:component".to_owned(), "hello".to_owned()),
                ("gears:environment".to_owned(), "live".to_owned()),
            ]),
        },
        &[OLD],
    );
    let settings = DeploySettings {
        component_file: dir.join("gears.yaml"),
        ami: AmiChoice::Explicit {
            ami: NEW.into(),
            region: "us-east-1".into(),
        },
        environment: "live".into(),
        country: None,
        groups: vec![],
        batch: Some(Batch::Count(2)),
        strategy: Strategy::Rolling,
        gate_timeout: Duration::from_secs(60),
        poll: Duration::from_secs(1),
        smoke_target: None,
        no_smoke: false,
        lock_stale: LOCK_STALE,
        lock_table: None,
        alarms: vec![],
        bake_time: Duration::ZERO,
        parallel: 1,
        min_healthy: 100,
        plan_only: false,
        abort: false,
        unlock: false,
        endpoint_flag: None,
        keep_old: defaults::KEEP_OLD,
        scale_old_to: None,
        keep_groups: defaults::KEEP_GROUPS,
        account: None,
        rollback: false,
    };
    (settings, cloud)
}

/// How many writes a whole run of the command `fresh` sets up makes (its kill points).
pub(super) async fn writes_of(
    fresh: impl Fn(&std::path::Path) -> (DeploySettings, FakeCloud),
) -> u32 {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = fresh(dir.path());
    deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    cloud.writes()
}

/// A first run of `s`, killed (`kill -9`) at write `k` (`lands`: after the write reached AWS):
/// whether it died (a run with fewer writes ends first).
pub(super) async fn killed_at(s: &DeploySettings, cloud: &FakeCloud, k: u32, lands: bool) -> bool {
    cloud.die_at_write(k, lands);
    let (ctx, cancel, cleanup) = (rc(), Cancel::new(), Cleanup::default());
    let died = tokio::select! {
        _ = deploy(s, &ctx, &cancel, &cleanup, cloud) => false,
        _ = cloud.died() => true,
    };
    cloud.revive();
    died
}

pub(super) fn all(cloud: &FakeCloud, ami: &str) -> bool {
    let imgs = cloud.member_images("hello-live");
    !imgs.is_empty() && imgs.iter().all(|i| i == ami)
}

pub(super) fn as_before(cloud: &FakeCloud, n: i32) {
    let g = cloud.group("hello-live").unwrap();
    assert_eq!(
        (g.min, g.max, g.desired, g.members.len() as i32),
        (n, n, n, n)
    );
    assert_eq!(
        g.suspended,
        ["AlarmNotification"],
        "what was suspended before stays"
    );
    assert!(
        !g.tags.contains_key(STATE_TAG)
            && !g.tags.contains_key(LOCK_TAG)
            && !g.tags.contains_key(TAGS_TAG),
        "{:?}",
        g.tags
    );
}

/// A second group of the component in the same region, on a template of its own.
pub(super) fn add_second_group(cloud: &FakeCloud, name: &str, n: i32) {
    add_group_on(cloud, name, n, "lt-2", "1", &[OLD]);
}

/// A group on launch template `lt` at `version`, whose versions launch `images`.
pub(super) fn add_group_on(
    cloud: &FakeCloud,
    name: &str,
    n: i32,
    lt: &str,
    version: &str,
    images: &[&str],
) {
    let g = cloud.group("hello-live").unwrap();
    cloud.add_group(
        Group {
            name: name.into(),
            min: n,
            max: n,
            desired: n,
            template: Some(TemplateRef {
                id: lt.into(),
                version: version.into(),
            }),
            members: vec![],
            ..g
        },
        images,
    );
}

mod admin;
mod alarms;
mod bake_time;
mod blue_green;
mod checks;
mod cost;
mod gate;
mod kill_points;
mod locks;
mod plan;
mod refresh;
mod refusals;
mod resume;
mod rollback;
mod rolling;
mod signals;
mod state;
mod strict;
mod templates;
