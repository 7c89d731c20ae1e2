//! What a prune did, as data: each AMI's and snapshot's action, the report, and the exit code
//! each asks for.

use crate::aws::CloudError;
use crate::exit::Exit;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

use super::{Ami, Unread};

/// How a prune goes.
#[derive(Debug, Clone, Copy)]
pub struct PruneOptions {
    /// Keep the newest N available AMIs of each builder in each region.
    pub keep: usize,
    /// Remove; otherwise only say what would go.
    pub yes: bool,
    /// Let the prune touch AMIs that other accounts may launch: one shared only with accounts
    /// of `accounts:`, none of which uses it, goes; one public, or shared with any other
    /// account, an organization or an organizational unit, stays.
    pub include_shared: bool,
}

/// A snapshot of ours whose AMI is gone (a prune killed between deregister and delete).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Swept {
    pub region: String,
    pub id: String,
    /// Its `gears:run-id`.
    pub run_id: String,
    pub reason: String,
    /// What was done with it: would delete, deleted or failed.
    pub action: SnapshotAction,
}

/// What a prune did: each AMI, the snapshots left behind by earlier runs, and the accounts of
/// `accounts:` whose use of the AMIs could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneReport {
    pub amis: Vec<Pruned>,
    pub snapshots: Vec<Swept>,
    /// Each kept every AMI shared with it, and makes the exit code 5.
    pub unread: Vec<Unread>,
}

impl PruneReport {
    /// How many removals failed.
    pub fn failures(&self) -> usize {
        self.amis.iter().filter(|p| p.failed()).count()
            + self.snapshots.iter().filter(|s| s.action.failed()).count()
    }

    /// The exit code of the prune: 5 when a removal failed or an account could not be read,
    /// else 0.
    pub fn exit(&self) -> Exit {
        let amis = self.amis.iter().map(Pruned::exit);
        let swept = self.snapshots.iter().map(|s| s.action.exit());
        let unread = self.unread.iter().map(Unread::exit);
        amis.chain(swept)
            .chain(unread)
            .fold(Exit::Success, Exit::most_severe)
    }
}

/// What a prune did with an AMI (or would do, without `--yes`). Printed and serialized as
/// `kept`, `would deregister`, `deregistered` or `failed: <why>`.
#[derive(Debug, Clone, PartialEq)]
pub enum AmiAction {
    Kept,
    WouldDeregister,
    Deregistered,
    /// AWS refused the deregister, after retries: exit 5.
    Failed(CloudError),
}

/// What a prune did with a snapshot of an AMI that goes, or of one already gone. Printed and
/// serialized as `would delete`, `deleted`, `kept: <why>` or `failed: <why>`.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotAction {
    WouldDelete,
    Deleted,
    /// Kept, and why: [`SnapshotAction::SHARED`] or [`SnapshotAction::STILL_REGISTERED`].
    Kept(&'static str),
    /// AWS refused the deletion, after retries: exit 5.
    Failed(CloudError),
}

impl SnapshotAction {
    /// Why the snapshot of an AMI that goes stays: another AMI, one that stays, uses it.
    pub const SHARED: &'static str = "a kept AMI uses it too";
    /// Why the snapshots of an AMI whose deregister failed stay.
    pub const STILL_REGISTERED: &'static str = "the AMI is still registered";

    /// Whether the deletion failed.
    pub fn failed(&self) -> bool {
        matches!(self, SnapshotAction::Failed(_))
    }

    /// The exit code this action asks for: 5 when it failed, else 0.
    pub fn exit(&self) -> Exit {
        if self.failed() {
            Exit::Cloud
        } else {
            Exit::Success
        }
    }
}

impl AmiAction {
    /// Whether the deregister failed.
    pub fn failed(&self) -> bool {
        matches!(self, AmiAction::Failed(_))
    }

    /// The exit code this action asks for: 5 when it failed, else 0.
    pub fn exit(&self) -> Exit {
        if self.failed() {
            Exit::Cloud
        } else {
            Exit::Success
        }
    }
}

impl std::fmt::Display for AmiAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AmiAction::Kept => f.write_str("kept"),
            AmiAction::WouldDeregister => f.write_str("would deregister"),
            AmiAction::Deregistered => f.write_str("deregistered"),
            AmiAction::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

impl std::fmt::Display for SnapshotAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotAction::WouldDelete => f.write_str("would delete"),
            SnapshotAction::Deleted => f.write_str("deleted"),
            SnapshotAction::Kept(why) => write!(f, "kept: {why}"),
            SnapshotAction::Failed(e) => write!(f, "failed: {e}"),
        }
    }
}

/// Both actions are written in JSON as they are printed.
impl Serialize for AmiAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for SnapshotAction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One AMI in a prune: kept or not, why, and what was done.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pruned {
    #[serde(flatten)]
    pub ami: Ami,
    pub keep: bool,
    pub reason: String,
    /// Kept, would deregister (without `--yes`), deregistered, or failed.
    pub action: AmiAction,
    /// Snapshot id → what was done with it (for AMIs that go).
    pub snapshot_actions: BTreeMap<String, SnapshotAction>,
}

impl Pruned {
    /// Whether a removal of this AMI or one of its snapshots failed.
    pub fn failed(&self) -> bool {
        self.action.failed() || self.snapshot_actions.values().any(SnapshotAction::failed)
    }

    /// The exit code of this AMI's line: 5 when a removal failed, else 0.
    pub fn exit(&self) -> Exit {
        let snapshots = self.snapshot_actions.values().map(SnapshotAction::exit);
        snapshots.fold(self.action.exit(), Exit::most_severe)
    }
}
