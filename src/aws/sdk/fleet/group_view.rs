//! An Auto Scaling group's description (DescribeAutoScalingGroups) as gears' [`Group`]: its
//! launch spec, members, every traffic source, whether it counts units, its warm pool.

use crate::aws::{Group, Member, TemplateRef};

/// The group's traffic sources of `kind` (`elb`, `elbv2`): those of the older fields (`listed`)
/// and of `TrafficSources`, once each.
pub(super) fn traffic(
    g: &aws_sdk_autoscaling::types::AutoScalingGroup,
    kind: &str,
    listed: &[String],
) -> Vec<String> {
    let mut all: Vec<String> = listed.to_vec();
    for t in g.traffic_sources() {
        if t.r#type() == Some(kind) {
            if let Some(id) = t.identifier() {
                // A Classic load balancer's identifier is its name; an ELBv2 one's, its ARN.
                if !all.iter().any(|a| a == id) {
                    all.push(id.to_owned());
                }
            }
        }
    }
    all
}

/// Why the group's desired capacity counts units rather than instances, if it does.
fn units(g: &aws_sdk_autoscaling::types::AutoScalingGroup) -> Option<String> {
    if let Some(t) = g.desired_capacity_type().filter(|t| *t != "units") {
        return Some(format!("its DesiredCapacityType is {t}"));
    }
    let weighted: Vec<String> = g
        .mixed_instances_policy()
        .and_then(|p| p.launch_template())
        .map(|t| {
            t.overrides()
                .iter()
                .filter_map(|o| {
                    let w = o.weighted_capacity().filter(|w| w.trim() != "1")?;
                    Some(format!(
                        "{} weighs {w}",
                        o.instance_type().unwrap_or("an override")
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    (!weighted.is_empty()).then(|| format!("its overrides are weighted ({})", weighted.join(", ")))
}

/// The group as gears sees it.
pub(super) fn group(g: &aws_sdk_autoscaling::types::AutoScalingGroup) -> Group {
    Group {
        name: g.auto_scaling_group_name().unwrap_or_default().to_owned(),
        min: g.min_size().unwrap_or_default(),
        max: g.max_size().unwrap_or_default(),
        desired: g.desired_capacity().unwrap_or_default(),
        template: g
            .launch_template()
            .or_else(|| {
                g.mixed_instances_policy()
                    .and_then(|p| p.launch_template())
                    .and_then(|t| t.launch_template_specification())
            })
            .map(|t| TemplateRef {
                id: t.launch_template_id().unwrap_or_default().to_owned(),
                version: t.version().unwrap_or("$Default").to_owned(),
            }),
        mixed: g.launch_template().is_none()
            && g.mixed_instances_policy()
                .and_then(|p| p.launch_template())
                .and_then(|t| t.launch_template_specification())
                .is_some(),
        override_templates: g
            .mixed_instances_policy()
            .and_then(|p| p.launch_template())
            .map(|t| {
                t.overrides()
                    .iter()
                    .filter(|o| o.launch_template_specification().is_some())
                    .map(|o| o.instance_type().unwrap_or("(an override)").to_owned())
                    .collect()
            })
            .unwrap_or_default(),
        launch_configuration: g.launch_configuration_name().map(str::to_owned),
        members: g
            .instances()
            .iter()
            .map(|i| Member {
                id: i.instance_id().unwrap_or_default().to_owned(),
                lifecycle: i
                    .lifecycle_state()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                health: i.health_status().unwrap_or_default().to_owned(),
            })
            .collect(),
        target_groups: traffic(g, "elbv2", g.target_group_arns()),
        load_balancers: traffic(g, "elb", g.load_balancer_names()),
        other_traffic: g
            .traffic_sources()
            .iter()
            .filter(|t| !matches!(t.r#type(), Some("elb" | "elbv2")))
            .map(|t| {
                format!(
                    "{} {}",
                    t.r#type().unwrap_or("(no type)"),
                    t.identifier().unwrap_or_default()
                )
            })
            .collect(),
        units: units(g),
        warm_pool: g.warm_pool_configuration().is_some(),
        suspended: g
            .suspended_processes()
            .iter()
            .filter_map(|p| p.process_name().map(str::to_owned))
            .collect(),
        tags: g
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    }
}
