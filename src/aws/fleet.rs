//! [`Fleet`] on Auto Scaling, EC2 launch templates and ELBv2 target health.

use super::ec2::map_err;
use super::group_view::group;
use super::{CloneAsk, CloudError, Fleet, Group, LaunchHook, MemberInfo, TemplateRef};
use std::collections::BTreeMap;

/// The Auto Scaling, EC2 and ELBv2 clients of one region, on the shared configuration.
#[derive(Clone)]
pub struct AwsFleet {
    asg: aws_sdk_autoscaling::Client,
    ec2: aws_sdk_ec2::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    classic: aws_sdk_elasticloadbalancing::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    region: String,
}

impl AwsFleet {
    /// The clients for `region`.
    pub fn new(conf: &aws_config::SdkConfig, region: &str) -> Self {
        let r = || aws_config::Region::new(region.to_owned());
        AwsFleet {
            asg: aws_sdk_autoscaling::Client::from_conf(
                aws_sdk_autoscaling::config::Builder::from(conf)
                    .region(r())
                    .build(),
            ),
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(conf).region(r()).build(),
            ),
            elb: aws_sdk_elasticloadbalancingv2::Client::from_conf(
                aws_sdk_elasticloadbalancingv2::config::Builder::from(conf)
                    .region(r())
                    .build(),
            ),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                aws_sdk_cloudwatch::config::Builder::from(conf)
                    .region(r())
                    .build(),
            ),
            classic: aws_sdk_elasticloadbalancing::Client::from_conf(
                aws_sdk_elasticloadbalancing::config::Builder::from(conf)
                    .region(r())
                    .build(),
            ),
            region: region.to_owned(),
        }
    }
}

impl AwsFleet {
    pub(super) fn asg(&self) -> &aws_sdk_autoscaling::Client {
        &self.asg
    }

    pub(super) fn region_name(&self) -> &str {
        &self.region
    }

    /// One version of a launch template (`$Latest`, `$Default` or a number), if it exists.
    async fn template_version(
        &self,
        t: &TemplateRef,
    ) -> Result<Option<aws_sdk_ec2::types::LaunchTemplateVersion>, CloudError> {
        let out = self
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(&t.id)
            .versions(&t.version)
            .send()
            .await
            .map_err(|e| map_err("DescribeLaunchTemplateVersions", &self.region, e))?;
        Ok(out.launch_template_versions().first().cloned())
    }
}

impl Fleet for AwsFleet {
    fn region(&self) -> &str {
        &self.region
    }

    async fn clone_group(&self, source: &str, ask: &CloneAsk) -> Result<(), CloudError> {
        self.clone_from(source, ask).await
    }

    async fn copy_scaling(&self, from: &str, to: &str) -> Result<(usize, usize), CloudError> {
        self.copy_scaling_from(from, to).await
    }

    async fn set_traffic(
        &self,
        group: &str,
        target_groups: &[String],
        load_balancers: &[String],
        attach: bool,
    ) -> Result<(), CloudError> {
        self.traffic_to(group, target_groups, load_balancers, attach)
            .await
    }

    async fn delete_group(&self, group: &str) -> Result<(), CloudError> {
        self.delete(group).await
    }

    async fn groups(
        &self,
        tags: &BTreeMap<String, String>,
        names: &[String],
    ) -> Result<Vec<Group>, CloudError> {
        use aws_sdk_autoscaling::types::Filter;
        // AWS takes at most 50 names a call: longer lists are asked for in chunks.
        let chunks: Vec<&[String]> = if names.is_empty() {
            vec![&[]]
        } else {
            names.chunks(50).collect()
        };
        let mut out = Vec::new();
        for chunk in chunks {
            let mut req = self.asg.describe_auto_scaling_groups();
            if !chunk.is_empty() {
                req = req.set_auto_scaling_group_names(Some(chunk.to_vec()));
            }
            for (k, v) in tags {
                req = req.filters(Filter::builder().name(format!("tag:{k}")).values(v).build());
            }
            let mut pages = req.into_paginator().send();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|e| map_err("DescribeAutoScalingGroups", &self.region, e))?;
                out.extend(
                    page.auto_scaling_groups()
                        .iter()
                        .map(group)
                        .filter(|g| tags.iter().all(|(k, v)| g.tags.get(k) == Some(v))),
                );
            }
        }
        Ok(out)
    }

    async fn template_image(&self, t: &TemplateRef) -> Result<String, CloudError> {
        Ok(self
            .template_version(t)
            .await?
            .as_ref()
            .and_then(|v| v.launch_template_data())
            .and_then(|d| d.image_id())
            .unwrap_or_default()
            .to_owned())
    }

    async fn resolve_version(&self, t: &TemplateRef) -> Result<String, CloudError> {
        self.template_version(t)
            .await?
            .and_then(|v| v.version_number())
            .map(|n| n.to_string())
            .ok_or_else(|| {
                CloudError::api(
                    "DescribeLaunchTemplateVersions",
                    &self.region,
                    Some("InvalidLaunchTemplateId.VersionNotFound"),
                    format!("launch template {} has no version {}", t.id, t.version),
                )
            })
    }

    async fn new_template_version(
        &self,
        source: &TemplateRef,
        image: &str,
        token: &str,
    ) -> Result<String, CloudError> {
        let out = self
            .ec2
            .create_launch_template_version()
            .client_token(token)
            .launch_template_id(&source.id)
            .source_version(&source.version)
            .version_description("gears deploy")
            .launch_template_data(
                aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                    .image_id(image)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| map_err("CreateLaunchTemplateVersion", &self.region, e))?;
        Ok(out
            .launch_template_version()
            .and_then(|v| v.version_number())
            .map(|n| n.to_string())
            .unwrap_or_default())
    }

    async fn configuration_image(&self, name: &str) -> Result<String, CloudError> {
        let out = self
            .asg
            .describe_launch_configurations()
            .launch_configuration_names(name)
            .send()
            .await
            .map_err(|e| map_err("DescribeLaunchConfigurations", &self.region, e))?;
        Ok(out
            .launch_configurations()
            .first()
            .and_then(|c| c.image_id())
            .unwrap_or_default()
            .to_owned())
    }

    async fn copy_configuration(
        &self,
        source: &str,
        name: &str,
        image: &str,
    ) -> Result<(), CloudError> {
        let out = self
            .asg
            .describe_launch_configurations()
            .launch_configuration_names(source)
            .send()
            .await
            .map_err(|e| map_err("DescribeLaunchConfigurations", &self.region, e))?;
        let Some(c) = out.launch_configurations().first() else {
            return Err(CloudError::api(
                "DescribeLaunchConfigurations",
                &self.region,
                Some("ValidationError"),
                format!("launch configuration {source} not found"),
            ));
        };
        // Everything of the source but the image (and what AWS sets itself).
        self.asg
            .create_launch_configuration()
            .launch_configuration_name(name)
            .image_id(image)
            .instance_type(c.instance_type().unwrap_or_default())
            .set_key_name(c.key_name().map(str::to_owned).filter(|k| !k.is_empty()))
            .set_security_groups(Some(c.security_groups().to_vec()))
            .set_user_data(c.user_data().map(str::to_owned).filter(|u| !u.is_empty()))
            .set_iam_instance_profile(c.iam_instance_profile().map(str::to_owned))
            .set_block_device_mappings(Some(c.block_device_mappings().to_vec()))
            .set_instance_monitoring(c.instance_monitoring().cloned())
            .set_ebs_optimized(c.ebs_optimized())
            .set_associate_public_ip_address(c.associate_public_ip_address())
            .set_placement_tenancy(c.placement_tenancy().map(str::to_owned))
            .set_metadata_options(c.metadata_options().cloned())
            // A Spot group stays Spot; a custom kernel and ramdisk stay.
            .set_spot_price(c.spot_price().map(str::to_owned))
            .set_kernel_id(c.kernel_id().map(str::to_owned).filter(|k| !k.is_empty()))
            .set_ramdisk_id(c.ramdisk_id().map(str::to_owned).filter(|r| !r.is_empty()))
            .set_classic_link_vpc_id(c.classic_link_vpc_id().map(str::to_owned))
            .set_classic_link_vpc_security_groups(
                Some(c.classic_link_vpc_security_groups().to_vec()).filter(|g| !g.is_empty()),
            )
            .send()
            .await
            .map_err(|e| map_err("CreateLaunchConfiguration", &self.region, e))?;
        Ok(())
    }

    async fn delete_configuration(&self, name: &str) -> Result<(), CloudError> {
        self.asg
            .delete_launch_configuration()
            .launch_configuration_name(name)
            .send()
            .await
            .map_err(|e| map_err("DeleteLaunchConfiguration", &self.region, e))?;
        Ok(())
    }

    async fn set_configuration(&self, group: &str, name: &str) -> Result<(), CloudError> {
        self.asg
            .update_auto_scaling_group()
            .auto_scaling_group_name(group)
            .launch_configuration_name(name)
            .send()
            .await
            .map_err(|e| map_err("UpdateAutoScalingGroup", &self.region, e))?;
        Ok(())
    }

    async fn set_template(
        &self,
        group: &str,
        t: &TemplateRef,
        mixed: bool,
    ) -> Result<(), CloudError> {
        use aws_sdk_autoscaling::types::{LaunchTemplate, LaunchTemplateSpecification};
        let spec = LaunchTemplateSpecification::builder()
            .launch_template_id(&t.id)
            .version(&t.version)
            .build();
        let mut req = self
            .asg
            .update_auto_scaling_group()
            .auto_scaling_group_name(group);
        if mixed {
            // The policy's launch template with the new version; its overrides sent back as they
            // are (AWS leaves what is not sent unchanged; the instances distribution is not sent).
            let now = self
                .asg
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(group)
                .send()
                .await
                .map_err(|e| map_err("DescribeAutoScalingGroups", &self.region, e))?;
            let overrides = now
                .auto_scaling_groups()
                .first()
                .and_then(|g| g.mixed_instances_policy())
                .and_then(|p| p.launch_template())
                .map(|t| t.overrides().to_vec())
                .unwrap_or_default();
            req = req.mixed_instances_policy(
                aws_sdk_autoscaling::types::MixedInstancesPolicy::builder()
                    .launch_template(
                        LaunchTemplate::builder()
                            .launch_template_specification(spec)
                            .set_overrides((!overrides.is_empty()).then_some(overrides))
                            .build(),
                    )
                    .build(),
            );
        } else {
            req = req.launch_template(spec);
        }
        req.send()
            .await
            .map_err(|e| map_err("UpdateAutoScalingGroup", &self.region, e))?;
        Ok(())
    }

    async fn set_capacity(
        &self,
        group: &str,
        min: i32,
        max: i32,
        desired: i32,
    ) -> Result<(), CloudError> {
        self.asg
            .update_auto_scaling_group()
            .auto_scaling_group_name(group)
            .min_size(min)
            .max_size(max)
            .desired_capacity(desired)
            .send()
            .await
            .map_err(|e| map_err("UpdateAutoScalingGroup", &self.region, e))?;
        Ok(())
    }

    async fn terminate_member(&self, id: &str, decrement: bool) -> Result<(), CloudError> {
        self.asg
            .terminate_instance_in_auto_scaling_group()
            .instance_id(id)
            .should_decrement_desired_capacity(decrement)
            .send()
            .await
            .map_err(|e| map_err("TerminateInstanceInAutoScalingGroup", &self.region, e))?;
        Ok(())
    }

    async fn set_processes(
        &self,
        group: &str,
        processes: &[String],
        suspend: bool,
    ) -> Result<(), CloudError> {
        if processes.is_empty() {
            return Ok(());
        }
        if suspend {
            self.asg
                .suspend_processes()
                .auto_scaling_group_name(group)
                .set_scaling_processes(Some(processes.to_vec()))
                .send()
                .await
                .map_err(|e| map_err("SuspendProcesses", &self.region, e))?;
        } else {
            self.asg
                .resume_processes()
                .auto_scaling_group_name(group)
                .set_scaling_processes(Some(processes.to_vec()))
                .send()
                .await
                .map_err(|e| map_err("ResumeProcesses", &self.region, e))?;
        }
        Ok(())
    }

    async fn put_tags(
        &self,
        group: &str,
        tags: &BTreeMap<String, String>,
        propagate: bool,
    ) -> Result<(), CloudError> {
        use aws_sdk_autoscaling::types::Tag;
        let tags: Vec<Tag> = tags
            .iter()
            .map(|(k, v)| {
                Tag::builder()
                    .resource_id(group)
                    .resource_type("auto-scaling-group")
                    .key(k)
                    .value(v)
                    .propagate_at_launch(propagate)
                    .build()
            })
            .collect();
        self.asg
            .create_or_update_tags()
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| map_err("CreateOrUpdateTags", &self.region, e))?;
        Ok(())
    }

    async fn delete_tags(&self, group: &str, keys: &[String]) -> Result<(), CloudError> {
        use aws_sdk_autoscaling::types::Tag;
        if keys.is_empty() {
            return Ok(());
        }
        let tags: Vec<Tag> = keys
            .iter()
            .map(|k| {
                Tag::builder()
                    .resource_id(group)
                    .resource_type("auto-scaling-group")
                    .key(k)
                    .build()
            })
            .collect();
        self.asg
            .delete_tags()
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| map_err("DeleteTags", &self.region, e))?;
        Ok(())
    }

    async fn start_refresh(
        &self,
        group: &str,
        min_healthy: i32,
        max_healthy: i32,
    ) -> Result<String, CloudError> {
        let out = self
            .asg
            .start_instance_refresh()
            .auto_scaling_group_name(group)
            .preferences(
                aws_sdk_autoscaling::types::RefreshPreferences::builder()
                    .min_healthy_percentage(min_healthy)
                    .max_healthy_percentage(max_healthy)
                    .skip_matching(true)
                    // Explicit: the default (Wait) holds a refresh for an hour, then fails it.
                    // Protected instances run the old AMI too and are replaced (as the rolling
                    // strategy's terminations do); Standby members are left alone, as the
                    // rolling strategy leaves them.
                    .scale_in_protected_instances(
                        aws_sdk_autoscaling::types::ScaleInProtectedInstances::Refresh,
                    )
                    .standby_instances(aws_sdk_autoscaling::types::StandbyInstances::Ignore)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| map_err("StartInstanceRefresh", &self.region, e))?;
        Ok(out.instance_refresh_id().unwrap_or_default().to_owned())
    }

    async fn refresh_status(
        &self,
        group: &str,
        id: &str,
    ) -> Result<(String, i32, String), CloudError> {
        let out = self
            .asg
            .describe_instance_refreshes()
            .auto_scaling_group_name(group)
            .instance_refresh_ids(id)
            .send()
            .await
            .map_err(|e| map_err("DescribeInstanceRefreshes", &self.region, e))?;
        let r = out.instance_refreshes().first();
        Ok((
            r.and_then(|r| r.status())
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            r.and_then(|r| r.percentage_complete()).unwrap_or(0),
            r.and_then(|r| r.status_reason())
                .unwrap_or_default()
                .to_owned(),
        ))
    }

    async fn cancel_refresh(&self, group: &str) -> Result<(), CloudError> {
        use aws_sdk_autoscaling::error::ProvideErrorMetadata;
        match self
            .asg
            .cancel_instance_refresh()
            .auto_scaling_group_name(group)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // No refresh running: nothing to cancel (never worth a retry).
            Err(e) if e.code() == Some(super::NO_ACTIVE_REFRESH) => Ok(()),
            Err(e) => Err(map_err("CancelInstanceRefresh", &self.region, e)),
        }
    }

    async fn launch_hooks(&self, group: &str) -> Result<Vec<LaunchHook>, CloudError> {
        let out = self
            .asg
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(group)
            .send()
            .await
            .map_err(|e| map_err("DescribeLifecycleHooks", &self.region, e))?;
        Ok(out
            .lifecycle_hooks()
            .iter()
            .filter(|h| h.lifecycle_transition() == Some("autoscaling:EC2_INSTANCE_LAUNCHING"))
            .map(|h| LaunchHook {
                name: h.lifecycle_hook_name().unwrap_or_default().to_owned(),
                heartbeat: h.heartbeat_timeout().unwrap_or(3600).max(0) as u32,
                default_result: h.default_result().unwrap_or("ABANDON").to_owned(),
            })
            .collect())
    }

    async fn alarms(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, (String, String)>, CloudError> {
        let mut found = BTreeMap::new();
        for chunk in names.chunks(100) {
            let mut pages = self
                .cloudwatch
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                // Without AlarmTypes AWS answers metric alarms only: a composite alarm named
                // would read as missing.
                .alarm_types(aws_sdk_cloudwatch::types::AlarmType::MetricAlarm)
                .alarm_types(aws_sdk_cloudwatch::types::AlarmType::CompositeAlarm)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| map_err("DescribeAlarms", &self.region, e))?;
                let metric = page
                    .metric_alarms()
                    .iter()
                    .map(|a| (a.alarm_name(), a.state_value(), a.state_reason()));
                let composite = page
                    .composite_alarms()
                    .iter()
                    .map(|a| (a.alarm_name(), a.state_value(), a.state_reason()));
                for (name, state, reason) in metric.chain(composite) {
                    if let Some(name) = name {
                        let state = state.map(|s| s.as_str().to_owned()).unwrap_or_default();
                        found.insert(
                            name.to_owned(),
                            (state, reason.unwrap_or_default().to_owned()),
                        );
                    }
                }
            }
        }
        Ok(found)
    }

    async fn classic_health(
        &self,
        load_balancer: &str,
    ) -> Result<BTreeMap<String, String>, CloudError> {
        let out = self
            .classic
            .describe_instance_health()
            .load_balancer_name(load_balancer)
            .send()
            .await
            .map_err(|e| map_err("DescribeInstanceHealth", &self.region, e))?;
        Ok(out
            .instance_states()
            .iter()
            .filter_map(|s| {
                Some((
                    s.instance_id()?.to_owned(),
                    s.state().unwrap_or_default().to_owned(),
                ))
            })
            .collect())
    }

    async fn target_health(
        &self,
        target_group: &str,
    ) -> Result<BTreeMap<String, String>, CloudError> {
        let out = self
            .elb
            .describe_target_health()
            .target_group_arn(target_group)
            .send()
            .await
            .map_err(|e| map_err("DescribeTargetHealth", &self.region, e))?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .filter_map(|d| {
                let id = d.target()?.id()?.to_owned();
                let state = d
                    .target_health()
                    .and_then(|h| h.state())
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default();
                Some((id, state))
            })
            .collect())
    }

    async fn describe_members(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, MemberInfo>, CloudError> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        // A filter, not InstanceIds: an instance the group launched a moment ago may not be
        // visible to EC2 yet, and InstanceIds would fail the whole call with NotFound. Such an
        // instance is simply missing from the answer (the deploy waits for it).
        // At most 200 values per filter (EC2's limit), so a large group takes a few calls.
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(200) {
            let mut pages = self
                .ec2
                .describe_instances()
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("instance-id")
                        .set_values(Some(chunk.to_vec()))
                        .build(),
                )
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| map_err("DescribeInstances", &self.region, e))?;
                for i in page.reservations().iter().flat_map(|r| r.instances()) {
                    if let (Some(id), Some(img)) = (i.instance_id(), i.image_id()) {
                        out.insert(
                            id.to_owned(),
                            MemberInfo {
                                image: img.to_owned(),
                                private_ip: i.private_ip_address().map(str::to_owned),
                                public_ip: i.public_ip_address().map(str::to_owned),
                            },
                        );
                    }
                }
            }
        }
        Ok(out)
    }
}
