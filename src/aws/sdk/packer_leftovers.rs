//! What packer's builds leave that `gears reap` looks for: its security groups, with whether
//! any network interface uses them, and launch templates of no group by name prefix and tags
//! (its Spot templates: DescribeLaunchTemplates filtered on the tags, the prefix compared
//! here, and DeleteLaunchTemplate).

use super::ec2::{prefix_filter, tag_filter, tags_of, EC2_PAGE};
use super::errors::map_err;
use crate::aws::{CloudError, NamedTemplate, SecurityGroup};
use aws_sdk_ec2::types::Filter;
use std::collections::BTreeMap;

/// DescribeLaunchTemplates' largest page (1 to 200).
const PAGE: i32 = 200;

/// The launch templates whose names start with `prefix` and whose tags include `tags`.
pub(super) async fn find(
    client: &aws_sdk_ec2::Client,
    region: &str,
    prefix: &str,
    tags: &BTreeMap<String, String>,
) -> Result<Vec<NamedTemplate>, CloudError> {
    let filters = tags.iter().map(|(k, v)| tag_filter(k, v)).collect();
    let mut pages = client
        .describe_launch_templates()
        .set_filters(Some(filters))
        .max_results(PAGE)
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| map_err("DescribeLaunchTemplates", region, e))?;
        for t in page.launch_templates() {
            let (Some(id), Some(name)) = (t.launch_template_id(), t.launch_template_name()) else {
                continue;
            };
            let t = NamedTemplate {
                id: id.to_owned(),
                name: name.to_owned(),
                created_at: t.create_time().and_then(|c| {
                    c.fmt(aws_sdk_ec2::primitives::DateTimeFormat::DateTime)
                        .ok()
                }),
                tags: tags_of(t.tags()),
            };
            // Filter values are matched with wildcards: compare exactly.
            if t.name.starts_with(prefix) && tags.iter().all(|(k, v)| t.tags.get(k) == Some(v)) {
                found.push(t);
            }
        }
    }
    Ok(found)
}

/// Deletes the launch template `id` with its versions.
pub(super) async fn delete(
    client: &aws_sdk_ec2::Client,
    region: &str,
    id: &str,
) -> Result<(), CloudError> {
    client
        .delete_launch_template()
        .launch_template_id(id)
        .send()
        .await
        .map_err(|e| map_err("DeleteLaunchTemplate", region, e))?;
    Ok(())
}

/// Security groups whose names start with `prefix`, with whether any network interface uses
/// them.
pub(super) async fn security_groups(
    client: &aws_sdk_ec2::Client,
    region: &str,
    prefix: &str,
) -> Result<Vec<SecurityGroup>, CloudError> {
    let mut groups: Vec<(String, String)> = Vec::new();
    let mut pages = client
        .describe_security_groups()
        .filters(prefix_filter("group-name", prefix))
        .max_results(EC2_PAGE)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| map_err("DescribeSecurityGroups", region, e))?;
        for g in page.security_groups() {
            if let (Some(id), Some(name)) = (g.group_id(), g.group_name()) {
                if name.starts_with(prefix) {
                    groups.push((id.to_owned(), name.to_owned()));
                }
            }
        }
    }
    // One DescribeNetworkInterfaces for all of them (a group-id filter takes up to 200
    // values), not one per group.
    let mut used = std::collections::BTreeSet::new();
    let ids: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
    for chunk in ids.chunks(200) {
        let mut pages = client
            .describe_network_interfaces()
            .filters(
                Filter::builder()
                    .name("group-id")
                    .set_values(Some(chunk.to_vec()))
                    .build(),
            )
            .max_results(EC2_PAGE)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_err("DescribeNetworkInterfaces", region, e))?;
            for ni in page.network_interfaces() {
                used.extend(
                    ni.groups()
                        .iter()
                        .filter_map(|g| g.group_id().map(str::to_owned)),
                );
            }
        }
    }
    Ok(groups
        .into_iter()
        .map(|(id, name)| SecurityGroup {
            in_use: used.contains(&id),
            id,
            name,
        })
        .collect())
}
