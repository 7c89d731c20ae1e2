//! [`Traffic`] on Auto Scaling traffic sources, ELBv2 target health, Classic load balancers,
//! CloudWatch alarms and lifecycle hooks.
use crate::aws::sdk::errors::map_err;
use crate::aws::sdk::fleet::AwsFleet;
use crate::aws::{CloudError, LaunchHook, Traffic};
use std::collections::BTreeMap;

impl Traffic for AwsFleet {
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
}
