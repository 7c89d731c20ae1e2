//! `--bake-time` (issue 22, for every strategy gears rolls itself): a healthy batch keeps
//! being gated for that long before gears acts on it.
use crate::cancel::Cancel;
use crate::deploy::tests::{all, as_before, deploy, rc, setup, Cleanup, NEW, OLD};
use crate::exit::Exit;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn a_healthy_batch_bakes_before_gears_acts_and_a_fault_during_the_bake_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 4);
    s.bake_time = Duration::from_secs(60);
    let ui = crate::ui::Recorded::default();
    let start = tokio::time::Instant::now();
    let d = super::super::deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud, &ui)
        .await
        .map_err(|f| f.error.render())
        .unwrap();
    assert_eq!(d.exit(), Exit::Success, "{d:?}");
    assert_eq!(d.groups[0].batches, 2, "{d:?}");
    // Two batches of 2, each gated a minute once healthy.
    assert!(
        start.elapsed() >= Duration::from_secs(120),
        "{:?}",
        start.elapsed()
    );
    assert!(
        start.elapsed() < Duration::from_secs(150),
        "{:?}",
        start.elapsed()
    );
    let said: Vec<String> = ui.taken().into_iter().map(|(_, t)| t).collect();
    assert!(
        said.iter()
            .any(|t| t.contains("batch 1 healthy: baking, 1m00s left")),
        "{said:?}"
    );
    assert!(all(&cloud, NEW));

    // New instances that turn unhealthy during the bake never get old ones retired: the gate
    // fails and the group rolls back, its old instances serving throughout.
    let (mut s, cloud) = setup(dir.path(), 4);
    s.bake_time = Duration::from_secs(60);
    s.gate_timeout = Duration::from_secs(30);
    let sick = cloud.clone();
    let turn = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(20)).await;
        sick.set_unhealthy_images(&[NEW]);
    });
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    turn.await.unwrap();
    assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
    assert!(all(&cloud, OLD));
    as_before(&cloud, 4);
    assert_eq!(cloud.healthy_floor("hello-live"), Some(4));
}
