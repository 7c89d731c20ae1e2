//! The instance-refresh strategy: waited on, its failure rolled back, cancelled on a signal.

use crate::cancel::Cancel;
use crate::deploy::tests::{all, as_before, deploy, rc, setup, Cleanup, NEW, OLD};
use crate::deploy::Strategy;
use crate::exit::Exit;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn instance_refresh_is_waited_on_and_its_failure_rolls_back() {
    for healthy in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        s.strategy = Strategy::InstanceRefresh;
        if !healthy {
            cloud.set_unhealthy_images(&[NEW]);
        }
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        if healthy {
            assert_eq!(d.groups[0].result, "deployed", "{d:?}");
            assert!(all(&cloud, NEW));
            assert!(cloud
                .calls()
                .iter()
                .any(|c| c.starts_with("StartInstanceRefresh")));
        } else {
            assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
            assert!(
                d.groups[0]
                    .detail
                    .contains("instance refresh refresh-1 Failed"),
                "{d:?}"
            );
            assert!(all(&cloud, OLD));
        }
        as_before(&cloud, 4);
        assert_eq!(cloud.healthy_floor("hello-live"), Some(4));
    }
}

#[tokio::test(start_paused = true)]
async fn a_signal_mid_refresh_cancels_the_refresh_before_rolling_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 4);
    s.strategy = Strategy::InstanceRefresh;
    let cancel = Cancel::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        c2.cancel(crate::cancel::Signal::Term);
    });
    let e = deploy(&s, &rc(), &cancel, &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Terminated, "{}", e.render());
    let calls = cloud.calls();
    let at = |op: &str| calls.iter().position(|c| c.starts_with(op));
    let cancelled = at("CancelInstanceRefresh ").expect("the refresh was cancelled");
    // Cancelled before the rollback's first change (the template set back).
    let back = calls
        .iter()
        .enumerate()
        .skip(at("StartInstanceRefresh ").unwrap())
        .find(|(_, c)| c.starts_with("UpdateAutoScalingGroup "))
        .map(|(i, _)| i)
        .unwrap();
    assert!(cancelled < back, "{calls:?}");
    assert!(all(&cloud, OLD));
    as_before(&cloud, 4);
}
