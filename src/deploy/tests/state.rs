//! What gears wrote on a group, read strictly: a corrupt `gears:deploy`, a lock value gears did
//! not write and a STOP lock each stop the run for that group (exit 7), changing nothing.

use crate::cancel::Cancel;
use crate::deploy::lock::{LockValue, STOP_REASON};
use crate::deploy::state::State;
use crate::deploy::tests::{all, deploy, rc, setup, Cleanup, OLD};
use crate::deploy::{DeploySettings, LOCK_TAG, STATE_TAG};
use crate::exit::Exit;

#[test]
fn the_lock_value_has_one_parser_and_one_writer() {
    let held = LockValue::held_now("0190b7a2-0000-7000-8000-000000000001", "agent_3 ci:job");
    assert_eq!(LockValue::parse(&held.write()), Ok(held.clone()));
    let stop = LockValue::Stop {
        run: "r1".into(),
        reason: STOP_REASON.into(),
    };
    assert_eq!(stop.write(), "STOP r1: rollback failed");
    assert_eq!(LockValue::parse(&stop.write()), Ok(stop));
    for foreign in [
        "",
        "locked",
        "someone 2026-01-01",
        "r1 host yesterday",
        "STOP",
        "STOP r1",
        "STOP : why",
    ] {
        assert!(LockValue::parse(foreign).is_err(), "{foreign:?}");
    }
}

#[test]
fn the_recorded_state_is_checked_when_read() {
    let good = r#"{"run":"r","ami":"ami-0123456789abcdef0","lt":"lt-1","from":"1","to":"2","min":2,"max":2,"desired":2,"susp":[]}"#;
    let st = State::parse(good).unwrap();
    assert_eq!(State::parse(&st.write()), Ok(st));
    for bad in [
        "not json",
        r#"{"run":"r"}"#,
        r#"{"run":"","ami":"ami-0123456789abcdef0","lt":"lt-1","from":"1","to":"2","min":2,"max":2,"desired":2,"susp":[]}"#,
        r#"{"run":"r","ami":"ami-0123456789abcdef0","lt":"lt-1","from":"1","to":"2","min":2,"max":1,"desired":2,"susp":[]}"#,
        r#"{"run":"r","ami":"ami-0123456789abcdef0","lt":"lt-1","from":"1","to":"2","min":2,"max":2,"desired":2,"susp":[],"extra":1}"#,
        r#"{"run":"r","ami":"ami-1","lt":"lt-1","from":"1","to":"2","min":2,"max":2,"desired":2,"susp":[]}"#,
    ] {
        assert!(State::parse(bad).is_err(), "{bad}");
    }
}

/// A deploy (and a plan, and an abort) of a group carrying `key=value` is refused with exit 7,
/// naming the tag, and nothing on the group changes.
async fn refused_with_exit_7(key: &str, value: &str, says: &str) {
    for mode in ["deploy", "plan", "abort"] {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 3);
        s.plan_only = mode == "plan";
        s.abort = mode == "abort";
        cloud.fake_fleet_tag("hello-live", key, value);
        let before = cloud.group("hello-live").unwrap();
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::NeedsHuman, "{mode}: {}", e.render());
        assert!(e.render().contains(says), "{mode}: {}", e.render());
        let after = cloud.group("hello-live").unwrap();
        assert_eq!(after.tags, before.tags, "{mode}");
        assert_eq!(
            (after.desired, after.template.clone()),
            (before.desired, before.template.clone()),
            "{mode}"
        );
        assert!(all(&cloud, OLD), "{mode}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_deploy_tag_stops_the_group_with_exit_7() {
    refused_with_exit_7(
        STATE_TAG,
        "{\"run\":\"r\",",
        "gears:deploy tag cannot be read",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_lock_value_gears_did_not_write_stops_the_group_with_exit_7() {
    refused_with_exit_7(
        LOCK_TAG,
        "terraform-was-here",
        "gears:deploy-lock tag cannot be read",
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_stop_lock_refuses_a_deploy_with_exit_7() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = setup(dir.path(), 3);
    cloud.fake_fleet_tag("hello-live", LOCK_TAG, "STOP r0: rollback failed");
    let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::NeedsHuman, "{}", e.render());
    assert!(e.render().contains("the line is stopped"), "{}", e.render());
    assert!(all(&cloud, OLD));
    // --unlock clears it (and a foreign value too: a human looked).
    let unlock = DeploySettings {
        unlock: true,
        ..s.clone()
    };
    let d = deploy(&unlock, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert_eq!(d.groups[0].result, "unlocked");
    assert!(!cloud
        .group("hello-live")
        .unwrap()
        .tags
        .contains_key(LOCK_TAG));
}

/// A launch configuration deploy's state leaves out the copy's name (it follows from the source
/// and the run), so a copy of a copy of a long name still fits the tag, and reads back whole.
#[test]
fn a_launch_configuration_state_leaves_out_the_copys_name_and_reads_it_back() {
    let run = "019ad7a3-1f2e-7c4d-9a8b-3c460cda1234";
    let from = "lcs-2b2018bab93f-lc-gears-3c460cda";
    let st = State {
        run: run.into(),
        ami: "ami-0000000000000002b".into(),
        lt: String::new(),
        from: from.into(),
        to: super::super::start::copy_name(from, run),
        min: 1,
        max: 1,
        desired: 1,
        susp: vec![
            "AZRebalance".into(),
            "AlarmNotification".into(),
            "ScheduledActions".into(),
        ],
        lc: true,
        mx: false,
        fromn: String::new(),
    };
    let w = st.write();
    assert!(!w.contains("\"to\""), "{w}");
    assert!(
        w.chars().count() <= 256,
        "{} characters: {w}",
        w.chars().count()
    );
    assert_eq!(State::parse(&w).unwrap(), st);
    assert_eq!(st.to, "lcs-2b2018bab93f-lc-gears-0cda1234");
}
