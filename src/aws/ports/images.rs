//! The images port: AMIs in one region, found by id, name or tags.

use crate::aws::CloudError;
use std::collections::BTreeMap;
use std::future::Future;

/// An AMI as gears sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Image {
    pub id: String,
    pub name: String,
    /// EC2's state: `available`, `pending`, `failed`, ...
    pub state: String,
    pub creation_date: String,
    /// The account that owns it (`OwnerId`); empty where unknown.
    pub owner: String,
    /// Anyone may launch it (EC2's `Public`), such as Amazon's own AMIs.
    pub public: bool,
    /// Its tags: in an account that does not own it, AWS shows none (the owner's tags stay
    /// with the owner).
    pub tags: BTreeMap<String, String>,
    /// EC2's `Architecture`: `x86_64`, `arm64`, ... (empty when not known).
    pub architecture: String,
    /// EC2's `RootDeviceName`: `/dev/xvda`, `/dev/sda1` (empty when not known).
    pub root_device_name: String,
}

/// How to find the base AMI: by id, or the newest of a name pattern, owners and tags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BaseAmiQuery {
    pub id: Option<String>,
    pub name: Option<String>,
    pub owners: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// AMIs in one region.
pub trait Images: Send + Sync {
    /// The region these calls go to.
    fn region(&self) -> &str;

    /// The base AMI: by id (`None` when it does not exist), or the newest available match.
    fn find_base_ami(
        &self,
        query: &BaseAmiQuery,
    ) -> impl Future<Output = Result<Option<Image>, CloudError>> + Send;

    /// Our own AMIs (any state) whose tags equal `tags`. Values are compared exactly: a `*` or
    /// `?` in a value is that character, never a wildcard.
    fn find_by_tags(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Vec<Image>, CloudError>> + Send;

    /// The images of these ids that EC2 shows (any owner that lets us see them, deprecated and
    /// disabled ones included), by id; an id EC2 does not know (deregistered, or never there)
    /// is missing from the answer, never an error. One DescribeImages per 200 ids (EC2's limit
    /// of values in a filter), each paged.
    fn describe_images(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Image>, CloudError>> + Send;

    /// Lets `shares` launch `image`, and its accounts create volumes from its snapshots;
    /// adding what is there already changes nothing.
    fn share(
        &self,
        image: &str,
        shares: &crate::accounts::Shares,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// The Parameter Store parameter `name` of this region (`None`: there is none), such as
    /// `/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64`.
    fn parameter(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Parameter>, CloudError>> + Send;

    /// Deprecates `image` at `at` (EnableImageDeprecation; setting it again replaces it).
    fn deprecate(
        &self,
        image: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Turns on `image`'s deregistration protection (EnableImageDeregistrationProtection),
    /// with EC2's 24-hour cooldown after it is disabled when `cooldown`.
    fn protect(
        &self,
        image: &str,
        cooldown: bool,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Who may launch `image` and create volumes from its snapshots, as EC2 answers.
    fn shares_of(
        &self,
        image: &str,
    ) -> impl Future<Output = Result<ImageShares, CloudError>> + Send;
}

/// A Parameter Store parameter as GetParameter answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub value: String,
    pub version: i64,
    /// `text` (AWS's public AMI parameters) or `aws:ec2:image` (checked by SSM to be an AMI).
    pub data_type: String,
}

/// Who may use an AMI, as EC2 answers: its launch permissions, and for each of its snapshots
/// the accounts that may create volumes from it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageShares {
    pub launch: crate::accounts::Shares,
    pub snapshots: BTreeMap<String, Vec<crate::accounts::AccountId>>,
    /// The account that owns the AMI, as EC2 answers (`OwnerId`).
    pub owner: Option<String>,
}

/// The most values EC2 takes in one filter (an `image-id` or `instance-id` filter).
pub const FILTER_VALUES: usize = 200;

/// Whether `image` carries every one of `tags` with exactly that value.
pub fn has_tags(image: &Image, tags: &BTreeMap<String, String>) -> bool {
    tags.iter()
        .all(|(k, v)| image.tags.get(k).is_some_and(|have| have == v))
}

/// Whether `s` has the form of an AMI id: `ami-` and 8 to 17 lowercase hex digits (EC2's ids
/// have 8, or 17 since 2018). The one check of that form: the component file's
/// `base_ami.id`, a `base_ami.ssm` parameter's value, `gears test --ami`.
pub fn is_ami_id(s: &str) -> bool {
    s.strip_prefix("ami-").is_some_and(|hex| {
        (8..=17).contains(&hex.len()) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    use super::is_ami_id;

    #[test]
    fn ami_ids_are_ami_and_8_to_17_lowercase_hex_digits() {
        for ok in ["ami-0123abcd", "ami-0123456789abcdef0", "ami-0123456789ab"] {
            assert!(is_ami_id(ok), "{ok}");
        }
        for bad in [
            "",
            "ami-",
            "ami-0123abc",
            "ami-0123456789abcdef01",
            "ami-0123ABCD",
            "ami-0123abcg",
            "AMI-0123abcd",
            " ami-0123abcd",
            "ami-0123abcd\n",
            "i-0123abcd",
            "resolve:ssm:/x",
        ] {
            assert!(!is_ami_id(bad), "{bad:?}");
        }
    }
}
