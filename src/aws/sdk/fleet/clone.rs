//! What a blue/green deploy asks of Auto Scaling beyond a rolling one: a group cloned from
//! another (sizes, subnets, health checks, traffic sources, tags, lifecycle hooks), its scaling
//! policies and scheduled actions copied, traffic sources attached or detached, a group deleted.

use crate::aws::sdk::errors::map_err;
use crate::aws::sdk::fleet::group_view::traffic;
use crate::aws::sdk::fleet::AwsFleet;
use crate::aws::{CloneAsk, Cloning, CloudError};
use aws_sdk_autoscaling::types::{LaunchTemplateSpecification, Tag};

impl Cloning for AwsFleet {
    async fn clone_group(&self, source: &str, ask: &CloneAsk) -> Result<(), CloudError> {
        self.clone_from(source, ask).await
    }

    async fn copy_scaling(&self, from: &str, to: &str) -> Result<(usize, usize), CloudError> {
        self.copy_scaling_from(from, to).await
    }
}

impl AwsFleet {
    /// The source group's description, as AWS gives it.
    async fn raw_group(
        &self,
        name: &str,
    ) -> Result<aws_sdk_autoscaling::types::AutoScalingGroup, CloudError> {
        let out = self
            .asg()
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(name)
            .send()
            .await
            .map_err(|e| map_err("DescribeAutoScalingGroups", self.region_name(), e))?;
        out.auto_scaling_groups().first().cloned().ok_or_else(|| {
            CloudError::api(
                "DescribeAutoScalingGroups",
                self.region_name(),
                Some("ValidationError"),
                format!("AutoScalingGroup name not found - {name}"),
            )
        })
    }

    /// CreateAutoScalingGroup of `ask.name` like `source`: min 0 and desired 0 (the deploy
    /// grows it), the source's max, subnets and zones, health checks, cooldown, termination
    /// policies, scale-in protection, capacity rebalance, instance lifetime and warm-up, every
    /// target group and Classic load balancer, its tags (less `drop_tags`, plus `ask.tags`
    /// propagated at launch), on `ask.template` (its own launch template, or its mixed-instances
    /// policy's with the overrides and distribution kept); then its lifecycle hooks, before
    /// anything launches.
    pub(super) async fn clone_from(&self, source: &str, ask: &CloneAsk) -> Result<(), CloudError> {
        let g = self.raw_group(source).await?;
        let subnets = g.vpc_zone_identifier().filter(|s| !s.is_empty());
        let spec = LaunchTemplateSpecification::builder()
            .launch_template_id(&ask.template.id)
            .version(&ask.template.version)
            .build();
        let mut req = self
            .asg()
            .create_auto_scaling_group()
            .auto_scaling_group_name(&ask.name)
            .min_size(0)
            .desired_capacity(0)
            .max_size(g.max_size().unwrap_or_default())
            .set_vpc_zone_identifier(subnets.map(str::to_owned))
            // The zones follow from the subnets when there are some (AWS derives and shows
            // them); given alone only for a group without subnets.
            .set_availability_zones(
                Some(g.availability_zones().to_vec())
                    .filter(|z| !z.is_empty() && subnets.is_none()),
            )
            .set_health_check_type(g.health_check_type().map(str::to_owned))
            .set_health_check_grace_period(g.health_check_grace_period())
            .set_default_cooldown(g.default_cooldown())
            .set_termination_policies(
                Some(g.termination_policies().to_vec()).filter(|t| !t.is_empty()),
            )
            .set_new_instances_protected_from_scale_in(g.new_instances_protected_from_scale_in())
            .set_capacity_rebalance(g.capacity_rebalance())
            .set_max_instance_lifetime(g.max_instance_lifetime().filter(|l| *l > 0))
            .set_default_instance_warmup(g.default_instance_warmup())
            .set_placement_group(g.placement_group().map(str::to_owned))
            // Auto Scaling's own role is the default (naming it would need iam:PassRole);
            // another one is passed on.
            .set_service_linked_role_arn(
                g.service_linked_role_arn()
                    .filter(|r| !r.ends_with("/AWSServiceRoleForAutoScaling"))
                    .map(str::to_owned),
            );
        let tgs = traffic(&g, "elbv2", g.target_group_arns());
        let lbs = traffic(&g, "elb", g.load_balancer_names());
        if !tgs.is_empty() {
            req = req.set_target_group_arns(Some(tgs));
        }
        if !lbs.is_empty() {
            req = req.set_load_balancer_names(Some(lbs));
        }
        req = match g.mixed_instances_policy() {
            Some(p) if g.launch_template().is_none() => {
                let mut p = p.clone();
                if let Some(lt) = p.launch_template.as_mut() {
                    lt.launch_template_specification = Some(spec);
                }
                req.mixed_instances_policy(p)
            }
            _ => req.launch_template(spec),
        };
        for t in g.tags() {
            let key = t.key().unwrap_or_default();
            if ask.drop_tags.iter().any(|d| d == key) || ask.tags.contains_key(key) {
                continue;
            }
            req = req.tags(tag(
                &ask.name,
                key,
                t.value().unwrap_or_default(),
                t.propagate_at_launch().unwrap_or(false),
            ));
        }
        for (k, v) in &ask.tags {
            req = req.tags(tag(&ask.name, k, v, true));
        }
        req.send()
            .await
            .map_err(|e| map_err("CreateAutoScalingGroup", self.region_name(), e))?;
        self.copy_hooks(source, &ask.name).await
    }

    /// The source's lifecycle hooks (launch and terminate) put on `to`.
    async fn copy_hooks(&self, from: &str, to: &str) -> Result<(), CloudError> {
        let hooks = self
            .asg()
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(from)
            .send()
            .await
            .map_err(|e| map_err("DescribeLifecycleHooks", self.region_name(), e))?;
        for h in hooks.lifecycle_hooks() {
            self.asg()
                .put_lifecycle_hook()
                .auto_scaling_group_name(to)
                .set_lifecycle_hook_name(h.lifecycle_hook_name().map(str::to_owned))
                .set_lifecycle_transition(h.lifecycle_transition().map(str::to_owned))
                .set_notification_target_arn(h.notification_target_arn().map(str::to_owned))
                .set_role_arn(h.role_arn().map(str::to_owned))
                .set_notification_metadata(h.notification_metadata().map(str::to_owned))
                .set_heartbeat_timeout(h.heartbeat_timeout())
                .set_default_result(h.default_result().map(str::to_owned))
                .send()
                .await
                .map_err(|e| map_err("PutLifecycleHook", self.region_name(), e))?;
        }
        Ok(())
    }

    /// `from`'s scaling policies and scheduled actions put on `to` (PutScalingPolicy and
    /// PutScheduledUpdateGroupAction create or update, so a retry copies nothing twice). A
    /// one-time action whose time has passed is left out (AWS refuses a start in the past), and
    /// a recurring one keeps its recurrence without its first start. Returns how many of each.
    pub(super) async fn copy_scaling_from(
        &self,
        from: &str,
        to: &str,
    ) -> Result<(usize, usize), CloudError> {
        let mut policies = 0;
        let mut pages = self
            .asg()
            .describe_policies()
            .auto_scaling_group_name(from)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_err("DescribePolicies", self.region_name(), e))?;
            for p in page.scaling_policies() {
                self.asg()
                    .put_scaling_policy()
                    .auto_scaling_group_name(to)
                    .set_policy_name(p.policy_name().map(str::to_owned))
                    .set_policy_type(p.policy_type().map(str::to_owned))
                    .set_adjustment_type(p.adjustment_type().map(str::to_owned))
                    .set_min_adjustment_magnitude(p.min_adjustment_magnitude())
                    .set_scaling_adjustment(p.scaling_adjustment())
                    .set_cooldown(p.cooldown())
                    .set_metric_aggregation_type(p.metric_aggregation_type().map(str::to_owned))
                    .set_step_adjustments(
                        Some(p.step_adjustments().to_vec()).filter(|s| !s.is_empty()),
                    )
                    .set_estimated_instance_warmup(p.estimated_instance_warmup())
                    .set_target_tracking_configuration(p.target_tracking_configuration().cloned())
                    .set_predictive_scaling_configuration(
                        p.predictive_scaling_configuration().cloned(),
                    )
                    .set_enabled(p.enabled())
                    .send()
                    .await
                    .map_err(|e| map_err("PutScalingPolicy", self.region_name(), e))?;
                policies += 1;
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        let mut actions = 0;
        let mut pages = self
            .asg()
            .describe_scheduled_actions()
            .auto_scaling_group_name(from)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| map_err("DescribeScheduledActions", self.region_name(), e))?;
            for a in page.scheduled_update_group_actions() {
                let future_start = a.start_time().filter(|t| t.secs() > now).cloned();
                if a.recurrence().is_none() && future_start.is_none() {
                    continue;
                }
                self.asg()
                    .put_scheduled_update_group_action()
                    .auto_scaling_group_name(to)
                    .set_scheduled_action_name(a.scheduled_action_name().map(str::to_owned))
                    .set_start_time(future_start)
                    .set_end_time(a.end_time().filter(|t| t.secs() > now).cloned())
                    .set_recurrence(a.recurrence().map(str::to_owned))
                    .set_min_size(a.min_size())
                    .set_max_size(a.max_size())
                    .set_desired_capacity(a.desired_capacity())
                    .set_time_zone(a.time_zone().map(str::to_owned))
                    .send()
                    .await
                    .map_err(|e| map_err("PutScheduledUpdateGroupAction", self.region_name(), e))?;
                actions += 1;
            }
        }
        Ok((policies, actions))
    }

    /// Attaches (or detaches) target groups and Classic load balancers.
    pub(super) async fn traffic_to(
        &self,
        group: &str,
        target_groups: &[String],
        load_balancers: &[String],
        attach: bool,
    ) -> Result<(), CloudError> {
        let r = self.region_name();
        // AWS takes at most 10 of each a call.
        for chunk in target_groups.chunks(10) {
            let arns = Some(chunk.to_vec());
            if attach {
                let req = self.asg().attach_load_balancer_target_groups();
                req.auto_scaling_group_name(group)
                    .set_target_group_arns(arns)
                    .send()
                    .await
                    .map_err(|e| map_err("AttachLoadBalancerTargetGroups", r, e))?;
            } else {
                let req = self.asg().detach_load_balancer_target_groups();
                req.auto_scaling_group_name(group)
                    .set_target_group_arns(arns)
                    .send()
                    .await
                    .map_err(|e| map_err("DetachLoadBalancerTargetGroups", r, e))?;
            }
        }
        for chunk in load_balancers.chunks(10) {
            let names = Some(chunk.to_vec());
            if attach {
                let req = self.asg().attach_load_balancers();
                req.auto_scaling_group_name(group)
                    .set_load_balancer_names(names)
                    .send()
                    .await
                    .map_err(|e| map_err("AttachLoadBalancers", r, e))?;
            } else {
                let req = self.asg().detach_load_balancers();
                req.auto_scaling_group_name(group)
                    .set_load_balancer_names(names)
                    .send()
                    .await
                    .map_err(|e| map_err("DetachLoadBalancers", r, e))?;
            }
        }
        Ok(())
    }

    /// DeleteAutoScalingGroup without force: AWS refuses (`ResourceInUse`,
    /// `ScalingActivityInProgress`) while the group still has instances.
    pub(super) async fn delete(&self, group: &str) -> Result<(), CloudError> {
        self.asg()
            .delete_auto_scaling_group()
            .auto_scaling_group_name(group)
            .send()
            .await
            .map_err(|e| map_err("DeleteAutoScalingGroup", self.region_name(), e))?;
        Ok(())
    }
}

fn tag(group: &str, key: &str, value: &str, propagate: bool) -> Tag {
    Tag::builder()
        .resource_id(group)
        .resource_type("auto-scaling-group")
        .key(key)
        .value(value)
        .propagate_at_launch(propagate)
        .build()
}
