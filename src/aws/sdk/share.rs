//! Sharing an AMI with other accounts, organizations and organizational units on EC2: its
//! launch permissions, and its snapshots' create-volume permissions for the accounts (an
//! account that launches an AMI of encrypted or copied snapshots needs them). What EC2 stored
//! is read back by [`shares_of`]: a 200 is not proof (moto, for one, answers 200 to a
//! `ModifySnapshotAttribute` form it ignores).

use super::errors::map_err;
use crate::accounts::{AccountId, OrgArn, OuArn, Shares};
use crate::aws::{CloudError, ImageShares};
use aws_sdk_ec2::types::{
    ImageAttributeName, LaunchPermission, LaunchPermissionModifications, OperationType,
    SnapshotAttributeName,
};

/// The EC2 client of one region, and the region (for errors).
pub(super) struct Ec2Client<'a> {
    pub(super) client: &'a aws_sdk_ec2::Client,
    pub(super) region: &'a str,
}

impl Ec2Client<'_> {
    fn client(&self) -> &aws_sdk_ec2::Client {
        self.client
    }

    fn region(&self) -> &str {
        self.region
    }
}

/// The snapshots behind `image` (its EBS block devices).
async fn snapshots(ec2: &Ec2Client<'_>, image: &str) -> Result<Vec<String>, CloudError> {
    Ok(described(ec2, image).await?.1)
}

/// `image`'s owner account and the snapshots behind it (its EBS block devices).
async fn described(
    ec2: &Ec2Client<'_>,
    image: &str,
) -> Result<(Option<String>, Vec<String>), CloudError> {
    let out = ec2
        .client()
        .describe_images()
        .image_ids(image)
        .send()
        .await
        .map_err(|e| map_err("DescribeImages", ec2.region(), e))?;
    // An AMI EC2 does not show has no snapshots to share: an error, never an empty success.
    if out.images().is_empty() {
        return Err(CloudError::api(
            "DescribeImages",
            ec2.region(),
            Some("InvalidAMIID.NotFound"),
            format!("{image} is not visible in {}", ec2.region()),
        ));
    }
    let owner = out
        .images()
        .iter()
        .find_map(|i| i.owner_id())
        .map(str::to_owned);
    let snapshots = (out.images().iter())
        .flat_map(|i| i.block_device_mappings())
        .filter_map(|b| b.ebs().and_then(|e| e.snapshot_id()))
        .map(str::to_owned)
        .collect();
    Ok((owner, snapshots))
}

pub(super) async fn share(
    ec2: &Ec2Client<'_>,
    image: &str,
    shares: &Shares,
) -> Result<(), CloudError> {
    let mut add: Vec<LaunchPermission> = Vec::new();
    add.extend((shares.accounts.iter()).map(|a| LaunchPermission::builder().user_id(&a.0).build()));
    add.extend(
        (shares.organizations.iter())
            .map(|o| LaunchPermission::builder().organization_arn(&o.0).build()),
    );
    add.extend((shares.organizational_units.iter()).map(|o| {
        LaunchPermission::builder()
            .organizational_unit_arn(&o.0)
            .build()
    }));
    if add.is_empty() {
        return Ok(());
    }
    ec2.client()
        .modify_image_attribute()
        .image_id(image)
        .launch_permission(
            LaunchPermissionModifications::builder()
                .set_add(Some(add))
                .build(),
        )
        .send()
        .await
        .map_err(|e| map_err("ModifyImageAttribute", ec2.region(), e))?;
    if shares.accounts.is_empty() {
        return Ok(());
    }
    let users: Vec<String> = shares.accounts.iter().map(|a| a.0.clone()).collect();
    for snapshot in snapshots(ec2, image).await? {
        // The `OperationType` + `UserId.N` form: AWS takes it, and so does moto (which ignores
        // the `CreateVolumePermission.Add.N.UserId` form Packer 1.6.6's snapshot_users sends).
        ec2.client()
            .modify_snapshot_attribute()
            .snapshot_id(&snapshot)
            .attribute(SnapshotAttributeName::CreateVolumePermission)
            .operation_type(OperationType::Add)
            .set_user_ids(Some(users.clone()))
            .send()
            .await
            .map_err(|e| map_err("ModifySnapshotAttribute", ec2.region(), e))?;
    }
    Ok(())
}

pub(super) async fn shares_of(ec2: &Ec2Client<'_>, image: &str) -> Result<ImageShares, CloudError> {
    let out = ec2
        .client()
        .describe_image_attribute()
        .image_id(image)
        .attribute(ImageAttributeName::LaunchPermission)
        .send()
        .await
        .map_err(|e| map_err("DescribeImageAttribute", ec2.region(), e))?;
    let mut launch = Shares::default();
    for p in out.launch_permissions() {
        if let Some(u) = p.user_id() {
            launch.accounts.push(AccountId(u.to_owned()));
        }
        if let Some(o) = p.organization_arn() {
            launch.organizations.push(OrgArn(o.to_owned()));
        }
        if let Some(o) = p.organizational_unit_arn() {
            launch.organizational_units.push(OuArn(o.to_owned()));
        }
    }
    let (owner, snapshots) = described(ec2, image).await?;
    let mut seen = ImageShares {
        launch,
        owner,
        ..ImageShares::default()
    };
    for snapshot in snapshots {
        let out = ec2
            .client()
            .describe_snapshot_attribute()
            .snapshot_id(&snapshot)
            .attribute(SnapshotAttributeName::CreateVolumePermission)
            .send()
            .await
            .map_err(|e| map_err("DescribeSnapshotAttribute", ec2.region(), e))?;
        let users = out
            .create_volume_permissions()
            .iter()
            .filter_map(|p| p.user_id())
            .map(|u| AccountId(u.to_owned()))
            .collect();
        seen.snapshots.insert(snapshot, users);
    }
    Ok(seen)
}
