//! Reuse: an earlier bake of the same component, version and revision, if one has an available
//! AMI for every builder in every region, encrypted as the component file's `encrypt:` asks
//! (the AMIs' [`crate::tags::ENCRYPT`] record). [`select`] decides (pure); [`find`] asks AWS.

use super::plan::BakePlan;
use crate::aws::{has_tags, CloudError, Image, Images};
use crate::manifest::Amis;
use std::collections::BTreeMap;

/// An earlier bake whose AMIs can be reused.
#[derive(Debug, Clone, PartialEq)]
pub struct Reusable {
    pub run_id: String,
    pub created_at: String,
    pub ami_version: String,
    /// What each builder's AMIs record they were made from (its AMI in the build region).
    pub made_from: BTreeMap<String, super::made_from::MadeFrom>,
    /// How its AMIs were encrypted (the `gears:encrypt` tag), when recorded.
    pub encrypt: Option<String>,
    pub amis: Amis,
}

/// What the look for an earlier bake found.
#[derive(Debug, Clone, PartialEq)]
pub enum Earlier {
    /// No earlier bake has every AMI.
    None,
    /// One to reuse.
    Reuse(Reusable),
    /// The newest complete one records another encryption than `encrypt:` asks (or none, made
    /// before gears recorded it): never reused; bake again.
    OtherEncryption(Reusable),
}

/// What the plan's AMIs record of their encryption (`None`: the file has no `encrypt:`).
pub fn asked_encryption(plan: &BakePlan) -> Option<&str> {
    (plan.builders.first())
        .and_then(|b| b.tags.get(crate::tags::ENCRYPT))
        .map(String::as_str)
}

/// Why an earlier bake is not reused for its encryption, for the bake's progress.
pub fn other_encryption_line(plan: &BakePlan, earlier: &Reusable) -> String {
    let theirs = match &earlier.encrypt {
        Some(r) => format!("record the encryption `{r}`"),
        None => {
            "record no encryption (made without `encrypt:`, or before gears recorded it)".to_owned()
        }
    };
    let ours = match asked_encryption(plan) {
        Some(r) => format!("asks for `{r}`"),
        None => "has no `encrypt:`".to_owned(),
    };
    format!(
        "{} {} (git {}) is already baked (run {}), but its AMIs {theirs} and the component file {ours}: baking again",
        plan.component, plan.version, plan.git_sha, earlier.run_id
    )
}

/// The tags that say "the same component, version and revision".
pub fn same_bake_tags(plan: &BakePlan) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("COMPONENT_NAME".to_owned(), plan.component.clone()),
        ("COMPONENT_VERSION".to_owned(), plan.version.clone()),
        ("GIT_SHA".to_owned(), plan.git_sha.clone()),
    ])
}

/// Picks the bake to reuse from the images found per region: only available images whose tags
/// equal the plan's exactly; grouped by `gears:run-id` (images without one are ignored); a bake
/// counts only if it has an image for every builder of the plan in every region; the newest
/// such bake wins (by `CREATED_AT`, then image creation date, then run id). Images of different
/// bakes are never mixed. Only AMIs whose `gears:encrypt` record is the plan's count (neither
/// has one when the file has no `encrypt:`).
pub fn select(plan: &BakePlan, regions: &[String], found: &[(String, Image)]) -> Option<Reusable> {
    newest_complete(plan, regions, found, true)
}

/// [`select`], with or without the encryption record compared.
fn newest_complete(
    plan: &BakePlan,
    regions: &[String],
    found: &[(String, Image)],
    same_encryption: bool,
) -> Option<Reusable> {
    let want = same_bake_tags(plan);
    let asked = asked_encryption(plan);
    let other_encryption = |i: &Image| {
        same_encryption && i.tags.get(crate::tags::ENCRYPT).map(String::as_str) != asked
    };
    // run id -> (builder, region) -> image
    let mut by_run: BTreeMap<&str, BTreeMap<(&str, &str), &Image>> = BTreeMap::new();
    for (region, img) in found {
        if img.state != "available"
            || !has_tags(img, &want)
            || !regions.contains(region)
            || other_encryption(img)
        {
            continue;
        }
        let (Some(run), Some(builder)) = (
            img.tags.get(crate::tags::RUN_ID),
            img.tags.get(crate::tags::BUILDER),
        ) else {
            continue;
        };
        if run.is_empty() || !plan.builders.iter().any(|b| &b.name == builder) {
            continue;
        }
        let slot = by_run
            .entry(run.as_str())
            .or_default()
            .entry((builder.as_str(), region.as_str()))
            .or_insert(img);
        if img.creation_date > slot.creation_date {
            *slot = img;
        }
    }
    let wanted = plan.builders.len() * regions.len();
    let key = |imgs: &BTreeMap<(&str, &str), &Image>| {
        let tag = |i: &Image, k: &str| i.tags.get(k).cloned().unwrap_or_default();
        (
            imgs.values().map(|i| tag(i, "CREATED_AT")).max(),
            imgs.values().map(|i| i.creation_date.clone()).max(),
        )
    };
    let (run_id, imgs) = by_run
        .into_iter()
        .filter(|(_, imgs)| imgs.len() == wanted)
        .max_by(|(a, ia), (b, ib)| (key(ia), a).cmp(&(key(ib), b)))?;
    let any = imgs.values().next()?;
    let tag = |k: &str| any.tags.get(k).cloned();
    let mut amis = Amis::new();
    for b in &plan.builders {
        let per_region = regions
            .iter()
            .filter_map(|r| {
                imgs.get(&(b.name.as_str(), r.as_str()))
                    .map(|i| (r.clone(), i.id.clone()))
            })
            .collect();
        amis.insert(b.name.clone(), per_region);
    }
    Some(Reusable {
        run_id: run_id.to_owned(),
        created_at: tag("CREATED_AT").unwrap_or_default(),
        ami_version: tag("AMI_VERSION").unwrap_or_default(),
        made_from: made_from(plan, regions, &imgs),
        encrypt: tag(crate::tags::ENCRYPT),
        amis,
    })
}

/// What each builder's AMI in the build region (the first of `regions`) records it was made
/// from.
fn made_from(
    plan: &BakePlan,
    regions: &[String],
    imgs: &BTreeMap<(&str, &str), &Image>,
) -> BTreeMap<String, super::made_from::MadeFrom> {
    let Some(build) = regions.first() else {
        return BTreeMap::new();
    };
    (plan.builders.iter())
        .filter_map(|b| {
            let img = imgs.get(&(b.name.as_str(), build.as_str()))?;
            Some((b.name.clone(), super::made_from::MadeFrom::of(&img.tags)))
        })
        .collect()
}

/// Asks each region for images of the same component, version and revision, and selects: the
/// bake to reuse, else the newest complete one passed over for its encryption, if any.
pub async fn find<I: Images>(images: &[I], plan: &BakePlan) -> Result<Earlier, CloudError> {
    let want = same_bake_tags(plan);
    let mut found = Vec::new();
    for port in images {
        for img in port.find_by_tags(&want).await? {
            found.push((port.region().to_owned(), img));
        }
    }
    let regions: Vec<String> = images.iter().map(|i| i.region().to_owned()).collect();
    if let Some(r) = select(plan, &regions, &found) {
        return Ok(Earlier::Reuse(r));
    }
    Ok(match newest_complete(plan, &regions, &found, false) {
        Some(r) => Earlier::OtherEncryption(r),
        None => Earlier::None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bake::plan::PlannedBuilder;
    use crate::component::file::BuilderType;

    fn plan(builders: &[&str]) -> BakePlan {
        BakePlan {
            component: "hello".into(),
            version: "7.0.1".into(),
            git_sha: "abc".into(),
            repo: "r".into(),
            created_at: "202611241200".into(),
            ami_version: "7.0.1-202611241200".into(),
            run_id: "new".into(),
            build_region: "us-east-1".into(),
            copy_regions: vec!["eu-west-1".into()],
            builders: builders
                .iter()
                .map(|b| PlannedBuilder {
                    name: b.to_string(),
                    kind: BuilderType::AmazonEbs,
                    instance_type: "t3.micro".into(),
                    ami_name: format!("hello-{b}"),
                    tags: BTreeMap::new(),
                    run_tags: BTreeMap::new(),
                    base_ami: Default::default(),
                    architecture: None,
                    settings: Default::default(),
                })
                .collect(),
            run_tags: BTreeMap::new(),
            ansible_vars: Default::default(),
            warnings: vec![],
        }
    }

    fn regions() -> Vec<String> {
        vec!["us-east-1".into(), "eu-west-1".into()]
    }

    fn img(run: &str, created: &str, builder: &str, region: &str) -> (String, Image) {
        let tags = [
            ("COMPONENT_NAME", "hello"),
            ("COMPONENT_VERSION", "7.0.1"),
            ("GIT_SHA", "abc"),
            ("gears:run-id", run),
            ("gears:builder", builder),
            ("CREATED_AT", created),
            ("AMI_VERSION", &format!("7.0.1-{created}")),
            ("gears:base-ami", "ami-base"),
        ];
        (
            region.to_owned(),
            Image {
                id: format!("ami-{run}-{builder}-{region}"),
                name: format!("{run}-{builder}"),
                state: "available".into(),
                owner: String::new(),
                public: false,
                creation_date: format!("{created}Z"),
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            },
        )
    }

    fn full(run: &str, created: &str, builders: &[&str]) -> Vec<(String, Image)> {
        let mut v = Vec::new();
        for b in builders {
            for r in regions() {
                v.push(img(run, created, b, &r));
            }
        }
        v
    }

    #[test]
    fn the_newest_complete_bake_wins_in_builder_order() {
        let p = plan(&["web", "api"]);
        let mut found = full("old", "202601010000", &["web", "api"]);
        found.extend(full("new", "202602010000", &["web", "api"]));
        let r = select(&p, &regions(), &found).unwrap();
        assert_eq!(r.run_id, "new");
        assert_eq!(r.created_at, "202602010000");
        assert_eq!(r.ami_version, "7.0.1-202602010000");
        let web = &r.made_from["web"];
        assert_eq!(web.base_ami.as_deref(), Some("ami-base"));
        assert_eq!(web.parameter, None);
        assert_eq!(r.amis.keys().collect::<Vec<_>>(), ["web", "api"]);
        assert_eq!(
            r.amis.get("api").unwrap()["eu-west-1"],
            "ami-new-api-eu-west-1"
        );
    }

    #[test]
    fn bakes_are_never_mixed_and_incomplete_ones_never_reused() {
        let p = plan(&["web", "api"]);
        // Each bake misses something; together they would cover everything.
        let mut found = full("a", "202601010000", &["web"]);
        found.extend(full("b", "202602010000", &["api"]));
        assert_eq!(select(&p, &regions(), &found), None);
        // A region missing.
        let found: Vec<_> = full("c", "202601010000", &["web", "api"])
            .into_iter()
            .filter(|(r, _)| r == "us-east-1")
            .collect();
        assert_eq!(select(&p, &regions(), &found), None);
    }

    #[test]
    fn pending_images_and_newer_incomplete_bakes_are_passed_over() {
        let p = plan(&["web"]);
        let mut found = full("done", "202601010000", &["web"]);
        let mut pending = full("pending", "202603010000", &["web"]);
        pending[0].1.state = "pending".into();
        found.extend(pending);
        assert_eq!(select(&p, &regions(), &found).unwrap().run_id, "done");
    }

    #[test]
    fn tags_must_match_exactly() {
        let mut p = plan(&["web"]);
        p.version = "7.0.*".into();
        // EC2 would match 7.0.1 for a filter value of 7.0.*: select must not.
        assert_eq!(
            select(&p, &regions(), &full("a", "202601010000", &["web"])),
            None
        );
        // Images without a run id, or of another builder, are ignored.
        let p = plan(&["web"]);
        let mut found = full("x", "202601010000", &["web"]);
        for (_, i) in &mut found {
            i.tags.remove("gears:run-id");
        }
        assert_eq!(select(&p, &regions(), &found), None);
        assert_eq!(
            select(&p, &regions(), &full("y", "202601010000", &["worker"])),
            None
        );
    }

    /// A plan whose component file has `encrypt:` recorded as `record`.
    fn encrypted(builders: &[&str], record: &str) -> BakePlan {
        let mut p = plan(builders);
        for b in &mut p.builders {
            b.tags.insert(crate::tags::ENCRYPT.into(), record.into());
        }
        p
    }

    fn recording(mut found: Vec<(String, Image)>, record: &str) -> Vec<(String, Image)> {
        for (_, i) in &mut found {
            i.tags.insert(crate::tags::ENCRYPT.into(), record.into());
        }
        found
    }

    /// A bake is reused only when its AMIs record the encryption `encrypt:` asks: AMIs made
    /// before the record (or without `encrypt:`), or with other keys, are baked again, saying
    /// why; a file without `encrypt:` does not reuse encrypted AMIs either.
    #[tokio::test]
    async fn a_reuse_needs_the_encryption_encrypt_asks() {
        const KEYS: &str = "eu-west-1=default us-east-1=alias/amis";
        let asks = encrypted(&["web"], KEYS);
        let unrecorded = full("old", "202601010000", &["web"]);
        assert_eq!(select(&asks, &regions(), &unrecorded), None);
        let other = recording(
            full("other", "202602010000", &["web"]),
            "eu-west-1=default us-east-1=alias/old",
        );
        assert_eq!(select(&asks, &regions(), &other), None);
        assert_eq!(select(&plan(&["web"]), &regions(), &other), None);
        // The same record: reused, the newest such bake, past a newer one with another record.
        let mut found = recording(full("same", "202601150000", &["web"]), KEYS);
        found.extend(other.clone());
        let r = select(&asks, &regions(), &found).unwrap();
        assert_eq!(
            (r.run_id.as_str(), r.encrypt.as_deref()),
            ("same", Some(KEYS))
        );
        // Without `encrypt:` and without a record: reused as before.
        assert_eq!(
            select(&plan(&["web"]), &regions(), &unrecorded)
                .unwrap()
                .run_id,
            "old"
        );

        use crate::aws::Cloud;
        let cloud = crate::testing::FakeCloud::new();
        for (r, i) in unrecorded.into_iter().chain(other) {
            cloud.add_image(&r, i);
        }
        let ports = vec![
            cloud.images("us-east-1").await.unwrap(),
            cloud.images("eu-west-1").await.unwrap(),
        ];
        let Earlier::OtherEncryption(r) = find(&ports, &asks).await.unwrap() else {
            panic!("not passed over for its encryption")
        };
        assert_eq!(
            other_encryption_line(&asks, &r),
            format!("hello 7.0.1 (git abc) is already baked (run other), but its AMIs record the encryption `eu-west-1=default us-east-1=alias/old` and the component file asks for `{KEYS}`: baking again")
        );
        let old = select(
            &plan(&["web"]),
            &regions(),
            &full("old", "202601010000", &["web"]),
        )
        .unwrap();
        assert!(other_encryption_line(&asks, &old).contains("its AMIs record no encryption (made without `encrypt:`, or before gears recorded it) and the component file asks for"));
        assert_eq!(find(&ports, &plan(&["api"])).await.unwrap(), Earlier::None);
    }

    #[tokio::test(start_paused = true)]
    async fn find_asks_every_region_and_stops_at_a_throttled_call() {
        use crate::aws::{Cloud, ErrorKind};
        use crate::testing::{FakeCloud, Faults};
        let cloud = FakeCloud::new();
        for (r, i) in full("done", "202601010000", &["web"]) {
            cloud.add_image(&r, i);
        }
        let p = plan(&["web"]);
        let ports = vec![
            cloud.images("us-east-1").await.unwrap(),
            cloud.images("eu-west-1").await.unwrap(),
        ];
        let Earlier::Reuse(r) = find(&ports, &p).await.unwrap() else {
            panic!("no reuse")
        };
        assert_eq!(r.run_id, "done");
        assert_eq!(
            cloud.calls(),
            ["DescribeImages us-east-1", "DescribeImages eu-west-1"]
        );
        cloud.set_faults(Faults {
            fail_at: Some((4, ErrorKind::Throttled)),
            ..Default::default()
        });
        let e = find(&ports, &p).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Throttled);
        assert_eq!(
            crate::error::Error::from(e).exit(),
            crate::exit::Exit::Cloud
        );
    }
}
