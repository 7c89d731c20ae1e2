//! What turns the fake's log into IAM actions: each operation's service, the calls the fake
//! does not log, and the actions IAM checks beyond an operation's own.

/// The AWS operations gears calls and the IAM service each belongs to. The IAM action is
/// `service:Operation`. An operation the fake logs that is missing here fails the test: add it
/// with its service (`ec2`, `autoscaling`, `elasticloadbalancing`, `dynamodb`, `cloudwatch`).
pub(super) const SERVICES: &[(&str, &str)] = &[
    // EC2: images, instances, key pairs, security groups, launch templates, snapshots.
    ("DescribeImages", "ec2"),
    ("ModifyImageAttribute", "ec2"),
    ("ModifySnapshotAttribute", "ec2"),
    ("DescribeSnapshotAttribute", "ec2"),
    ("DescribeImageAttribute", "ec2"),
    ("DeregisterImage", "ec2"),
    ("DescribeSnapshots", "ec2"),
    ("DeleteSnapshot", "ec2"),
    ("RunInstances", "ec2"),
    ("DescribeInstances", "ec2"),
    ("DescribeInstanceStatus", "ec2"),
    ("TerminateInstances", "ec2"),
    ("GetConsoleOutput", "ec2"),
    ("CreateTags", "ec2"),
    ("DescribeKeyPairs", "ec2"),
    ("DeleteKeyPair", "ec2"),
    ("DescribeSecurityGroups", "ec2"),
    ("DeleteSecurityGroup", "ec2"),
    ("DescribeNetworkInterfaces", "ec2"),
    ("DescribeLaunchTemplates", "ec2"),
    ("DescribeLaunchTemplateVersions", "ec2"),
    ("CreateLaunchTemplateVersion", "ec2"),
    ("DeleteLaunchTemplateVersions", "ec2"),
    ("DeleteLaunchTemplate", "ec2"),
    // Auto Scaling.
    ("DescribeAutoScalingGroups", "autoscaling"),
    ("DescribeAutoScalingInstances", "autoscaling"),
    ("UpdateAutoScalingGroup", "autoscaling"),
    ("TerminateInstanceInAutoScalingGroup", "autoscaling"),
    ("SuspendProcesses", "autoscaling"),
    ("ResumeProcesses", "autoscaling"),
    ("CreateOrUpdateTags", "autoscaling"),
    ("DeleteTags", "autoscaling"),
    ("DescribeLifecycleHooks", "autoscaling"),
    ("DescribeLaunchConfigurations", "autoscaling"),
    ("CreateLaunchConfiguration", "autoscaling"),
    ("DeleteLaunchConfiguration", "autoscaling"),
    ("StartInstanceRefresh", "autoscaling"),
    ("DescribeInstanceRefreshes", "autoscaling"),
    ("CancelInstanceRefresh", "autoscaling"),
    // Blue/green.
    ("CreateAutoScalingGroup", "autoscaling"),
    ("DeleteAutoScalingGroup", "autoscaling"),
    ("DescribePolicies", "autoscaling"),
    ("PutScalingPolicy", "autoscaling"),
    ("DescribeScheduledActions", "autoscaling"),
    ("PutScheduledUpdateGroupAction", "autoscaling"),
    ("PutLifecycleHook", "autoscaling"),
    ("AttachLoadBalancerTargetGroups", "autoscaling"),
    ("DetachLoadBalancerTargetGroups", "autoscaling"),
    ("AttachLoadBalancers", "autoscaling"),
    ("DetachLoadBalancers", "autoscaling"),
    // Target groups.
    ("DescribeTargetHealth", "elasticloadbalancing"),
    // Classic load balancers.
    ("DescribeInstanceHealth", "elasticloadbalancing"),
    // Alarm gates.
    ("DescribeAlarms", "cloudwatch"),
    // The lock table.
    ("PutItem", "dynamodb"),
    ("GetItem", "dynamodb"),
    ("UpdateItem", "dynamodb"),
    ("DeleteItem", "dynamodb"),
];

/// Calls `src/aws` makes that the fake does not log: when the fake logs the operation in the
/// middle column in one of the stages named, the real adapter also calls the last one. Each
/// entry is a gap in the fake's log.
pub(super) const UNLOGGED: &[(&[&str], &str, &str)] = &[
    // aws/ec2.rs `key_pairs`: the key names live instances use.
    (&["Reap"], "DescribeKeyPairs", "DescribeInstances"),
    // aws/ec2.rs `security_groups`: one look at the network interfaces using them.
    (
        &["Reap"],
        "DescribeSecurityGroups",
        "DescribeNetworkInterfaces",
    ),
    // aws/housekeeping.rs `template_versions`: the templates, then each one's versions.
    (
        &["Amis", "AmisInEnvironments", "Reap"],
        "DescribeLaunchTemplateVersions",
        "DescribeLaunchTemplates",
    ),
    // aws/locks.rs `acquire`: a refused conditional write reads who holds the lock.
    (&["Deploy"], "PutItem", "GetItem"),
    // aws/clone.rs `clone_from`: reads the source's lifecycle hooks and puts them on the
    // clone; `copy_scaling_from` puts each policy and scheduled action it read.
    (
        &["Deploy"],
        "CreateAutoScalingGroup",
        "DescribeLifecycleHooks",
    ),
    (&["Deploy"], "CreateAutoScalingGroup", "PutLifecycleHook"),
    (&["Deploy"], "DescribePolicies", "PutScalingPolicy"),
    (
        &["Deploy"],
        "DescribeScheduledActions",
        "PutScheduledUpdateGroupAction",
    ),
    // aws/fleet.rs `copy_configuration`: reads the source before it creates the copy.
    (
        &["Deploy"],
        "CreateLaunchConfiguration",
        "DescribeLaunchConfigurations",
    ),
];

/// Actions IAM checks beyond the operation's own (as AWS documents them), when the run called
/// the first operation (and, where a list follows, one of those too):
/// - RunInstances with tags in the call (gears tags its test instances as it launches them) also
///   needs ec2:CreateTags;
/// - UpdateAutoScalingGroup onto a launch template needs ec2:RunInstances (Auto Scaling checks
///   that the caller may launch from it); a run on launch configurations alone does not;
/// - DeregisterImage with DeleteAssociatedSnapshots (as `gears amis prune` calls it) needs
///   ec2:DeleteSnapshot.
pub(super) const IMPLIED: &[(&str, &[&str], &str)] = &[
    ("RunInstances", &[], "ec2:CreateTags"),
    (
        "UpdateAutoScalingGroup",
        &[
            "DescribeLaunchTemplateVersions",
            "CreateLaunchTemplateVersion",
        ],
        "ec2:RunInstances",
    ),
    ("DeregisterImage", &[], "ec2:DeleteSnapshot"),
    // A group created on a launch template, with tags (a blue/green clone).
    ("CreateAutoScalingGroup", &[], "ec2:RunInstances"),
    (
        "CreateAutoScalingGroup",
        &[],
        "autoscaling:CreateOrUpdateTags",
    ),
];
