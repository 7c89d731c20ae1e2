//! The calls of a bake beside Packer's on the images port: the base AMI's Parameter Store
//! parameter, and the AMIs' deprecation and deregistration protection.

use super::errors::map_err;
use crate::aws::{CloudError, ErrorKind, Parameter};

/// GetParameter: `None` when there is no such parameter.
pub(super) async fn parameter(
    ssm: &aws_sdk_ssm::Client,
    region: &str,
    name: &str,
) -> Result<Option<Parameter>, CloudError> {
    let out = ssm.get_parameter().name(name).send().await;
    match out.map_err(|e| map_err("GetParameter", region, e)) {
        Ok(out) => Ok(out.parameter().map(|p| Parameter {
            name: p.name().unwrap_or(name).to_owned(),
            value: p.value().unwrap_or_default().to_owned(),
            version: p.version(),
            data_type: p.data_type().unwrap_or("text").to_owned(),
        })),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// EnableImageDeprecation at `at` (whole seconds; EC2 rounds to the minute).
pub(super) async fn deprecate(
    ec2: &aws_sdk_ec2::Client,
    region: &str,
    image: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), CloudError> {
    ec2.enable_image_deprecation()
        .image_id(image)
        .deprecate_at(aws_sdk_ec2::primitives::DateTime::from_secs(at.timestamp()))
        .send()
        .await
        .map_err(|e| map_err("EnableImageDeprecation", region, e))?;
    Ok(())
}

/// EnableImageDeregistrationProtection, with the 24-hour cooldown when `cooldown`.
pub(super) async fn protect(
    ec2: &aws_sdk_ec2::Client,
    region: &str,
    image: &str,
    cooldown: bool,
) -> Result<(), CloudError> {
    ec2.enable_image_deregistration_protection()
        .image_id(image)
        .with_cooldown(cooldown)
        .send()
        .await
        .map_err(|e| map_err("EnableImageDeregistrationProtection", region, e))?;
    Ok(())
}
