//! The base AMIs of a bake, looked up in the build region before anything is launched: the
//! component's, each builder's own, and the architecture a builder asks for checked against
//! its base AMI's (DescribeImages' `Architecture`).

use super::plan::BakePlan;
use crate::aws::{BaseAmiQuery, Image, Images};
use crate::cancel::Cancel;
use crate::component::file::BaseAmi;
use crate::component::Component;
use crate::error::{Error, InputError};
use crate::wait::unless_cancelled;
use std::collections::BTreeMap;

/// The parameter each builder's own base AMI came from, by builder (those with their own
/// `base_ami: {ssm: ...}` only).
pub type BuilderParameters = BTreeMap<String, crate::manifest::BaseAmiParameter>;

/// The AMI a Parameter Store parameter names, read in the build region: a parameter that does
/// not exist, or whose value is not an AMI id, is an input error naming it.
async fn ami_parameter<I: Images>(
    build: &I,
    component: &Component,
    name: &str,
    cancel: &Cancel,
) -> Result<crate::manifest::BaseAmiParameter, Error> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    let found = crate::wait::patiently(cancel, deadline, || build.parameter(name)).await?;
    let file = component.path.display().to_string();
    let region = build.region();
    let Some(p) = found else {
        return Err(InputError::whole_file(
            file,
            format!("base_ami.ssm: the parameter {name} does not exist in {region}"),
        )
        .with_hint("check the name (AWS's public AMI parameters are under /aws/service/), and that it is in the build region, the first of ami_regions")
        .into());
    };
    if !crate::aws::is_ami_id(&p.value) {
        return Err(InputError::whole_file(
            file,
            // The value is never shown: a parameter named by mistake may hold a secret.
            format!(
                "base_ami.ssm: the parameter {name} (version {}) holds a value that is not an AMI id (data type {}, {} characters; not shown)",
                p.version,
                p.data_type,
                p.value.chars().count()
            ),
        )
        .with_hint("name a parameter whose value is an AMI id (data type text or aws:ec2:image)")
        .into());
    }
    Ok(crate::manifest::BaseAmiParameter {
        name: p.name,
        version: p.version,
        ami: p.value,
    })
}

/// Looks up `base` in the build region (through its Parameter Store parameter first, when it
/// names one); none found is an input error that names what was looked for (and `whose`, a
/// builder, when it is a builder's own).
pub async fn find_base_ami<I: Images>(
    build: &I,
    base: &BaseAmi,
    whose: &str,
    (component, plan): (&Component, &BakePlan),
    cancel: &Cancel,
) -> Result<(Image, Option<crate::manifest::BaseAmiParameter>), Error> {
    let parameter = match &base.ssm {
        Some(name) => Some(ami_parameter(build, component, name, cancel).await?),
        None => None,
    };
    let query = BaseAmiQuery {
        id: parameter
            .as_ref()
            .map(|p| p.ami.clone())
            .or_else(|| base.id.clone()),
        name: base.name.clone(),
        owners: base.owners.clone(),
        tags: base.tags.clone(),
    };
    let found = unless_cancelled(cancel, build.find_base_ami(&query)).await??;
    let image = found.ok_or_else(|| {
        let what = match (&query.id, &base.name) {
            (Some(id), _) => format!("base AMI {id} does not exist in {}", plan.build_region),
            _ => format!(
                "no base AMI in {} matches name {:?}, owners {:?} and tags {:?}",
                plan.build_region,
                base.name.as_deref().unwrap_or("*"),
                base.owners,
                base.tags
            ),
        };
        let what = match &parameter {
            Some(p) => format!("{what} (from the parameter {}, version {})", p.name, p.version),
            None => what,
        };
        let what = if whose.is_empty() { what } else { format!("builder `{whose}`: {what}") };
        Error::from(
            InputError::whole_file(component.path.display().to_string(), what)
                .with_hint("check `base_ami` in the component file, and the region it is looked up in (the first of ami_regions)"),
        )
    })?;
    // An AMI named by id or by a parameter is not filtered on its state as a lookup is.
    if image.state != "available" {
        let via = parameter
            .as_ref()
            .map(|p| format!(" (from the parameter {}, version {})", p.name, p.version))
            .unwrap_or_default();
        return Err(InputError::whole_file(
            component.path.display().to_string(),
            format!(
                "base AMI {}{via} is {} in {}, not available",
                image.id, image.state, plan.build_region
            ),
        )
        .with_hint("name an available AMI, or wait until it is")
        .into());
    }
    Ok((image, parameter))
}

/// Each builder's base AMI (the component's `found` unless it has its own), and the
/// parameter each builder's own came from (`builders[].base_ami.ssm`), each base checked
/// against the architecture the builder asks for: a mismatch is exit 3 before anything is
/// launched.
pub async fn builder_bases<I: Images>(
    build: &I,
    found: &Image,
    (component, plan): (&Component, &BakePlan),
    cancel: &Cancel,
) -> Result<(BTreeMap<String, Image>, BuilderParameters), Error> {
    let mut bases = BTreeMap::new();
    let mut parameters = BTreeMap::new();
    for b in &plan.builders {
        let image = if b.base_ami == component.base_ami {
            found.clone()
        } else {
            let (image, parameter) =
                find_base_ami(build, &b.base_ami, &b.name, (component, plan), cancel).await?;
            if let Some(p) = parameter {
                parameters.insert(b.name.clone(), p);
            }
            image
        };
        if let Some(why) = b
            .architecture
            .and_then(|a| mismatch(&b.name, a.as_str(), &image))
        {
            return Err(InputError::whole_file(component.path.display().to_string(), why)
                .with_hint("give the builder a base AMI of its architecture (`builders[].base_ami`), or correct `architecture`; nothing was launched")
                .into());
        }
        bases.insert(b.name.clone(), image);
    }
    Ok((bases, parameters))
}

/// The base AMIs of a bake, as read before anything runs.
pub struct Bases {
    /// The component's base AMI.
    pub component: Image,
    /// The parameter it came from (`base_ami.ssm`).
    pub parameter: Option<crate::manifest::BaseAmiParameter>,
    /// Each builder's base AMI.
    pub builders: BTreeMap<String, Image>,
    /// The parameter each builder's own base AMI came from.
    pub parameters: BuilderParameters,
}

/// The component's base AMI (and the parameter it came from), then each builder's, with the
/// architecture each asks for checked, before anything runs.
pub async fn base_amis<I: Images>(
    build: &I,
    (component, plan): (&Component, &BakePlan),
    ui: &mut crate::ui::StageProgress,
    cancel: &Cancel,
) -> Result<Bases, Error> {
    let (base_ami, parameter) =
        find_base_ami(build, &component.base_ami, "", (component, plan), cancel).await?;
    match &parameter {
        Some(p) => ui.note(&format!(
            "base AMI {} ({}), from the parameter {} version {}",
            base_ami.id, base_ami.name, p.name, p.version
        )),
        None => ui.note(&format!("base AMI {} ({})", base_ami.id, base_ami.name)),
    }
    let (builders, parameters) = builder_bases(build, &base_ami, (component, plan), cancel).await?;
    for (b, p) in &parameters {
        ui.note(&format!(
            "builder `{b}`: base AMI {}, from the parameter {} version {}",
            p.ami, p.name, p.version
        ));
    }
    Ok(Bases {
        component: base_ami,
        parameter,
        builders,
        parameters,
    })
}

/// Why `image` cannot be `builder`'s base when it asks for `arch`, if it cannot.
pub fn mismatch(builder: &str, arch: &str, image: &Image) -> Option<String> {
    (image.architecture != arch).then(|| {
        format!(
            "builder `{builder}` is {arch}, but its base AMI {} ({}) is {}",
            image.id,
            image.name,
            if image.architecture.is_empty() {
                "of an unknown architecture"
            } else {
                &image.architecture
            }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_architecture_must_match_the_base_amis() {
        let mut img = crate::testing::image("ami-0123456789abcdef0", &[]);
        assert_eq!(mismatch("web", "x86_64", &img), None);
        let why = mismatch("arm", "arm64", &img).unwrap();
        assert_eq!(why, "builder `arm` is arm64, but its base AMI ami-0123456789abcdef0 (ami-0123456789abcdef0) is x86_64");
        img.architecture.clear();
        assert!(mismatch("arm", "arm64", &img)
            .unwrap()
            .ends_with("is of an unknown architecture"));
    }
}
