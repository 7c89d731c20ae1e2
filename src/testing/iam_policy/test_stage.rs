//! The Test statement against what `gears test` calls, passing and failing.

use super::*;
use crate::smoke::target::Target;
use crate::test_stage::settings::TestSettings;

const AMI: &str = "ami-0123456789abcdef0";

/// `gears test` of AMI with a one-test smoke file sent to 127.0.0.1:`port`.
async fn run(port: u16) -> (bool, FakeCloud) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gears.yaml"),
        format!("{COMPONENT}test:\n  smoke_file: smoke.yaml\n  port: 8080\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("smoke.yaml"),
        "tests:\n  - name: up\n    uri: /\n",
    )
    .unwrap();
    let s = TestSettings {
        account: None,
        component_file: dir.path().join("gears.yaml"),
        ami: AmiChoice::Explicit {
            ami: AMI.into(),
            region: "us-east-1".into(),
        },
        target_host: Some(Target::parse(&format!("127.0.0.1:{port}")).unwrap()),
        ready_timeout: Duration::from_secs(2),
        ttl: Duration::from_secs(3600),
        keep_on_failure: false,
        junit: None,
        output: crate::settings::OutputFormat::Human,
        heartbeat: Duration::from_secs(30),
        jobs: 4,
        endpoint_flag: None,
        work_dir: dir.path().join(".gears"),
        version: None,
    };
    let cloud = FakeCloud::new();
    cloud.add_image("us-east-1", image(AMI, &[("COMPONENT_VERSION", "1.0")]));
    cloud.set_faults(Faults {
        checks: Some(Duration::ZERO),
        ..Default::default()
    });
    cloud.set_console_output("boot: ok\n");
    let t = crate::test_stage::test(&s, &ctx(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert!(t.terminated, "{t:?}");
    if !t.passed {
        assert!(t.console_file.is_some(), "{t:?}");
    }
    (t.passed, cloud)
}

#[tokio::test]
async fn the_test_statement_lists_every_action_test_calls() {
    let (passed, ok) = run(http_ok().await).await;
    assert!(passed);
    let (passed, failed) = run(closed_port()).await;
    assert!(!passed);
    assert!(called(&failed, "GetConsoleOutput"));
    let runs: Runs = vec![
        ("a passing test", ok.calls()),
        ("a failing test (console output)", failed.calls()),
    ];
    assert_listed("Test", &runs);
}
