//! [`Refreshes`] on Auto Scaling's instance refresh.
use crate::aws::sdk::errors::map_err;
use crate::aws::sdk::fleet::AwsFleet;
use crate::aws::{CloudError, Refreshes, NO_ACTIVE_REFRESH};

impl Refreshes for AwsFleet {
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
            Err(e) if e.code() == Some(NO_ACTIVE_REFRESH) => Ok(()),
            Err(e) => Err(map_err("CancelInstanceRefresh", &self.region, e)),
        }
    }
}
