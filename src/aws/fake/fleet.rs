//! The fake's [`Fleet`]: Auto Scaling groups, launch templates and configurations, instance
//! refreshes and target health, over the model in `fleet_state`.

use super::fleet_state::FleetState;
use super::FakeCloud;
use crate::aws::{CloneAsk, CloudError, Fleet, Group, LaunchHook, MemberInfo, TemplateRef};
use std::collections::BTreeMap;

/// The fake's [`Fleet`] of one region.
#[derive(Clone)]
pub struct FakeFleet {
    pub(super) cloud: FakeCloud,
    pub(super) region: String,
}

impl Fleet for FakeFleet {
    fn region(&self) -> &str {
        &self.region
    }

    async fn clone_group(&self, source: &str, ask: &CloneAsk) -> Result<(), CloudError> {
        self.fake_clone(source, ask).await
    }

    async fn copy_scaling(&self, from: &str, to: &str) -> Result<(usize, usize), CloudError> {
        self.fake_copy_scaling(from, to).await
    }

    async fn set_traffic(
        &self,
        group: &str,
        target_groups: &[String],
        load_balancers: &[String],
        attach: bool,
    ) -> Result<(), CloudError> {
        self.fake_traffic(group, target_groups, load_balancers, attach)
            .await
    }

    async fn delete_group(&self, group: &str) -> Result<(), CloudError> {
        self.fake_delete(group).await
    }

    async fn groups(
        &self,
        tags: &BTreeMap<String, String>,
        names: &[String],
    ) -> Result<Vec<Group>, CloudError> {
        self.cloud
            .call("DescribeAutoScalingGroups", &self.region)
            .await?;
        Ok(self
            .cloud
            .fleet_state()
            .groups
            .values()
            .filter(|g| names.is_empty() || names.contains(&g.name))
            .filter(|g| tags.iter().all(|(k, v)| g.tags.get(k) == Some(v)))
            .cloned()
            .collect())
    }

    async fn template_image(&self, t: &TemplateRef) -> Result<String, CloudError> {
        self.cloud
            .call("DescribeLaunchTemplateVersions", &self.region)
            .await?;
        // As on EC2: `$Default` is the default version (not the latest), and a version or
        // template that does not exist is an error, not an empty image.
        let f = self.cloud.fleet_state();
        f.version_image(t)
            .ok_or_else(|| no_version(&f, t, &self.region))
    }

    async fn resolve_version(&self, t: &TemplateRef) -> Result<String, CloudError> {
        self.cloud
            .call("DescribeLaunchTemplateVersions", &self.region)
            .await?;
        let f = self.cloud.fleet_state();
        f.version(t)
            .map(|v| v.to_string())
            .ok_or_else(|| no_version(&f, t, &self.region))
    }

    async fn new_template_version(
        &self,
        source: &TemplateRef,
        image: &str,
        token: &str,
    ) -> Result<String, CloudError> {
        self.cloud
            .call("CreateLaunchTemplateVersion", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        // As on EC2: a token is scoped to the account and region; the same token with other
        // parameters is refused.
        let key = format!("{}/{token}", self.region);
        let asked = format!("{}/{}/{image}", source.id, source.version);
        if let Some((v, was)) = f.client_tokens.get(&key) {
            if *was != asked {
                return Err(CloudError::api(
                    "CreateLaunchTemplateVersion",
                    &self.region,
                    Some("IdempotentParameterMismatch"),
                    "the client token was used with other parameters",
                ));
            }
            return Ok(v.clone());
        }
        // As on EC2: a new version of a template that does not exist is refused.
        let Some(v) = f.templates.get_mut(&source.id) else {
            return Err(no_template(
                "CreateLaunchTemplateVersion",
                &source.id,
                &self.region,
            ));
        };
        v.push(image.to_owned());
        let n = v.len().to_string();
        f.client_tokens.insert(key, (n.clone(), asked));
        Ok(n)
    }

    async fn configuration_image(&self, name: &str) -> Result<String, CloudError> {
        self.cloud
            .call("DescribeLaunchConfigurations", &self.region)
            .await?;
        Ok(self
            .cloud
            .fleet_state()
            .configurations
            .get(name)
            .cloned()
            .unwrap_or_default())
    }

    async fn copy_configuration(
        &self,
        source: &str,
        name: &str,
        image: &str,
    ) -> Result<(), CloudError> {
        self.cloud
            .call("CreateLaunchConfiguration", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        if !f.configurations.contains_key(source) || f.configurations.contains_key(name) {
            return Err(CloudError::api(
                "CreateLaunchConfiguration",
                &self.region,
                Some("ValidationError"),
                format!("cannot copy {source} to {name}"),
            ));
        }
        f.configurations.insert(name.to_owned(), image.to_owned());
        Ok(())
    }

    async fn delete_configuration(&self, name: &str) -> Result<(), CloudError> {
        self.cloud
            .call("DeleteLaunchConfiguration", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        if f.groups
            .values()
            .any(|g| g.launch_configuration.as_deref() == Some(name))
        {
            return Err(CloudError::api(
                "DeleteLaunchConfiguration",
                &self.region,
                Some("ResourceInUse"),
                format!("launch configuration {name} is attached to a group"),
            ));
        }
        f.configurations.remove(name);
        Ok(())
    }

    async fn set_configuration(&self, group: &str, name: &str) -> Result<(), CloudError> {
        self.cloud
            .call("UpdateAutoScalingGroup", &self.region)
            .await?;
        if let Some(g) = self.cloud.fleet_state().groups.get_mut(group) {
            g.launch_configuration = Some(name.to_owned());
        }
        Ok(())
    }

    async fn set_template(
        &self,
        group: &str,
        t: &TemplateRef,
        mixed: bool,
    ) -> Result<(), CloudError> {
        self.cloud
            .call("UpdateAutoScalingGroup", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        // As on AWS: a group that does not exist is a validation error.
        let g = f
            .groups
            .get_mut(group)
            .ok_or_else(|| no_group(group, &self.region))?;
        if mixed && !g.mixed {
            return Err(CloudError::api(
                "UpdateAutoScalingGroup",
                &self.region,
                Some("ValidationError"),
                "the group has no mixed instances policy",
            ));
        }
        // As on AWS: a plain LaunchTemplate replaces a mixed-instances policy (its instance
        // types and Spot settings are lost), so a deploy must not send one to a mixed group.
        if !mixed {
            g.mixed = false;
            g.override_templates.clear();
        }
        g.template = Some(t.clone());
        Ok(())
    }

    async fn set_capacity(
        &self,
        group: &str,
        min: i32,
        max: i32,
        desired: i32,
    ) -> Result<(), CloudError> {
        self.cloud
            .call("UpdateAutoScalingGroup", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        let g = f
            .groups
            .get_mut(group)
            .ok_or_else(|| no_group(group, &self.region))?;
        if !(min <= desired && desired <= max) {
            return Err(CloudError::api(
                "UpdateAutoScalingGroup",
                &self.region,
                Some("ValidationError"),
                format!("desired {desired} outside [{min}, {max}]"),
            ));
        }
        (g.min, g.max, g.desired) = (min, max, desired);
        f.settle(group);
        Ok(())
    }

    async fn terminate_member(&self, id: &str, decrement: bool) -> Result<(), CloudError> {
        self.cloud
            .call("TerminateInstanceInAutoScalingGroup", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        let Some(name) = f
            .groups
            .values()
            .find(|g| g.members.iter().any(|m| m.id == id))
            .map(|g| g.name.clone())
        else {
            return Err(CloudError::api(
                "TerminateInstanceInAutoScalingGroup",
                &self.region,
                Some("ValidationError"),
                format!("{id} is not in a group"),
            ));
        };
        if let Some(g) = f.groups.get_mut(&name) {
            g.members.retain(|m| m.id != id);
            if decrement {
                g.desired -= 1;
            }
        }
        f.record(&name);
        f.settle(&name);
        Ok(())
    }

    async fn set_processes(
        &self,
        group: &str,
        processes: &[String],
        suspend: bool,
    ) -> Result<(), CloudError> {
        self.cloud
            .call(
                if suspend {
                    "SuspendProcesses"
                } else {
                    "ResumeProcesses"
                },
                &self.region,
            )
            .await?;
        if let Some(g) = self.cloud.fleet_state().groups.get_mut(group) {
            for p in processes {
                g.suspended.retain(|x| x != p);
                if suspend {
                    g.suspended.push(p.clone());
                }
            }
        }
        Ok(())
    }

    async fn put_tags(
        &self,
        group: &str,
        tags: &BTreeMap<String, String>,
        _propagate: bool,
    ) -> Result<(), CloudError> {
        self.cloud.call("CreateOrUpdateTags", &self.region).await?;
        if let Some(g) = self.cloud.fleet_state().groups.get_mut(group) {
            g.tags.extend(tags.clone());
        }
        Ok(())
    }

    async fn delete_tags(&self, group: &str, keys: &[String]) -> Result<(), CloudError> {
        self.cloud.call("DeleteTags", &self.region).await?;
        if let Some(g) = self.cloud.fleet_state().groups.get_mut(group) {
            for k in keys {
                g.tags.remove(k);
            }
        }
        Ok(())
    }

    async fn start_refresh(
        &self,
        group: &str,
        min_healthy: i32,
        max_healthy: i32,
    ) -> Result<String, CloudError> {
        self.cloud
            .call("StartInstanceRefresh", &self.region)
            .await?;
        // AWS's rules for the preferences (StartInstanceRefresh, RefreshPreferences).
        if !(0..=100).contains(&min_healthy)
            || !(100..=200).contains(&max_healthy)
            || max_healthy - min_healthy > 100
        {
            return Err(CloudError::api(
                "StartInstanceRefresh",
                &self.region,
                Some("ValidationError"),
                format!("MinHealthyPercentage {min_healthy} and MaxHealthyPercentage {max_healthy}: the difference may not exceed 100"),
            ));
        }
        let mut f = self.cloud.fleet_state();
        if f.refreshes
            .get(group)
            .is_some_and(|(_, st)| st == "InProgress")
        {
            return Err(CloudError::api(
                "StartInstanceRefresh",
                &self.region,
                Some("InstanceRefreshInProgress"),
                "an instance refresh is already in progress",
            ));
        }
        let id = format!("refresh-{}", f.refreshes.len() + 1);
        f.refreshes
            .insert(group.to_owned(), (id.clone(), "InProgress".into()));
        Ok(id)
    }

    /// Each look at a refresh in progress replaces one member (launch first, then retire),
    /// as AWS does over time; a replacement that fails its health checks fails the refresh.
    async fn refresh_status(
        &self,
        group: &str,
        id: &str,
    ) -> Result<(String, i32, String), CloudError> {
        self.cloud
            .call("DescribeInstanceRefreshes", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        let Some((rid, status)) = f.refreshes.get(group).cloned() else {
            return Ok((String::new(), 0, "no refresh".into()));
        };
        if rid != id || status != "InProgress" {
            return Ok((status, 100, String::new()));
        }
        let Some(g) = f.groups.get(group).cloned() else {
            return Ok(("Failed".into(), 0, "group gone".into()));
        };
        // The image the group launches now (`$Default` is the default version, as on AWS).
        let target = match (&g.template, &g.launch_configuration) {
            (Some(t), _) => f.version_image(t),
            (None, Some(c)) => f.configurations.get(c).cloned(),
            _ => None,
        }
        .unwrap_or_default();
        let total = g.members.iter().filter(|m| m.counts()).count().max(1);
        let outdated: Vec<String> = g
            .members
            .iter()
            .filter(|m| m.counts() && f.images.get(&m.id) != Some(&target))
            .map(|m| m.id.clone())
            .collect();
        let Some(victim) = outdated.first().cloned() else {
            f.refreshes
                .insert(group.to_owned(), (rid, "Successful".into()));
            return Ok(("Successful".into(), 100, String::new()));
        };
        // Launch one, check it, then retire one.
        if let Some(g) = f.groups.get_mut(group) {
            g.desired += 1;
        }
        f.settle(group);
        let newest = f
            .groups
            .get(group)
            .and_then(|g| g.members.last().map(|m| m.id.clone()))
            .unwrap_or_default();
        let bad = f.late(&newest)
            || f.unhealthy_members.contains(&newest)
            || f.images
                .get(&newest)
                .is_some_and(|i| f.unhealthy_images.contains(i));
        if bad {
            if let Some(g) = f.groups.get_mut(group) {
                g.members.retain(|m| m.id != newest);
                g.desired -= 1;
            }
            f.record(group);
            f.refreshes.insert(group.to_owned(), (rid, "Failed".into()));
            return Ok((
                "Failed".into(),
                0,
                format!("{newest} failed its health checks"),
            ));
        }
        if let Some(g) = f.groups.get_mut(group) {
            g.members.retain(|m| m.id != victim);
            g.desired -= 1;
        }
        f.record(group);
        let done = total - (outdated.len() - 1);
        Ok((
            "InProgress".into(),
            (done * 100 / total) as i32,
            String::new(),
        ))
    }

    async fn cancel_refresh(&self, group: &str) -> Result<(), CloudError> {
        self.cloud
            .call("CancelInstanceRefresh", &self.region)
            .await?;
        if let Some(r) = self.cloud.fleet_state().refreshes.get_mut(group) {
            r.1 = "Cancelled".into();
        }
        Ok(())
    }

    async fn launch_hooks(&self, group: &str) -> Result<Vec<LaunchHook>, CloudError> {
        self.cloud
            .call("DescribeLifecycleHooks", &self.region)
            .await?;
        Ok(self
            .cloud
            .fleet_state()
            .launch_hooks
            .get(group)
            .cloned()
            .unwrap_or_default())
    }

    async fn alarms(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, (String, String)>, CloudError> {
        self.cloud.call("DescribeAlarms", &self.region).await?;
        if names.len() > 100 {
            return Err(CloudError::api(
                "DescribeAlarms",
                &self.region,
                Some("ValidationError"),
                "AlarmNames: at most 100",
            ));
        }
        let f = self.cloud.fleet_state();
        Ok(f.alarms
            .iter()
            .filter(|(n, _)| names.contains(n))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect())
    }

    async fn classic_health(
        &self,
        load_balancer: &str,
    ) -> Result<BTreeMap<String, String>, CloudError> {
        self.cloud
            .call("DescribeInstanceHealth", &self.region)
            .await?;
        let f = self.cloud.fleet_state();
        Ok(f.groups
            .values()
            .filter(|g| g.load_balancers.iter().any(|l| l == load_balancer))
            .flat_map(|g| g.members.iter())
            .map(|m| {
                let state = if f.out_of_service(&m.id) {
                    "OutOfService"
                } else {
                    "InService"
                };
                (m.id.clone(), state.to_owned())
            })
            .collect())
    }

    async fn target_health(
        &self,
        target_group: &str,
    ) -> Result<BTreeMap<String, String>, CloudError> {
        self.cloud
            .call("DescribeTargetHealth", &self.region)
            .await?;
        let f = self.cloud.fleet_state();
        // As on ELBv2: a target group nobody knows is an error (the fake knows those its
        // groups name).
        if !f
            .groups
            .values()
            .any(|g| g.target_groups.iter().any(|t| t == target_group))
        {
            return Err(CloudError::api(
                "DescribeTargetHealth",
                &self.region,
                Some("TargetGroupNotFound"),
                format!("target group {target_group} not found"),
            ));
        }
        Ok(f.groups
            .values()
            .filter(|g| g.target_groups.iter().any(|t| t == target_group))
            .flat_map(|g| g.members.iter())
            .map(|m| {
                let bad = f.late(&m.id)
                    || f.unhealthy_members.contains(&m.id)
                    || f.images
                        .get(&m.id)
                        .is_some_and(|i| f.unhealthy_images.contains(i));
                (
                    m.id.clone(),
                    if bad { "unhealthy" } else { "healthy" }.to_owned(),
                )
            })
            .collect())
    }

    async fn describe_members(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, MemberInfo>, CloudError> {
        self.cloud.call("DescribeInstances", &self.region).await?;
        let f = self.cloud.fleet_state();
        Ok(ids
            .iter()
            .filter_map(|id| {
                f.images.get(id).map(|img| {
                    (
                        id.clone(),
                        MemberInfo {
                            image: img.clone(),
                            // Addresses nobody can reach: tests send smoke tests elsewhere.
                            private_ip: Some("192.0.2.1".into()),
                            public_ip: None,
                        },
                    )
                })
            })
            .collect())
    }
}

/// EC2's answer for a launch template that does not exist.
fn no_template(operation: &'static str, id: &str, region: &str) -> CloudError {
    CloudError::api(
        operation,
        region,
        Some("InvalidLaunchTemplateId.NotFound"),
        format!("The specified launch template, with template ID {id}, does not exist."),
    )
}

/// EC2's answer for a version (or a template) that does not exist.
fn no_version(f: &FleetState, t: &TemplateRef, region: &str) -> CloudError {
    if !f.templates.contains_key(&t.id) {
        return no_template("DescribeLaunchTemplateVersions", &t.id, region);
    }
    CloudError::api(
        "DescribeLaunchTemplateVersions",
        region,
        Some("InvalidLaunchTemplateId.VersionNotFound"),
        format!("launch template {} has no version {}", t.id, t.version),
    )
}

/// Auto Scaling's answer for a group that does not exist.
fn no_group(group: &str, region: &str) -> CloudError {
    CloudError::api(
        "UpdateAutoScalingGroup",
        region,
        Some("ValidationError"),
        format!("AutoScalingGroup name not found - {group}"),
    )
}
