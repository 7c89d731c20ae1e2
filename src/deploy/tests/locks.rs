//! The deploy lock: the group's tag, the lock table, two deploys racing, `--unlock`, and a
//! lease kept through long polls.

use crate::aws::{Cloud, LockTable};
use crate::cancel::Cancel;
use crate::deploy::lock::{holder, LockValue};
use crate::deploy::tests::{all, as_before, deploy, rc, setup, Cleanup, Faults, NEW, OLD};
use crate::deploy::{Strategy, LOCK_STALE, LOCK_TAG};
use crate::exit::Exit;
use crate::settings::AmiChoice;
use std::time::Duration;
use tokio::time::Instant;

#[test]
fn the_lock_names_the_host_and_the_ci_job() {
    let ctx = crate::context::RunContext::from_vars([
        ("HOSTNAME", "agent 3"),
        ("BUILD_TAG", "jenkins-hello-7"),
    ]);
    let who = holder(&ctx);
    assert_eq!(who, "agent_3 jenkins:jenkins-hello-7");
    let value = LockValue::held_now("run-1", &who).write();
    let read = LockValue::parse(&value).unwrap();
    assert_eq!(read.run(), "run-1");
    assert!(read.is_live(LOCK_STALE), "{read:?}");
    assert!(
        value.starts_with("run-1 agent_3 jenkins:jenkins-hello-7 "),
        "{value}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_live_deploy_with_long_passes_keeps_its_lock() {
    for table in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        if table {
            s.lock_table = Some("gears-locks".into());
        }
        // A poll pass of ten minutes, far longer than the lock's stale limit (a minute).
        s.poll = Duration::from_secs(600);
        s.gate_timeout = Duration::from_secs(3600);
        let (ctx, cancel, cleanup) = (rc(), Cancel::new(), Cleanup::default());
        // The new instances take four minutes to become healthy: the first deploy's looks
        // back off towards its ten-minute poll meanwhile.
        cloud.set_unhealthy_images(&[NEW]);
        let first = deploy(&s, &ctx, &cancel, &cleanup, &cloud);
        let boot = async {
            tokio::time::sleep(Duration::from_secs(240)).await;
            cloud.set_unhealthy_images(&[]);
        };
        // The same command, three minutes later, while the first sleeps between polls.
        let second = async {
            tokio::time::sleep(Duration::from_secs(180)).await;
            deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud).await
        };
        let (first, second, ()) = tokio::join!(first, second, boot);
        let e = second.unwrap_err();
        assert_eq!(e.exit(), Exit::Cloud, "{}", e.render());
        assert!(
            e.render().contains("refreshed") || e.render().contains("renewed"),
            "{}",
            e.render()
        );
        let d = first.unwrap();
        assert_eq!(d.groups[0].result, "deployed", "table {table}: {d:?}");
        assert!(all(&cloud, NEW));
        as_before(&cloud, 4);
        assert!(cloud.lock_items().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn unlock_refuses_the_lock_of_a_deploy_that_is_running() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    let live = LockValue::held_now("0190b7a2-0000-7000-8000-000000000009", "ci-host").write();
    cloud.fake_fleet_tag("hello-live", LOCK_TAG, &live);
    s.unlock = true;
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert!(
        e.render().contains("a deploy is running now"),
        "{}",
        e.render()
    );
    assert_eq!(cloud.group("hello-live").unwrap().tags[LOCK_TAG], live);
    // A minute later (here: a stale limit of zero) it is a dead run's lock: removed.
    s.lock_stale = Duration::ZERO;
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "unlocked");
    assert!(!cloud
        .group("hello-live")
        .unwrap()
        .tags
        .contains_key(LOCK_TAG));
}

#[tokio::test(start_paused = true)]
async fn a_group_already_on_the_ami_is_left_alone_and_a_lock_without_a_record_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 3);
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "deployed");
    let versions = cloud.template_versions("lt-1").len();
    let calls = cloud.calls().len();
    // Again: nothing to do, nothing written, no new version.
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "nothing to do", "{d:?}");
    assert_eq!(cloud.template_versions("lt-1").len(), versions);
    let writes: Vec<String> = cloud.calls()[calls..]
        .iter()
        .filter(|c| !c.starts_with("Describe"))
        .cloned()
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    // A run killed between its lock and its record left only a lock: once stale, the
    // same command takes it over (nothing had changed).
    let dir = tempfile::tempdir().unwrap();
    let (_, cloud) = setup(dir.path(), 3);
    let orphan = LockValue::held_now("0190b7a2-0000-7000-8000-00000000000a", "ci-host").write();
    cloud.fake_fleet_tag("hello-live", LOCK_TAG, &orphan);
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert!(
        e.render().contains("another deploy holds the lock"),
        "{}",
        e.render()
    );
    s.lock_stale = Duration::ZERO;
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "deployed", "{d:?}");
    as_before(&cloud, 3);
}

#[tokio::test(start_paused = true)]
async fn two_deploys_racing_for_the_tag_lock_leave_one_to_deploy() {
    // The second starts a little after the first, at several offsets (calls take 100 ms
    // each): whatever the interleaving, one deploys and the other is refused. (Calls that
    // land as fast as they are read never race here; the test below makes writes land late,
    // which is what the look after the settle is for. --lock-table is the true
    // compare-and-swap.)
    for offset in [50u64, 150, 250, 350, 450, 650, 850] {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 3);
        let mut other = s.clone();
        other.ami = AmiChoice::Explicit {
            ami: "ami-0000000000000003c".into(),
            region: "us-east-1".into(),
        };
        cloud.set_faults(Faults {
            latency: Duration::from_millis(100),
            ..Default::default()
        });
        let (c1, k1, l1) = (rc(), Cancel::new(), Cleanup::default());
        let (c2, k2, l2) = (rc(), Cancel::new(), Cleanup::default());
        let a = deploy(&s, &c1, &k1, &l1, &cloud);
        let b = async {
            tokio::time::sleep(Duration::from_millis(offset)).await;
            deploy(&other, &c2, &k2, &l2, &cloud).await
        };
        let (a, b) = tokio::join!(a, b);
        cloud.set_faults(Faults::default());
        let ok = [a.is_ok(), b.is_ok()];
        assert_eq!(
            ok.iter().filter(|x| **x).count(),
            1,
            "+{offset} ms: exactly one deploys: {a:?} {b:?}"
        );
        let (won, lost) = if a.is_ok() { (a, b) } else { (b, a) };
        assert_eq!(won.unwrap().groups[0].result, "deployed", "+{offset} ms");
        let e = lost.unwrap_err();
        assert_eq!(e.exit(), Exit::Cloud, "+{offset} ms: {}", e.render());
        // The group is on one AMI, template and instances alike.
        let imgs = cloud.member_images("hello-live");
        assert!(imgs.iter().all(|i| *i == imgs[0]), "+{offset} ms: {imgs:?}");
        as_before(&cloud, 3);
    }
}

#[tokio::test(start_paused = true)]
async fn two_acquirers_interleaved_with_late_landing_writes_leave_exactly_one_holder() {
    // Reads answer in 100 ms, writes land 400 ms after they are sent: a run that looked
    // before the other's write landed writes after it, so its value wins the tag. Started
    // 100 to 400 ms after the first, the second run's write lands after the first run's
    // immediate look back: without the settle both would go on. With it (LOCK_SETTLE, or
    // twice a slow attempt), the first run's later look sees the second's value and steps
    // back: exactly one deploys, at every offset.
    for offset in (0u64..=1200).step_by(50) {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 2);
        let mut other = s.clone();
        other.ami = AmiChoice::Explicit {
            ami: "ami-0000000000000003c".into(),
            region: "us-east-1".into(),
        };
        cloud.set_faults(Faults {
            latency: Duration::from_millis(100),
            write_latency: Duration::from_millis(300),
            ..Default::default()
        });
        let (c1, k1, l1) = (rc(), Cancel::new(), Cleanup::default());
        let (c2, k2, l2) = (rc(), Cancel::new(), Cleanup::default());
        let a = deploy(&s, &c1, &k1, &l1, &cloud);
        let b = async {
            tokio::time::sleep(Duration::from_millis(offset)).await;
            deploy(&other, &c2, &k2, &l2, &cloud).await
        };
        let (a, b) = tokio::join!(a, b);
        cloud.set_faults(Faults::default());
        let won = [&a, &b]
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|d| d.groups[0].result == "deployed"))
            .count();
        assert_eq!(won, 1, "+{offset} ms: exactly one deploys: {a:?} {b:?}");
        let lost = if a.is_ok() { b } else { a };
        let e = lost.unwrap_err().render();
        // The loser stepped back at the lock, before it recorded or made anything: one new
        // template version, the winner's.
        assert!(
            e.contains("at the same time") || e.contains("another deploy holds the lock"),
            "+{offset} ms: {e}"
        );
        assert_eq!(cloud.template_versions("lt-1").len(), 2, "+{offset} ms");
        let imgs = cloud.member_images("hello-live");
        assert!(imgs.iter().all(|i| *i == imgs[0]), "+{offset} ms: {imgs:?}");
        as_before(&cloud, 2);
    }
}

#[tokio::test(start_paused = true)]
async fn a_deploy_of_another_ami_is_refused_while_one_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 4);
    let slow = Faults {
        latency: Duration::from_millis(100),
        ..Default::default()
    };
    let twin_dir = tempfile::tempdir().unwrap();
    let (_, twin) = setup(twin_dir.path(), 4);
    twin.set_faults(slow.clone());
    let start = Instant::now();
    deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &twin)
        .await
        .unwrap();
    let whole = start.elapsed();
    cloud.set_faults(slow);
    let killed = tokio::time::timeout(
        whole / 2,
        deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud),
    )
    .await;
    assert!(killed.is_err());
    cloud.set_faults(Faults::default());
    let mut other = s.clone();
    other.ami = AmiChoice::Explicit {
        ami: "ami-0000000000000003c".into(),
        region: "us-east-1".into(),
    };
    other.lock_stale = Duration::ZERO;
    let e = deploy(&other, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Cloud);
    let text = e.render();
    assert!(
        text.contains("group hello-live: another deploy holds the lock: run "),
        "{text}"
    );
    assert!(text.contains("--abort"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn the_lock_table_refuses_a_second_deploy_and_is_given_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 4);
    s.lock_table = Some("gears-locks".into());
    let now = chrono::Utc::now().timestamp_millis();
    let locks = cloud.locks("us-east-1", "gears-locks").await.unwrap();
    assert_eq!(
        locks
            .acquire("us-east-1/hello-live", "other-run", "ci-42", now, 0)
            .await
            .unwrap(),
        None
    );
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Cloud);
    assert!(
        e.render().contains(
            "another deploy holds the lock us-east-1/hello-live in the lock table: run other-run on ci-42, renewed at "
        ),
        "{}",
        e.render()
    );
    assert!(all(&cloud, OLD), "nothing changed");
    // --unlock removes it (after a human looked); then the deploy runs and gives it back.
    let mut unlock = s.clone();
    unlock.unlock = true;
    deploy(&unlock, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "deployed", "{d:?}");
    assert!(cloud.lock_items().is_empty(), "{:?}", cloud.lock_items());
    as_before(&cloud, 4);
}

/// `--abort` of a killed deploy holds the lock while it undoes, with the tag lock alone too: the
/// same deploy started meanwhile is refused, never continued beside the undo.
#[tokio::test(start_paused = true)]
async fn an_abort_holds_the_tag_lock_while_it_undoes() {
    for strategy in [Strategy::Rolling, Strategy::BlueGreen] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        s.strategy = strategy;
        let slow = Faults {
            latency: Duration::from_millis(100),
            ..Default::default()
        };
        cloud.set_faults(slow);
        let (ctx, cancel, cleanup) = (rc(), Cancel::new(), Cleanup::default());
        // Killed after it recorded its deploy, before it finished.
        let killed = tokio::time::timeout(
            Duration::from_secs(3),
            deploy(&s, &ctx, &cancel, &cleanup, &cloud),
        );
        assert!(killed.await.is_err(), "{strategy:?}: finished in 3 s");
        let tags = cloud.group("hello-live").unwrap().tags;
        let dead = tags.get(LOCK_TAG).cloned().expect("the killed run's lock");
        tokio::time::sleep(LOCK_STALE + Duration::from_secs(1)).await;
        let mut abort = s.clone();
        abort.abort = true;
        let (ctx2, cancel2, cleanup2) = (rc(), Cancel::new(), Cleanup::default());
        let undo = deploy(&abort, &ctx2, &cancel2, &cleanup2, &cloud);
        // The same deploy again, once the abort wrote its lock (or after 30 s if it never does).
        let again = async {
            for _ in 0..300 {
                let now = cloud
                    .group("hello-live")
                    .unwrap()
                    .tags
                    .get(LOCK_TAG)
                    .cloned();
                if now.is_some_and(|v| v != dead) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud).await
        };
        let (undo, again) = tokio::join!(undo, again);
        let d = undo.unwrap();
        assert_eq!(d.groups[0].result, "aborted", "{strategy:?}: {d:?}");
        let e = again.unwrap_err();
        assert_eq!(e.exit(), Exit::Cloud, "{strategy:?}: {}", e.render());
        assert!(e.render().contains("holds the lock"), "{}", e.render());
        assert!(all(&cloud, OLD), "{strategy:?}");
        assert!(
            !cloud
                .group("hello-live")
                .unwrap()
                .tags
                .contains_key(LOCK_TAG),
            "{strategy:?}"
        );
    }
}
