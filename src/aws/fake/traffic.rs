//! The fake's [`Traffic`]: traffic sources, target and Classic health, alarms, lifecycle hooks.
use crate::aws::fake::FakeFleet;
use crate::aws::{CloudError, LaunchHook, Traffic};
use std::collections::BTreeMap;

impl Traffic for FakeFleet {
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
}
