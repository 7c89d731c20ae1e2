//! The only module that talks to AWS (the SDK is imported nowhere else).
//!
//! Stages see small ports ([`Cloud`] hands out per-region [`Images`]); [`Aws`] implements them on
//! one shared SDK configuration, and [`fake`] implements them in memory with injectable faults
//! (throttling, an error at call N, latency) for tests of what moto cannot produce. SDK errors
//! become [`CloudError`]s typed by AWS error code, never by message text.

mod clone;
#[cfg(test)]
mod contract;
pub mod ec2;
mod errors;
#[cfg(test)]
pub mod fake;
pub mod fleet;
mod group_view;
pub mod housekeeping;
pub mod locks;
pub mod role;
mod share;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// What kind of "no" AWS said, decided by its error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Too many calls, even after the SDK's retries: retry the stage later.
    Throttled,
    /// The credentials lack a permission: retrying will not help.
    AccessDenied,
    /// The thing asked for does not exist (e.g. `InvalidAMIID.NotFound`).
    NotFound,
    /// The request itself is wrong (a validation error, a malformed or unavailable id, a
    /// quota reached, an operation the resource's state forbids): retrying will not help.
    Invalid,
    /// AWS's side failed (a 5xx, an internal error, no answer at all) or a state that passes
    /// (a scaling activity in progress): another attempt may succeed.
    Transient,
    /// A code gears does not know, answered as a client error (4xx): not retried, so a
    /// permanent error never holds a deploy for the whole deadline; its code is in the message.
    Other,
}

/// AWS said no after retries (exit 5): safe to retry the stage.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CloudError {
    /// No credentials could be found.
    #[error("no AWS credentials: {0}")]
    NoCredentials(String),
    /// The role of another account could not be assumed (its trust policy, the external id,
    /// the caller's sts:AssumeRole permission).
    #[error("cannot assume the role {role}{}: {message}", environment.as_ref().map(|e| format!(" of the environment {e}")).unwrap_or_default())]
    Role {
        role: String,
        environment: Option<String>,
        message: String,
    },
    /// An API call failed.
    #[error("AWS {operation} failed in {region}: {message}{}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Api {
        operation: &'static str,
        region: String,
        kind: ErrorKind,
        code: Option<String>,
        message: String,
    },
}

impl CloudError {
    /// An API error, its kind decided by `code` ([`kind_of`]; no code: no answer, transient).
    pub fn api(
        operation: &'static str,
        region: &str,
        code: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Self::answered(operation, region, code, None, message)
    }

    /// An API error with the HTTP status AWS answered, its kind decided by both ([`kind_of`]).
    pub fn answered(
        operation: &'static str,
        region: &str,
        code: Option<&str>,
        status: Option<u16>,
        message: impl Into<String>,
    ) -> Self {
        CloudError::Api {
            operation,
            region: region.to_owned(),
            kind: kind_of(code, status),
            code: code.map(str::to_owned),
            message: message.into(),
        }
    }

    /// AWS's error code, when it answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            CloudError::Api { code, .. } => code.as_deref(),
            CloudError::NoCredentials(_) | CloudError::Role { .. } => None,
        }
    }

    /// The kind of error (no credentials counts as access denied: retrying will not help).
    pub fn kind(&self) -> ErrorKind {
        match self {
            CloudError::NoCredentials(_) | CloudError::Role { .. } => ErrorKind::AccessDenied,
            CloudError::Api { kind, .. } => *kind,
        }
    }

    /// Whether waiting and calling again may help (throttling, a transient error), as opposed
    /// to a "no" that stays a no (access denied, not found, invalid, a code gears does not know
    /// answered as a client error).
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Throttled | ErrorKind::Transient)
    }

    /// What to do next.
    pub fn hint(&self) -> Option<String> {
        match self {
            CloudError::NoCredentials(_) => Some(
                "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run on an instance with a role".into(),
            ),
            CloudError::Role { .. } => Some(
                "the role's trust policy must let these credentials assume it (and ask for the same sts:ExternalId), and they need sts:AssumeRole on it".into(),
            ),
            CloudError::Api { kind: ErrorKind::Throttled, .. } => Some(
                "AWS throttled the calls even after retries; retry the stage later".into(),
            ),
            CloudError::Api { kind: ErrorKind::AccessDenied, .. } => {
                Some("the credentials lack a permission gears needs (see the operation above)".into())
            }
            _ => None,
        }
    }
}

/// CancelInstanceRefresh's answer when no refresh is running.
pub const NO_ACTIVE_REFRESH: &str = "ActiveInstanceRefreshNotFound";

/// The kind of an error AWS answered with `code` and HTTP `status`: the code's kind when gears
/// knows it ([`kind_of_code`]); otherwise a 5xx (or no answer at all) is transient and a
/// client error is permanent ([`ErrorKind::Other`]).
pub fn kind_of(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    match (code.map(kind_of_code), status) {
        (Some(k), _) if k != ErrorKind::Other => k,
        (_, Some(s)) if s >= 500 => ErrorKind::Transient,
        (None, _) => ErrorKind::Transient,
        (Some(_), _) => ErrorKind::Other,
    }
}

/// The kind of an AWS error code: the one table of codes gears reads (any code not here is
/// decided by its HTTP status, [`kind_of`]).
pub fn kind_of_code(code: &str) -> ErrorKind {
    match code {
        "Throttling"
        | "ThrottlingException"
        | "ThrottledException"
        | "RequestThrottled"
        | "RequestThrottledException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "SlowDown"
        | "EC2ThrottledException"
        | "ProvisionedThroughputExceededException"
        | "PriorRequestNotComplete" => ErrorKind::Throttled,
        "InternalError"
        | "InternalFailure"
        | "InternalServerError"
        | "InternalServiceError"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "Unavailable"
        | "RequestTimeout"
        | "RequestTimeoutException"
        | "ResourceContention"
        | "ScalingActivityInProgress"
        | "IncorrectInstanceState"
        | "InsufficientInstanceCapacity"
        // A snapshot right after its AMI's deregister (EC2 answers it about one time in five);
        // one another AMI still uses is never asked to be deleted.
        | "InvalidSnapshot.InUse" => ErrorKind::Transient,
        c if c.starts_with("AccessDenied") => ErrorKind::AccessDenied,
        "AccessDeniedException"
        | "UnauthorizedOperation"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "AuthFailure"
        | "SignatureDoesNotMatch"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "OptInRequired" => ErrorKind::AccessDenied,
        c if c.ends_with("NotFound") || c.ends_with("NotFoundException") => ErrorKind::NotFound,
        c if c.ends_with(".Malformed") || c.ends_with(".Unavailable") || c.ends_with(".Invalid") => {
            ErrorKind::Invalid
        }
        "ValidationError"
        | "ValidationException"
        | "LimitExceeded"
        | "LimitExceededException"
        | "ResourceInUse"
        | "AlreadyExists"
        | "AlreadyExistsFault"
        | "InvalidAction"
        | "InvalidQueryParameter"
        | "MalformedQueryString"
        | "UnsupportedOperation"
        | "DryRunOperation"
        | "InvalidParameterValue"
        | "InvalidParameterCombination"
        | "MissingParameter"
        | "InvalidParameter"
        | "IdempotentParameterMismatch"
        | "InstanceRefreshInProgress"
        // Termination (or stop) protection, or an instance store root: a state of the
        // resource that another attempt will not change.
        | "OperationNotPermitted" => ErrorKind::Invalid,
        _ => ErrorKind::Other,
    }
}

/// Whether GetConsoleOutput's `Latest` works on `instance_type`: Nitro types only; the Xen
/// families (previous generations and a few current ones) refuse it.
pub fn console_latest_supported(instance_type: &str) -> bool {
    const XEN: [&str; 22] = [
        "t1", "t2", "m1", "m2", "m3", "m4", "c1", "c3", "c4", "r3", "r4", "i2", "i3", "d2", "g2",
        "g3", "p2", "p3", "x1", "x1e", "h1", "f1",
    ];
    let family = instance_type.split('.').next().unwrap_or_default();
    // `m4.16xlarge` is Nitro; `i3.metal` and other metal types are too.
    !(XEN.contains(&family) && instance_type != "m4.16xlarge" && !instance_type.ends_with(".metal"))
}

/// An AMI as gears sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub id: String,
    pub name: String,
    /// EC2's state: `available`, `pending`, `failed`, ...
    pub state: String,
    pub creation_date: String,
    pub tags: BTreeMap<String, String>,
}

/// How to find the base AMI: by id, or the newest of a name pattern, owners and tags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BaseAmiQuery {
    pub id: Option<String>,
    pub name: Option<String>,
    pub owners: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// AMIs in one region.
pub trait Images: Send + Sync {
    /// The region these calls go to.
    fn region(&self) -> &str;

    /// The base AMI: by id (`None` when it does not exist), or the newest available match.
    fn find_base_ami(
        &self,
        query: &BaseAmiQuery,
    ) -> impl Future<Output = Result<Option<Image>, CloudError>> + Send;

    /// Our own AMIs (any state) whose tags equal `tags`. Values are compared exactly: a `*` or
    /// `?` in a value is that character, never a wildcard.
    fn find_by_tags(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Vec<Image>, CloudError>> + Send;

    /// The images of these ids that EC2 shows (any owner that lets us see them, deprecated and
    /// disabled ones included), by id; an id EC2 does not know (deregistered, or never there)
    /// is missing from the answer, never an error. One DescribeImages per 200 ids (EC2's limit
    /// of values in a filter), each paged.
    fn describe_images(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Image>, CloudError>> + Send;

    /// Lets `shares` launch `image`, and its accounts create volumes from its snapshots;
    /// adding what is there already changes nothing.
    fn share(
        &self,
        image: &str,
        shares: &crate::accounts::Shares,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Who may launch `image` and create volumes from its snapshots, as EC2 answers.
    fn shares_of(
        &self,
        image: &str,
    ) -> impl Future<Output = Result<ImageShares, CloudError>> + Send;
}

/// Who may use an AMI, as EC2 answers: its launch permissions, and for each of its snapshots
/// the accounts that may create volumes from it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageShares {
    pub launch: crate::accounts::Shares,
    pub snapshots: BTreeMap<String, Vec<crate::accounts::AccountId>>,
}

/// The most values EC2 takes in one filter (an `image-id` or `instance-id` filter).
pub const FILTER_VALUES: usize = 200;

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
}

/// A launch template version a group launches from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRef {
    pub id: String,
    /// A version number (`$Latest`/`$Default` are resolved by the deploy before it changes them).
    pub version: String,
}

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

/// A lifecycle hook on instance launch: it holds each new instance in `Pending:Wait` until
/// something completes the lifecycle action, or for `heartbeat` seconds, then applies
/// `default_result` (`CONTINUE` or `ABANDON`).
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchHook {
    pub name: String,
    pub heartbeat: u32,
    pub default_result: String,
}

/// What EC2 says of a group member.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberInfo {
    pub image: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
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

/// A new group a blue/green deploy clones from another ([`Fleet::clone_group`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CloneAsk {
    pub name: String,
    /// The launch template version it launches from (as its own launch template, or as its
    /// mixed-instances policy's when the source has one).
    pub template: TemplateRef,
    /// Tags set on it over the source's, propagated at launch.
    pub tags: BTreeMap<String, String>,
    /// The source's tags it does not get (gears' own state on the source).
    pub drop_tags: Vec<String>,
}

/// Auto Scaling groups, their launch templates and target health, in one region. Every call is
/// one API call (or one page), so a poll costs the same whatever the group's size.
pub trait Fleet: Send + Sync {
    /// The region these calls go to.
    fn region(&self) -> &str;

    /// Groups whose tags equal `tags` (exactly), or the named groups.
    fn groups(
        &self,
        tags: &BTreeMap<String, String>,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<Group>, CloudError>> + Send;

    /// Creates group `ask.name` like `source` (max size, subnets and zones, health checks,
    /// cooldown, termination policies, scale-in protection, traffic sources, tags, lifecycle
    /// hooks), with min and desired 0, launching from `ask.template`. AWS answers
    /// `AlreadyExists` when the name is taken.
    fn clone_group(
        &self,
        source: &str,
        ask: &CloneAsk,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Copies `from`'s scaling policies and (still to come) scheduled actions onto `to`,
    /// creating or updating by name; returns how many of each.
    fn copy_scaling(
        &self,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<(usize, usize), CloudError>> + Send;

    /// Attaches (`attach`) or detaches target groups and Classic load balancers.
    fn set_traffic(
        &self,
        group: &str,
        target_groups: &[String],
        load_balancers: &[String],
        attach: bool,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Deletes a group that has no instances left (AWS refuses one that has).
    fn delete_group(&self, group: &str) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// The CloudWatch alarms of these names that exist: name → (state, reason). One
    /// DescribeAlarms (per 100 names) whatever the number of groups.
    fn alarms(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, (String, String)>, CloudError>> + Send;

    /// A Classic load balancer's view of its instances (instance id → `InService`,
    /// `OutOfService` or `Unknown`).
    fn classic_health(
        &self,
        load_balancer: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, CloudError>> + Send;

    /// The image of a launch template version.
    fn template_image(
        &self,
        t: &TemplateRef,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// The version number `t.version` means now (`$Latest`, `$Default`, or a number).
    fn resolve_version(
        &self,
        t: &TemplateRef,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// A new version of the template, from `source`, with `image`; returns its number. A
    /// repeated `token` returns the version it created (an idempotent retry).
    fn new_template_version(
        &self,
        source: &TemplateRef,
        image: &str,
        token: &str,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// The image of a launch configuration.
    fn configuration_image(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// A copy of launch configuration `source` named `name`, with `image`.
    fn copy_configuration(
        &self,
        source: &str,
        name: &str,
        image: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Deletes a launch configuration (one no group uses: AWS refuses `ResourceInUse` else).
    fn delete_configuration(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Points the group at a launch configuration.
    fn set_configuration(
        &self,
        group: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Points the group at a template version: its own launch template, or with `mixed` its
    /// mixed-instances policy's (the overrides and the instances distribution stay as they are).
    fn set_template(
        &self,
        group: &str,
        t: &TemplateRef,
        mixed: bool,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

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

    /// Sets tags on the group (`propagate`: also on instances it launches).
    fn put_tags(
        &self,
        group: &str,
        tags: &BTreeMap<String, String>,
        propagate: bool,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Deletes tags from the group.
    fn delete_tags(
        &self,
        group: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Starts an instance refresh of the group (launch before terminate: healthy capacity kept
    /// between `min_healthy` and `max_healthy` percent); returns its id.
    fn start_refresh(
        &self,
        group: &str,
        min_healthy: i32,
        max_healthy: i32,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// An instance refresh's status (`Pending`, `InProgress`, `Successful`, `Failed`,
    /// `Cancelled`, ...), its percentage complete and its reason.
    fn refresh_status(
        &self,
        group: &str,
        id: &str,
    ) -> impl Future<Output = Result<(String, i32, String), CloudError>> + Send;

    /// Cancels the group's instance refresh.
    fn cancel_refresh(&self, group: &str) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// The group's launch lifecycle hooks (they hold new instances in `Pending:Wait`).
    fn launch_hooks(
        &self,
        group: &str,
    ) -> impl Future<Output = Result<Vec<LaunchHook>, CloudError>> + Send;

    /// Target health in a target group: instance id → state (`healthy`, `initial`, ...).
    fn target_health(
        &self,
        target_group: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, CloudError>> + Send;

    /// The image and addresses of each instance (one DescribeInstances of those ids).
    fn describe_members(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, MemberInfo>, CloudError>> + Send;
}

/// A lock table (DynamoDB with `--lock-table`): a true compare-and-swap for deploy locks.
pub trait LockTable: Send + Sync {
    /// Takes (or renews) lock `key` for `run`, recording `at` (Unix milliseconds) as its last
    /// renewal, when it is free, already `run`'s, or last renewed at or before `stale_before`
    /// (its holder is gone): `None`. Otherwise `Some` of who holds it and when it last renewed.
    /// A lock written with an `at` far in the future (a STOP lock) never goes stale.
    fn acquire(
        &self,
        key: &str,
        run: &str,
        holder: &str,
        at: i64,
        stale_before: i64,
    ) -> impl Future<Output = Result<Option<locks::TableHolder>, CloudError>> + Send;

    /// Renews lock `key` (its `at`) only while `run` still holds it: `false` when it does not
    /// (taken over, or removed by `--unlock`); a lost lock is never created again.
    fn renew(
        &self,
        key: &str,
        run: &str,
        holder: &str,
        at: i64,
    ) -> impl Future<Output = Result<bool, CloudError>> + Send;

    /// Gives lock `key` back if `run` holds it.
    fn release(&self, key: &str, run: &str) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Removes lock `key` whoever holds it (`--unlock`, after a human looked).
    fn force_release(&self, key: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// Where stages get their per-region AWS ports from.
pub trait Cloud: Send + Sync {
    type Images: Images;
    /// Cloneable and owned, so a cleanup step can keep one to terminate with.
    type Instances: Instances + Clone + 'static;

    /// The AMI port of `region`. Fails when there are no credentials.
    fn images(&self, region: &str)
        -> impl Future<Output = Result<Self::Images, CloudError>> + Send;

    /// The instance port of `region`. Fails when there are no credentials.
    fn instances(
        &self,
        region: &str,
    ) -> impl Future<Output = Result<Self::Instances, CloudError>> + Send;

    type Fleet: Fleet;

    /// The Auto Scaling port of `region`. Fails when there are no credentials.
    fn fleet(&self, region: &str) -> impl Future<Output = Result<Self::Fleet, CloudError>> + Send;

    type Locks: LockTable;

    /// The lock table `table` in `region`.
    fn locks(
        &self,
        region: &str,
        table: &str,
    ) -> impl Future<Output = Result<Self::Locks, CloudError>> + Send;

    /// The same cloud in the account of `account`'s role (none: the credentials' own): a
    /// pipeline deploys each environment into its own account.
    fn in_account(&self, account: Option<crate::accounts::RoleSession>) -> Self
    where
        Self: Sized;
}

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

/// AMI housekeeping in one region (`gears amis`): our AMIs, what uses AMIs, and removal.
pub trait AmiHousekeeping: Send + Sync {
    /// The region these calls go to.
    fn region(&self) -> &str;

    /// Our own AMIs (owner self, any state) whose tags equal `tags`, with their snapshots.
    fn owned_images(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Vec<OwnedImage>, CloudError>> + Send;

    /// Every use of any AMI in the region: the default and latest versions of every launch
    /// template, the versions Auto Scaling groups pin by number, every launch configuration,
    /// every pending, running, stopping or stopped instance.
    fn uses(&self) -> impl Future<Output = Result<Vec<AmiUse>, CloudError>> + Send;

    /// Deregisters an AMI, asking EC2 to delete the snapshots only it uses in the same call
    /// (`DeleteAssociatedSnapshots`; an emulator may ignore it, so callers delete them too).
    fn deregister(&self, image_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Who else may launch the AMI: `account 123456789012`, `group all` (public),
    /// `organization arn:...`, `organizational-unit arn:...` (DescribeImageAttribute).
    fn launch_permissions(
        &self,
        image_id: &str,
    ) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;

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
    ) -> impl Future<Output = Result<std::collections::BTreeSet<String>, CloudError>> + Send;

    /// Key pair names that a launch template version or a launch configuration names (a group
    /// launches with them later, so they are in use even with no instance running).
    fn launch_key_names(
        &self,
    ) -> impl Future<Output = Result<std::collections::BTreeSet<String>, CloudError>> + Send;

    /// Deletes an EBS snapshot.
    fn delete_snapshot(
        &self,
        snapshot_id: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// Where `gears amis` gets its per-region port from (beside [`Cloud`], so stages that do not
/// keep house need not know it).
pub trait AmiCloud: Send + Sync {
    type Amis: AmiHousekeeping;

    /// The AMI housekeeping port of `region`. Fails when there are no credentials.
    fn amis(&self, region: &str) -> impl Future<Output = Result<Self::Amis, CloudError>> + Send;
}

/// The real AWS (or an emulator at `endpoint`), on one SDK configuration loaded once.
pub struct Aws {
    endpoint: Option<String>,
    timeouts: aws_config::timeout::TimeoutConfig,
    /// The role this client acts through (another account), if any ([`role`]).
    account: Option<crate::accounts::RoleSession>,
    conf: tokio::sync::OnceCell<aws_config::SdkConfig>,
}

impl Aws {
    /// `endpoint` overrides the endpoint (otherwise the SDK reads `AWS_ENDPOINT_URL[_EC2]`);
    /// the run's `GEARS_AWS_TIMEOUT` bounds each call ([`timeouts`]).
    pub fn new(endpoint: Option<&str>, ctx: &crate::context::RunContext) -> Self {
        Aws {
            endpoint: endpoint.map(str::to_owned),
            timeouts: timeouts(ctx),
            account: None,
            conf: tokio::sync::OnceCell::new(),
        }
    }

    /// This client, acting in the account of `account`'s role (none: the credentials' own).
    pub fn with_account(mut self, account: Option<crate::accounts::RoleSession>) -> Self {
        self.account = account;
        self
    }

    /// The shared configuration, loaded on first use; no credentials is an error here, before
    /// any call is made.
    async fn conf(&self) -> Result<&aws_config::SdkConfig, CloudError> {
        let conf = self
            .conf
            .get_or_init(|| async {
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .timeout_config(self.timeouts.clone())
                    .app_name(role::app_name());
                if let Some(e) = &self.endpoint {
                    loader = loader.endpoint_url(e);
                }
                let base = loader.load().await;
                match &self.account {
                    Some(session) => role::assume(&base, session).await,
                    None => base,
                }
            })
            .await;
        use aws_sdk_ec2::config::ProvideCredentials;
        let Some(provider) = conf.credentials_provider() else {
            return Err(CloudError::NoCredentials(
                "no credentials provider is configured".into(),
            ));
        };
        provider.provide_credentials().await.map_err(|e| {
            let why = aws_sdk_ec2::error::DisplayErrorContext(&e).to_string();
            match &self.account {
                Some(s) => CloudError::Role {
                    role: s.role.role_arn.to_string(),
                    environment: s.environment.clone(),
                    message: why,
                },
                None => CloudError::NoCredentials(e.to_string()),
            }
        })?;
        Ok(conf)
    }
}

impl Cloud for Aws {
    fn in_account(&self, account: Option<crate::accounts::RoleSession>) -> Self {
        Aws {
            endpoint: self.endpoint.clone(),
            timeouts: self.timeouts.clone(),
            account,
            conf: tokio::sync::OnceCell::new(),
        }
    }

    type Images = ec2::Ec2;
    type Instances = ec2::Ec2;

    async fn images(&self, region: &str) -> Result<ec2::Ec2, CloudError> {
        Ok(ec2::Ec2::new(self.conf().await?, region))
    }

    async fn instances(&self, region: &str) -> Result<ec2::Ec2, CloudError> {
        Ok(ec2::Ec2::new(self.conf().await?, region))
    }

    type Fleet = fleet::AwsFleet;

    async fn fleet(&self, region: &str) -> Result<fleet::AwsFleet, CloudError> {
        Ok(fleet::AwsFleet::new(self.conf().await?, region))
    }

    type Locks = locks::DynamoLocks;

    async fn locks(&self, region: &str, table: &str) -> Result<locks::DynamoLocks, CloudError> {
        Ok(locks::DynamoLocks::new(self.conf().await?, region, table))
    }
}

/// How long one AWS call may take: a hung call (a load balancer that accepts and never answers,
/// a dropped connection) fails in bounded time instead of holding a stage forever, and the
/// stage's own retry and deadline decide what happens next. `GEARS_AWS_TIMEOUT` (seconds, default
/// 30) bounds one attempt; the call with the SDK's retries gets three times that; connecting
/// gets at most 10 s.
pub fn timeouts(ctx: &crate::context::RunContext) -> aws_config::timeout::TimeoutConfig {
    let attempt = ctx
        .var("GEARS_AWS_TIMEOUT")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(30));
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(attempt.min(Duration::from_secs(10)))
        .operation_attempt_timeout(attempt)
        .operation_timeout(attempt * 3)
        .build()
}

/// `value` as an EC2 filter value that matches it: every character a filter may read as a
/// pattern or an escape (`*`, `?`, `\`, `[`, `]`) becomes `?`, which matches exactly one
/// character on AWS and on moto alike (moto ignores EC2's `\*` escape: measured). The filter may
/// then match a little more than the value (`7.0.?` also matches `7.0.1`), so results must be
/// compared exactly ([`has_tags`]).
pub fn filter_value(value: &str) -> String {
    value
        .chars()
        .map(|c| if "*?\\[]".contains(c) { '?' } else { c })
        .collect()
}

/// Whether `image` carries every one of `tags` with exactly that value.
pub fn has_tags(image: &Image, tags: &BTreeMap<String, String>) -> bool {
    tags.iter()
        .all(|(k, v)| image.tags.get(k).is_some_and(|have| have == v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 24 item 6: only throttling, 5xx and what passes are retried; each permanent class
    /// ends the step at once.
    #[test]
    fn permanent_errors_are_not_retried_and_transient_ones_are() {
        for code in [
            "InvalidLaunchTemplateId.VersionNotFound",
            "InvalidLaunchTemplateId.Malformed",
            "InvalidAMIID.Malformed",
            "InvalidAMIID.Unavailable",
            "LimitExceeded",
            "ValidationError",
            "ValidationException",
            "TargetGroupNotFound",
            "OperationNotPermitted",
            "UnauthorizedOperation",
            "AccessDenied",
            "AccessDeniedException",
            "ActiveInstanceRefreshNotFound",
        ] {
            let e = CloudError::answered("X", "r", Some(code), Some(400), "no");
            assert!(!e.is_retryable(), "{code}: {:?}", e.kind());
            assert!(e.to_string().ends_with(&format!("no ({code})")), "{e}");
        }
        // A code gears does not know: a client error stays a no, a server error may pass.
        assert!(
            !CloudError::answered("X", "r", Some("SomethingNew"), Some(400), "").is_retryable()
        );
        assert!(CloudError::answered("X", "r", Some("SomethingNew"), Some(503), "").is_retryable());
        for code in [
            "Throttling",
            "RequestLimitExceeded",
            "InternalError",
            "ServiceUnavailable",
            "ScalingActivityInProgress",
        ] {
            assert!(
                CloudError::answered("X", "r", Some(code), Some(400), "").is_retryable(),
                "{code}"
            );
        }
    }

    /// Issue 24 item 12: `Latest` only where the type supports it.
    #[test]
    fn console_latest_only_on_nitro_types() {
        for t in [
            "t2.micro",
            "m4.large",
            "c4.xlarge",
            "r4.large",
            "i3.large",
            "x1e.xlarge",
            "t1.micro",
        ] {
            assert!(!console_latest_supported(t), "{t}");
        }
        for t in [
            "t3.micro",
            "m5.large",
            "c6g.large",
            "i3en.large",
            "m4.16xlarge",
            "i3.metal",
            "t4g.nano",
        ] {
            assert!(console_latest_supported(t), "{t}");
        }
    }

    #[test]
    fn errors_are_kinded_by_code() {
        let e = CloudError::api(
            "DescribeImages",
            "us-east-1",
            Some("RequestLimitExceeded"),
            "slow down",
        );
        assert_eq!(e.kind(), ErrorKind::Throttled);
        assert!(e.is_retryable());
        assert!(e.hint().unwrap().contains("throttled"));
        let e = CloudError::api(
            "RunInstances",
            "us-east-1",
            Some("UnauthorizedOperation"),
            "you shall not",
        );
        assert_eq!(e.kind(), ErrorKind::AccessDenied);
        assert!(!e.is_retryable());
        assert_eq!(kind_of_code("InvalidAMIID.NotFound"), ErrorKind::NotFound);
        assert_eq!(
            kind_of_code("InvalidInstanceID.NotFound"),
            ErrorKind::NotFound
        );
        assert_eq!(kind_of_code("InternalError"), ErrorKind::Transient);
        assert_eq!(kind_of_code("ValidationError"), ErrorKind::Invalid);
        assert!(!CloudError::api("X", "r", Some("ValidationError"), "").is_retryable());
        // The message never decides: a "throttling" message with another code is not throttling.
        let e = CloudError::api(
            "X",
            "r",
            Some("InvalidParameterValue"),
            "Throttling exceeded",
        );
        assert_eq!(e.kind(), ErrorKind::Invalid);
        // No answer at all (a connection refused, a timeout) may pass.
        assert_eq!(
            CloudError::api("X", "r", None, "").kind(),
            ErrorKind::Transient
        );
        assert_eq!(
            CloudError::NoCredentials("x".into()).kind(),
            ErrorKind::AccessDenied
        );
    }

    #[test]
    fn filter_values_match_at_least_themselves() {
        assert_eq!(filter_value("7.0.1"), "7.0.1");
        assert_eq!(filter_value("7.0.*"), "7.0.?");
        assert_eq!(filter_value("a?b"), "a?b");
        assert_eq!(filter_value("a\\b[c]*"), "a?b?c??");
    }
}
