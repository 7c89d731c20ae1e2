//! The fake's [`Launches`]: launch template versions and launch configurations, as strict as
//! EC2 and Auto Scaling.
use crate::aws::fake::fleet::{no_group, no_template, no_version};
use crate::aws::fake::FakeFleet;
use crate::aws::{CloudError, Launches, TemplateRef};

impl Launches for FakeFleet {
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

    async fn version_image(&self, t: &TemplateRef) -> Result<(String, String), CloudError> {
        self.cloud
            .call("DescribeLaunchTemplateVersions", &self.region)
            .await?;
        let f = self.cloud.fleet_state();
        f.version(t)
            .zip(f.version_image(t))
            .map(|(v, i)| (v.to_string(), i))
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
        let number = v.len();
        f.gears_versions.insert((source.id.clone(), number));
        let n = number.to_string();
        f.client_tokens.insert(key, (n.clone(), asked));
        Ok(n)
    }

    async fn made_by_gears(&self, t: &TemplateRef) -> Result<bool, CloudError> {
        self.cloud
            .call("DescribeLaunchTemplateVersions", &self.region)
            .await?;
        let f = self.cloud.fleet_state();
        let n = f
            .version(t)
            .ok_or_else(|| no_version(&f, t, &self.region))?;
        Ok(f.gears_versions.contains(&(t.id.clone(), n)))
    }

    async fn delete_template_version(&self, t: &TemplateRef) -> Result<(), CloudError> {
        self.cloud
            .call("DeleteLaunchTemplateVersions", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        if !f.templates.contains_key(&t.id) {
            return Err(no_template(
                "DeleteLaunchTemplateVersions",
                &t.id,
                &self.region,
            ));
        }
        let default = TemplateRef {
            id: t.id.clone(),
            version: "$Default".into(),
        };
        // As on EC2: the default version cannot be deleted; a version that does not exist is
        // answered in the call's list of versions not deleted (gears: no error, it is gone).
        let Some(n) = f.version(t) else {
            return Ok(());
        };
        if f.version(&default) == Some(n) {
            return Err(CloudError::api(
                "DeleteLaunchTemplateVersions",
                &self.region,
                Some("InvalidParameterValue"),
                format!("version {n} of {} is its default version", t.id),
            ));
        }
        f.deleted_versions.insert((t.id.clone(), n));
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
}
