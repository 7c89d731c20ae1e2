//! `gears deploy`: roll a component's Auto Scaling groups onto a new AMI, batch by batch, never
//! below the healthy capacity the group had, gated by group and target-group health, with
//! rollback when a gate fails.
//!
//! Each group's progress lives in tags on the group itself (`gears:deploy`: the run, the AMI,
//! the original capacity, template version and suspended processes; `gears:deploy-lock`: who
//! holds it, renewed by a heartbeat), so a deploy killed with `kill -9` continues when the same
//! command runs again, and `--abort` undoes it.
//!
//! The outline, file by file, in the order a deploy goes:
//! - [`settings`]: what the deploy is asked to do;
//! - [`run`]: the whole deploy: targets, every region checked ([`checks`]), then rolled;
//! - [`region`]: the groups of one region, `--parallel` at a time;
//! - [`group`]: one group: lock, roll, gate, finish or roll back; [`admin`]: `--plan`,
//!   `--abort`, `--unlock`;
//! - [`state`] and [`lock`]: what gears writes on a group (the recorded deploy, the lock), each
//!   one type with one parser and one writer;
//! - [`roll`]: what one group's deploy holds; [`start`]: taking the lock and recording;
//!   [`heartbeat`]: keeping the lock alive; [`lease`]: a region's tag locks renewed in one call;
//! - [`plan`]: the pure step planner; [`rolling`] and [`refresh`]: the strategies;
//!   [`gate`]: health, target health and smoke tests; [`rollback`]: the way back;
//! - [`blue_green`]: the blue/green strategy (a cluster's new group beside the old, switched
//!   to, the old one kept for `--rollback`);
//! - [`report`]: what each group did, with its exit code.

pub mod admin;
pub mod blue_green;
pub mod checks;
pub mod gate;
pub mod group;
pub mod heartbeat;
pub mod lease;
pub mod lock;
pub mod plan;
pub mod refresh;
pub mod region;
pub mod report;
pub mod roll;
pub mod rollback;
pub mod rolling;
pub mod run;
pub mod settings;
pub mod start;
pub mod state;
#[cfg(test)]
mod tests;

pub use self::{
    report::{Deployed, Failed, GroupOutcome, GroupResult},
    run::deploy,
    settings::{defaults, Batch, DeployAsk, DeploySettings, Refused, Strategy},
};
pub use gate::SmokeGate;
pub use lock::{lock_stale, LOCK_SETTLE, LOCK_STALE};

/// The tag that holds a group's deploy state.
pub const STATE_TAG: &str = crate::tags::DEPLOY;
/// The tag that holds the instance tags a group had before the deploy (for rollback).
pub const TAGS_TAG: &str = crate::tags::DEPLOY_TAGS;
/// The tag that holds a group's lock.
pub const LOCK_TAG: &str = crate::tags::DEPLOY_LOCK;
/// Processes suspended while a deploy runs (what was suspended before stays suspended).
pub const SUSPEND: [&str; 3] = ["AZRebalance", "AlarmNotification", "ScheduledActions"];
