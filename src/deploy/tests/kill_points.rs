//! A run killed (`kill -9`) at every write it makes, before and after the write reaches AWS,
//! then continued by the same command, or undone by `--abort`: for a blue/green deploy, a
//! rolling deploy and a blue/green `--rollback`. Whatever write the first run died at, the
//! second ends with the fleet as promised, no `gears:*` lock or record on any group of the
//! cluster, and no lock-table item; the instance tags the groups propagate are those of the AMI
//! served. With the lock table and with the tag lock alone. A rolling deploy is also continued
//! onto an AMI that fails its gate: the rollback puts the instance tags back, whatever write the
//! first run died at.

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
    /// The same command, but the new AMI fails its gate now (the continued deploy rolls back).
    SameUnhealthy,
}

/// The lock the runs take: the lock table's (and the tag), or the tag alone.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Lock {
    Table,
    Tag,
}

const SIZE: i32 = 2;

/// The cloud and the command of `op`, everything before it done (a `--rollback` needs a
/// blue/green deploy behind it).
async fn prepare(dir: &std::path::Path, op: Op, lock: Lock) -> (DeploySettings, FakeCloud) {
    let (mut s, cloud) = setup(dir, SIZE);
    if lock == Lock::Table {
        s.lock_table = Some("gears-locks".into());
    }
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

/// What every end must show: no lock or record of a run on any group, no lock-table item,
/// one group of the cluster serving (in tg-1, at its size, on one AMI, none of gears'
/// processes suspended, the instance tags of that AMI's deploy, or none on the old AMI) and any
/// other kept out of traffic with its record. The AMI served.
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
    // The deploy's instance tags (the group had none before it).
    assert_eq!(
        g.tags.get("COMPONENT_NAME").map(String::as_str),
        (imgs[0] == NEW).then_some("hello"),
        "{what}: the instance tags of {} on {}: {:?}",
        g.name,
        imgs[0],
        g.tags
    );
    imgs[0].clone()
}

/// Every kill point of `op`, each followed by each of `nexts`: the number of kill points.
async fn every_kill_point(op: Op, lock: Lock, nexts: &[Then]) -> u32 {
    // The writes of a run that is not killed.
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = prepare(dir.path(), op, lock).await;
    cloud.revive();
    deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    let writes = cloud.writes();
    assert!(writes > 3, "{op:?}: {writes} writes");
    let mut points = 0;
    for k in 1..=writes {
        for lands in [false, true] {
            for &next in nexts {
                let what = format!(
                    "{op:?} with the {lock:?} lock killed at write {k} of {writes} (landed: {lands}), then {next:?}"
                );
                let dir = tempfile::tempdir().unwrap();
                let (s, cloud) = prepare(dir.path(), op, lock).await;
                if !killed_at(&s, &cloud, k, lands).await {
                    continue;
                }
                points += u32::from(next == nexts[0]);
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
                let finished = !recorded && all(&cloud, NEW);
                if next == Then::SameUnhealthy {
                    cloud.set_unhealthy_images(&[NEW]);
                }
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
                let ami = settled(&cloud, &what);
                if next == Then::SameUnhealthy {
                    let want = if finished { NEW } else { OLD };
                    assert_eq!(ami, want, "{what}: {d:?}");
                    continue;
                }
                assert!(d.groups.iter().all(|g| !g.result.failed()), "{what}: {d:?}");
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

const BOTH: [Then; 2] = [Then::Same, Then::Abort];

#[tokio::test(start_paused = true)]
async fn a_blue_green_deploy_killed_at_any_write_is_continued_or_aborted_cleanly() {
    let n = every_kill_point(Op::BlueGreen, Lock::Table, &BOTH).await;
    assert!(n > 20, "{n}");
}

#[tokio::test(start_paused = true)]
async fn a_rolling_deploy_killed_at_any_write_is_continued_or_aborted_cleanly() {
    let n = every_kill_point(Op::Rolling, Lock::Table, &BOTH).await;
    assert!(n > 10, "{n}");
}

#[tokio::test(start_paused = true)]
async fn a_rollback_killed_at_any_write_is_continued_or_aborted_cleanly() {
    let n = every_kill_point(Op::Rollback, Lock::Table, &BOTH).await;
    assert!(n > 5, "{n}");
}

#[tokio::test(start_paused = true)]
async fn with_the_tag_lock_a_blue_green_deploy_killed_at_any_write_is_continued_or_aborted_cleanly()
{
    let n = every_kill_point(Op::BlueGreen, Lock::Tag, &BOTH).await;
    assert!(n > 20, "{n}");
}

#[tokio::test(start_paused = true)]
async fn with_the_tag_lock_a_rolling_deploy_killed_at_any_write_is_continued_or_aborted_cleanly() {
    let n = every_kill_point(Op::Rolling, Lock::Tag, &BOTH).await;
    assert!(n > 10, "{n}");
}

#[tokio::test(start_paused = true)]
async fn with_the_tag_lock_a_rollback_killed_at_any_write_is_continued_or_aborted_cleanly() {
    let n = every_kill_point(Op::Rollback, Lock::Tag, &BOTH).await;
    assert!(n > 5, "{n}");
}

/// A continued deploy whose gate fails rolls back to the instance tags the group had before
/// the first run, even when that run died before it kept them.
#[tokio::test(start_paused = true)]
async fn a_rolling_deploy_killed_at_any_write_then_continued_onto_a_failing_gate_puts_everything_back(
) {
    for lock in [Lock::Table, Lock::Tag] {
        let n = every_kill_point(Op::Rolling, lock, &[Then::SameUnhealthy]).await;
        assert!(n > 10, "{n}");
    }
}
