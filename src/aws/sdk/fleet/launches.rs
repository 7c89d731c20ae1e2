//! [`Launches`] on EC2 launch templates and Auto Scaling launch configurations.
use crate::aws::sdk::errors::map_err;
use crate::aws::sdk::fleet::AwsFleet;
use crate::aws::{CloudError, Launches, TemplateRef, GEARS_VERSION_DESCRIPTION};

impl Launches for AwsFleet {
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
            .ok_or_else(|| self.no_version(t))
    }

    async fn version_image(&self, t: &TemplateRef) -> Result<(String, String), CloudError> {
        let v = self.template_version(t).await?;
        let n = v
            .as_ref()
            .and_then(|v| v.version_number())
            .ok_or_else(|| self.no_version(t))?;
        let image = v
            .as_ref()
            .and_then(|v| v.launch_template_data())
            .and_then(|d| d.image_id())
            .unwrap_or_default();
        Ok((n.to_string(), image.to_owned()))
    }

    async fn new_template_version(
        &self,
        source: &TemplateRef,
        image: &str,
        token: &str,
    ) -> Result<String, CloudError> {
        // The new version inherits everything from its source on AWS; the source's metadata
        // options (IMDSv2 among them) are also sent, so that no emulator or partial
        // implementation can drop them (moto's copy from SourceVersion does: measured).
        let cell = {
            let mut all = self
                .source_metadata
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            all.entry(format!("{}/{}", source.id, source.version))
                .or_default()
                .clone()
        };
        let metadata = cell
            .get_or_try_init(|| async {
                Ok::<_, CloudError>(
                    self.template_version(source)
                        .await?
                        .as_ref()
                        .and_then(|v| v.launch_template_data())
                        .and_then(|d| d.metadata_options())
                        .map(metadata_request),
                )
            })
            .await?
            .clone();
        let out = self
            .ec2
            .create_launch_template_version()
            .client_token(token)
            .launch_template_id(&source.id)
            .source_version(&source.version)
            .version_description(GEARS_VERSION_DESCRIPTION)
            .launch_template_data(
                aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                    .image_id(image)
                    .set_metadata_options(metadata)
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

    async fn made_by_gears(&self, t: &TemplateRef) -> Result<bool, CloudError> {
        let v = self
            .template_version(t)
            .await?
            .ok_or_else(|| self.no_version(t))?;
        Ok(v.version_description() == Some(GEARS_VERSION_DESCRIPTION))
    }

    async fn delete_template_version(&self, t: &TemplateRef) -> Result<(), CloudError> {
        let out = self
            .ec2
            .delete_launch_template_versions()
            .launch_template_id(&t.id)
            .versions(&t.version)
            .send()
            .await
            .map_err(|e| map_err("DeleteLaunchTemplateVersions", &self.region, e))?;
        // EC2 answers 200 and lists what it could not delete, with a code of its own.
        let Some(item) = out
            .unsuccessfully_deleted_launch_template_versions()
            .first()
        else {
            return Ok(());
        };
        let error = item.response_error();
        let code = error.and_then(|e| e.code()).map(|c| c.as_str().to_owned());
        if code.as_deref() == Some("launchTemplateVersionDoesNotExist") {
            return Ok(());
        }
        Err(CloudError::api(
            "DeleteLaunchTemplateVersions",
            &self.region,
            code.as_deref(),
            error
                .and_then(|e| e.message())
                .unwrap_or("the version was not deleted")
                .to_owned(),
        ))
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
}

impl AwsFleet {
    /// EC2's answer for a version that does not exist (DescribeLaunchTemplateVersions answers
    /// an empty list for some).
    fn no_version(&self, t: &TemplateRef) -> CloudError {
        CloudError::api(
            "DescribeLaunchTemplateVersions",
            &self.region,
            Some("InvalidLaunchTemplateId.VersionNotFound"),
            format!("launch template {} has no version {}", t.id, t.version),
        )
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

/// Template version (`lt-…/N`) → its metadata options, read once per run and region.
pub(super) type MetadataCache = std::sync::Arc<
    std::sync::Mutex<
        std::collections::BTreeMap<
            String,
            std::sync::Arc<
                tokio::sync::OnceCell<
                    Option<aws_sdk_ec2::types::LaunchTemplateInstanceMetadataOptionsRequest>,
                >,
            >,
        >,
    >,
>;

/// A version's metadata options as a new version's request takes them.
fn metadata_request(
    m: &aws_sdk_ec2::types::LaunchTemplateInstanceMetadataOptions,
) -> aws_sdk_ec2::types::LaunchTemplateInstanceMetadataOptionsRequest {
    aws_sdk_ec2::types::LaunchTemplateInstanceMetadataOptionsRequest::builder()
        .set_http_tokens(m.http_tokens().cloned())
        .set_http_put_response_hop_limit(m.http_put_response_hop_limit())
        .set_http_endpoint(m.http_endpoint().cloned())
        .set_http_protocol_ipv6(m.http_protocol_ipv6().cloned())
        .set_instance_metadata_tags(m.instance_metadata_tags().cloned())
        .build()
}
