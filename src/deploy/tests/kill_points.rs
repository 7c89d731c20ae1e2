//! A run killed (`kill -9`) at every write it makes, before and after the write reaches AWS,
//! then continued by the same command, or undone by `--abort`: for a blue/green deploy, a
//! rolling deploy and a blue/green `--rollback`. Whatever write the first run died at, the
//! second ends with the fleet as promised, no `gears:*` lock or record on any group of the
//! cluster, and no lock-table item.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    BlueGreen,
    Rolling,
    Rollback,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Then {
    Same,
    Abort,
}

const SIZE: i32 = 2;

/// The cloud and the command of `op`, everything before it done (a `--rollback` needs a
/// blue/green deploy behind it).
async fn prepare(dir: &std::path::Path, op: Op) -> (DeploySettings, FakeCloud) {
    let (mut s, cloud) = setup(dir, SIZE);
    s.lock_table = Some("gears-locks".into());
    if op != Op::Rolling {
        s.strategy = Strategy::BlueGreen;
    }
    if op == Op::Rollback {
        deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        s.rollback = true;
    }
    (s, cloud)
}

/// The command run again by a second process: the same, or `--abort` (of the same AMI).
fn then(s: &DeploySettings, then: Then) -> DeploySettings {
    let mut s = s.clone();
    if then == Then::Abort {
        s.abort = true;
        s.rollback = false;
    }
    s
}

/// The first run, killed at write `k` (`lands`: after the write reached AWS): whether it died.
async fn killed_at(s: &DeploySettings, cloud: &FakeCloud, k: u32, lands: bool) -> bool {
    cloud.die_at_write(k, lands);
    let (ctx, cancel, cleanup) = (rc(), Cancel::new(), Cleanup::default());
    let died = tokio::select! {
        _ = deploy(s, &ctx, &cancel, &cleanup, cloud) => false,
        _ = cloud.died() => true,
    };
    cloud.revive();
    died
}

/// What every end must show: no lock or record of a run on any group, no lock-table item,
/// one group of the cluster serving (in tg-1, at its size, on one AMI, none of gears'
/// processes suspended) and any other kept out of traffic with its record. The AMI served.
fn settled(cloud: &FakeCloud, what: &str) -> String {
    let names = cloud.group_names();
    let mut serving = Vec::new();
    for name in &names {
        let g = cloud.group(name).unwrap();
        for tag in [LOCK_TAG, STATE_TAG, TAGS_TAG, crate::tags::BLUEGREEN] {
            assert!(
                !g.tags.contains_key(tag),
                "{what}: {tag} left on {name}: {:?}",
                g.tags
            );
        }
        if g.tags.contains_key(crate::tags::RETIRED) {
            assert!(
                g.target_groups.is_empty(),
                "{what}: {name} kept but in traffic"
            );
        } else {
            serving.push(g);
        }
    }
    assert!(
        cloud.lock_items().is_empty(),
        "{what}: {:?}",
        cloud.lock_items()
    );
    assert_eq!(
        serving.len(),
        1,
        "{what}: serving {:?} of {names:?}",
        serving.iter().map(|g| &g.name).collect::<Vec<_>>()
    );
    let g = &serving[0];
    assert_eq!(g.target_groups, ["tg-1"], "{what}: {}", g.name);
    assert_eq!((g.min, g.desired), (SIZE, SIZE), "{what}: {}", g.name);
    assert_eq!(g.suspended, ["AlarmNotification"], "{what}: {}", g.name);
    let imgs = cloud.member_images(&g.name);
    assert_eq!(imgs.len() as i32, SIZE, "{what}: {}: {imgs:?}", g.name);
    assert!(imgs.iter().all(|i| *i == imgs[0]), "{what}: {imgs:?}");
    imgs[0].clone()
}

/// Every kill point of `op`, each continued and aborted: the number of kill points.
async fn every_kill_point(op: Op) -> u32 {
    // The writes of a run that is not killed.
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = prepare(dir.path(), op).await;
    cloud.revive();
    deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    let writes = cloud.writes();
    assert!(writes > 3, "{op:?}: {writes} writes");
    let mut points = 0;
    for k in 1..=writes {
        for lands in [false, true] {
            for next in [Then::Same, Then::Abort] {
                let what = format!(
                    "{op:?} killed at write {k} of {writes} (landed: {lands}), then {next:?}"
                );
                let dir = tempfile::tempdir().unwrap();
                let (s, cloud) = prepare(dir.path(), op).await;
                if !killed_at(&s, &cloud, k, lands).await {
                    continue;
                }
                points += u32::from(next == Then::Same);
                let recorded = cloud.group_names().iter().any(|n| {
                    cloud
                        .group(n)
                        .unwrap()
                        .tags
                        .keys()
                        .any(|t| t == STATE_TAG || t == crate::tags::BLUEGREEN)
                });
                // A rollback that finished before its lock was given back: running
                // `--rollback` again is a new rollback (back to the newer group).
                let rolled_back = op == Op::Rollback
                    && !recorded
                    && cloud
                        .group("hello-live-v001")
                        .is_some_and(|g| g.tags.contains_key(crate::tags::RETIRED));
                // Run again once the dead run's lock went stale.
                tokio::time::sleep(LOCK_STALE + Duration::from_secs(1)).await;
                let r = deploy(
                    &then(&s, next),
                    &rc(),
                    &Cancel::new(),
                    &Cleanup::default(),
                    &cloud,
                )
                .await;
                let d = r.unwrap_or_else(|e| panic!("{what}: {}", e.render()));
                assert!(d.groups.iter().all(|g| !g.result.failed()), "{what}: {d:?}");
                let ami = settled(&cloud, &what);
                match (op, next) {
                    (Op::BlueGreen | Op::Rolling, Then::Same) => assert_eq!(ami, NEW, "{what}"),
                    (Op::Rollback, Then::Same) if rolled_back => assert_eq!(ami, NEW, "{what}"),
                    (Op::Rollback, Then::Same) => assert_eq!(ami, OLD, "{what}"),
                    // Undone when a deploy was recorded; a finished one stays.
                    (Op::BlueGreen | Op::Rolling, Then::Abort) if recorded => {
                        assert_eq!(ami, OLD, "{what}")
                    }
                    _ => {}
                }
            }
        }
    }
    points
}

#[tokio::test(start_paused = true)]
async fn a_blue_green_deploy_killed_at_any_write_is_continued_or_aborted_cleanly() {
    let n = every_kill_point(Op::BlueGreen).await;
    assert!(n > 20, "{n}");
}

#[tokio::test(start_paused = true)]
async fn a_rolling_deploy_killed_at_any_write_is_continued_or_aborted_cleanly() {
    let n = every_kill_point(Op::Rolling).await;
    assert!(n > 10, "{n}");
}

#[tokio::test(start_paused = true)]
async fn a_rollback_killed_at_any_write_is_continued_or_aborted_cleanly() {
    let n = every_kill_point(Op::Rollback).await;
    assert!(n > 5, "{n}");
}
