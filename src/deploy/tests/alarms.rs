//! CloudWatch alarm gates (issue 22, the part that applies to every strategy): named alarms
//! must exist, one in ALARM fails the gate and rolls back, INSUFFICIENT_DATA does not, and one
//! DescribeAlarms per region per poll serves every group.
use crate::cancel::Cancel;
use crate::deploy::tests::{
    add_second_group, all, as_before, deploy, rc, setup, Cleanup, Faults, NEW, OLD,
};
use crate::deploy::Batch;
use crate::exit::Exit;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn an_alarm_that_does_not_exist_is_refused_before_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 2);
    cloud.set_alarm("hello-5xx", "OK", "fine");
    s.alarms = vec!["hello-5xx".into(), "hello-latency".into()];
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::InvalidInput, "{}", e.render());
    assert!(
        e.render()
            .contains("no CloudWatch alarm named hello-latency in us-east-1"),
        "{}",
        e.render()
    );
    as_before(&cloud, 2);
    assert!(all(&cloud, OLD));
}

#[tokio::test(start_paused = true)]
async fn an_alarm_going_off_mid_deploy_rolls_back_naming_it_and_insufficient_data_does_not() {
    // INSUFFICIENT_DATA (a new metric, a quiet service) is not a failure.
    let dir = tempfile::tempdir().unwrap();
    let (mut s, cloud) = setup(dir.path(), 4);
    s.alarms = vec!["hello-5xx".into()];
    cloud.set_alarm("hello-5xx", "INSUFFICIENT_DATA", "no data");
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.exit(), Exit::Success, "{d:?}");
    assert!(all(&cloud, NEW));

    // An alarm that goes off while the deploy runs: the gate fails, the group rolls back.
    let (mut s, cloud) = setup(dir.path(), 4);
    s.alarms = vec!["hello-5xx".into()];
    cloud.set_alarm("hello-5xx", "OK", "fine");
    cloud.set_faults(Faults {
        latency: Duration::from_millis(500),
        ..Default::default()
    });
    let flip = cloud.clone();
    let went_off = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(6)).await;
        flip.set_alarm(
            "hello-5xx",
            "ALARM",
            "Threshold Crossed: 3 datapoints were greater than 5.0",
        );
    });
    let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    went_off.await.unwrap();
    assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
    assert!(
        d.groups[0]
            .detail
            .contains("alarm hello-5xx is in ALARM: Threshold Crossed"),
        "{d:?}"
    );
    cloud.set_faults(Faults::default());
    assert!(all(&cloud, OLD));
    as_before(&cloud, 4);
    assert_eq!(cloud.healthy_floor("hello-live"), Some(4));
}

#[tokio::test(start_paused = true)]
async fn one_describe_alarms_per_poll_serves_every_group_of_the_region() {
    let mut counts = Vec::new();
    for n in [1, 5] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        for i in 1..n {
            add_second_group(&cloud, &format!("hello-live-{i}"), 4);
        }
        s.parallel = 5;
        s.batch = Some(Batch::Count(1));
        s.alarms = vec!["hello-5xx".into(), "hello-latency".into()];
        cloud.set_alarm("hello-5xx", "OK", "");
        cloud.set_alarm("hello-latency", "OK", "");
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.exit(), Exit::Success, "{d:?}");
        let count = |op: &str| cloud.calls().iter().filter(|c| c.starts_with(op)).count();
        counts.push((count("DescribeAlarms"), count("DescribeAutoScalingGroups")));
    }
    // Never more DescribeAlarms than looks at the groups: one per region per poll.
    for (alarms, looks) in &counts {
        assert!(alarms <= looks, "{counts:?}");
    }
    let [(one, _), (five, _)] = counts[..] else {
        unreachable!()
    };
    assert!(five < one * 5, "{counts:?}");
}
