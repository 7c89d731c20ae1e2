//! The fake's blue/green calls: a group cloned from another, scaling policies and scheduled
//! actions copied, traffic sources attached and detached, a group deleted; as strict as Auto
//! Scaling (a taken name, an unknown group, a group with instances left).

use crate::aws::fake::FakeFleet;
use crate::aws::{CloneAsk, Cloning, CloudError, Group};

impl Cloning for FakeFleet {
    async fn clone_group(&self, source: &str, ask: &CloneAsk) -> Result<(), CloudError> {
        self.fake_clone(source, ask).await
    }

    async fn copy_scaling(&self, from: &str, to: &str) -> Result<(usize, usize), CloudError> {
        self.fake_copy_scaling(from, to).await
    }
}

impl FakeFleet {
    pub(super) async fn fake_clone(&self, source: &str, ask: &CloneAsk) -> Result<(), CloudError> {
        self.cloud
            .call("DescribeAutoScalingGroups", &self.region)
            .await?;
        self.cloud
            .call("CreateAutoScalingGroup", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        let Some(src) = f.groups.get(source).cloned() else {
            return Err(invalid(
                &self.region,
                "CreateAutoScalingGroup",
                &format!("AutoScalingGroup name not found - {source}"),
            ));
        };
        if f.groups.contains_key(&ask.name) {
            return Err(CloudError::api(
                "CreateAutoScalingGroup",
                &self.region,
                Some("AlreadyExists"),
                format!("AutoScalingGroup by this name already exists - A group with the name {} already exists", ask.name),
            ));
        }
        if f.version_image(&ask.template).is_none() {
            return Err(invalid(
                &self.region,
                "CreateAutoScalingGroup",
                &format!(
                    "launch template {} has no version {}",
                    ask.template.id, ask.template.version
                ),
            ));
        }
        let mut tags = src.tags.clone();
        tags.retain(|k, _| !ask.drop_tags.contains(k));
        tags.extend(ask.tags.clone());
        let g = Group {
            name: ask.name.clone(),
            min: 0,
            desired: 0,
            members: vec![],
            template: Some(ask.template.clone()),
            launch_configuration: None,
            // A new group has nothing suspended.
            suspended: vec![],
            tags,
            ..src
        };
        if let Some(h) = f.launch_hooks.get(source).cloned() {
            f.launch_hooks.insert(ask.name.clone(), h);
        }
        f.groups.insert(ask.name.clone(), g);
        f.record(&ask.name);
        Ok(())
    }

    pub(super) async fn fake_copy_scaling(
        &self,
        from: &str,
        to: &str,
    ) -> Result<(usize, usize), CloudError> {
        self.cloud.call("DescribePolicies", &self.region).await?;
        self.cloud
            .call("DescribeScheduledActions", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        if !f.groups.contains_key(from) || !f.groups.contains_key(to) {
            return Err(invalid(
                &self.region,
                "PutScalingPolicy",
                "AutoScalingGroup name not found",
            ));
        }
        let policies = f.policies.get(from).cloned().unwrap_or_default();
        let actions = f.scheduled.get(from).cloned().unwrap_or_default();
        let (p, a) = (policies.len(), actions.len());
        // Put by name: a second copy updates, never doubles.
        let to_p = f.policies.entry(to.to_owned()).or_default();
        for x in policies {
            if !to_p.contains(&x) {
                to_p.push(x);
            }
        }
        let to_a = f.scheduled.entry(to.to_owned()).or_default();
        for x in actions {
            if !to_a.contains(&x) {
                to_a.push(x);
            }
        }
        Ok((p, a))
    }

    pub(super) async fn fake_traffic(
        &self,
        group: &str,
        target_groups: &[String],
        load_balancers: &[String],
        attach: bool,
    ) -> Result<(), CloudError> {
        let op = if attach {
            "AttachLoadBalancerTargetGroups"
        } else {
            "DetachLoadBalancerTargetGroups"
        };
        if !target_groups.is_empty() {
            self.cloud.call(op, &self.region).await?;
        }
        if !load_balancers.is_empty() {
            let op = if attach {
                "AttachLoadBalancers"
            } else {
                "DetachLoadBalancers"
            };
            self.cloud.call(op, &self.region).await?;
        }
        let mut f = self.cloud.fleet_state();
        let Some(g) = f.groups.get_mut(group) else {
            return Err(invalid(
                &self.region,
                op,
                &format!("AutoScalingGroup name not found - {group}"),
            ));
        };
        for (have, change) in [
            (&mut g.target_groups, target_groups),
            (&mut g.load_balancers, load_balancers),
        ] {
            if attach {
                for c in change {
                    if !have.contains(c) {
                        have.push(c.clone());
                    }
                }
            } else {
                have.retain(|h| !change.contains(h));
            }
        }
        f.record(group);
        Ok(())
    }

    pub(super) async fn fake_delete(&self, group: &str) -> Result<(), CloudError> {
        self.cloud
            .call("DeleteAutoScalingGroup", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        match f.groups.get(group) {
            None => Err(invalid(&self.region, "DeleteAutoScalingGroup", &format!("AutoScalingGroup name not found - {group}"))),
            Some(g) if !g.members.is_empty() || g.desired > 0 => Err(CloudError::api(
                "DeleteAutoScalingGroup",
                &self.region,
                Some("ResourceInUse"),
                "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.",
            )),
            Some(_) => {
                f.groups.remove(group);
                f.launch_hooks.remove(group);
                f.policies.remove(group);
                f.scheduled.remove(group);
                Ok(())
            }
        }
    }
}

fn invalid(region: &str, op: &'static str, message: &str) -> CloudError {
    CloudError::api(op, region, Some("ValidationError"), message)
}
