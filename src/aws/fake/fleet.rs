//! The fake's [`Fleet`]: Auto Scaling groups, launch templates and configurations, instance
//! refreshes and target health, over the model in `fleet_state`.

use crate::aws::fake::{FakeCloud, FleetState};
use crate::aws::{
    CloudError, Group, GroupTag, GroupTags, Groups, MemberInfo, TemplateRef, TAGS_PER_CALL,
};
use std::collections::BTreeMap;

/// The fake's [`Fleet`] of one region.
#[derive(Clone)]
pub struct FakeFleet {
    pub(super) cloud: FakeCloud,
    pub(super) region: String,
}

impl Groups for FakeFleet {
    fn region(&self) -> &str {
        &self.region
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
                            tags: f.member_tags.get(id).cloned().unwrap_or_default(),
                            account: (self.cloud.viewer.clone())
                                .unwrap_or_else(|| super::images::FAKE_ACCOUNT.to_owned()),
                        },
                    )
                })
            })
            .collect())
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

    async fn delete_group(&self, group: &str) -> Result<(), CloudError> {
        self.fake_delete(group).await
    }
}

impl GroupTags for FakeFleet {
    async fn put_tags(
        &self,
        group: &str,
        tags: &BTreeMap<String, String>,
        propagate: bool,
    ) -> Result<(), CloudError> {
        self.cloud.call("CreateOrUpdateTags", &self.region).await?;
        let mut f = self.cloud.fleet_state();
        if !f.groups.contains_key(group) {
            return Err(no_group_on("CreateOrUpdateTags", group, &self.region));
        }
        f.log_tags(
            "CreateOrUpdateTags",
            tags.keys().map(|k| (group, k.as_str())),
        );
        if let Some(g) = f.groups.get_mut(group) {
            g.tags.extend(tags.clone());
            let keys = f.propagated.entry(group.to_owned()).or_default();
            for k in tags.keys() {
                if propagate {
                    keys.insert(k.clone());
                } else {
                    keys.remove(k);
                }
            }
        }
        Ok(())
    }

    /// One call per [`TAGS_PER_CALL`] tags; as AWS, a call naming a group that does not exist
    /// changes nothing and fails.
    async fn put_tag_list(&self, tags: &[GroupTag]) -> Result<(), CloudError> {
        for chunk in tags.chunks(TAGS_PER_CALL) {
            self.cloud.call("CreateOrUpdateTags", &self.region).await?;
            let mut f = self.cloud.fleet_state();
            if let Some(t) = chunk.iter().find(|t| !f.groups.contains_key(&t.group)) {
                return Err(no_group_on("CreateOrUpdateTags", &t.group, &self.region));
            }
            f.log_tags(
                "CreateOrUpdateTags",
                chunk.iter().map(|t| (t.group.as_str(), t.key.as_str())),
            );
            for t in chunk {
                if let Some(g) = f.groups.get_mut(&t.group) {
                    g.tags.insert(t.key.clone(), t.value.clone());
                    let keys = f.propagated.entry(t.group.clone()).or_default();
                    if t.propagate {
                        keys.insert(t.key.clone());
                    } else {
                        keys.remove(&t.key);
                    }
                }
            }
        }
        Ok(())
    }

    async fn delete_tags(&self, group: &str, keys: &[String]) -> Result<(), CloudError> {
        self.cloud.call("DeleteTags", &self.region).await?;
        let mut f = self.cloud.fleet_state();
        if !f.groups.contains_key(group) {
            return Err(no_group_on("DeleteTags", group, &self.region));
        }
        f.log_tags("DeleteTags", keys.iter().map(|k| (group, k.as_str())));
        if let Some(g) = f.groups.get_mut(group) {
            for k in keys {
                g.tags.remove(k);
            }
        }
        Ok(())
    }
}

/// EC2's answer for a launch template that does not exist.
pub(super) fn no_template(operation: &'static str, id: &str, region: &str) -> CloudError {
    CloudError::api(
        operation,
        region,
        Some("InvalidLaunchTemplateId.NotFound"),
        format!("The specified launch template, with template ID {id}, does not exist."),
    )
}

/// EC2's answer for a version (or a template) that does not exist.
pub(super) fn no_version(f: &FleetState, t: &TemplateRef, region: &str) -> CloudError {
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
pub(super) fn no_group(group: &str, region: &str) -> CloudError {
    no_group_on("UpdateAutoScalingGroup", group, region)
}

/// Auto Scaling's answer to `operation` naming a group that does not exist (a tag write
/// naming one changes nothing).
fn no_group_on(operation: &'static str, group: &str, region: &str) -> CloudError {
    CloudError::api(
        operation,
        region,
        Some("ValidationError"),
        format!("AutoScalingGroup name not found - {group}"),
    )
}
