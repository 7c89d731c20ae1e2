//! [`AmiHousekeeping`] on EC2 and Auto Scaling: the calls for `gears amis` and
//! `gears reap`: every list is paged with `MaxResults` (one unbounded answer per region is what
//! AWS throttles or times out on large accounts), and what uses an AMI or a key pair is read
//! from every version of every launch template, not only `$Default`/`$Latest`; instances are
//! read by `image-id` filter (at most 200 values a filter), in the build account and in each
//! environment's account alike.

use super::ec2::{image, not_terminated, tag_filter, tags_of, EC2_PAGE};
use super::errors::map_err;
use crate::aws::{
    has_tags, AmiHousekeeping, AmiUse, CloudError, LaunchPermission, OwnedImage, Snapshot,
    FILTER_VALUES,
};
use aws_sdk_ec2::types::Filter;
use std::collections::{BTreeMap, BTreeSet};

const TEMPLATE_PAGE: i32 = 200;
/// DescribeAutoScalingInstances: at most 50 instance ids a call.
const ASG_IDS: usize = 50;

/// One version of a launch template.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TemplateVersion {
    pub id: String,
    pub name: String,
    pub number: i64,
    pub default: bool,
    pub image: Option<String>,
    pub key: Option<String>,
}

/// [`AmiHousekeeping`] on EC2 and Auto Scaling (launch configurations) of one region.
#[derive(Clone)]
pub struct Ec2Amis {
    ec2: aws_sdk_ec2::Client,
    asg: aws_sdk_autoscaling::Client,
    region: String,
}

impl Ec2Amis {
    /// The clients for `region` on the shared configuration.
    pub fn new(conf: &aws_config::SdkConfig, region: &str) -> Self {
        let r = || aws_config::Region::new(region.to_owned());
        Ec2Amis {
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::config::Builder::from(conf).region(r()).build(),
            ),
            asg: aws_sdk_autoscaling::Client::from_conf(
                aws_sdk_autoscaling::config::Builder::from(conf)
                    .region(r())
                    .build(),
            ),
            region: region.to_owned(),
        }
    }
}

impl Ec2Amis {
    /// Our own AMIs (any state) whose tags equal `tags`, with their snapshots, every page.
    pub(super) async fn owned(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<OwnedImage>, CloudError> {
        let filters: Vec<Filter> = tags.iter().map(|(k, v)| tag_filter(k, v)).collect();
        let mut pages = self
            .ec2
            .describe_images()
            .owners("self")
            // A disabled AMI still holds its snapshots: listed, so a sweep never tries them.
            .include_disabled(true)
            .set_filters((!filters.is_empty()).then_some(filters))
            .max_results(EC2_PAGE)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_err("DescribeImages", &self.region, e))?;
            for i in page.images() {
                let image = image(i);
                // EC2 filters are patterns; the exact comparison decides.
                if !has_tags(&image, tags) {
                    continue;
                }
                out.push(OwnedImage {
                    image,
                    snapshots: i
                        .block_device_mappings()
                        .iter()
                        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()))
                        .map(str::to_owned)
                        .collect(),
                    public: i.public().unwrap_or(false),
                    protection: i
                        .deregistration_protection()
                        .filter(|p| !p.is_empty() && *p != "disabled")
                        .map(str::to_owned),
                });
            }
        }
        Ok(out)
    }

    /// Snapshot → AMIs, over every AMI we own in the region.
    pub(super) async fn snapshot_owners(
        &self,
    ) -> Result<BTreeMap<String, Vec<String>>, CloudError> {
        let mut by_snapshot: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for o in self.owned(&BTreeMap::new()).await? {
            for s in o.snapshots {
                by_snapshot.entry(s).or_default().push(o.image.id.clone());
            }
        }
        Ok(by_snapshot)
    }

    /// Our own snapshots whose tags equal `tags`, every page.
    pub(super) async fn snapshots_tagged(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Snapshot>, CloudError> {
        let filters: Vec<Filter> = tags.iter().map(|(k, v)| tag_filter(k, v)).collect();
        let mut pages = self
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .set_filters((!filters.is_empty()).then_some(filters))
            .max_results(EC2_PAGE)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_err("DescribeSnapshots", &self.region, e))?;
            for s in page.snapshots() {
                let snap = Snapshot {
                    id: s.snapshot_id().unwrap_or_default().to_owned(),
                    state: s.state().map(|x| x.as_str().to_owned()).unwrap_or_default(),
                    tags: tags_of(s.tags()),
                };
                if tags.iter().all(|(k, v)| snap.tags.get(k) == Some(v)) {
                    out.push(snap);
                }
            }
        }
        Ok(out)
    }

    /// Who may launch the AMI besides us.
    pub(super) async fn permissions(
        &self,
        image_id: &str,
    ) -> Result<Vec<LaunchPermission>, CloudError> {
        let out = self
            .ec2
            .describe_image_attribute()
            .image_id(image_id)
            .attribute(aws_sdk_ec2::types::ImageAttributeName::LaunchPermission)
            .send()
            .await
            .map_err(|e| map_err("DescribeImageAttribute", &self.region, e))?;
        Ok(out
            .launch_permissions()
            .iter()
            .filter_map(|p| {
                p.user_id()
                    .map(|a| LaunchPermission::Account(a.to_owned()))
                    .or_else(|| p.group().map(|_| LaunchPermission::Public))
                    .or_else(|| {
                        p.organization_arn()
                            .map(|a| LaunchPermission::Organization(a.to_owned()))
                    })
                    .or_else(|| {
                        p.organizational_unit_arn()
                            .map(|a| LaunchPermission::OrganizationalUnit(a.to_owned()))
                    })
            })
            .collect())
    }

    /// Every version of every launch template in the region (DescribeLaunchTemplates, then
    /// DescribeLaunchTemplateVersions of each template: EC2 describes all versions only per
    /// template).
    pub(super) async fn template_versions(&self) -> Result<Vec<TemplateVersion>, CloudError> {
        let mut ids = Vec::new();
        let mut pages = self
            .ec2
            .describe_launch_templates()
            .max_results(TEMPLATE_PAGE)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_err("DescribeLaunchTemplates", &self.region, e))?;
            ids.extend(
                page.launch_templates()
                    .iter()
                    .filter_map(|t| t.launch_template_id().map(str::to_owned)),
            );
        }
        let mut out = Vec::new();
        for id in ids {
            let mut pages = self
                .ec2
                .describe_launch_template_versions()
                .launch_template_id(&id)
                // A version launching `resolve:ssm:<parameter>` answers the AMI it resolves to,
                // so an AMI in use through a parameter is seen as in use.
                .resolve_alias(true)
                .max_results(TEMPLATE_PAGE)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|e| map_err("DescribeLaunchTemplateVersions", &self.region, e))?;
                for v in page.launch_template_versions() {
                    let data = v.launch_template_data();
                    out.push(TemplateVersion {
                        id: id.clone(),
                        name: v.launch_template_name().unwrap_or_default().to_owned(),
                        number: v.version_number().unwrap_or_default(),
                        default: v.default_version().unwrap_or(false),
                        image: data.and_then(|d| d.image_id()).map(str::to_owned),
                        key: data.and_then(|d| d.key_name()).map(str::to_owned),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Launch configurations: (name, image, key name).
    async fn configurations(&self) -> Result<Vec<(String, String, Option<String>)>, CloudError> {
        let mut out = Vec::new();
        let mut pages = self
            .asg
            .describe_launch_configurations()
            .max_records(100)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| map_err("DescribeLaunchConfigurations", &self.region, e))?;
            for lc in page.launch_configurations() {
                if let Some(name) = lc.launch_configuration_name() {
                    out.push((
                        name.to_owned(),
                        lc.image_id().unwrap_or_default().to_owned(),
                        lc.key_name().filter(|k| !k.is_empty()).map(str::to_owned),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// (template id, version as the group names it) → the groups that launch from it: their
    /// own template, their mixed-instances policy's, and its overrides' templates.
    async fn group_templates(&self) -> Result<BTreeMap<(String, String), Vec<String>>, CloudError> {
        let mut by: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        let mut pages = self
            .asg
            .describe_auto_scaling_groups()
            .max_records(100)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_err("DescribeAutoScalingGroups", &self.region, e))?;
            for g in page.auto_scaling_groups() {
                let mixed = g.mixed_instances_policy().and_then(|m| m.launch_template());
                let specs = g
                    .launch_template()
                    .into_iter()
                    .chain(mixed.and_then(|t| t.launch_template_specification()))
                    .chain(
                        mixed
                            .map(|t| t.overrides())
                            .unwrap_or_default()
                            .iter()
                            .filter_map(|o| o.launch_template_specification()),
                    );
                for t in specs {
                    if let Some(id) = t.launch_template_id() {
                        let v = t.version().unwrap_or("$Default").to_owned();
                        let name = g.auto_scaling_group_name().unwrap_or_default().to_owned();
                        let groups = by.entry((id.to_owned(), v)).or_default();
                        if !groups.contains(&name) {
                            groups.push(name);
                        }
                    }
                }
            }
        }
        Ok(by)
    }

    /// Every use of the AMIs `ids` in the region.
    pub(super) async fn uses_of_ids(&self, ids: &[String]) -> Result<Vec<AmiUse>, CloudError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (versions, groups, configurations) = futures::try_join!(
            self.template_versions(),
            self.group_templates(),
            self.configurations()
        )?;
        let latest: BTreeMap<&str, i64> = versions.iter().fold(BTreeMap::new(), |mut m, v| {
            let e = m.entry(v.id.as_str()).or_insert(v.number);
            *e = (*e).max(v.number);
            m
        });
        let mut uses = Vec::new();
        for v in &versions {
            let Some(image) = &v.image else { continue };
            let is_latest = latest.get(v.id.as_str()) == Some(&v.number);
            let mut labels: Vec<String> = Vec::new();
            if v.default {
                labels.push("default".into());
            }
            if is_latest {
                labels.push("latest".into());
            }
            let named = [
                Some(v.number.to_string()),
                v.default.then(|| "$Default".to_owned()),
                is_latest.then(|| "$Latest".to_owned()),
            ];
            let mut by_groups: Vec<&str> = Vec::new();
            for n in named.iter().flatten() {
                for g in groups.get(&(v.id.clone(), n.clone())).into_iter().flatten() {
                    if !by_groups.contains(&g.as_str()) {
                        by_groups.push(g);
                    }
                }
            }
            if !by_groups.is_empty() {
                labels.push(format!("group {}", by_groups.join(", ")));
            }
            uses.push(AmiUse {
                image_id: image.clone(),
                kind: "launch-template",
                id: v.id.clone(),
                detail: if labels.is_empty() {
                    format!("{} version {}", v.name, v.number)
                } else {
                    format!("{} version {} ({})", v.name, v.number, labels.join(", "))
                },
            });
        }
        uses.extend(configurations.into_iter().map(|(name, image, _)| AmiUse {
            image_id: image,
            kind: "launch-configuration",
            id: name,
            detail: String::new(),
        }));
        uses.extend(self.instance_uses(ids).await?);
        uses.retain(|u| ids.contains(&u.image_id));
        Ok(uses)
    }

    /// Instances of the AMIs `ids` in any state but terminated, every page: an `image-id`
    /// filter of at most [`FILTER_VALUES`] ids a call.
    async fn instance_uses(&self, ids: &[String]) -> Result<Vec<AmiUse>, CloudError> {
        let mut uses = Vec::new();
        for chunk in ids.chunks(FILTER_VALUES) {
            uses.extend(self.instances_of(chunk).await?);
        }
        Ok(uses)
    }

    /// Instances of at most [`FILTER_VALUES`] AMIs, every page.
    async fn instances_of(&self, ids: &[String]) -> Result<Vec<AmiUse>, CloudError> {
        let mut uses = Vec::new();
        let mut pages = self
            .ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("image-id")
                    .set_values(Some(ids.to_vec()))
                    .build(),
            )
            .filters(not_terminated())
            .max_results(EC2_PAGE)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_err("DescribeInstances", &self.region, e))?;
            for i in page.reservations().iter().flat_map(|r| r.instances()) {
                if let (Some(id), Some(img)) = (i.instance_id(), i.image_id()) {
                    uses.push(AmiUse {
                        image_id: img.to_owned(),
                        kind: "instance",
                        id: id.to_owned(),
                        detail: i
                            .state()
                            .and_then(|s| s.name())
                            .map(|n| n.as_str().to_owned())
                            .unwrap_or_default(),
                    });
                }
            }
        }
        Ok(uses)
    }

    /// Key pairs named by a launch template version or a launch configuration.
    pub(super) async fn key_names(&self) -> Result<BTreeSet<String>, CloudError> {
        let (versions, configurations) =
            futures::try_join!(self.template_versions(), self.configurations())?;
        Ok(versions
            .into_iter()
            .filter_map(|v| v.key)
            .chain(configurations.into_iter().filter_map(|c| c.2))
            .collect())
    }

    /// Which of `ids` are in an Auto Scaling group.
    pub(super) async fn members(&self, ids: &[String]) -> Result<BTreeSet<String>, CloudError> {
        let mut found = BTreeSet::new();
        for chunk in ids.chunks(ASG_IDS) {
            let mut pages = self
                .asg
                .describe_auto_scaling_instances()
                .set_instance_ids(Some(chunk.to_vec()))
                .max_records(ASG_IDS as i32)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|e| map_err("DescribeAutoScalingInstances", &self.region, e))?;
                found.extend(
                    page.auto_scaling_instances()
                        .iter()
                        .filter_map(|i| i.instance_id().map(str::to_owned)),
                );
            }
        }
        Ok(found)
    }
}

impl AmiHousekeeping for Ec2Amis {
    fn region(&self) -> &str {
        &self.region
    }

    async fn owned_images(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<OwnedImage>, CloudError> {
        self.owned(tags).await
    }

    async fn uses_of(&self, image_ids: &[String]) -> Result<Vec<AmiUse>, CloudError> {
        self.uses_of_ids(image_ids).await
    }

    async fn launch_permissions(
        &self,
        image_id: &str,
    ) -> Result<Vec<LaunchPermission>, CloudError> {
        self.permissions(image_id).await
    }

    async fn registered_snapshots(&self) -> Result<BTreeMap<String, Vec<String>>, CloudError> {
        self.snapshot_owners().await
    }

    async fn tagged_snapshots(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Snapshot>, CloudError> {
        self.snapshots_tagged(tags).await
    }

    async fn group_members(&self, ids: &[String]) -> Result<BTreeSet<String>, CloudError> {
        self.members(ids).await
    }

    async fn launch_key_names(&self) -> Result<BTreeSet<String>, CloudError> {
        self.key_names().await
    }

    async fn deregister(&self, image_id: &str) -> Result<(), CloudError> {
        self.ec2
            .deregister_image()
            .image_id(image_id)
            .delete_associated_snapshots(true)
            .send()
            .await
            .map_err(|e| map_err("DeregisterImage", &self.region, e))?;
        Ok(())
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), CloudError> {
        self.ec2
            .delete_snapshot()
            .snapshot_id(snapshot_id)
            .send()
            .await
            .map_err(|e| map_err("DeleteSnapshot", &self.region, e))?;
        Ok(())
    }
}
