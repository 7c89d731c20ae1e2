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

    /// Adds an image to `region` owned by `owner` (`self` for ours, `amazon`, an account id):
    /// a base AMI query with owners, and the lookup of our own AMIs, see it only when the
    /// owner matches. An image added without an owner matches any owners.
    pub fn add_owned_image(&self, region: &str, image: Image, owner: &str) {
        self.state
            .image_owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(image.id.clone(), owner.to_owned());
        self.add_image(region, image);
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

    /// Whether `image` belongs to one of `owners` (any owner when none is asked for, or when
    /// the test named none for it).
    fn owned_by(&self, image: &Image, owners: &[String]) -> bool {
        let known = self
            .cloud
            .state
            .image_owners
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        owners.is_empty() || known.get(&image.id).is_none_or(|o| owners.contains(o))
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
            .filter(|i| self.owned_by(i, &q.owners))
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
            .filter(|i| has_tags(i, tags) && self.owned_by(i, &["self".to_owned()]))
            .collect())
    }

    /// As the adapter calls EC2: one DescribeImages per [`crate::aws::FILTER_VALUES`] ids, each
    /// a call of its own (numbered, logged, faulted); unknown ids are left out of the answer.
    async fn describe_images(&self, ids: &[String]) -> Result<BTreeMap<String, Image>, CloudError> {
        let mut out = BTreeMap::new();
        for chunk in ids.chunks(crate::aws::FILTER_VALUES) {
            self.cloud.call("DescribeImages", &self.region).await?;
            for i in self.images().into_iter().filter(|i| chunk.contains(&i.id)) {
                out.insert(i.id.clone(), i);
            }
        }
        Ok(out)
    }
}
