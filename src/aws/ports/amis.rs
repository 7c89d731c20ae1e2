//! The AMI housekeeping port (`gears amis`, `gears reap`): our AMIs and snapshots, what uses
//! an AMI, and removal.

use crate::aws::{CloudError, Image};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

/// One of our AMIs, with the EBS snapshots behind it (from its block device mappings).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedImage {
    pub image: Image,
    pub snapshots: Vec<String>,
    /// EC2 says the AMI is public (launch permission for everyone).
    pub public: bool,
}

/// An EBS snapshot of ours.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub id: String,
    /// `pending`, `completed`, `error`, ...
    pub state: String,
    pub tags: BTreeMap<String, String>,
}

/// Something that launches from (or runs) an AMI.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AmiUse {
    pub image_id: String,
    /// `launch-template`, `launch-configuration` or `instance`.
    pub kind: &'static str,
    /// The template id, launch configuration name or instance id.
    pub id: String,
    /// e.g. `hello-lt version 3 (default, latest)`, or the instance's state.
    pub detail: String,
}

/// Who besides the owner may launch an AMI: one launch permission, as DescribeImageAttribute
/// answers it. Printed (and written in JSON) as `account 123456789012`, `group all` (public),
/// `organization arn:...` or `organizational-unit arn:...`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LaunchPermission {
    Account(String),
    /// `group all`: anyone may launch it.
    Public,
    Organization(String),
    OrganizationalUnit(String),
}

impl std::fmt::Display for LaunchPermission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaunchPermission::Account(a) => write!(f, "account {a}"),
            LaunchPermission::Public => f.write_str("group all"),
            LaunchPermission::Organization(a) => write!(f, "organization {a}"),
            LaunchPermission::OrganizationalUnit(a) => write!(f, "organizational-unit {a}"),
        }
    }
}

impl std::str::FromStr for LaunchPermission {
    type Err = String;
    /// The printed form back (`account 123456789012`, `group all`, ...).
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(' ') {
            Some(("account", a)) => Ok(LaunchPermission::Account(a.to_owned())),
            Some(("group", "all")) => Ok(LaunchPermission::Public),
            Some(("organization", a)) => Ok(LaunchPermission::Organization(a.to_owned())),
            Some(("organizational-unit", a)) => {
                Ok(LaunchPermission::OrganizationalUnit(a.to_owned()))
            }
            _ => Err(format!("not a launch permission: {s:?}")),
        }
    }
}

impl serde::Serialize for LaunchPermission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// AMI housekeeping in one region (`gears amis`): our AMIs, what uses AMIs, and removal.
pub trait AmiHousekeeping: Send + Sync {
    /// The region these calls go to.
    fn region(&self) -> &str;

    /// Our own AMIs (owner self, any state) whose tags equal `tags`, with their snapshots.
    fn owned_images(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Vec<OwnedImage>, CloudError>> + Send;

    /// Every use in the region of the AMIs `image_ids`: every version of every launch
    /// template (labelled with the groups that launch from it), every launch configuration,
    /// every pending, running, stopping or stopped instance. Only what this account holds, read
    /// by image id (never through DescribeImages, which need not show an AMI shared with it):
    /// in the build account and in each environment's account alike. No ids, no calls.
    fn uses_of(
        &self,
        image_ids: &[String],
    ) -> impl Future<Output = Result<Vec<AmiUse>, CloudError>> + Send;

    /// Deregisters an AMI, asking EC2 to delete the snapshots only it uses in the same call
    /// (`DeleteAssociatedSnapshots`; an emulator may ignore it, so callers delete them too).
    fn deregister(&self, image_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Who else may launch the AMI: accounts, everyone, organizations, organizational units
    /// (DescribeImageAttribute `launchPermission`).
    fn launch_permissions(
        &self,
        image_id: &str,
    ) -> impl Future<Output = Result<Vec<LaunchPermission>, CloudError>> + Send;

    /// Snapshot id → the AMIs behind which it is, for every AMI we own in the region (any tags,
    /// any state but deregistered).
    fn registered_snapshots(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<String, Vec<String>>, CloudError>> + Send;

    /// Our own snapshots whose tags equal `tags` (compared exactly).
    fn tagged_snapshots(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Vec<Snapshot>, CloudError>> + Send;

    /// Which of `ids` are members of an Auto Scaling group (DescribeAutoScalingInstances).
    fn group_members(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<BTreeSet<String>, CloudError>> + Send;

    /// Key pair names that a launch template version or a launch configuration names (a group
    /// launches with them later, so they are in use even with no instance running).
    fn launch_key_names(&self)
        -> impl Future<Output = Result<BTreeSet<String>, CloudError>> + Send;

    /// Deletes an EBS snapshot.
    fn delete_snapshot(
        &self,
        snapshot_id: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}
