//! `gears amis list` on the fake while AWS moves under it: an AMI deregistered between the
//! list and a call about it.

use super::{cloud, settings};
use crate::amis::*;
use crate::cancel::{Cancel, Signal};
use crate::exit::Exit;
use crate::testing::Faults;

fn ids(listing: &Listing) -> Vec<&str> {
    listing.amis.iter().map(|a| a.id.as_str()).collect()
}

/// An AMI deregistered right after DescribeImages listed it: its DescribeImageAttribute
/// answers `InvalidAMIID.NotFound`; it is left out and the others are listed as before.
#[tokio::test]
async fn an_ami_deregistered_after_the_list_is_left_out_not_a_failure() {
    let cloud = cloud();
    cloud.add_launch_permission("ami-new", "account 222222222222");
    cloud.deregister_after_listing("ami-mid");
    let listing = list(&settings(), &Cancel::new(), &cloud).await.unwrap();
    assert_eq!(ids(&listing), ["ami-new", "ami-old"]);
    assert_eq!(listing.amis[0].shares.len(), 1);
    assert_eq!(listing.exit(), Exit::Success);
    // It was asked about, and EC2 said it is gone.
    let attrs = cloud
        .calls()
        .iter()
        .filter(|c| c.starts_with("DescribeImageAttribute"))
        .count();
    assert_eq!(attrs, 3);
    // A prune on a fresh cloud, the AMI deregistered under it the same way, goes on with the
    // others.
    let cloud = super::cloud();
    cloud.add_launch_permission("ami-new", "account 222222222222");
    cloud.deregister_after_listing("ami-mid");
    let report = prune(&settings(), opts_dry(), &Cancel::new(), &cloud)
        .await
        .unwrap();
    assert!(!report.amis.iter().any(|p| p.ami.id == "ami-mid"));
}

/// The list when every DescribeImageAttribute answers `code`.
async fn listed_when_attributes_answer(code: &'static str) -> Result<Listing, crate::error::Error> {
    let cloud = cloud();
    cloud.set_faults(Faults {
        fail_ops: vec![("DescribeImageAttribute", code)],
        ..Default::default()
    });
    list(&settings(), &Cancel::new(), &cloud).await
}

/// EC2 answers `InvalidAMIID.Unavailable` for an AMI deregistered moments ago: gone too. Any
/// other answer about an AMI still fails the list (it cannot say who may launch it).
#[tokio::test]
async fn an_unavailable_ami_is_gone_too_and_other_errors_still_fail() {
    let listing = listed_when_attributes_answer("InvalidAMIID.Unavailable").await;
    assert!(listing.unwrap().amis.is_empty());
    let e = listed_when_attributes_answer("UnauthorizedOperation")
        .await
        .unwrap_err();
    assert_eq!(e.exit(), Exit::Cloud, "{e}");
}

fn opts_dry() -> PruneOptions {
    super::opts(1, false)
}

/// Ctrl-C while AWS throttles the list: the list stops within moments of the signal (not after
/// its 120 s patience) with the interrupted error (exit 130), never "throttled" (exit 5).
#[tokio::test(start_paused = true)]
async fn a_signal_while_the_list_is_throttled_interrupts_it_promptly() {
    for op in [
        "DescribeImages",
        "DescribeImageAttribute",
        "DescribeInstances",
    ] {
        let cloud = cloud();
        cloud.set_faults(Faults {
            throttle_ops: vec![op],
            ..Default::default()
        });
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            c2.cancel(Signal::Int);
        });
        let start = tokio::time::Instant::now();
        let e = list(&settings(), &cancel, &cloud).await.unwrap_err();
        assert_eq!(e.exit(), Exit::Interrupted, "{op}: {e}");
        let took = start.elapsed();
        assert!(took < std::time::Duration::from_secs(6), "{op}: {took:?}");
    }
}
