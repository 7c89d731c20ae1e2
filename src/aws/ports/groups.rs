//! Auto Scaling groups as a deploy sees them: found, sized, their members and scaling
//! processes.
use crate::aws::TemplateRef;

use crate::aws::CloudError;
use std::collections::BTreeMap;
use std::future::Future;

/// An instance in an Auto Scaling group.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub id: String,
    /// `Pending`, `InService`, `Terminating`, ...
    pub lifecycle: String,
    /// `Healthy` or `Unhealthy`.
    pub health: String,
}

impl Member {
    /// In service and healthy in the group.
    pub fn in_service(&self) -> bool {
        self.lifecycle == "InService" && self.health == "Healthy"
    }

    /// Counts toward the group's desired capacity: pending or in service. Standby, terminating,
    /// detaching and warmed instances do not (the group launches others in their place).
    pub fn counts(&self) -> bool {
        self.lifecycle.starts_with("Pending") || self.lifecycle == "InService"
    }
}

/// What EC2 says of a group member.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberInfo {
    pub image: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    /// The instance's tags (a group's propagated tags: what deploy wrote, such as
    /// `COMPONENT_VERSION`, readable in any account, unlike a shared AMI's).
    pub tags: BTreeMap<String, String>,
    /// The account it runs in (its reservation's owner): the caller's own.
    pub account: String,
}

/// An Auto Scaling group as a deploy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    /// The launch template: the group's own, or its mixed-instances policy's (`mixed`).
    pub template: Option<TemplateRef>,
    /// `template` is the launch template of a mixed-instances policy (instance types, Spot).
    pub mixed: bool,
    /// Instance types whose mixed-instances override names a launch template of its own (and so
    /// an AMI of its own, which one deploy cannot change).
    pub override_templates: Vec<String>,
    /// A legacy launch configuration's name, when the group has no launch template.
    pub launch_configuration: Option<String>,
    pub members: Vec<Member>,
    /// ELBv2 target groups: `TargetGroupARNs` and `elbv2` traffic sources.
    pub target_groups: Vec<String>,
    /// Classic load balancers: `LoadBalancerNames` and `elb` traffic sources.
    pub load_balancers: Vec<String>,
    /// Traffic sources gears cannot read the health of (VPC Lattice, a type AWS adds later):
    /// `type identifier`.
    pub other_traffic: Vec<String>,
    /// Why desired capacity counts units, not instances (weighted overrides, a vCPU or memory
    /// capacity type), when it does.
    pub units: Option<String>,
    /// The group has a warm pool (its pooled instances keep the launch spec they were made
    /// with, and a scale-out draws on them).
    pub warm_pool: bool,
    pub suspended: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// Auto Scaling groups of one region: found, sized, their members replaced. Every call is one
/// API call (or one page), so a poll costs the same whatever the group's size.
pub trait Groups: Send + Sync {
    /// The region these calls go to.
    fn region(&self) -> &str;

    /// Groups whose tags equal `tags` (exactly), or the named groups.
    fn groups(
        &self,
        tags: &BTreeMap<String, String>,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<Group>, CloudError>> + Send;

    /// The image and addresses of each instance (one DescribeInstances of those ids).
    fn describe_members(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, MemberInfo>, CloudError>> + Send;

    /// Sets min, max and desired capacity.
    fn set_capacity(
        &self,
        group: &str,
        min: i32,
        max: i32,
        desired: i32,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Terminates a member; with `decrement` the group's desired capacity goes down by one,
    /// otherwise the group launches a replacement.
    fn terminate_member(
        &self,
        id: &str,
        decrement: bool,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Suspends (or resumes) scaling processes of a group.
    fn set_processes(
        &self,
        group: &str,
        processes: &[String],
        suspend: bool,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Deletes a group that has no instances left (AWS refuses one that has).
    fn delete_group(&self, group: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}
