//! [`Groups`] and [`GroupTags`] on Auto Scaling: groups found, sized, their members and
//! processes, their tags.
use crate::aws::sdk::errors::map_err;
use crate::aws::sdk::fleet::group_view::group;
use crate::aws::sdk::fleet::AwsFleet;
use crate::aws::{CloudError, Group, GroupTag, GroupTags, Groups, MemberInfo, TAGS_PER_CALL};
use std::collections::BTreeMap;

impl Groups for AwsFleet {
    fn region(&self) -> &str {
        &self.region
    }

    async fn groups(
        &self,
        tags: &BTreeMap<String, String>,
        names: &[String],
    ) -> Result<Vec<Group>, CloudError> {
        use aws_sdk_autoscaling::types::Filter;
        // AWS takes at most 50 names a call: longer lists are asked for in chunks.
        let chunks: Vec<&[String]> = if names.is_empty() {
            vec![&[]]
        } else {
            names.chunks(50).collect()
        };
        let mut out = Vec::new();
        for chunk in chunks {
            let mut req = self.asg.describe_auto_scaling_groups();
            if !chunk.is_empty() {
                req = req.set_auto_scaling_group_names(Some(chunk.to_vec()));
            }
            for (k, v) in tags {
                req = req.filters(Filter::builder().name(format!("tag:{k}")).values(v).build());
            }
            let mut pages = req.into_paginator().send();
            while let Some(page) = pages.next().await {
                let page =
                    page.map_err(|e| map_err("DescribeAutoScalingGroups", &self.region, e))?;
                out.extend(
                    page.auto_scaling_groups()
                        .iter()
                        .map(group)
                        .filter(|g| tags.iter().all(|(k, v)| g.tags.get(k) == Some(v))),
                );
            }
        }
        Ok(out)
    }

    async fn describe_members(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, MemberInfo>, CloudError> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        // A filter, not InstanceIds: an instance the group launched a moment ago may not be
        // visible to EC2 yet, and InstanceIds would fail the whole call with NotFound. Such an
        // instance is simply missing from the answer (the deploy waits for it).
        // At most 200 values per filter (EC2's limit), so a large group takes a few calls.
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(200) {
            let mut pages = self
                .ec2
                .describe_instances()
                .filters(
                    aws_sdk_ec2::types::Filter::builder()
                        .name("instance-id")
                        .set_values(Some(chunk.to_vec()))
                        .build(),
                )
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| map_err("DescribeInstances", &self.region, e))?;
                for (r, i) in (page.reservations().iter())
                    .flat_map(|r| r.instances().iter().map(move |i| (r, i)))
                {
                    if let (Some(id), Some(img)) = (i.instance_id(), i.image_id()) {
                        out.insert(
                            id.to_owned(),
                            MemberInfo {
                                image: img.to_owned(),
                                private_ip: i.private_ip_address().map(str::to_owned),
                                public_ip: i.public_ip_address().map(str::to_owned),
                                account: r.owner_id().unwrap_or_default().to_owned(),
                                tags: (i.tags().iter())
                                    .filter_map(|t| {
                                        Some((t.key()?.to_owned(), t.value()?.to_owned()))
                                    })
                                    .collect(),
                            },
                        );
                    }
                }
            }
        }
        Ok(out)
    }

    async fn set_capacity(
        &self,
        group: &str,
        min: i32,
        max: i32,
        desired: i32,
    ) -> Result<(), CloudError> {
        self.asg
            .update_auto_scaling_group()
            .auto_scaling_group_name(group)
            .min_size(min)
            .max_size(max)
            .desired_capacity(desired)
            .send()
            .await
            .map_err(|e| map_err("UpdateAutoScalingGroup", &self.region, e))?;
        Ok(())
    }

    async fn terminate_member(&self, id: &str, decrement: bool) -> Result<(), CloudError> {
        self.asg
            .terminate_instance_in_auto_scaling_group()
            .instance_id(id)
            .should_decrement_desired_capacity(decrement)
            .send()
            .await
            .map_err(|e| map_err("TerminateInstanceInAutoScalingGroup", &self.region, e))?;
        Ok(())
    }

    async fn set_processes(
        &self,
        group: &str,
        processes: &[String],
        suspend: bool,
    ) -> Result<(), CloudError> {
        if processes.is_empty() {
            return Ok(());
        }
        if suspend {
            self.asg
                .suspend_processes()
                .auto_scaling_group_name(group)
                .set_scaling_processes(Some(processes.to_vec()))
                .send()
                .await
                .map_err(|e| map_err("SuspendProcesses", &self.region, e))?;
        } else {
            self.asg
                .resume_processes()
                .auto_scaling_group_name(group)
                .set_scaling_processes(Some(processes.to_vec()))
                .send()
                .await
                .map_err(|e| map_err("ResumeProcesses", &self.region, e))?;
        }
        Ok(())
    }

    async fn delete_group(&self, group: &str) -> Result<(), CloudError> {
        self.delete(group).await
    }
}

impl GroupTags for AwsFleet {
    async fn put_tags(
        &self,
        group: &str,
        tags: &BTreeMap<String, String>,
        propagate: bool,
    ) -> Result<(), CloudError> {
        self.put_tag_list(&GroupTag::all(group, tags, propagate))
            .await
    }

    async fn put_tag_list(&self, tags: &[GroupTag]) -> Result<(), CloudError> {
        use aws_sdk_autoscaling::types::Tag;
        for chunk in tags.chunks(TAGS_PER_CALL) {
            let tags: Vec<Tag> = chunk
                .iter()
                .map(|t| {
                    Tag::builder()
                        .resource_id(&t.group)
                        .resource_type("auto-scaling-group")
                        .key(&t.key)
                        .value(&t.value)
                        .propagate_at_launch(t.propagate)
                        .build()
                })
                .collect();
            self.asg
                .create_or_update_tags()
                .set_tags(Some(tags))
                .send()
                .await
                .map_err(|e| map_err("CreateOrUpdateTags", &self.region, e))?;
        }
        Ok(())
    }

    async fn delete_tags(&self, group: &str, keys: &[String]) -> Result<(), CloudError> {
        use aws_sdk_autoscaling::types::Tag;
        if keys.is_empty() {
            return Ok(());
        }
        let tags: Vec<Tag> = keys
            .iter()
            .map(|k| {
                Tag::builder()
                    .resource_id(group)
                    .resource_type("auto-scaling-group")
                    .key(k)
                    .build()
            })
            .collect();
        self.asg
            .delete_tags()
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| map_err("DeleteTags", &self.region, e))?;
        Ok(())
    }
}
