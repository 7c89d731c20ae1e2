//! Table tests of the pure step planner: no fake, no clock.

use crate::deploy::plan::{
    back, floor, next, split, Back, BackMemory, Failure, Look, Memory, Seen, Step, Terms, Waiting,
};

/// Members from a compact form: `o`/`O` old unhealthy/healthy, `n`/`N` new, `?` unknown yet.
fn look(desired: i32, members: &str) -> Look {
    Look {
        desired,
        members: members
            .chars()
            .enumerate()
            .map(|(i, c)| Seen {
                id: format!("i-{i}{c}"),
                new: match c {
                    'o' | 'O' => Some(false),
                    'n' | 'N' => Some(true),
                    _ => None,
                },
                healthy: c.is_ascii_uppercase(),
            })
            .collect(),
    }
}

fn terms(desired: i32, max: i32, batch: i32, min_healthy: u32) -> Terms {
    Terms {
        min: desired,
        max,
        desired,
        batch,
        min_healthy,
    }
}

#[test]
fn each_batch_shape_launches_then_retires() {
    // (look, terms, the step)
    let launch = |surge, in_place: &[&str], desired, max| Step::Launch {
        surge,
        in_place: in_place.iter().map(|s| s.to_string()).collect(),
        desired,
        max,
    };
    let cases: Vec<(Look, Terms, Step)> = vec![
        // All old and healthy, batch 2 of 4 at 100%: surge 2 above max.
        (look(4, "OOOO"), terms(4, 4, 2, 100), launch(2, &[], 6, 6)),
        // A batch larger than what is left: only the old ones left.
        (look(4, "NNNO"), terms(4, 4, 3, 100), launch(1, &[], 5, 5)),
        // Max already has room: max stays.
        (look(4, "OOOO"), terms(4, 10, 2, 100), launch(2, &[], 6, 10)),
        // The batch in flight is healthy: the unhealthy old one retires first.
        (
            look(6, "OoOONN"),
            terms(4, 4, 2, 100),
            Step::Retire {
                ids: vec!["i-1o".into(), "i-0O".into()],
                last: false,
            },
        ),
        // The last batch: no old one left after.
        (
            look(6, "OONNNN"),
            terms(4, 4, 2, 100),
            Step::Retire {
                ids: vec!["i-0O".into(), "i-1O".into()],
                last: true,
            },
        ),
        // New ones not healthy yet: wait.
        (
            look(6, "OOOONn"),
            terms(4, 4, 2, 100),
            Step::Wait(Waiting::Batch),
        ),
        // A member EC2 does not know yet is neither old nor new: wait.
        (
            look(6, "OOOON?"),
            terms(4, 4, 2, 100),
            Step::Wait(Waiting::Batch),
        ),
        // Every member new and healthy at the recorded capacity: done.
        (look(4, "NNNN"), terms(4, 4, 2, 100), Step::Done),
        // New and healthy above the recorded capacity (raised meanwhile): done, the finish
        // sets the recorded capacity back.
        (look(5, "NNNNN"), terms(4, 4, 2, 100), Step::Done),
        // New and healthy, not all there yet: settle.
        (
            look(4, "NNN"),
            terms(4, 4, 2, 100),
            Step::Wait(Waiting::Settling),
        ),
    ];
    for (i, (l, t, want)) in cases.into_iter().enumerate() {
        let got = next(&l, &t, &mut Memory::default());
        assert_eq!(got, want, "case {i}: {l:?}");
    }
}

#[test]
fn below_100_percent_batches_are_replaced_in_place_above_the_floor() {
    // 50% of 4: the floor is 2, so of a batch of 2 with 4 healthy, both go in place.
    let l = look(4, "OOOO");
    let step = next(&l, &terms(4, 4, 2, 50), &mut Memory::default());
    assert_eq!(
        step,
        Step::Launch {
            surge: 0,
            in_place: vec!["i-0O".into(), "i-1O".into()],
            desired: 4,
            max: 4
        }
    );
    // 75% of 4: floor 3, one healthy to spare: one in place, one surges.
    let (in_place, surge) = split(&l, &terms(4, 4, 2, 75));
    assert_eq!((in_place.len(), surge), (1, 1));
    // Unhealthy old ones go in place first, whatever the floor.
    let (in_place, surge) = split(&look(4, "OoOo"), &terms(4, 4, 2, 100 - 1));
    assert_eq!((in_place, surge), (vec!["i-1o".into(), "i-3o".into()], 0));
    // At the floor already: nothing healthy goes in place, the batch surges.
    let (in_place, surge) = split(&look(4, "OOoo"), &terms(4, 4, 2, 50));
    assert_eq!((in_place, surge), (vec!["i-2o".into(), "i-3o".into()], 0));
    let (in_place, surge) = split(&look(4, "OONN"), &terms(4, 4, 2, 100));
    assert_eq!((in_place.len(), surge), (0, 2));
    assert_eq!(floor(10, 75), 8);
    assert_eq!(floor(3, 0), 0);
}

#[test]
fn a_batch_past_its_deadline_fails_and_a_churning_group_is_stopped() {
    let t = terms(4, 4, 2, 100);
    let mut mem = Memory {
        batches: 1,
        timed_out: true,
        limit: None,
    };
    assert_eq!(
        next(&look(6, "OOOONn"), &t, &mut mem),
        Step::Fail(Failure::NotHealthy { batch: 2 })
    );
    // Below 100%, an in-place batch not healthy by its deadline.
    let mut mem = Memory {
        batches: 1,
        timed_out: true,
        limit: None,
    };
    assert_eq!(
        next(&look(4, "OONn"), &terms(4, 4, 2, 50), &mut mem),
        Step::Fail(Failure::NotHealthy { batch: 1 })
    );
    // A group launching the wrong AMI keeps showing old ones: more batches than it can need.
    let mut mem = Memory::default();
    assert!(matches!(
        next(&look(4, "OOOO"), &t, &mut mem),
        Step::Launch { .. }
    ));
    assert_eq!(mem.limit, Some(4));
    mem.batches = 5;
    assert_eq!(
        next(&look(4, "OOOO"), &t, &mut mem),
        Step::Fail(Failure::Churn { batches: 5, old: 4 })
    );
    // Not settled at the deadline.
    let mut mem = Memory {
        timed_out: true,
        ..Default::default()
    };
    assert_eq!(
        next(&look(4, "NNN"), &t, &mut mem),
        Step::Fail(Failure::NotSettled)
    );
}

#[test]
fn the_rollback_launches_old_before_it_retires_new() {
    let t = terms(4, 4, 2, 100);
    // Two new of four: old ones launched beside them first (capacity +2).
    let mut mem = BackMemory::default();
    assert_eq!(
        back(&look(4, "OONN"), &t, &mut mem),
        Back::Capacity { desired: 6, max: 6 }
    );
    // Enough healthy old ones: the new ones go.
    assert_eq!(
        back(&look(6, "OONNOO"), &t, &mut mem),
        Back::Retire(vec!["i-2N".into(), "i-3N".into()])
    );
    // Only old ones but still above the recorded capacity: back to it.
    assert_eq!(
        back(&look(6, "OOOOOO"), &t, &mut BackMemory::default()),
        Back::Capacity { desired: 4, max: 4 }
    );
    assert_eq!(
        back(&look(4, "OOOO"), &t, &mut BackMemory::default()),
        Back::Done
    );
    // An old one unhealthy before the rollback does not hold it up.
    let mut mem = BackMemory::default();
    assert_eq!(back(&look(4, "OOOo"), &t, &mut mem), Back::Done);
    // Past the deadline, the new ones are named.
    let mut mem = BackMemory {
        timed_out: true,
        ..Default::default()
    };
    assert_eq!(
        back(&look(4, "OONn"), &t, &mut mem),
        Back::Fail {
            new: vec!["i-2N".into(), "i-3n".into()]
        }
    );
    // The surge is fixed at the first look: a spec that launches the new AMI again does not
    // raise capacity round after round.
    let mut mem = BackMemory::default();
    let _ = back(&look(4, "OONN"), &t, &mut mem);
    assert_eq!(
        back(&look(6, "OONNNN"), &t, &mut mem),
        Back::Wait,
        "{mem:?}"
    );
}
