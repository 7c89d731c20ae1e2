//! The fake's EC2 images: [`FakeImages`], and the images a test puts in a region.

use super::{glob, FakeCloud};
use crate::aws::{has_tags, BaseAmiQuery, CloudError, Image, Images};
use std::collections::BTreeMap;

impl FakeCloud {
    /// Adds an image to `region`.
    pub fn add_image(&self, region: &str, image: Image) {
        self.state
            .images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(region.to_owned())
            .or_default()
            .push(image);
    }
}

/// The fake's [`Images`] of one region.
pub struct FakeImages {
    pub(super) cloud: FakeCloud,
    pub(super) region: String,
}

impl FakeImages {
    fn images(&self) -> Vec<Image> {
        self.cloud
            .state
            .images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.region)
            .cloned()
            .unwrap_or_default()
    }
}

impl Images for FakeImages {
    fn region(&self) -> &str {
        &self.region
    }

    async fn find_base_ami(&self, q: &BaseAmiQuery) -> Result<Option<Image>, CloudError> {
        self.cloud.call("DescribeImages", &self.region).await?;
        let images = self.images();
        if let Some(id) = &q.id {
            return Ok(images.into_iter().find(|i| &i.id == id));
        }
        let mut found: Vec<Image> = images
            .into_iter()
            .filter(|i| i.state == "available" && has_tags(i, &q.tags))
            .filter(|i| q.name.as_ref().is_none_or(|n| glob(n, &i.name)))
            .collect();
        found.sort_by(|a, b| (&a.creation_date, &a.name).cmp(&(&b.creation_date, &b.name)));
        Ok(found.pop())
    }

    async fn find_by_tags(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Image>, CloudError> {
        self.cloud.call("DescribeImages", &self.region).await?;
        Ok(self
            .images()
            .into_iter()
            .filter(|i| has_tags(i, tags))
            .collect())
    }
}
