//! The refusal of a lock another deploy holds: the same words for every strategy (rolling,
//! instance refresh, blue/green, `--rollback`) and either lock (the group's tag, the lock
//! table): who holds it, since when, when it goes stale, that the same command continues the
//! deploy after that, and that `--abort` undoes it.

use super::*;
use crate::aws::{GroupTags, LockTable};
use crate::deploy::blue_green::record::Switch;
use crate::deploy::lock::{wall_now, LockValue};
use crate::deploy::LOCK_SETTLE;
use crate::exit::Exit;
use tokio::time::Instant;

const OTHER: &str = "0190b7a2-0000-7000-8000-00000000000b";

/// What every refusal of a fresh lock says.
fn assert_says_the_way_on(e: &Error, what: &str) {
    let text = e.render();
    assert_eq!(e.exit(), Exit::Cloud, "{what}: {text}");
    for words in [
        "another deploy holds the lock",
        &format!(": run {OTHER} on ci-host, renewed at "),
        "s ago); the lock goes stale at ",
        "if that deploy is alive, wait for it to end; if it was killed, from ",
        "this same command takes the lock over and continues its deploy",
        "`gears deploy --abort` (with the AMI it deployed) undoes it",
    ] {
        assert!(text.contains(words), "{what}: `{words}` not in:\n{text}");
    }
}

/// A lock `OTHER` renewed a moment ago on `group`.
fn fresh_lock(cloud: &FakeCloud, group: &str) {
    let value = LockValue::held_now(OTHER, "ci-host").write();
    cloud.fake_fleet_tag(group, LOCK_TAG, &value);
}

#[tokio::test(start_paused = true)]
async fn every_strategy_refuses_a_fresh_lock_in_the_same_words() {
    for strategy in [
        Strategy::Rolling,
        Strategy::InstanceRefresh,
        Strategy::BlueGreen,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 2);
        s.strategy = strategy;
        fresh_lock(&cloud, "hello-live");
        if strategy == Strategy::BlueGreen {
            // The case: a blue/green deploy of this AMI killed, run again at once.
            let sw = Switch {
                run: OTHER.into(),
                ami: NEW.into(),
                new: "hello-live-v001".into(),
                phase: "grow".into(),
                susp: vec![],
            };
            cloud.fake_fleet_tag(
                "hello-live",
                "gears:bluegreen",
                &serde_json::to_string(&sw).unwrap(),
            );
        }
        let before = cloud.calls().len();
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_says_the_way_on(&e, &format!("{strategy:?}"));
        let writes: Vec<String> = cloud.calls()[before..]
            .iter()
            .filter(|c| !c.starts_with("Describe"))
            .cloned()
            .collect();
        assert!(writes.is_empty(), "{strategy:?}: {writes:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_rollback_refuses_a_fresh_lock_in_the_same_words() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    s.strategy = Strategy::BlueGreen;
    deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    s.rollback = true;
    // A deploy holds the group in traffic; then one holds the old group.
    for group in ["hello-live-v001", "hello-live"] {
        fresh_lock(&cloud, group);
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_says_the_way_on(&e, &format!("--rollback, lock on {group}"));
        let fleet = cloud.fleet("us-east-1").await.unwrap();
        fleet
            .delete_tags(group, &[LOCK_TAG.to_owned()])
            .await
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn the_lock_table_refuses_in_the_same_words() {
    for strategy in [Strategy::Rolling, Strategy::BlueGreen] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 2);
        s.strategy = strategy;
        s.lock_table = Some("gears-locks".into());
        let key = match strategy {
            Strategy::BlueGreen => "us-east-1/cluster:hello-live",
            _ => "us-east-1/hello-live",
        };
        let table = cloud.locks("us-east-1", "gears-locks").await.unwrap();
        let now = wall_now().timestamp_millis();
        let held = table.acquire(key, OTHER, "ci-host", now, 0).await.unwrap();
        assert!(held.is_none());
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_says_the_way_on(&e, &format!("{strategy:?} with the lock table"));
    }
}

#[tokio::test(start_paused = true)]
async fn with_the_lock_table_a_rollback_does_not_wait_for_the_tag_locks_settle() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    s.strategy = Strategy::BlueGreen;
    s.lock_table = Some("gears-locks".into());
    deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    s.rollback = true;
    let started = Instant::now();
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "deployed", "{d:?}");
    assert!(started.elapsed() < LOCK_SETTLE, "{:?}", started.elapsed());
}
