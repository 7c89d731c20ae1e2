//! The health gate of each batch: the component's smoke tests at the new instances, and a
//! batch held by a launch lifecycle hook.

use crate::cancel::Cancel;
use crate::deploy::tests::{all, as_before, deploy, rc, setup, Cleanup, NEW, OLD};
use crate::exit::Exit;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn a_batch_held_by_a_launch_hook_rolls_back_naming_the_hook() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 3);
    cloud.add_launch_hook(
        "hello-live",
        crate::aws::LaunchHook {
            name: "warm-cache".into(),
            heartbeat: 3600,
            default_result: "ABANDON".into(),
        },
        &[NEW],
    );
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
    let detail = &d.groups[0].detail;
    assert!(detail.contains("not healthy after 1m00s"), "{detail}");
    assert!(
        detail.contains("held in Pending:Wait by launch lifecycle hook warm-cache"),
        "{detail}"
    );
    assert!(all(&cloud, OLD));
    as_before(&cloud, 3);
    assert_eq!(cloud.healthy_floor("hello-live"), Some(3));
}

#[tokio::test]
async fn the_gate_runs_the_components_smoke_tests_at_each_new_instance() {
    for pass in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        std::fs::write(
            dir.path().join("gears.yaml"),
            "component: hello\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-0123456789abcdef0}\ntest: {smoke_file: smoke.yaml}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("smoke.yaml"),
            "tests:\n  - name: up\n    uri: /health\n",
        )
        .unwrap();
        let port = if pass {
            crate::testing::http_ok().await
        } else {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        s.smoke_target =
            Some(crate::smoke::target::Target::parse(&format!("127.0.0.1:{port}")).unwrap());
        s.gate_timeout = Duration::from_secs(2);
        s.poll = Duration::from_millis(100);
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        if pass {
            assert_eq!(d.groups[0].result, "deployed", "{d:?}");
            assert!(all(&cloud, NEW));
        } else {
            assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
            assert!(
                d.groups[0].detail.contains("smoke test `up` failed at i-"),
                "{d:?}"
            );
            assert!(all(&cloud, OLD));
        }
        as_before(&cloud, 4);
    }
}
