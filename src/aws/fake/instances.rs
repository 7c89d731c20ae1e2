//! The fake's EC2 instances, key pairs, security groups and console output: [`FakeInstances`].

use super::FakeCloud;
use crate::aws::{CloudError, Instance, Instances, LaunchSpec, NamedTemplate, SecurityGroup};
use std::collections::BTreeMap;
use std::time::Duration;

/// An instance of the fake, with its clock.
#[derive(Debug, Clone)]
pub(super) struct FakeInstance {
    instance: Instance,
    launched: tokio::time::Instant,
    spec: LaunchSpec,
}

impl FakeCloud {
    /// Adds a key pair (any region).
    pub fn add_key_pair(&self, name: &str) {
        self.state
            .key_pairs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_owned());
    }

    /// Adds a launch template of no group, as packer's Spot builds make (any region).
    pub fn add_named_template(&self, template: NamedTemplate) {
        self.named_templates().push(template);
    }

    /// The ids of the launch templates of no group left.
    pub fn named_template_ids(&self) -> Vec<String> {
        self.named_templates()
            .iter()
            .map(|t| t.id.clone())
            .collect()
    }

    fn named_templates(&self) -> std::sync::MutexGuard<'_, Vec<NamedTemplate>> {
        (self.state.named_templates.lock()).unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a security group (any region).
    pub fn add_security_group(&self, group: SecurityGroup) {
        self.state
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(group);
    }

    /// Adds an instance as if launched `age` ago by someone else (a leftover).
    pub fn add_instance(&self, region: &str, instance: Instance) {
        self.state
            .instances
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(region.to_owned())
            .or_default()
            .push(FakeInstance {
                instance,
                launched: tokio::time::Instant::now(),
                spec: LaunchSpec::default(),
            });
    }

    /// Key pairs and security groups left.
    pub fn key_pair_names(&self) -> Vec<String> {
        self.state
            .key_pairs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Security groups left.
    pub fn security_group_ids(&self) -> Vec<String> {
        self.state
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|g| g.id.clone())
            .collect()
    }

    /// What `GetConsoleOutput` answers.
    pub fn set_console_output(&self, text: &str) {
        *self.state.console.lock().unwrap_or_else(|p| p.into_inner()) = text.to_owned();
    }

    /// Every instance launched, as it is now, with the spec it was launched with.
    pub fn launched(&self) -> Vec<(Instance, LaunchSpec)> {
        let boot = self.faults().boot;
        self.state
            .instances
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .flatten()
            .map(|f| (now(f, boot), f.spec.clone()))
            .collect()
    }
}

/// An instance as it is now: `pending` until its boot time has passed, then `running`.
fn now(f: &FakeInstance, boot: Duration) -> Instance {
    let mut i = f.instance.clone();
    if i.state == "pending" && f.launched.elapsed() >= boot {
        i.state = "running".into();
    }
    i
}

/// The fake's [`Instances`] of one region.
#[derive(Clone)]
pub struct FakeInstances {
    pub(super) cloud: FakeCloud,
    pub(super) region: String,
}

impl FakeInstances {
    fn with<T>(&self, f: impl FnOnce(&mut Vec<FakeInstance>) -> T) -> T {
        let mut all = self
            .cloud
            .state
            .instances
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        f(all.entry(self.region.clone()).or_default())
    }
}

impl Instances for FakeInstances {
    fn region(&self) -> &str {
        &self.region
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<Instance, CloudError> {
        self.cloud.call("RunInstances", &self.region).await?;
        let n = self.with(|v| v.len()) + 1;
        let instance = Instance {
            id: format!("i-{n:017x}"),
            state: "pending".into(),
            private_ip: Some(format!("10.0.0.{n}")),
            public_ip: None,
            tags: spec.tags.clone(),
            launched_at: Some(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        };
        self.with(|v| {
            v.push(FakeInstance {
                instance: instance.clone(),
                launched: tokio::time::Instant::now(),
                spec: spec.clone(),
            })
        });
        Ok(instance)
    }

    async fn describe(&self, id: &str) -> Result<Option<Instance>, CloudError> {
        self.cloud.call("DescribeInstances", &self.region).await?;
        let boot = self.cloud.faults().boot;
        Ok(self.with(|v| v.iter().find(|f| f.instance.id == id).map(|f| now(f, boot))))
    }

    async fn status_checks(&self, id: &str) -> Result<Option<bool>, CloudError> {
        self.cloud
            .call("DescribeInstanceStatus", &self.region)
            .await?;
        let Some(after) = self.cloud.faults().checks else {
            return Ok(None);
        };
        Ok(self.with(|v| {
            v.iter()
                .find(|f| f.instance.id == id)
                .map(|f| f.launched.elapsed() >= after)
        }))
    }

    async fn set_tags(&self, id: &str, tags: &BTreeMap<String, String>) -> Result<(), CloudError> {
        self.cloud.call("CreateTags", &self.region).await?;
        self.with(|v| {
            for f in v.iter_mut().filter(|f| f.instance.id == id) {
                f.instance.tags.extend(tags.clone());
            }
        });
        Ok(())
    }

    async fn terminate(&self, id: &str) -> Result<(), CloudError> {
        self.cloud.call("TerminateInstances", &self.region).await?;
        if self.cloud.protected(id) {
            return Err(CloudError::api(
                "TerminateInstances",
                &self.region,
                Some("OperationNotPermitted"),
                format!("The instance '{id}' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again."),
            ));
        }
        self.with(|v| {
            for f in v.iter_mut().filter(|f| f.instance.id == id) {
                f.instance.state = "shutting-down".into();
            }
        });
        Ok(())
    }

    async fn key_pairs(&self, prefix: &str) -> Result<Vec<String>, CloudError> {
        self.key_pairs_impl(prefix).await
    }

    async fn delete_key_pair(&self, name: &str) -> Result<(), CloudError> {
        self.cloud.call("DeleteKeyPair", &self.region).await?;
        self.cloud
            .state
            .key_pairs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|n| n != name);
        Ok(())
    }

    async fn security_groups(&self, prefix: &str) -> Result<Vec<SecurityGroup>, CloudError> {
        self.cloud
            .call("DescribeSecurityGroups", &self.region)
            .await?;
        Ok(self
            .cloud
            .state
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|g| g.name.starts_with(prefix))
            .cloned()
            .collect())
    }

    async fn delete_security_group(&self, id: &str) -> Result<(), CloudError> {
        self.cloud.call("DeleteSecurityGroup", &self.region).await?;
        self.cloud
            .state
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|g| g.id != id);
        Ok(())
    }

    async fn launch_templates(
        &self,
        prefix: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<NamedTemplate>, CloudError> {
        self.cloud
            .call("DescribeLaunchTemplates", &self.region)
            .await?;
        let all = self.cloud.named_templates();
        Ok((all.iter())
            .filter(|t| t.name.starts_with(prefix))
            .filter(|t| tags.iter().all(|(k, v)| t.tags.get(k) == Some(v)))
            .cloned()
            .collect())
    }

    async fn delete_launch_template(&self, id: &str) -> Result<(), CloudError> {
        self.cloud
            .call("DeleteLaunchTemplate", &self.region)
            .await?;
        let mut all = self.cloud.named_templates();
        if !all.iter().any(|t| t.id == id) {
            return Err(super::fleet::no_template(
                "DeleteLaunchTemplate",
                id,
                &self.region,
            ));
        }
        all.retain(|t| t.id != id);
        Ok(())
    }

    async fn console_output(&self, _id: &str) -> Result<String, CloudError> {
        self.cloud.call("GetConsoleOutput", &self.region).await?;
        Ok(self
            .cloud
            .state
            .console
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }

    async fn find_by_tags(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Instance>, CloudError> {
        self.cloud.call("DescribeInstances", &self.region).await?;
        let boot = self.cloud.faults().boot;
        Ok(self.with(|v| {
            v.iter()
                .map(|f| now(f, boot))
                .filter(|i| !i.is_gone() && tags.iter().all(|(k, x)| i.tags.get(k) == Some(x)))
                .collect()
        }))
    }
}

impl FakeInstances {
    async fn key_pairs_impl(&self, prefix: &str) -> Result<Vec<String>, CloudError> {
        self.cloud.call("DescribeKeyPairs", &self.region).await?;
        let boot = self.cloud.faults().boot;
        let used: Vec<String> = self.with(|v| {
            v.iter()
                .filter(|f| !now(f, boot).is_gone())
                .filter_map(|f| f.spec.key_name.clone())
                .collect()
        });
        Ok(self
            .cloud
            .key_pair_names()
            .into_iter()
            .filter(|n| n.starts_with(prefix) && !used.contains(n))
            .collect())
    }
}
