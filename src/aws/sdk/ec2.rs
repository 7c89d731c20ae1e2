//! [`Images`] and [`Instances`] on EC2: find the base AMI and AMIs already baked (by tags);
//! launch, watch, and terminate test instances.

use super::errors::map_err;
use crate::aws::{
    has_tags, BaseAmiQuery, CloudError, ErrorKind, Image, Images, Instance, Instances, LaunchSpec,
    SecurityGroup, FILTER_VALUES,
};
use aws_sdk_ec2::types::{
    Filter, IamInstanceProfileSpecification, InstanceType, ResourceType, ShutdownBehavior, Tag,
    TagSpecification,
};
use std::collections::BTreeMap;

/// An EC2 client for one region, made from the shared configuration.
#[derive(Clone)]
pub struct Ec2 {
    client: aws_sdk_ec2::Client,
    /// Parameter Store of the same region (a base AMI named by an SSM parameter).
    ssm: aws_sdk_ssm::Client,
    region: String,
}

/// The largest page EC2 gives of images, instances, snapshots (5 to 1000).
pub(super) const EC2_PAGE: i32 = 1000;

/// The instance states that still use an AMI and a key pair: all but `terminated`.
pub(super) fn not_terminated() -> Filter {
    Filter::builder()
        .name("instance-state-name")
        .values("pending")
        .values("running")
        .values("shutting-down")
        .values("stopping")
        .values("stopped")
        .build()
}

/// `value` as an EC2 filter value that matches it: every character a filter may read as a
/// pattern or an escape (`*`, `?`, `\`, `[`, `]`) becomes `?`, which matches exactly one
/// character on AWS and on moto alike (moto ignores EC2's `\*` escape: measured). The filter may
/// then match a little more than the value (`7.0.?` also matches `7.0.1`), so results must be
/// compared exactly ([`has_tags`]).
pub(super) fn filter_value(value: &str) -> String {
    value
        .chars()
        .map(|c| if "*?\\[]".contains(c) { '?' } else { c })
        .collect()
}

/// Whether GetConsoleOutput's `Latest` works on `instance_type`: Nitro types only; the Xen
/// families (previous generations and a few current ones) refuse it.
fn console_latest_supported(instance_type: &str) -> bool {
    const XEN: [&str; 22] = [
        "t1", "t2", "m1", "m2", "m3", "m4", "c1", "c3", "c4", "r3", "r4", "i2", "i3", "d2", "g2",
        "g3", "p2", "p3", "x1", "x1e", "h1", "f1",
    ];
    let family = instance_type.split('.').next().unwrap_or_default();
    // `m4.16xlarge` is Nitro; `i3.metal` and other metal types are too.
    !(XEN.contains(&family) && instance_type != "m4.16xlarge" && !instance_type.ends_with(".metal"))
}

/// An image as EC2 describes it.
pub(super) fn image(i: &aws_sdk_ec2::types::Image) -> Image {
    Image {
        id: i.image_id().unwrap_or_default().to_owned(),
        name: i.name().unwrap_or_default().to_owned(),
        state: i.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        owner: i.owner_id().unwrap_or_default().to_owned(),
        public: i.public().unwrap_or(false),
        creation_date: i.creation_date().unwrap_or_default().to_owned(),
        architecture: i
            .architecture()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default(),
        root_device_name: i.root_device_name().unwrap_or_default().to_owned(),
        tags: tags_of(i.tags()),
    }
}

/// EC2's tags as a map.
pub(super) fn tags_of(tags: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The launch's metadata options: the endpoint on, tokens required unless v1 is asked for.
fn metadata_options(imds: crate::aws::Imds) -> aws_sdk_ec2::types::InstanceMetadataOptionsRequest {
    use aws_sdk_ec2::types::{HttpTokensState, InstanceMetadataEndpointState};
    aws_sdk_ec2::types::InstanceMetadataOptionsRequest::builder()
        .http_endpoint(InstanceMetadataEndpointState::Enabled)
        .http_tokens(match imds {
            crate::aws::Imds::V2 => HttpTokensState::Required,
            crate::aws::Imds::V1 => HttpTokensState::Optional,
        })
        .build()
}

impl Ec2 {
    /// A client for `region` on the shared configuration.
    pub fn new(conf: &aws_config::SdkConfig, region: &str) -> Self {
        let ssm = aws_sdk_ssm::config::Builder::from(conf)
            .region(aws_sdk_ssm::config::Region::new(region.to_owned()))
            .build();
        let conf = aws_sdk_ec2::config::Builder::from(conf)
            .region(aws_sdk_ec2::config::Region::new(region.to_owned()))
            .build();
        Ec2 {
            client: aws_sdk_ec2::Client::from_conf(conf),
            ssm: aws_sdk_ssm::Client::from_conf(ssm),
            region: region.to_owned(),
        }
    }

    /// The client and region the sharing calls ([`super::share`]) use.
    fn share_client(&self) -> super::share::Ec2Client<'_> {
        super::share::Ec2Client {
            client: &self.client,
            region: &self.region,
        }
    }

    async fn describe(
        &self,
        ids: Vec<String>,
        owners: Vec<String>,
        filters: Vec<Filter>,
    ) -> Result<Vec<Image>, CloudError> {
        let mut req = self.client.describe_images();
        let by_id = !ids.is_empty();
        if by_id {
            req = req.set_image_ids(Some(ids));
        } else {
            // MaxResults cannot go with ImageIds; without ids, every page.
            req = req.max_results(EC2_PAGE);
        }
        if !owners.is_empty() {
            req = req.set_owners(Some(owners));
        }
        if !filters.is_empty() {
            req = req.set_filters(Some(filters));
        }
        let mut found = Vec::new();
        let mut pages = req.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_err("DescribeImages", &self.region, e))?;
            found.extend(page.images().iter().map(image));
        }
        Ok(found)
    }
}

impl Images for Ec2 {
    fn region(&self) -> &str {
        &self.region
    }

    async fn share(&self, image: &str, shares: &crate::accounts::Shares) -> Result<(), CloudError> {
        super::share::share(&self.share_client(), image, shares).await
    }

    async fn shares_of(&self, image: &str) -> Result<crate::aws::ImageShares, CloudError> {
        super::share::shares_of(&self.share_client(), image).await
    }

    async fn deprecate(
        &self,
        image: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), CloudError> {
        super::hygiene::deprecate(&self.client, &self.region, image, at).await
    }

    async fn protect(&self, image: &str, cooldown: bool) -> Result<(), CloudError> {
        super::hygiene::protect(&self.client, &self.region, image, cooldown).await
    }

    async fn parameter(&self, name: &str) -> Result<Option<crate::aws::Parameter>, CloudError> {
        super::hygiene::parameter(&self.ssm, &self.region, name).await
    }

    async fn find_base_ami(&self, q: &BaseAmiQuery) -> Result<Option<Image>, CloudError> {
        if let Some(id) = &q.id {
            return match self.describe(vec![id.clone()], vec![], vec![]).await {
                Ok(v) => Ok(v.into_iter().next()),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(CloudError::Api { code: Some(c), .. }) if c == "InvalidAMIID.Malformed" => {
                    Ok(None)
                }
                Err(e) => Err(e),
            };
        }
        let mut filters = vec![Filter::builder().name("state").values("available").build()];
        if let Some(n) = &q.name {
            // The name is a pattern on purpose (`amzn2-ami-hvm-*`).
            filters.push(Filter::builder().name("name").values(n).build());
        }
        for (k, v) in &q.tags {
            filters.push(tag_filter(k, v));
        }
        let mut found: Vec<Image> = self
            .describe(vec![], q.owners.clone(), filters)
            .await?
            .into_iter()
            .filter(|i| has_tags(i, &q.tags))
            .collect();
        // Newest wins; CreationDate has one-second resolution, so the name breaks ties.
        found.sort_by(|a, b| (&a.creation_date, &a.name).cmp(&(&b.creation_date, &b.name)));
        Ok(found.pop())
    }

    async fn find_by_tags(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Image>, CloudError> {
        let filters: Vec<Filter> = tags.iter().map(|(k, v)| tag_filter(k, v)).collect();
        // EC2 filters are patterns; the exact comparison decides.
        Ok(self
            .describe(vec![], vec!["self".to_owned()], filters)
            .await?
            .into_iter()
            .filter(|i| has_tags(i, tags))
            .collect())
    }

    async fn describe_images(&self, ids: &[String]) -> Result<BTreeMap<String, Image>, CloudError> {
        let mut out = BTreeMap::new();
        // A filter, not ImageIds: an id EC2 no longer knows is missing, never an error.
        for chunk in ids.chunks(FILTER_VALUES) {
            let ids = Filter::builder()
                .name("image-id")
                .set_values(Some(chunk.to_vec()));
            let req = self.client.describe_images().filters(ids.build());
            let req = req.include_deprecated(true).include_disabled(true);
            let mut pages = req.max_results(EC2_PAGE).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| map_err("DescribeImages", &self.region, e))?;
                out.extend(page.images().iter().map(image).map(|i| (i.id.clone(), i)));
            }
        }
        Ok(out)
    }
}

/// A filter on `name` for values starting with `prefix` (taken literally).
pub(super) fn prefix_filter(name: &str, prefix: &str) -> Filter {
    Filter::builder()
        .name(name)
        .values(format!("{}*", filter_value(prefix)))
        .build()
}

/// A filter on tag `key` for `value` (wildcard characters taken as any one character; compare
/// the results exactly).
pub(super) fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{key}"))
        .values(filter_value(value))
        .build()
}

fn instance(i: &aws_sdk_ec2::types::Instance) -> Instance {
    Instance {
        id: i.instance_id().unwrap_or_default().to_owned(),
        state: i
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_owned())
            .unwrap_or_default(),
        private_ip: i.private_ip_address().map(str::to_owned),
        public_ip: i.public_ip_address().map(str::to_owned),
        tags: i
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        launched_at: i.launch_time().and_then(|t| {
            t.fmt(aws_sdk_ec2::primitives::DateTimeFormat::DateTime)
                .ok()
        }),
    }
}

fn tag_spec(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

impl Instances for Ec2 {
    fn region(&self) -> &str {
        &self.region
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<Instance, CloudError> {
        use base64::Engine as _;
        let mut req = self
            .client
            .run_instances()
            .image_id(&spec.image_id)
            .instance_type(InstanceType::from(spec.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .tag_specifications(tag_spec(ResourceType::Instance, &spec.tags))
            .tag_specifications(tag_spec(ResourceType::Volume, &spec.tags))
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
            .metadata_options(metadata_options(spec.imds));
        if let Some(s) = &spec.subnet_id {
            req = req.subnet_id(s);
        }
        if !spec.security_group_ids.is_empty() {
            req = req.set_security_group_ids(Some(spec.security_group_ids.clone()));
        }
        if let Some(p) = &spec.instance_profile {
            let profile = if p.starts_with("arn:") {
                IamInstanceProfileSpecification::builder().arn(p).build()
            } else {
                IamInstanceProfileSpecification::builder().name(p).build()
            };
            req = req.iam_instance_profile(profile);
        }
        if let Some(k) = &spec.key_name {
            req = req.key_name(k);
        }
        if let Some(t) = &spec.client_token {
            req = req.client_token(t);
        }
        if let Some(u) = &spec.user_data {
            req = req.user_data(base64::engine::general_purpose::STANDARD.encode(u));
        }
        let out = req
            .send()
            .await
            .map_err(|e| map_err("RunInstances", &self.region, e))?;
        out.instances().first().map(instance).ok_or_else(|| {
            CloudError::api(
                "RunInstances",
                &self.region,
                None,
                "EC2 answered without an instance",
            )
        })
    }

    async fn describe(&self, id: &str) -> Result<Option<Instance>, CloudError> {
        match self
            .client
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .map(instance)
                .next()),
            Err(e) => match map_err("DescribeInstances", &self.region, e) {
                e if e.kind() == ErrorKind::NotFound => Ok(None),
                e => Err(e),
            },
        }
    }

    async fn status_checks(&self, id: &str) -> Result<Option<bool>, CloudError> {
        let out = self
            .client
            .describe_instance_status()
            .instance_ids(id)
            .include_all_instances(true)
            .send()
            .await
            .map_err(|e| map_err("DescribeInstanceStatus", &self.region, e))?;
        let Some(st) = out.instance_statuses().first() else {
            return Ok(None);
        };
        let ok = |s: Option<&aws_sdk_ec2::types::InstanceStatusSummary>| {
            s.and_then(|s| s.status()).map(|s| s.as_str().to_owned())
        };
        match (ok(st.instance_status()), ok(st.system_status())) {
            (None, None) => Ok(None),
            (a, b) => Ok(Some([a, b].iter().all(|x| {
                matches!(x.as_deref(), None | Some("ok") | Some("not-applicable"))
            }))),
        }
    }

    async fn terminate(&self, id: &str) -> Result<(), CloudError> {
        match self
            .client
            .terminate_instances()
            .instance_ids(id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match map_err("TerminateInstances", &self.region, e) {
                // Already gone: what terminate wanted.
                e if e.kind() == ErrorKind::NotFound => Ok(()),
                e => Err(e),
            },
        }
    }

    async fn set_tags(&self, id: &str, tags: &BTreeMap<String, String>) -> Result<(), CloudError> {
        self.client
            .create_tags()
            .resources(id)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| map_err("CreateTags", &self.region, e))?;
        Ok(())
    }

    async fn console_output(&self, id: &str) -> Result<String, CloudError> {
        use base64::Engine as _;
        // The latest output only where the instance type has it (Nitro): on Xen types (t2,
        // m4, c4...) `Latest=true` fails, exactly when a failed test wants the console.
        let kind = self
            .client
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .ok()
            .and_then(|o| {
                o.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .find_map(|i| i.instance_type().map(|t| t.as_str().to_owned()))
            });
        let ask = |latest: bool| {
            self.client
                .get_console_output()
                .instance_id(id)
                .set_latest(latest.then_some(true))
                .send()
        };
        let latest = kind.as_deref().is_none_or(console_latest_supported);
        let out = match ask(latest).await {
            Ok(out) => out,
            Err(e) => {
                let e = map_err("GetConsoleOutput", &self.region, e);
                if !latest || e.is_retryable() {
                    return Err(e);
                }
                // A type gears does not know refused the latest: the plain call.
                ask(false)
                    .await
                    .map_err(|e| map_err("GetConsoleOutput", &self.region, e))?
            }
        };
        let raw = out.output().unwrap_or_default();
        Ok(base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|_| raw.to_owned()))
    }

    async fn find_by_tags(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Instance>, CloudError> {
        let mut filters: Vec<Filter> = tags.iter().map(|(k, v)| tag_filter(k, v)).collect();
        filters.push(
            Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .values("stopping")
                .values("stopped")
                .build(),
        );
        let mut found = Vec::new();
        let mut pages = self
            .client
            .describe_instances()
            .set_filters(Some(filters))
            .max_results(EC2_PAGE)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_err("DescribeInstances", &self.region, e))?;
            found.extend(
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .map(instance)
                    .filter(|i| tags.iter().all(|(k, v)| i.tags.get(k) == Some(v))),
            );
        }
        Ok(found)
    }

    async fn key_pairs(&self, prefix: &str) -> Result<Vec<String>, CloudError> {
        let out = self
            .client
            .describe_key_pairs()
            .filters(prefix_filter("key-name", prefix))
            .send()
            .await
            .map_err(|e| map_err("DescribeKeyPairs", &self.region, e))?;
        // Key names that live instances use: a bake still running keeps its key pair.
        let mut used = std::collections::BTreeSet::new();
        let mut pages = self
            .client
            .describe_instances()
            .filters(prefix_filter("key-name", prefix))
            .filters(not_terminated())
            .max_results(EC2_PAGE)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_err("DescribeInstances", &self.region, e))?;
            for i in page.reservations().iter().flat_map(|r| r.instances()) {
                if let Some(k) = i.key_name() {
                    used.insert(k.to_owned());
                }
            }
        }
        Ok(out
            .key_pairs()
            .iter()
            .filter_map(|k| k.key_name())
            .filter(|n| n.starts_with(prefix) && !used.contains(*n))
            .map(str::to_owned)
            .collect())
    }

    async fn delete_key_pair(&self, name: &str) -> Result<(), CloudError> {
        self.client
            .delete_key_pair()
            .key_name(name)
            .send()
            .await
            .map_err(|e| map_err("DeleteKeyPair", &self.region, e))?;
        Ok(())
    }

    async fn security_groups(&self, prefix: &str) -> Result<Vec<SecurityGroup>, CloudError> {
        super::packer_leftovers::security_groups(&self.client, &self.region, prefix).await
    }

    async fn launch_templates(
        &self,
        prefix: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<crate::aws::NamedTemplate>, CloudError> {
        super::packer_leftovers::find(&self.client, &self.region, prefix, tags).await
    }

    async fn delete_launch_template(&self, id: &str) -> Result<(), CloudError> {
        super::packer_leftovers::delete(&self.client, &self.region, id).await
    }

    async fn delete_security_group(&self, id: &str) -> Result<(), CloudError> {
        self.client
            .delete_security_group()
            .group_id(id)
            .send()
            .await
            .map_err(|e| map_err("DeleteSecurityGroup", &self.region, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 24 item 12: `Latest` only where the type supports it.
    #[test]
    fn console_latest_only_on_nitro_types() {
        for t in [
            "t2.micro",
            "m4.large",
            "c4.xlarge",
            "r4.large",
            "i3.large",
            "x1e.xlarge",
            "t1.micro",
        ] {
            assert!(!console_latest_supported(t), "{t}");
        }
        for t in [
            "t3.micro",
            "m5.large",
            "c6g.large",
            "i3en.large",
            "m4.16xlarge",
            "i3.metal",
            "t4g.nano",
        ] {
            assert!(console_latest_supported(t), "{t}");
        }
    }

    #[test]
    fn filter_values_match_at_least_themselves() {
        assert_eq!(filter_value("7.0.1"), "7.0.1");
        assert_eq!(filter_value("7.0.*"), "7.0.?");
        assert_eq!(filter_value("a?b"), "a?b");
        assert_eq!(filter_value("a\\b[c]*"), "a?b?c??");
    }
}
