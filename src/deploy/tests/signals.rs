//! SIGTERM mid deploy: the group rolled back before exiting, exit 7 when that fails.

use crate::cancel::Cancel;
use crate::deploy::tests::{all, as_before, deploy, rc, setup, Cleanup, Faults, NEW, OLD};
use crate::deploy::LOCK_TAG;
use crate::exit::Exit;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn a_signal_mid_deploy_rolls_the_group_back_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 6);
    // New instances stay unhealthy, so the deploy waits at its first gate.
    cloud.set_unhealthy_images(&[NEW]);
    let cancel = Cancel::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        c2.cancel(crate::cancel::Signal::Term);
    });
    let e = deploy(&s, &rc(), &cancel, &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Terminated);
    assert!(all(&cloud, OLD));
    as_before(&cloud, 6);
    assert_eq!(cloud.healthy_floor("hello-live"), Some(6));
}

#[tokio::test(start_paused = true)]
async fn a_signal_whose_rollback_fails_is_exit_7_not_143() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 4);
    s.gate_timeout = Duration::from_secs(30);
    cloud.set_unhealthy_images(&[NEW]);
    let cancel = Cancel::new();
    let c2 = cancel.clone();
    let faulty = cloud.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        // From here on AWS will not terminate anything: the rollback cannot finish.
        faulty.set_faults(Faults {
            throttle_ops: vec!["TerminateInstanceInAutoScalingGroup"],
            ..Default::default()
        });
        c2.cancel(crate::cancel::Signal::Term);
    });
    let d = deploy(&s, &rc(), &cancel, &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::NeedsHuman, "{d:?}");
    assert_eq!(d.groups[0].result, "rollback failed", "{d:?}");
    assert!(d.groups[0].detail.starts_with("SIGTERM received"), "{d:?}");
    let lock = cloud.group("hello-live").unwrap().tags[LOCK_TAG].clone();
    assert!(lock.starts_with("STOP "), "{lock}");
}
