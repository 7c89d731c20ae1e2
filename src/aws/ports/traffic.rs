//! What a group serves and how healthy it is: target groups and Classic load balancers,
//! CloudWatch alarms, launch lifecycle hooks.

use crate::aws::CloudError;
use std::collections::BTreeMap;
use std::future::Future;

/// A lifecycle hook on instance launch: it holds each new instance in `Pending:Wait` until
/// something completes the lifecycle action, or for `heartbeat` seconds, then applies
/// `default_result` (`CONTINUE` or `ABANDON`).
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchHook {
    pub name: String,
    pub heartbeat: u32,
    pub default_result: String,
}

/// Traffic and health of the groups of one region: what they are attached to, what each
/// load balancer and alarm says, what holds a new instance.
pub trait Traffic: Send + Sync {
    /// Attaches (`attach`) or detaches target groups and Classic load balancers.
    fn set_traffic(
        &self,
        group: &str,
        target_groups: &[String],
        load_balancers: &[String],
        attach: bool,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Target health in a target group: instance id → state (`healthy`, `initial`, ...).
    fn target_health(
        &self,
        target_group: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, CloudError>> + Send;

    /// A Classic load balancer's view of its instances (instance id → `InService`,
    /// `OutOfService` or `Unknown`).
    fn classic_health(
        &self,
        load_balancer: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, CloudError>> + Send;

    /// The CloudWatch alarms of these names that exist: name → (state, reason). One
    /// DescribeAlarms (per 100 names) whatever the number of groups.
    fn alarms(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, (String, String)>, CloudError>> + Send;

    /// The group's launch lifecycle hooks (they hold new instances in `Pending:Wait`).
    fn launch_hooks(
        &self,
        group: &str,
    ) -> impl Future<Output = Result<Vec<LaunchHook>, CloudError>> + Send;
}
