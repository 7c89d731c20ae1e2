//! The instances port: test instances launched, watched and terminated in one region, and the
//! key pairs and security groups gears leaves behind.

use crate::aws::CloudError;
use std::collections::BTreeMap;
use std::future::Future;

/// What to launch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaunchSpec {
    pub image_id: String,
    pub instance_type: String,
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
    /// An instance profile name or ARN.
    pub instance_profile: Option<String>,
    pub key_name: Option<String>,
    /// User data, as text (the port encodes it).
    pub user_data: Option<String>,
    /// Tags on the instance and its volumes, set in the launch call itself (never untagged).
    pub tags: BTreeMap<String, String>,
    /// Makes the launch idempotent: a retried call (the SDK's, after a lost answer) launches
    /// no second instance.
    pub client_token: Option<String>,
    /// The instance metadata service the instance gets.
    pub imds: Imds,
}

/// Which instance metadata service an instance answers on: IMDSv2 alone (a session token
/// required: what organisations' policies on `ec2:MetadataHttpTokens` demand), or v1 too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum Imds {
    /// Tokens required (`HttpTokens=required`), the endpoint on.
    #[default]
    #[serde(rename = "v2")]
    V2,
    /// Tokens optional (`HttpTokens=optional`): v1 allowed, asked for explicitly.
    #[serde(rename = "v1")]
    V1,
}

/// An instance as gears sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: String,
    /// EC2's state name: `pending`, `running`, `shutting-down`, `terminated`, `stopping`, ...
    pub state: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// When EC2 launched it (RFC 3339), when known.
    pub launched_at: Option<String>,
}

/// A security group, and whether any network interface uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub in_use: bool,
}

impl Instance {
    /// Terminated, or on its way there.
    pub fn is_gone(&self) -> bool {
        matches!(self.state.as_str(), "shutting-down" | "terminated")
    }
}

/// Instances in one region.
pub trait Instances: Send + Sync {
    /// The region these calls go to.
    fn region(&self) -> &str;

    /// Launches one instance, tagged in the same call.
    fn launch(
        &self,
        spec: &LaunchSpec,
    ) -> impl Future<Output = Result<Instance, CloudError>> + Send;

    /// The instance now (`None` if EC2 does not know it).
    fn describe(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Instance>, CloudError>> + Send;

    /// EC2's status checks: `Some(true)` when both instance and system status are ok,
    /// `Some(false)` while they are initializing or impaired, `None` when EC2 reports none.
    fn status_checks(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<bool>, CloudError>> + Send;

    /// Asks EC2 to terminate it (idempotent).
    fn terminate(&self, id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Sets these tags on the instance (CreateTags overwrites a key's value).
    fn set_tags(
        &self,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// The instance's console output, decoded (may be empty for a while after launch).
    fn console_output(&self, id: &str) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// Instances (not terminated) whose tags equal `tags`.
    fn find_by_tags(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Vec<Instance>, CloudError>> + Send;

    /// Names of the key pairs whose names start with `prefix` that no instance (pending,
    /// running, stopping or stopped) uses.
    fn key_pairs(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;

    /// Deletes a key pair.
    fn delete_key_pair(&self, name: &str) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Security groups whose names start with `prefix`, with whether they are in use.
    fn security_groups(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<SecurityGroup>, CloudError>> + Send;

    /// Deletes a security group.
    fn delete_security_group(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Launch templates whose names start with `prefix` and whose tags include `tags`
    /// (DescribeLaunchTemplates; packer's Spot builds make them).
    fn launch_templates(
        &self,
        prefix: &str,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Vec<NamedTemplate>, CloudError>> + Send;

    /// Deletes a launch template and all its versions (DeleteLaunchTemplate).
    fn delete_launch_template(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// A launch template as DescribeLaunchTemplates answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTemplate {
    /// `lt-…`.
    pub id: String,
    pub name: String,
    /// When it was made (RFC 3339), if EC2 said.
    pub created_at: Option<String>,
    pub tags: BTreeMap<String, String>,
}
