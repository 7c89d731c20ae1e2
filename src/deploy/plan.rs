//! The pure step planner: from what one look at a group saw, the recorded deploy and the
//! settings, the next step of the roll (or of the rollback). No AWS, no clock: the loops in
//! [`super::rolling`] and [`super::rollback`] carry steps out, and `--plan` asks it for the
//! shape of the first batch. Table tests in `tests/plan.rs`.

/// One member that counts toward capacity, as one look saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub id: String,
    /// On the new AMI; `None` while EC2 does not know the instance yet (neither old nor new).
    pub new: Option<bool>,
    /// In service, healthy in every traffic source and past the smoke tests.
    pub healthy: bool,
}

/// What one look saw of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    pub desired: i32,
    pub members: Vec<Seen>,
}

/// The deploy's fixed terms: the capacity recorded at its start and the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    pub min: i32,
    pub max: i32,
    /// The desired capacity the group had before the deploy.
    pub desired: i32,
    /// Instances a batch replaces.
    pub batch: i32,
    /// Percent of `desired` that stays healthy (100: launch before retire).
    pub min_healthy: u32,
}

/// What the loop remembers between looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// Batches finished.
    pub batches: u32,
    /// The current batch's deadline has passed.
    pub timed_out: bool,
    /// At most this many batches (old instances at the first look, in batches, plus 2).
    pub limit: Option<u32>,
}

/// Why the loop waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// New instances of a batch are launching or not healthy yet.
    Batch,
    /// Replacements of instances replaced in place are on their way.
    InPlace,
    /// The group has not settled at its capacity.
    Settling,
}

/// Why a roll stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Batch `batch` was not healthy by its deadline.
    NotHealthy { batch: u32 },
    /// More batches than the group can need: it launches another AMI.
    Churn { batches: u32, old: usize },
    /// The group did not settle at its capacity.
    NotSettled,
}

/// The next step of a roll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Every member is new and healthy, at the recorded capacity.
    Done,
    /// Start a batch: raise capacity by `surge` (to `desired`, `max`) and terminate `in_place`
    /// without lowering desired.
    Launch {
        surge: i32,
        in_place: Vec<String>,
        desired: i32,
        max: i32,
    },
    /// The batch is healthy: terminate `ids` and lower desired with them; `last` when no old
    /// instance is left after.
    Retire {
        ids: Vec<String>,
        last: bool,
    },
    Wait(Waiting),
    Fail(Failure),
}

impl Look {
    fn old(&self) -> Vec<&Seen> {
        self.members
            .iter()
            .filter(|m| m.new == Some(false))
            .collect()
    }
    fn new_ok(&self) -> bool {
        self.members
            .iter()
            .filter(|m| m.new == Some(true))
            .all(|m| m.healthy)
    }
    /// As many members as desired, and EC2 knows every one.
    fn settled(&self) -> bool {
        self.members.len() as i32 == self.desired && self.members.iter().all(|m| m.new.is_some())
    }
    fn healthy(&self) -> i32 {
        self.members.iter().filter(|m| m.healthy).count() as i32
    }
}

/// Unhealthy first, then the rest, in the look's order.
fn unhealthy_first<'a>(v: &[&'a Seen]) -> Vec<&'a Seen> {
    let mut v = v.to_vec();
    v.sort_by_key(|m| m.healthy);
    v
}

/// The healthy floor: `min_healthy` percent of `desired`, rounded up.
pub fn floor(desired: i32, min_healthy: u32) -> i32 {
    (desired * min_healthy as i32 + 99) / 100
}

/// How the next batch splits: the old instances it replaces in place (unhealthy first, then
/// healthy ones while the group stays above the floor; none at 100%) and how many surge.
pub fn split(look: &Look, t: &Terms) -> (Vec<String>, i32) {
    let old = look.old();
    let n = t.batch.max(1).min(old.len() as i32);
    let mut in_place = Vec::new();
    if t.min_healthy < 100 {
        let mut spare = (look.healthy() - floor(t.desired, t.min_healthy)).max(0);
        for m in unhealthy_first(&old).into_iter().take(n as usize) {
            if m.healthy && spare == 0 {
                break;
            }
            if m.healthy {
                spare -= 1;
            }
            in_place.push(m.id.clone());
        }
    }
    let surge = n - in_place.len() as i32;
    (in_place, surge)
}

/// The next step of the roll.
pub fn next(look: &Look, t: &Terms, mem: &mut Memory) -> Step {
    let old = look.old();
    let (settled, new_ok) = (look.settled(), look.new_ok());
    // Every member new and healthy: done (a capacity raised meanwhile is set back by the
    // finish, which restores the recorded one).
    if old.is_empty() && settled && new_ok {
        return Step::Done;
    }
    let limit = *mem
        .limit
        .get_or_insert((old.len() as u32).div_ceil(t.batch.max(1) as u32) + 2);
    if mem.batches > limit {
        return Step::Fail(Failure::Churn {
            batches: mem.batches,
            old: old.len(),
        });
    }
    if look.desired > t.desired {
        // A batch is in flight: retire as many old ones once every new one is healthy.
        if settled && new_ok {
            let surplus = (look.desired - t.desired) as usize;
            let ids = unhealthy_first(&old)
                .into_iter()
                .take(surplus)
                .map(|m| m.id.clone())
                .collect();
            return Step::Retire {
                ids,
                last: old.len() <= surplus,
            };
        }
        if mem.timed_out {
            return Step::Fail(Failure::NotHealthy {
                batch: mem.batches + 1,
            });
        }
        return Step::Wait(Waiting::Batch);
    }
    if !old.is_empty() && t.min_healthy < 100 && !(settled && new_ok) {
        if mem.timed_out {
            return Step::Fail(Failure::NotHealthy { batch: mem.batches });
        }
        return Step::Wait(Waiting::InPlace);
    }
    if !old.is_empty() {
        let (in_place, surge) = split(look, t);
        let desired = t.desired + surge;
        return Step::Launch {
            surge,
            in_place,
            desired,
            max: t.max.max(desired),
        };
    }
    if mem.timed_out {
        return Step::Fail(Failure::NotSettled);
    }
    Step::Wait(Waiting::Settling)
}

/// What the loop remembers between looks during a rollback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackMemory {
    /// Old-AMI members at the first look, and whether they were healthy: one unhealthy before
    /// the rollback is not the rollback's to fix.
    pub before: Option<std::collections::BTreeMap<String, bool>>,
    /// Old-AMI instances the rollback may launch beside the new ones (fixed at the first look).
    pub surge: Option<i32>,
    pub timed_out: bool,
}

/// The next step of a rollback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Back {
    /// Only old-AMI members, healthy, at the recorded capacity.
    Done,
    /// Terminate the new ones and lower desired with them.
    Retire(Vec<String>),
    /// Set the capacity (launch old-AMI ones beside the new, or back to the recorded size).
    Capacity {
        desired: i32,
        max: i32,
    },
    Wait,
    /// Not back by the deadline: the new ones left.
    Fail {
        new: Vec<String>,
    },
}

/// The next step back to the old AMI.
pub fn back(look: &Look, t: &Terms, mem: &mut BackMemory) -> Back {
    let before = mem
        .before
        .get_or_insert_with(|| {
            look.members
                .iter()
                .filter(|m| m.new == Some(false))
                .map(|m| (m.id.clone(), m.healthy))
                .collect()
        })
        .clone();
    let broken_before = before.values().filter(|ok| !**ok).count() as i32;
    let needed = (t.desired - broken_before).max(0);
    let new: Vec<String> = look
        .members
        .iter()
        .filter(|m| m.new == Some(true))
        .map(|m| m.id.clone())
        .collect();
    let settled = look.settled();
    let all_ok = look
        .members
        .iter()
        .all(|m| m.healthy || before.get(&m.id) == Some(&false));
    if new.is_empty() && look.desired == t.desired && settled && all_ok {
        return Back::Done;
    }
    if mem.timed_out {
        return Back::Fail { new };
    }
    let old_healthy = look
        .members
        .iter()
        .filter(|m| m.new == Some(false) && m.healthy)
        .count() as i32;
    if settled && !new.is_empty() {
        if old_healthy >= needed {
            return Back::Retire(new);
        }
        // Old-AMI ones first, beside the new ones, so the floor holds; never more than the
        // first look asked for (a previous spec that launches the new AMI too would otherwise
        // raise the capacity round after round).
        let cap = *mem.surge.get_or_insert((new.len() as i32).max(t.batch));
        let want = t.desired + (new.len() as i32).min(cap);
        if look.desired < want {
            return Back::Capacity {
                desired: want,
                max: t.max.max(want),
            };
        }
    }
    if settled && new.is_empty() && look.desired > t.desired {
        return Back::Capacity {
            desired: t.desired,
            max: t.max,
        };
    }
    Back::Wait
}
