//! EC2 calls gears needs for a bake: find the base AMI, find AMIs already baked (by tags).

use super::CloudError;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ec2::types::Filter;
use std::collections::BTreeMap;

/// An EC2 client for one region.
#[derive(Clone)]
pub struct Ec2 {
    client: aws_sdk_ec2::Client,
    region: String,
}

/// An AMI as gears sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub creation_date: String,
    pub tags: BTreeMap<String, String>,
}

fn map_err<E, R>(
    operation: &'static str,
    region: &str,
    e: aws_sdk_ec2::error::SdkError<E, R>,
) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = DisplayErrorContext(&e).to_string();
    if text.contains("no credentials")
        || text.contains("NoCredentials")
        || text.contains("credentials provider")
    {
        return CloudError::NoCredentials(text);
    }
    CloudError::Api {
        operation,
        region: region.to_owned(),
        code: e.code().map(str::to_owned),
        message: e.message().map(str::to_owned).unwrap_or(text),
    }
}

impl Ec2 {
    /// A client for `region`. `endpoint` overrides the endpoint (otherwise the SDK reads
    /// `AWS_ENDPOINT_URL[_EC2]` itself).
    pub async fn connect(region: &str, endpoint: Option<&str>) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()));
        if let Some(e) = endpoint {
            loader = loader.endpoint_url(e);
        }
        let conf = loader.load().await;
        Ec2 {
            client: aws_sdk_ec2::Client::new(&conf),
            region: region.to_owned(),
        }
    }

    /// The region of this client.
    pub fn region(&self) -> &str {
        &self.region
    }

    async fn describe(
        &self,
        ids: Vec<String>,
        owners: Vec<String>,
        filters: Vec<Filter>,
    ) -> Result<Vec<Image>, CloudError> {
        let mut req = self.client.describe_images();
        if !ids.is_empty() {
            req = req.set_image_ids(Some(ids));
        }
        if !owners.is_empty() {
            req = req.set_owners(Some(owners));
        }
        if !filters.is_empty() {
            req = req.set_filters(Some(filters));
        }
        let out = req
            .send()
            .await
            .map_err(|e| map_err("DescribeImages", &self.region, e))?;
        Ok(out
            .images()
            .iter()
            .map(|i| Image {
                id: i.image_id().unwrap_or_default().to_owned(),
                name: i.name().unwrap_or_default().to_owned(),
                creation_date: i.creation_date().unwrap_or_default().to_owned(),
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
            })
            .collect())
    }

    /// The base AMI: by id, or the newest match of a name pattern, owners and tags.
    pub async fn find_base_ami(
        &self,
        id: Option<&str>,
        name: Option<&str>,
        owners: &[String],
        tags: &BTreeMap<String, String>,
    ) -> Result<Option<Image>, CloudError> {
        if let Some(id) = id {
            return match self.describe(vec![id.to_owned()], vec![], vec![]).await {
                Ok(v) => Ok(v.into_iter().next()),
                Err(CloudError::Api { code: Some(c), .. }) if c.starts_with("InvalidAMIID") => {
                    Ok(None)
                }
                Err(e) => Err(e),
            };
        }
        let mut filters = vec![Filter::builder().name("state").values("available").build()];
        if let Some(n) = name {
            filters.push(Filter::builder().name("name").values(n).build());
        }
        for (k, v) in tags {
            filters.push(Filter::builder().name(format!("tag:{k}")).values(v).build());
        }
        let mut found = self.describe(vec![], owners.to_vec(), filters).await?;
        // Newest wins; CreationDate has one-second resolution, so the name breaks ties.
        found.sort_by(|a, b| (&a.creation_date, &a.name).cmp(&(&b.creation_date, &b.name)));
        Ok(found.pop())
    }

    /// Our own available AMIs carrying all of `tags`.
    pub async fn find_by_tags(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Image>, CloudError> {
        let mut filters: Vec<Filter> = tags
            .iter()
            .map(|(k, v)| Filter::builder().name(format!("tag:{k}")).values(v).build())
            .collect();
        filters.push(Filter::builder().name("state").values("available").build());
        self.describe(vec![], vec!["self".to_owned()], filters)
            .await
    }
}
