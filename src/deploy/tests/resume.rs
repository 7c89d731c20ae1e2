//! A killed deploy, continued or aborted by the same command run again.
use crate::aws::Launches;

use crate::aws::{Cloud, TemplateRef};
use crate::cancel::Cancel;
use crate::deploy::state::{version_token, State};
use crate::deploy::tests::{
    all, as_before, deploy, rc, setup, Cleanup, FakeCloud, Faults, NEW, OLD,
};
use crate::deploy::{DeploySettings, LOCK_SETTLE, LOCK_TAG, STATE_TAG};
use crate::exit::Exit;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_deploy_killed_before_its_new_version_is_continued_without_a_second_version() {
    for made in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        // What a run killed right after recording the deploy leaves: the state with no new
        // version yet (and, just after the request, maybe the version itself).
        let st = State {
            run: "0190b7a2-0000-7000-8000-000000000001".into(),
            ami: NEW.into(),
            lt: "lt-1".into(),
            from: "1".into(),
            fromn: "1".into(),
            to: String::new(),
            min: 4,
            max: 4,
            desired: 4,
            susp: vec!["AZRebalance".into(), "ScheduledActions".into()],
            lc: false,
            mx: false,
        };
        cloud.fake_fleet_tag(
            "hello-live",
            STATE_TAG,
            &serde_json::to_string(&st).unwrap(),
        );
        cloud.fake_fleet_tag(
            "hello-live",
            LOCK_TAG,
            &format!("{} host 2020-01-01T00:00:00Z", st.run),
        );
        if made {
            let fleet = cloud.fleet("us-east-1").await.unwrap();
            let base = TemplateRef {
                id: "lt-1".into(),
                version: "1".into(),
            };
            fleet
                .new_template_version(&base, NEW, &version_token(&st))
                .await
                .unwrap();
        }
        s.lock_stale = Duration::ZERO;
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.groups[0].result, "deployed", "{d:?}");
        assert_eq!(cloud.template_versions("lt-1"), [OLD, NEW], "made {made}");
        assert!(all(&cloud, NEW));
        let g = cloud.group("hello-live").unwrap();
        assert_eq!((g.min, g.max, g.desired), (4, 4, 4));
        assert!(!g.tags.contains_key(STATE_TAG) && !g.tags.contains_key(LOCK_TAG));
    }
}

#[tokio::test(start_paused = true)]
async fn a_continued_deploy_whose_start_fails_rolls_the_group_back() {
    // A killed run's deploy, half way: recorded, its lock stale, one batch launched.
    let killed = |cloud: &FakeCloud, s: &DeploySettings| {
        let s = s.clone();
        let cloud = cloud.clone();
        async move {
            let slow = Faults {
                latency: Duration::from_millis(100),
                ..Default::default()
            };
            cloud.set_faults(slow);
            let (ctx, cancel, cleanup) = (rc(), Cancel::new(), Cleanup::default());
            let _ = tokio::time::timeout(
                LOCK_SETTLE + Duration::from_secs(3),
                deploy(&s, &ctx, &cancel, &cleanup, &cloud),
            )
            .await;
            cloud.set_faults(Faults::default());
        }
    };
    let twin_dir = tempfile::tempdir().unwrap();
    let (s0, twin) = setup(twin_dir.path(), 4);
    killed(&twin, &s0).await;
    let mut s = s0.clone();
    s.lock_stale = Duration::ZERO;
    let before = twin.calls().len();
    deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &twin)
        .await
        .unwrap();
    let calls = twin.calls();
    let nth = before as u32
        + 1
        + calls[before..]
            .iter()
            .position(|c| c.starts_with("SuspendProcesses "))
            .unwrap() as u32;
    let dir = tempfile::tempdir().unwrap();
    let (_, cloud) = setup(dir.path(), 4);
    killed(&cloud, &s0).await;
    let imgs = cloud.member_images("hello-live");
    assert!(imgs.contains(&NEW.to_owned()), "half rolled: {imgs:?}");
    cloud.set_faults(Faults {
        fail_at: Some((nth, crate::aws::ErrorKind::AccessDenied)),
        ..Default::default()
    });
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Cloud, "{}", e.render());
    assert!(e.render().contains("SuspendProcesses"), "{}", e.render());
    cloud.set_faults(Faults::default());
    // Not left half rolled: back on the old AMI, as it was.
    assert!(all(&cloud, OLD), "{:?}", cloud.member_images("hello-live"));
    as_before(&cloud, 4);
}

#[tokio::test(start_paused = true)]
async fn a_killed_deploy_continues_when_run_again_or_is_aborted() {
    for (abort, table) in [(false, false), (true, false), (false, true), (true, true)] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 6);
        if table {
            s.lock_table = Some("gears-locks".into());
        }
        let slow = Faults {
            latency: Duration::from_millis(100),
            ..Default::default()
        };
        // How long a whole deploy takes, on a twin.
        let twin_dir = tempfile::tempdir().unwrap();
        let (_, twin) = setup(twin_dir.path(), 6);
        twin.set_faults(slow.clone());
        let start = Instant::now();
        deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &twin)
            .await
            .unwrap();
        let whole = start.elapsed();
        // kill -9 half way: the future is dropped, nothing of it runs again.
        cloud.set_faults(slow);
        let _ = whole;
        // Killed once the first batch's new instances are in the group, beside the old ones.
        let mid_roll = async {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let imgs = cloud.member_images("hello-live");
                if imgs.contains(&NEW.to_owned()) && imgs.contains(&OLD.to_owned()) {
                    break;
                }
            }
        };
        let (kctx, kcancel, kcleanup) = (rc(), Cancel::new(), Cleanup::default());
        let killed = tokio::select! {
            r = deploy(&s, &kctx, &kcancel, &kcleanup, &cloud) => Ok(r),
            _ = mid_roll => Err(()),
        };
        cloud.set_faults(Faults::default());
        assert!(killed.is_err(), "still running when killed");
        let imgs = cloud.member_images("hello-live");
        assert!(
            imgs.contains(&NEW.to_owned()) && imgs.contains(&OLD.to_owned()),
            "{imgs:?}"
        );
        // At once, the lock is fresh: refused, naming the holder (the lock table's, or
        // the group's tag without one).
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        let want = if table {
            "another deploy holds the lock us-east-1/hello-live in the lock table: run "
        } else {
            "another deploy holds the lock: run "
        };
        assert!(e.render().contains(want), "{}", e.render());
        if table {
            assert_eq!(cloud.lock_items().len(), 1);
        }
        // A minute later (here: a stale limit of zero), the same command takes over.
        s.lock_stale = Duration::ZERO;
        s.abort = abort;
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        let want = if abort { "aborted" } else { "deployed" };
        assert_eq!(d.groups[0].result, want, "{d:?}");
        assert_eq!(d.groups[0].from_ami, OLD, "what it came from: {d:?}");
        assert!(all(&cloud, if abort { OLD } else { NEW }));
        // The killed run's lease was taken over, then given back.
        assert!(cloud.lock_items().is_empty(), "{:?}", cloud.lock_items());
        as_before(&cloud, 6);
        assert_eq!(cloud.healthy_floor("hello-live"), Some(6));
    }
}

#[tokio::test(start_paused = true)]
async fn a_deploy_killed_during_its_rollback_is_finished_by_the_same_command() {
    let mut during_rollback = 0;
    for after in [500u64, 1000, 1500, 2000, 2500, 3000, 3500, 4000] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        cloud.set_unhealthy_images(&[NEW]);
        cloud.set_faults(Faults {
            latency: Duration::from_millis(100),
            ..Default::default()
        });
        // Killed a little after the gate failed.
        let killed = tokio::time::timeout(
            s.gate_timeout + LOCK_SETTLE + Duration::from_millis(after),
            deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud),
        )
        .await;
        if killed.is_ok() {
            break;
        }
        let g = cloud.group("hello-live").unwrap();
        if g.template.unwrap().version == "1" && g.tags.contains_key(STATE_TAG) {
            during_rollback += 1;
        }
        // The new AMI is fine after all; the same command again finishes the deploy.
        cloud.set_unhealthy_images(&[]);
        cloud.set_faults(Faults::default());
        s.lock_stale = Duration::ZERO;
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(
            d.groups[0].result, "deployed",
            "killed at +{after} ms: {d:?}"
        );
        assert!(all(&cloud, NEW), "killed at +{after} ms");
        as_before(&cloud, 4);
        assert_eq!(
            cloud.group("hello-live").unwrap().template.unwrap().version,
            "2"
        );
    }
    assert!(during_rollback > 0, "some kill landed during the rollback");
}
