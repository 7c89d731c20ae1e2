//! The fake's EC2 images: [`FakeImages`], and the images a test puts in a region.

use super::{glob, FakeCloud};
use crate::accounts::Shares;
use crate::aws::{has_tags, BaseAmiQuery, CloudError, Image, ImageShares, Images};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

/// The account the fake's own images belong to, when a test named no owner.
pub const FAKE_ACCOUNT: &str = "123456789012";

/// `to` with what `add` has that it lacks, in order.
fn add_missing<T: Clone + PartialEq>(to: &mut Vec<T>, add: &[T]) {
    for a in add {
        if !to.contains(a) {
            to.push(a.clone());
        }
    }
}

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
    pub fn add_owned_image(&self, region: &str, mut image: Image, owner: &str) {
        if owner.len() == 12 && owner.bytes().all(|b| b.is_ascii_digit()) {
            image.owner = owner.to_owned();
        }
        self.state
            .image_owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(image.id.clone(), owner.to_owned());
        self.add_image(region, image);
    }

    /// The same cloud as account `account` sees it, as AWS shows it: an image another account
    /// owns (one added with [`FakeCloud::add_owned_image`] and an account id) is seen only when
    /// shared with `account` (or owned by `amazon`), and then without its tags; its `owner`
    /// says whose it is. (Only images are kept per account; the fleet is one.)
    pub fn as_account(&self, account: &str) -> FakeCloud {
        FakeCloud {
            state: self.state.clone(),
            viewer: Some(account.to_owned()),
        }
    }

    /// Puts parameter `name` with `value` in `region`'s Parameter Store (a new version when it
    /// is there).
    pub fn put_parameter(&self, region: &str, name: &str, value: &str, data_type: &str) {
        let mut all = self
            .state
            .parameters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let key = (region.to_owned(), name.to_owned());
        let version = all.get(&key).map_or(1, |p| p.version + 1);
        all.insert(
            key,
            crate::aws::Parameter {
                name: name.to_owned(),
                value: value.to_owned(),
                version,
                data_type: data_type.to_owned(),
            },
        );
    }

    /// From now on a share answers as if it took and stores nothing.
    pub fn ignore_shares(&self) {
        self.state.shares_ignored.store(true, Ordering::SeqCst);
    }

    /// Who may launch `image`, as the fake holds it.
    pub fn shares_of_image(&self, image: &str) -> crate::aws::ImageShares {
        self.state
            .image_shares
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(image)
            .cloned()
            .unwrap_or_default()
    }
}

/// The fake's [`Images`] of one region.
pub struct FakeImages {
    pub(super) cloud: FakeCloud,
    pub(super) region: String,
}

impl FakeImages {
    /// The region's images as the account the fake acts as sees them.
    fn images(&self) -> Vec<Image> {
        let all = (self
            .cloud
            .state
            .images
            .lock()
            .unwrap_or_else(|p| p.into_inner()))
        .get(&self.region)
        .cloned()
        .unwrap_or_default();
        let Some(me) = self.cloud.viewer.clone() else {
            return all;
        };
        let owners = self
            .cloud
            .state
            .image_owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        all.into_iter()
            .filter_map(|mut image| {
                let owner = match owners.get(&image.id).map(String::as_str) {
                    None | Some("self") => FAKE_ACCOUNT.to_owned(),
                    Some(o) => o.to_owned(),
                };
                if owner == me {
                    return Some(image);
                }
                let shared = self
                    .cloud
                    .shares_of_image(&image.id)
                    .launch
                    .accounts
                    .iter()
                    .any(|a| a.0 == me);
                if !shared && owner != "amazon" {
                    return None;
                }
                image.tags.clear();
                image.public = owner == "amazon";
                image.owner = owner;
                Some(image)
            })
            .collect()
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

    /// As EC2: an image this region does not hold is `InvalidAMIID.NotFound`.
    async fn share(&self, image: &str, shares: &Shares) -> Result<(), CloudError> {
        self.cloud
            .call("ModifyImageAttribute", &self.region)
            .await?;
        if !self.images().iter().any(|i| i.id == image) {
            return Err(CloudError::api(
                "ModifyImageAttribute",
                &self.region,
                Some("InvalidAMIID.NotFound"),
                format!("The image id '[{image}]' does not exist"),
            ));
        }
        if self.cloud.state.shares_ignored.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut all = self
            .cloud
            .state
            .image_shares
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let held = all.entry(image.to_owned()).or_default();
        add_missing(&mut held.launch.accounts, &shares.accounts);
        add_missing(&mut held.launch.organizations, &shares.organizations);
        add_missing(
            &mut held.launch.organizational_units,
            &shares.organizational_units,
        );
        Ok(())
    }

    async fn parameter(&self, name: &str) -> Result<Option<crate::aws::Parameter>, CloudError> {
        self.cloud.call("GetParameter", &self.region).await?;
        let all = self
            .cloud
            .state
            .parameters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Ok(all.get(&(self.region.clone(), name.to_owned())).cloned())
    }

    async fn shares_of(&self, image: &str) -> Result<ImageShares, CloudError> {
        self.cloud
            .call("DescribeImageAttribute", &self.region)
            .await?;
        let owner = self.images().into_iter().find(|i| i.id == image).map(|i| {
            if i.owner.is_empty() {
                FAKE_ACCOUNT.to_owned()
            } else {
                i.owner
            }
        });
        Ok(crate::aws::ImageShares {
            owner,
            ..self.cloud.shares_of_image(image)
        })
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
