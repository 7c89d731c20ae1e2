//! The fake's AMI housekeeping: [`FakeAmis`], over the images, snapshots and uses of AMIs a
//! test sets up; and the other accounts `gears amis` reads through their roles, each a fake
//! of its own ([`FakeCloud::add_account`]): an account no test added refuses the role, as STS
//! refuses a role that does not exist or does not trust the caller.

use super::FakeCloud;
use crate::accounts::RoleSession;
use crate::aws::{
    has_tags, AmiCloud, AmiHousekeeping, AmiUse, CloudError, Image, LaunchPermission, OwnedImage,
    Snapshot,
};
use std::collections::BTreeMap;

/// The fake's AMI housekeeping: snapshots per image and region, and uses of AMIs per region.
#[derive(Default)]
pub(super) struct AmisState {
    /// image id → its snapshots.
    image_snapshots: BTreeMap<String, Vec<String>>,
    /// region → snapshots that exist.
    snapshots: BTreeMap<String, Vec<String>>,
    /// region → uses.
    uses: BTreeMap<String, Vec<AmiUse>>,
    /// image id → who else may launch it (besides what [`crate::aws::Images::share`] stored).
    launch_permissions: BTreeMap<String, Vec<LaunchPermission>>,
    /// account id → its fake, for the roles of other accounts ([`FakeCloud::add_account`]).
    accounts: BTreeMap<String, FakeCloud>,
    /// This fake is the view through a role STS refused: every port answers the refusal.
    refused: Option<RoleSession>,
    /// snapshot id → its tags.
    snapshot_tags: BTreeMap<String, BTreeMap<String, String>>,
    /// Instances that are members of an Auto Scaling group.
    group_members: std::collections::BTreeSet<String>,
    /// Key names launch templates and configurations use.
    launch_keys: std::collections::BTreeSet<String>,
    /// Instances with termination protection.
    protected: std::collections::BTreeSet<String>,
    /// After each deregister, this many DeleteSnapshot calls answer `InvalidSnapshot.InUse`
    /// (EC2 lags behind its own deregister), and how many are left.
    in_use_lag: (u32, u32),
    /// DeregisterImage deletes the snapshots only that AMI uses (AWS's
    /// `DeleteAssociatedSnapshots`); off, as moto 5.2 ignores the flag.
    deletes_associated: bool,
    /// AMIs someone else deregisters right after the next DescribeImages lists them.
    vanishing: std::collections::BTreeSet<String>,
}

impl FakeCloud {
    fn amis_state(&self) -> std::sync::MutexGuard<'_, AmisState> {
        self.state.amis.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds snapshots behind an image of `region` (the image itself: [`FakeCloud::add_image`]).
    pub fn add_snapshots(&self, region: &str, image_id: &str, snapshots: &[&str]) {
        let mut a = self.amis_state();
        a.image_snapshots
            .entry(image_id.to_owned())
            .or_default()
            .extend(snapshots.iter().map(|s| s.to_string()));
        a.snapshots
            .entry(region.to_owned())
            .or_default()
            .extend(snapshots.iter().map(|s| s.to_string()));
    }

    /// Records a use of an AMI (a launch template version, launch configuration or instance).
    pub fn add_ami_use(&self, region: &str, use_: AmiUse) {
        self.amis_state()
            .uses
            .entry(region.to_owned())
            .or_default()
            .push(use_);
    }

    /// The AMIs of `region` now.
    pub fn ami_ids(&self, region: &str) -> Vec<String> {
        self.state
            .images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(region)
            .map(|v| v.iter().map(|i| i.id.clone()).collect())
            .unwrap_or_default()
    }

    /// The snapshots of `region` now.
    pub fn snapshot_ids(&self, region: &str) -> Vec<String> {
        self.amis_state()
            .snapshots
            .get(region)
            .cloned()
            .unwrap_or_default()
    }
}

impl FakeCloud {
    /// Lets others launch an AMI: `account 123456789012`, `group all` (public),
    /// `organization arn:...`, `organizational-unit arn:...`.
    pub fn add_launch_permission(&self, image_id: &str, who: &str) {
        let who: LaunchPermission = who.parse().unwrap_or_else(|e| panic!("{e}"));
        self.amis_state()
            .launch_permissions
            .entry(image_id.to_owned())
            .or_default()
            .push(who);
    }

    /// Another account, reachable through any role in it: an empty fake of its own (its own
    /// state, faults and log of calls), which [`AmiCloud::of_account`] hands out for a role of
    /// that account. Adding it again gives the same one.
    pub fn add_account(&self, account: &str) -> FakeCloud {
        self.amis_state()
            .accounts
            .entry(account.to_owned())
            .or_default()
            .clone()
    }

    /// Who may launch an AMI: what a test allowed, then what a share stored.
    fn permissions_of(&self, image_id: &str) -> Vec<LaunchPermission> {
        let shared = self.shares_of_image(image_id).launch;
        let mut out = self
            .amis_state()
            .launch_permissions
            .get(image_id)
            .cloned()
            .unwrap_or_default();
        let more = shared
            .accounts
            .iter()
            .map(|a| LaunchPermission::Account(a.0.clone()))
            .chain(
                shared
                    .organizations
                    .iter()
                    .map(|o| LaunchPermission::Organization(o.0.clone())),
            )
            .chain(
                shared
                    .organizational_units
                    .iter()
                    .map(|o| LaunchPermission::OrganizationalUnit(o.0.clone())),
            );
        for p in more {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// Tags a snapshot (as packer's `snapshot_tags` do).
    pub fn tag_snapshot(&self, snapshot_id: &str, tags: &[(&str, &str)]) {
        self.amis_state()
            .snapshot_tags
            .entry(snapshot_id.to_owned())
            .or_default()
            .extend(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    }

    /// Makes an instance a member of an Auto Scaling group.
    pub fn add_group_member(&self, instance_id: &str) {
        self.amis_state()
            .group_members
            .insert(instance_id.to_owned());
    }

    /// A launch template or configuration names this key pair.
    pub fn add_launch_key(&self, name: &str) {
        self.amis_state().launch_keys.insert(name.to_owned());
    }

    /// Turns termination protection on for an instance: TerminateInstances answers
    /// `OperationNotPermitted`.
    pub fn protect_instance(&self, instance_id: &str) {
        self.amis_state().protected.insert(instance_id.to_owned());
    }

    /// After each deregister, `n` DeleteSnapshot calls answer `InvalidSnapshot.InUse`.
    pub fn set_snapshot_in_use_lag(&self, n: u32) {
        self.amis_state().in_use_lag = (n, 0);
    }

    /// DeregisterImage deletes the snapshots only that AMI uses, as AWS does with
    /// `DeleteAssociatedSnapshots`.
    pub fn set_deletes_associated(&self, on: bool) {
        self.amis_state().deletes_associated = on;
    }

    /// Someone else deregisters this AMI right after the next DescribeImages of its region
    /// lists it: every call about it afterwards answers as EC2 does for an AMI that is gone.
    pub fn deregister_after_listing(&self, image_id: &str) {
        self.amis_state().vanishing.insert(image_id.to_owned());
    }

    /// Whether TerminateInstances refuses this instance.
    pub(super) fn protected(&self, instance_id: &str) -> bool {
        self.amis_state().protected.contains(instance_id)
    }
}

impl FakeAmis {
    fn after_deregister(&self, image_id: &str, registered: &[String]) {
        let mut a = self.cloud.amis_state();
        a.in_use_lag.1 = a.in_use_lag.0;
        if !a.deletes_associated {
            return;
        }
        let mine = a.image_snapshots.get(image_id).cloned().unwrap_or_default();
        let shared: Vec<String> = a
            .image_snapshots
            .iter()
            .filter(|(i, _)| registered.contains(i))
            .flat_map(|(_, s)| s.clone())
            .collect();
        if let Some(v) = a.snapshots.get_mut(&self.region) {
            v.retain(|s| !mine.contains(s) || shared.contains(s));
        }
    }

    /// The AMIs of this region [`FakeCloud::deregister_after_listing`] named go.
    fn vanish(&self) {
        let vanishing = self.cloud.amis_state().vanishing.clone();
        let mut all = (self.cloud.state.images.lock()).unwrap_or_else(|p| p.into_inner());
        let Some(v) = all.get_mut(&self.region) else {
            return;
        };
        let gone: Vec<String> = (v.iter())
            .filter(|i| vanishing.contains(&i.id))
            .map(|i| i.id.clone())
            .collect();
        v.retain(|i| !gone.contains(&i.id));
        drop(all);
        let mut a = self.cloud.amis_state();
        for g in &gone {
            a.vanishing.remove(g);
        }
    }

    fn lagging(&self) -> bool {
        let mut a = self.cloud.amis_state();
        if a.in_use_lag.1 == 0 {
            return false;
        }
        a.in_use_lag.1 -= 1;
        true
    }
}

/// The fake's [`AmiHousekeeping`] of one region.
#[derive(Clone)]
pub struct FakeAmis {
    pub(super) cloud: FakeCloud,
    pub(super) region: String,
}

impl AmiHousekeeping for FakeAmis {
    fn region(&self) -> &str {
        &self.region
    }

    async fn owned_images(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<OwnedImage>, CloudError> {
        self.cloud.call("DescribeImages", &self.region).await?;
        let images: Vec<Image> = self
            .cloud
            .state
            .images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.region)
            .cloned()
            .unwrap_or_default();
        let a = self.cloud.amis_state();
        let listed = images
            .into_iter()
            .filter(|i| has_tags(i, tags))
            .map(|image| OwnedImage {
                snapshots: a
                    .image_snapshots
                    .get(&image.id)
                    .cloned()
                    .unwrap_or_default(),
                public: a
                    .launch_permissions
                    .get(&image.id)
                    .is_some_and(|p| p.contains(&LaunchPermission::Public)),
                protection: self.cloud.hygiene_of(&image.id).1,
                image,
            })
            .collect();
        drop(a);
        self.vanish();
        Ok(listed)
    }

    async fn uses_of(&self, image_ids: &[String]) -> Result<Vec<AmiUse>, CloudError> {
        if image_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.cloud
            .call("DescribeLaunchTemplateVersions", &self.region)
            .await?;
        self.cloud
            .call("DescribeAutoScalingGroups", &self.region)
            .await?;
        self.cloud
            .call("DescribeLaunchConfigurations", &self.region)
            .await?;
        // As the SDK adapter pages them: an `image-id` filter takes at most 200 values.
        for _ in image_ids.chunks(crate::aws::FILTER_VALUES) {
            self.cloud.call("DescribeInstances", &self.region).await?;
        }
        Ok(self
            .cloud
            .amis_state()
            .uses
            .get(&self.region)
            .into_iter()
            .flatten()
            .filter(|u| image_ids.contains(&u.image_id))
            .cloned()
            .collect())
    }

    async fn launch_permissions(
        &self,
        image_id: &str,
    ) -> Result<Vec<LaunchPermission>, CloudError> {
        self.cloud
            .call("DescribeImageAttribute", &self.region)
            .await?;
        if !self
            .cloud
            .ami_ids(&self.region)
            .iter()
            .any(|i| i == image_id)
        {
            return Err(CloudError::api(
                "DescribeImageAttribute",
                &self.region,
                Some("InvalidAMIID.NotFound"),
                format!("The image id '[{image_id}]' does not exist"),
            ));
        }
        Ok(self.cloud.permissions_of(image_id))
    }

    async fn registered_snapshots(&self) -> Result<BTreeMap<String, Vec<String>>, CloudError> {
        self.cloud.call("DescribeImages", &self.region).await?;
        let registered = self.cloud.ami_ids(&self.region);
        let a = self.cloud.amis_state();
        let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (image, snaps) in a
            .image_snapshots
            .iter()
            .filter(|(i, _)| registered.contains(i))
        {
            for s in snaps {
                by.entry(s.clone()).or_default().push(image.clone());
            }
        }
        Ok(by)
    }

    async fn tagged_snapshots(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Snapshot>, CloudError> {
        self.cloud.call("DescribeSnapshots", &self.region).await?;
        let a = self.cloud.amis_state();
        Ok(a.snapshots
            .get(&self.region)
            .into_iter()
            .flatten()
            .map(|id| Snapshot {
                id: id.clone(),
                state: "completed".into(),
                tags: a.snapshot_tags.get(id).cloned().unwrap_or_default(),
            })
            .filter(|s| tags.iter().all(|(k, v)| s.tags.get(k) == Some(v)))
            .collect())
    }

    async fn group_members(
        &self,
        ids: &[String],
    ) -> Result<std::collections::BTreeSet<String>, CloudError> {
        self.cloud
            .call("DescribeAutoScalingInstances", &self.region)
            .await?;
        if ids.len() > 50 {
            return Err(CloudError::api(
                "DescribeAutoScalingInstances",
                &self.region,
                Some("ValidationError"),
                "at most 50 instance ids",
            ));
        }
        let a = self.cloud.amis_state();
        Ok(ids
            .iter()
            .filter(|i| a.group_members.contains(*i))
            .cloned()
            .collect())
    }

    async fn launch_key_names(&self) -> Result<std::collections::BTreeSet<String>, CloudError> {
        self.cloud
            .call("DescribeLaunchTemplateVersions", &self.region)
            .await?;
        self.cloud
            .call("DescribeLaunchConfigurations", &self.region)
            .await?;
        Ok(self.cloud.amis_state().launch_keys.clone())
    }

    async fn deregister(&self, image_id: &str) -> Result<(), CloudError> {
        self.cloud.call("DeregisterImage", &self.region).await?;
        // As EC2: a protected AMI is not deregistered (protection must be disabled first).
        if let Some(p) = self.cloud.hygiene_of(image_id).1 {
            return Err(CloudError::api(
                "DeregisterImage",
                &self.region,
                Some("InvalidParameterValue"),
                format!("{image_id} has deregistration protection ({p}): disable it first"),
            ));
        }
        let mut all = self
            .cloud
            .state
            .images
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let v = all.entry(self.region.clone()).or_default();
        if !v.iter().any(|i| i.id == image_id) {
            return Err(CloudError::api(
                "DeregisterImage",
                &self.region,
                Some("InvalidAMIID.NotFound"),
                format!("no image {image_id}"),
            ));
        }
        v.retain(|i| i.id != image_id);
        let registered: Vec<String> = v.iter().map(|i| i.id.clone()).collect();
        drop(all);
        self.after_deregister(image_id, &registered);
        Ok(())
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), CloudError> {
        self.cloud.call("DeleteSnapshot", &self.region).await?;
        if self.lagging() {
            return Err(CloudError::api(
                "DeleteSnapshot",
                &self.region,
                Some("InvalidSnapshot.InUse"),
                format!("snapshot {snapshot_id} is in use (EC2 has not caught up)"),
            ));
        }
        // As on EC2: a snapshot behind a registered image cannot go.
        let registered = self.cloud.ami_ids(&self.region);
        let mut a = self.cloud.amis_state();
        if let Some((image, _)) = a
            .image_snapshots
            .iter()
            .find(|(i, s)| registered.contains(i) && s.iter().any(|s| s == snapshot_id))
        {
            return Err(CloudError::api(
                "DeleteSnapshot",
                &self.region,
                Some("InvalidSnapshot.InUse"),
                format!("snapshot {snapshot_id} is in use by {image}"),
            ));
        }
        let v = a.snapshots.entry(self.region.clone()).or_default();
        if !v.iter().any(|s| s == snapshot_id) {
            return Err(CloudError::api(
                "DeleteSnapshot",
                &self.region,
                Some("InvalidSnapshot.NotFound"),
                format!("no snapshot {snapshot_id}"),
            ));
        }
        v.retain(|s| s != snapshot_id);
        Ok(())
    }
}

impl AmiCloud for FakeCloud {
    type Amis = FakeAmis;

    async fn amis(&self, region: &str) -> Result<FakeAmis, CloudError> {
        if let Some(s) = &self.amis_state().refused {
            return Err(CloudError::Role {
                role: s.role.role_arn.to_string(),
                environment: s.environment.clone(),
                message: "AccessDenied: not authorized to perform sts:AssumeRole".into(),
            });
        }
        Ok(FakeAmis {
            cloud: self.clone(),
            region: region.to_owned(),
        })
    }

    /// The fake [`FakeCloud::add_account`] gave for the role's account; any other account
    /// refuses the role.
    fn of_account(&self, account: RoleSession) -> Self {
        let known = self
            .amis_state()
            .accounts
            .get(account.role.role_arn.account())
            .cloned();
        known.unwrap_or_else(|| {
            let refused = FakeCloud::new();
            refused.amis_state().refused = Some(account);
            refused
        })
    }
}
