//! The fake's [`Refreshes`]: an instance refresh that replaces the group's members over polls.
use crate::aws::fake::FakeFleet;
use crate::aws::{CloudError, Refreshes};

impl Refreshes for FakeFleet {
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
}
