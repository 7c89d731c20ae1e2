//! What a bake's AMIs were made from: the base AMI (`gears:base-ami`, which Packer fills in)
//! and the Parameter Store parameter it came from (`gears:base-ami-parameter`, which gears
//! writes per builder once the parameters are read), and, for a reused bake, what its AMIs
//! record of both: never what the component file's parameters give now.

use super::base::Bases;
use super::plan::{BakePlan, MAX_TAG_VALUE};
use super::reuse::Reusable;
use crate::component::Component;
use crate::manifest::{BaseAmiParameter, Manifest};
use std::collections::BTreeMap;

/// What one builder's AMIs record they were made from (the tags of its AMI in the build
/// region).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MadeFrom {
    /// The base AMI (`gears:base-ami`), when recorded.
    pub base_ami: Option<String>,
    /// The parameter that named it (`gears:base-ami-parameter` with `gears:base-ami`), when
    /// recorded.
    pub parameter: Option<BaseAmiParameter>,
}

impl MadeFrom {
    /// What an AMI's tags record.
    pub fn of(tags: &BTreeMap<String, String>) -> Self {
        let base_ami = tags.get(crate::tags::BASE_AMI).cloned();
        let parameter = tags
            .get(crate::tags::BASE_AMI_PARAMETER)
            .and_then(|v| v.rsplit_once(':'))
            .zip(base_ami.as_ref())
            .and_then(|((name, version), ami)| {
                Some(BaseAmiParameter {
                    name: name.to_owned(),
                    version: version.parse().ok()?,
                    ami: ami.clone(),
                })
            });
        MadeFrom {
            base_ami,
            parameter,
        }
    }
}

/// The `gears:base-ami-parameter` value of a parameter: its name and the version read
/// (`name:version`, Parameter Store's own selector form); none past EC2's 256 characters.
fn tag_value(p: &BaseAmiParameter) -> Option<String> {
    let v = format!("{}:{}", p.name, p.version);
    (v.chars().count() <= MAX_TAG_VALUE).then_some(v)
}

/// Whether `b`'s base AMI is the component's (not one of its own).
fn on_component_base(b: &super::plan::PlannedBuilder, component: &Component) -> bool {
    b.base_ami == component.base_ami
}

/// The parameter each builder's base AMI came from (its own, else the component's), as a tag
/// on its AMIs, so that a reuse of the bake can record it.
pub fn tag_parameters(plan: &mut BakePlan, component: &Component, bases: &Bases) {
    for b in &mut plan.builders {
        let p = match bases.parameters.get(&b.name) {
            Some(p) => Some(p),
            None if on_component_base(b, component) => bases.parameter.as_ref(),
            None => None,
        };
        if let Some(v) = p.and_then(tag_value) {
            b.tags.insert(crate::tags::BASE_AMI_PARAMETER.to_owned(), v);
        }
    }
}

/// The manifest of a bake made now: the parameters its base AMIs came from.
pub fn baked(manifest: Manifest, bases: &Bases) -> Manifest {
    Manifest {
        base_ami_parameter: bases.parameter.clone(),
        builder_base_ami_parameters: bases.parameters.clone(),
        ..manifest
    }
}

/// The manifest of a reused bake, described as that bake: its base AMI and parameters as its
/// AMIs record them (a builder on the component's base gives the component's; each builder of
/// its own gives its own). `base_now` (the component's base read now) stands in for a base AMI
/// the AMIs do not record, as before. Also returns, for the progress, the parameters the file
/// names that the AMIs do not record (made before gears recorded them): the manifest records
/// none for those rather than what the parameter gives now.
pub fn reused(
    plan: &BakePlan,
    component: &Component,
    found: Reusable,
    base_now: &str,
) -> (Manifest, Option<String>) {
    let recorded = |b: &super::plan::PlannedBuilder| found.made_from.get(&b.name);
    let (shared, own): (Vec<_>, Vec<_>) =
        (plan.builders.iter()).partition(|b| on_component_base(b, component));
    // The component's base: what a builder on it recorded, else (none on it, or none recorded)
    // the one read now, never another builder's own base.
    let base = (shared.iter())
        .find_map(|b| recorded(b)?.base_ami.clone())
        .unwrap_or_else(|| base_now.to_owned());
    let parameter = shared.iter().find_map(|b| recorded(b)?.parameter.clone());
    let parameters: BTreeMap<String, BaseAmiParameter> = (own.iter())
        .filter_map(|b| Some((b.name.clone(), recorded(b)?.parameter.clone()?)))
        .collect();
    let mut unrecorded = Vec::new();
    if component.base_ami.ssm.is_some() && !shared.is_empty() && parameter.is_none() {
        unrecorded.push("the component's".to_owned());
    }
    for b in own.iter().filter(|b| b.base_ami.ssm.is_some()) {
        if !parameters.contains_key(&b.name) {
            unrecorded.push(format!("builder `{}`'s", b.name));
        }
    }
    let note = (!unrecorded.is_empty()).then(|| {
        format!(
            "the reused AMIs do not record the parameter {} base AMI came from (baked before gears recorded it): the manifest records none rather than what the parameter gives now",
            unrecorded.join(" and ")
        )
    });
    let manifest = Manifest {
        base_ami_parameter: parameter,
        builder_base_ami_parameters: parameters,
        ..Manifest::reused(plan, found, &base)
    };
    (manifest, note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{image, tags};

    /// The plan of a component on the parameter `/golden/base` with builders `web` (on the
    /// component's base), `arm` (its own parameter) and `old` (its own id).
    fn component_and_plan() -> (Component, BakePlan) {
        let text = "component: svc\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {ssm: /golden/base}\nbuilders: [{type: amazon-ebs, name: web}, {type: amazon-ebs, name: arm, base_ami: {ssm: /golden/arm}}, {type: amazon-ebs, name: old, base_ami: {id: ami-0c0c0c0c0c0c0c0c0}}]\n";
        let c = crate::component::file::parse(std::path::Path::new("gears.yaml"), text).unwrap();
        let meta = crate::testing::metadata("1.0");
        let p = super::super::plan::plan(&c, &meta, "202611241200", "run").unwrap();
        (c, p)
    }

    fn param(name: &str, version: i64, ami: &str) -> BaseAmiParameter {
        BaseAmiParameter {
            name: name.into(),
            version,
            ami: ami.into(),
        }
    }

    #[test]
    fn each_builders_parameter_is_tagged_on_its_amis() {
        let (c, mut p) = component_and_plan();
        let bases = Bases {
            component: image("ami-0a0a0a0a0a0a0a0a0", &[]),
            parameter: Some(param("/golden/base", 4, "ami-0a0a0a0a0a0a0a0a0")),
            builders: BTreeMap::new(),
            parameters: BTreeMap::from([(
                "arm".to_owned(),
                param("/golden/arm", 7, "ami-0b0b0b0b0b0b0b0b0"),
            )]),
        };
        tag_parameters(&mut p, &c, &bases);
        let tag = |b: usize| p.builders[b].tags.get(crate::tags::BASE_AMI_PARAMETER);
        assert_eq!(tag(0).map(String::as_str), Some("/golden/base:4"));
        assert_eq!(tag(1).map(String::as_str), Some("/golden/arm:7"));
        assert_eq!(tag(2), None);
        let m = baked(
            Manifest::baked(&p, "ami-0a0a0a0a0a0a0a0a0", BTreeMap::new(), None),
            &bases,
        );
        assert_eq!(m.base_ami_parameter, bases.parameter);
        assert_eq!(m.builder_base_ami_parameters, bases.parameters);
        // Past EC2's 256 characters, no tag (a reuse then records none).
        let long = param(&format!("/{}", "x".repeat(260)), 1, "ami-0a0a0a0a0a0a0a0a0");
        assert_eq!(tag_value(&long), None);
    }

    fn reusable(made_from: &[(&str, &[(&str, &str)])]) -> Reusable {
        Reusable {
            run_id: "old-run".into(),
            created_at: "202601010000".into(),
            ami_version: "1.0-202601010000".into(),
            made_from: made_from
                .iter()
                .map(|(b, kv)| (b.to_string(), MadeFrom::of(&tags(kv))))
                .collect(),
            encrypt: None,
            amis: Default::default(),
        }
    }

    /// A reused bake records what its AMIs say they were made from, per builder, and nothing
    /// (saying so) for a parameter they do not record: never what the parameter gives now.
    #[test]
    fn a_reuse_records_what_its_amis_were_made_from() {
        let (c, p) = component_and_plan();
        let found = reusable(&[
            (
                "web",
                &[
                    ("gears:base-ami", "ami-0d0d0d0d0d0d0d0d0"),
                    ("gears:base-ami-parameter", "/golden/base:2"),
                ],
            ),
            (
                "arm",
                &[
                    ("gears:base-ami", "ami-0e0e0e0e0e0e0e0e0"),
                    ("gears:base-ami-parameter", "/golden/arm:5"),
                ],
            ),
            ("old", &[("gears:base-ami", "ami-0c0c0c0c0c0c0c0c0")]),
        ]);
        let (m, note) = reused(&p, &c, found, "ami-0f0f0f0f0f0f0f0f0");
        assert_eq!(note, None);
        assert_eq!(m.base_ami, "ami-0d0d0d0d0d0d0d0d0");
        assert_eq!(
            m.base_ami_parameter,
            Some(param("/golden/base", 2, "ami-0d0d0d0d0d0d0d0d0"))
        );
        assert_eq!(
            m.builder_base_ami_parameters,
            BTreeMap::from([(
                "arm".to_owned(),
                param("/golden/arm", 5, "ami-0e0e0e0e0e0e0e0e0")
            )])
        );
        // Made before gears recorded parameters: none recorded, and the progress says so.
        let found = reusable(&[
            ("web", &[("gears:base-ami", "ami-0d0d0d0d0d0d0d0d0")]),
            ("arm", &[("gears:base-ami-parameter", "/golden/arm:5")]),
        ]);
        let (m, note) = reused(&p, &c, found, "ami-0f0f0f0f0f0f0f0f0");
        assert_eq!(m.base_ami, "ami-0d0d0d0d0d0d0d0d0");
        assert_eq!(
            (m.base_ami_parameter, m.builder_base_ami_parameters.len()),
            (None, 0)
        );
        assert_eq!(note.as_deref(), Some("the reused AMIs do not record the parameter the component's and builder `arm`'s base AMI came from (baked before gears recorded it): the manifest records none rather than what the parameter gives now"));
        // No base AMI recorded at all: the one read now, as before.
        let (m, _) = reused(&p, &c, reusable(&[]), "ami-0f0f0f0f0f0f0f0f0");
        assert_eq!(m.base_ami, "ami-0f0f0f0f0f0f0f0f0");
    }

    #[test]
    fn a_record_that_does_not_parse_is_none() {
        let of = |v: &str| {
            MadeFrom::of(&tags(&[
                ("gears:base-ami", "ami-0d0d0d0d0d0d0d0d0"),
                ("gears:base-ami-parameter", v),
            ]))
            .parameter
        };
        assert_eq!(of("/p:x"), None);
        assert_eq!(of("/p"), None);
        assert_eq!(
            of("/p:3:4"),
            Some(param("/p:3", 4, "ami-0d0d0d0d0d0d0d0d0"))
        );
    }
}
