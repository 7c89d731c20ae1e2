//! The component file's `encrypt:`: the AMIs' boot volumes encrypted with the organisation's
//! KMS keys (Packer's `encrypt_boot`, `kms_key_id`, `region_kms_key_ids`), and the check that
//! AMIs to be shared are not encrypted with the AWS-managed key `aws/ebs`, which AWS cannot
//! share (another account can never be given use of it).

use super::file::Region;
use serde::de::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A KMS key as EC2's `KmsKeyId` takes it: a key id, an alias (`alias/...`), or the ARN of a
/// key or alias.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct KmsKey(pub String);

/// The AWS-managed EBS key's alias, which cannot be shared.
const AWS_MANAGED: &str = "alias/aws/ebs";

impl KmsKey {
    /// The region of a key or alias ARN (`None` for an id or an alias name, which mean the
    /// region they are used in).
    pub fn region(&self) -> Option<&str> {
        self.0
            .starts_with("arn:")
            .then(|| self.0.split(':').nth(3))
            .flatten()
    }

    /// The AWS-managed key (`alias/aws/ebs`, by name or ARN): AWS cannot share AMIs
    /// encrypted with it.
    pub fn is_aws_managed(&self) -> bool {
        self.0 == AWS_MANAGED || self.0.ends_with(&format!(":{AWS_MANAGED}"))
    }
}

impl FromStr for KmsKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let re = regex::Regex::new(concat!(
            r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            r"|mrk-[0-9a-f]{32}",
            r"|alias/[A-Za-z0-9/_-]{1,250}",
            r"|arn:aws(?:-[a-z]+)*:kms:[a-z]{2}(?:-[a-z]+)+-[0-9]:[0-9]{12}:(?:key/(?:[0-9a-f-]{36}|mrk-[0-9a-f]{32})|alias/[A-Za-z0-9/_-]{1,250}))$"
        ))
        .expect("valid regex");
        if re.is_match(s) {
            Ok(KmsKey(s.to_owned()))
        } else {
            Err("expected a KMS key: a key id, alias/<name>, or a key or alias ARN like arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab".to_owned())
        }
    }
}

impl<'de> Deserialize<'de> for KmsKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::units::parsed(d, str::parse)
    }
}

impl fmt::Display for KmsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `encrypt:`: encrypt the boot volumes of the AMIs. Without `kms_key_id` the build region's
/// AMI is encrypted with the account's default EBS key (`aws/ebs`, unless the account set
/// another), and so is each copy without a key in `region_kms_key_ids`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encrypt {
    /// The key in the build region (the first of `ami_regions`).
    pub kms_key_id: Option<KmsKey>,
    /// The key of each region the AMI is copied to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub region_kms_key_ids: BTreeMap<String, KmsKey>,
}

/// What is wrong, at which key of the file (the map key for one region's entry).
pub type Problem = (String, String);

impl Encrypt {
    /// The key each region's AMI is encrypted with (`None`: the account's default key there).
    pub fn key_of(&self, regions: &[Region], region: &str) -> Option<&KmsKey> {
        if regions.first().is_some_and(|r| r.0 == region) {
            self.kms_key_id.as_ref()
        } else {
            self.region_kms_key_ids.get(region)
        }
    }

    /// Checks the keys against `ami_regions` (the first is the build region) and, when the
    /// AMIs are shared, that none is left to the AWS-managed key.
    pub fn check(&self, regions: &[Region], shared: bool) -> Result<(), Problem> {
        let Some(build) = regions.first() else {
            return Ok(());
        };
        for (region, key) in &self.region_kms_key_ids {
            if region == &build.0 {
                return Err((region.clone(), format!("`{region}` is the build region (the first of ami_regions): its key is `encrypt.kms_key_id`")));
            }
            if !regions.iter().any(|r| &r.0 == region) {
                return Err((region.clone(), format!("`{region}` is not in ami_regions: region_kms_key_ids names the regions the AMI is copied to")));
            }
            wrong_region(key, region).map_err(|m| (region.clone(), m))?;
        }
        if !self.region_kms_key_ids.is_empty() {
            if let Some(r) =
                (regions[1..].iter()).find(|r| !self.region_kms_key_ids.contains_key(&r.0))
            {
                return Err(("region_kms_key_ids".to_owned(), format!("the AMI is copied to `{}`, which has no key here: once the mapping is given, every region past the first needs one", r.0)));
            }
        }
        if let Some(key) = &self.kms_key_id {
            wrong_region(key, &build.0).map_err(|m| ("kms_key_id".to_owned(), m))?;
        }
        if !shared {
            return Ok(());
        }
        let unshareable = "AWS cannot share an AMI encrypted with the AWS-managed key aws/ebs";
        match &self.kms_key_id {
            None => return Err(("encrypt".to_owned(), format!("{unshareable}: the AMIs are shared (`share:`), so set `encrypt.kms_key_id` to a customer managed key the accounts may use"))),
            Some(k) if k.is_aws_managed() => return Err(("kms_key_id".to_owned(), format!("{unshareable}: the AMIs are shared (`share:`), so name a customer managed key the accounts may use"))),
            Some(_) => {}
        }
        for region in &regions[1..] {
            match self.region_kms_key_ids.get(&region.0) {
                None => return Err(("encrypt".to_owned(), format!("{unshareable}: the AMIs are shared (`share:`), so `encrypt.region_kms_key_ids` needs a customer managed key for `{}` (it would otherwise get its default key)", region.0))),
                Some(k) if k.is_aws_managed() => return Err((region.0.clone(), format!("{unshareable}: the AMIs are shared (`share:`), so name a customer managed key for `{}`", region.0))),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// The most characters EC2 allows in a tag value.
const MAX_TAG_VALUE: usize = 256;

impl Encrypt {
    /// How the AMIs of a bake with these settings into `regions` are encrypted, as the AMI tag
    /// [`crate::tags::ENCRYPT`] records it: each region (sorted) with its key, `default` for
    /// the account's default EBS key there, e.g. `eu-west-1=alias/amis-euw1
    /// us-east-1=alias/amis`. Longer than a tag value may be: `fnv1a64:` and that text's
    /// digest (16 hex digits).
    pub fn record(&self, regions: &[Region]) -> String {
        let mut each: Vec<String> = regions
            .iter()
            .map(|r| {
                let key = self
                    .key_of(regions, &r.0)
                    .map_or("default", |k| k.0.as_str());
                format!("{}={key}", r.0)
            })
            .collect();
        each.sort();
        let text = each.join(" ");
        if text.chars().count() <= MAX_TAG_VALUE {
            return text;
        }
        // FNV-1a, 64 bits: stable across builds and Rust versions, unlike std's hasher.
        let digest = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        format!("fnv1a64:{digest:016x}")
    }
}

/// A key or alias ARN of another region cannot encrypt in `region`.
fn wrong_region(key: &KmsKey, region: &str) -> Result<(), String> {
    match key.region() {
        Some(r) if r != region => Err(format!(
            "`{key}` is a key of {r}: a key encrypts only in its own region, here {region}"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions(r: &[&str]) -> Vec<Region> {
        r.iter().map(|r| Region((*r).to_owned())).collect()
    }

    fn encrypt(yaml: &str) -> Encrypt {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn keys_are_ids_aliases_or_arns() {
        for ok in [
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "mrk-1234abcd12ab34cd56ef1234567890ab",
            "alias/amis",
            "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/amis",
        ] {
            assert!(ok.parse::<KmsKey>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            "amis",
            "alias/",
            "arn:aws:kms:eu-west-1:1234:key/x",
            "arn:aws:iam::123456789012:role/x",
        ] {
            assert!(bad.parse::<KmsKey>().is_err(), "{bad}");
        }
        let e = serde_yaml::from_str::<Encrypt>("kms_key_id: amis\n").unwrap_err();
        assert!(e.to_string().contains("expected a KMS key"), "{e}");
        assert_eq!(e.location().map(|l| (l.line(), l.column())), Some((1, 13)));
        assert!(serde_yaml::from_str::<Encrypt>("kms_key: alias/a\n").is_err());
    }

    #[test]
    fn a_shared_ami_needs_a_customer_managed_key_in_every_region() {
        let two = regions(&["us-east-1", "eu-west-1"]);
        let full = encrypt("kms_key_id: alias/amis\nregion_kms_key_ids: {eu-west-1: alias/amis}\n");
        assert_eq!(full.check(&two, true), Ok(()));
        assert_eq!(
            full.key_of(&two, "eu-west-1").map(|k| k.0.as_str()),
            Some("alias/amis")
        );
        // Not shared: the default key is allowed everywhere.
        assert_eq!(Encrypt::default().check(&two, false), Ok(()));
        let (at, why) = Encrypt::default().check(&two, true).unwrap_err();
        assert_eq!(at, "encrypt");
        assert!(
            why.contains("aws/ebs") && why.contains("kms_key_id"),
            "{why}"
        );
        let managed = encrypt("kms_key_id: alias/aws/ebs\n");
        assert_eq!(managed.check(&two[..1], true).unwrap_err().0, "kms_key_id");
        let (at, why) = encrypt("kms_key_id: alias/amis\n")
            .check(&two, true)
            .unwrap_err();
        assert_eq!(at, "encrypt");
        assert!(why.contains("`eu-west-1`"), "{why}");
        let managed_copy = encrypt(
            "kms_key_id: alias/amis\nregion_kms_key_ids: {eu-west-1: arn:aws:kms:eu-west-1:123456789012:alias/aws/ebs}\n",
        );
        assert_eq!(managed_copy.check(&two, true).unwrap_err().0, "eu-west-1");
    }

    #[test]
    fn region_keys_name_copy_regions_and_keys_of_that_region() {
        let two = regions(&["us-east-1", "eu-west-1"]);
        let elsewhere = encrypt("region_kms_key_ids: {ap-south-1: alias/a}\n");
        assert!(elsewhere
            .check(&two, false)
            .unwrap_err()
            .1
            .contains("not in ami_regions"));
        let three = regions(&["us-east-1", "eu-west-1", "eu-central-1"]);
        let (at, why) = encrypt("region_kms_key_ids: {eu-west-1: alias/a}\n")
            .check(&three, false)
            .unwrap_err();
        assert_eq!(at, "region_kms_key_ids");
        assert!(why.contains("`eu-central-1`"), "{why}");
        let build = encrypt("region_kms_key_ids: {us-east-1: alias/a}\n");
        assert!(build
            .check(&two, false)
            .unwrap_err()
            .1
            .contains("build region"));
        let foreign = encrypt(
            "region_kms_key_ids: {eu-west-1: \"arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab\"}\n",
        );
        let (at, why) = foreign.check(&two, false).unwrap_err();
        assert_eq!(at, "eu-west-1");
        assert!(why.contains("a key of us-east-1"), "{why}");
    }

    /// The record of a bake's encryption: every region's key, in region order whatever the
    /// file's order, `default` where the account's default key encrypts; bounded to a tag
    /// value's 256 characters by a digest.
    #[test]
    fn the_record_names_each_regions_key_and_fits_a_tag() {
        let two = regions(&["us-east-1", "eu-west-1"]);
        let e = encrypt("{kms_key_id: alias/amis, region_kms_key_ids: {eu-west-1: alias/euw1}}");
        assert_eq!(e.record(&two), "eu-west-1=alias/euw1 us-east-1=alias/amis");
        assert_eq!(
            encrypt("{}").record(&two),
            "eu-west-1=default us-east-1=default"
        );
        assert_eq!(
            encrypt("{kms_key_id: alias/amis}").record(&two),
            "eu-west-1=default us-east-1=alias/amis"
        );
        let long = format!("alias/{}", "k".repeat(240));
        let e = encrypt(&format!("{{kms_key_id: {long}}}"));
        let r = e.record(&two);
        assert!(r.starts_with("fnv1a64:") && r.len() == 24, "{r}");
        assert_eq!(r, e.record(&two), "the same settings, the same record");
        let other = encrypt(&format!("{{kms_key_id: {long}x}}"));
        assert_ne!(r, other.record(&two));
    }
}
