//! What a deploy costs in AWS calls: one look at the region per poll, whatever the number of
//! groups it rolls (`RegionLooks`: one DescribeAutoScalingGroups for all of them, one
//! DescribeTargetHealth per target group), and each group's lock renewed on its lease's
//! cadence, never per poll.

use crate::cancel::Cancel;
use crate::deploy::tests::{add_group_on, deploy, rc, setup, Cleanup, NEW, OLD};
use crate::deploy::{Batch, LOCK_STALE, LOCK_TAG};
use crate::exit::Exit;
use std::time::Duration;
use tokio::time::Instant;

/// The new instances pass their health checks this long after the deploy began: until then
/// every group waits on its first batch, looking once a `--poll` (1 s) after the first 8 s.
const BOOTED: Duration = Duration::from_secs(40);
/// The calls counted as the waiting ones: made between these times (nothing changes then).
const WAITING: std::ops::Range<Duration> = Duration::from_secs(10)..Duration::from_secs(38);

/// What a deploy cost, as the fake logged its calls (`Operation region`).
struct Cost {
    /// The calls made while every group waited on its first batch ([`WAITING`]).
    waiting: Vec<String>,
    /// Every call of the deploy.
    all: Vec<String>,
}

/// How many of `calls` are of operation `op`.
fn count(calls: &[String], op: &str) -> usize {
    calls
        .iter()
        .filter(|c| c.split(' ').next() == Some(op))
        .count()
}

/// The deploy of `n` groups of 4 instances in one region, all at once, a batch of 1, every
/// group behind target group tg-1.
async fn cost_of(n: usize) -> Cost {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 4);
    for i in 2..=n {
        let (name, lt) = (format!("hello-live-{i}"), format!("lt-{i}"));
        add_group_on(&cloud, &name, 4, &lt, "1", &[OLD]);
    }
    s.parallel = 5;
    s.batch = Some(Batch::Count(1));
    cloud.set_unhealthy_images(&[NEW]);
    let start = Instant::now();
    let watch = async {
        tokio::time::sleep_until(start + WAITING.start).await;
        let from = cloud.calls().len();
        tokio::time::sleep_until(start + WAITING.end).await;
        let to = cloud.calls().len();
        tokio::time::sleep_until(start + BOOTED).await;
        cloud.set_unhealthy_images(&[]);
        from..to
    };
    let (ctx, cancel, cleanup) = (rc(), Cancel::new(), Cleanup::default());
    let (d, waiting) = tokio::join!(deploy(&s, &ctx, &cancel, &cleanup, &cloud), watch);
    let d = d.unwrap();
    assert_eq!(d.exit(), Exit::Success, "{n} groups: {d:?}");
    assert_eq!(d.groups.len(), n, "{d:?}");
    assert!(
        d.groups
            .iter()
            .all(|g| g.result == "deployed" && g.batches == 4),
        "{n} groups: {d:?}"
    );
    let all = cloud.calls();
    Cost {
        waiting: all[waiting].to_vec(),
        all,
    }
}

#[tokio::test(start_paused = true)]
async fn the_calls_per_poll_do_not_grow_with_the_groups_of_a_region() {
    let one = cost_of(1).await;
    let five = cost_of(5).await;
    // One group's looks while it waits: about one a second.
    let looks = count(&one.waiting, "DescribeAutoScalingGroups");
    assert!(looks >= 20, "{looks} looks in {WAITING:?}");
    // Five groups waiting cost what one does: the region's look serves them all, and the
    // target health of tg-1 is asked once a look, not once a group.
    for op in ["DescribeAutoScalingGroups", "DescribeTargetHealth"] {
        let (a, b) = (count(&one.waiting, op), count(&five.waiting, op));
        assert!(
            b <= a + 2,
            "{op} while the groups waited: {a} for one group, {b} for five"
        );
    }
    // The whole deploy: what each group does alone (its lock read back, its start, a look
    // after each of its changes, its finish) adds up, the polls do not: well below 5 times.
    let op = "DescribeAutoScalingGroups";
    let (a, b) = (count(&one.all, op), count(&five.all, op));
    assert!(
        b < 2 * a,
        "{op} in the whole deploy: {a} for one group, {b} for five"
    );
    // Nothing but the locks are written while the groups wait: every CreateOrUpdateTags then
    // renews the `gears:deploy-lock` tag of every group of the region at once, on the lease's
    // cadence (a quarter of the stale limit): five groups cost what one does.
    let beat = LOCK_STALE / 4;
    let window = WAITING.end - WAITING.start;
    let most = window.as_secs().div_ceil(beat.as_secs()) as usize;
    for (n, cost) in [(1, &one), (5, &five)] {
        let writes = count(&cost.waiting, "CreateOrUpdateTags");
        assert!(
            (1..=most).contains(&writes) && writes < looks,
            "{n} group(s): {writes} tag writes in {window:?} ({looks} looks, a beat every {beat:?})"
        );
    }
}

/// The tag writes of a deploy of `n` groups of one instance, one batch each, whose new
/// instance turns healthy `wait` after the deploy began: per group, the calls that named it
/// other than lease renewals (its lock taken, its deploy recorded, recorded with its instance
/// tags, its tags removed), and the region's lease renewals in all.
async fn tag_writes(n: usize, wait: Duration) -> (Vec<usize>, usize) {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 1);
    for i in 2..=n {
        add_group_on(&cloud, &format!("hello-live-{i}"), 1, "lt-1", "1", &[OLD]);
    }
    s.parallel = n;
    s.batch = Some(Batch::Count(1));
    s.gate_timeout = wait * 2;
    cloud.set_unhealthy_images(&[NEW]);
    let healthy = async {
        tokio::time::sleep(wait).await;
        cloud.set_unhealthy_images(&[]);
    };
    let (ctx, cancel, cleanup) = (rc(), Cancel::new(), Cleanup::default());
    let (d, ()) = tokio::join!(deploy(&s, &ctx, &cancel, &cleanup, &cloud), healthy);
    let d = d.unwrap();
    assert!(
        d.groups
            .iter()
            .all(|g| g.result == "deployed" && g.batches == 1),
        "{d:?}"
    );
    let calls = cloud.tag_calls();
    let lock_only = |c: &&crate::aws::fake::TagCall| {
        c.operation == "CreateOrUpdateTags" && c.keys.iter().all(|k| k == LOCK_TAG)
    };
    // Each group takes its lock once; every other lock-only write is a renewal.
    let renewals = calls.iter().filter(lock_only).count() - n;
    let own = d
        .groups
        .iter()
        .map(|g| {
            let named: Vec<_> = calls
                .iter()
                .filter(|c| c.groups.contains(&g.group))
                .collect();
            let renewed = named.iter().filter(|c| lock_only(c)).count() - 1;
            named.len() - renewed
        })
        .collect();
    (own, renewals)
}

#[tokio::test(start_paused = true)]
async fn a_groups_tag_writes_do_not_grow_with_its_wait_and_renewals_not_with_the_groups() {
    let period = LOCK_STALE / 4;
    let (short, few) = tag_writes(1, period * 2).await;
    let (long, many) = tag_writes(1, period * 12).await;
    // One group, one batch: 4 tag writes of its own, however long it waits.
    assert_eq!(short, [4], "waiting 2 lease periods");
    assert_eq!(long, [4], "waiting 12 lease periods");
    // What the wait costs is the lease: one renewal a period at most.
    assert!(
        few <= 3 && (10..=13).contains(&many),
        "{few} and {many} renewals"
    );
    // Five groups waiting as long cost each the same 4, and the region the same renewals: one
    // call renews every lock the region holds.
    let (five, renewed) = tag_writes(5, period * 12).await;
    assert_eq!(five, [4; 5]);
    assert!(
        renewed <= many + 1,
        "{renewed} renewals for five groups, {many} for one"
    );
}
