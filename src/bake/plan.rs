//! The plan of a bake: everything decided before anything runs (names, tags, quoted Ansible
//! arguments), so `--dry-run` and `gears validate` show exactly what a bake would do.

use super::quote::unsafe_reason;
use crate::component::file::{
    Architecture, BaseAmi, BuildSettings, BuilderType, Communicator, Component,
};
use crate::component::metadata::Metadata;
use crate::error::InputError;
use crate::text::shell_quote;
use serde::Serialize;
use std::collections::BTreeMap;

/// How long a build instance may live without word from its bake (`gears:ttl`): the bake
/// renews `gears:expires-at` while packer runs ([`super::run`]), so a longer bake is never
/// reaped mid-build, and one whose gears was killed expires this long after its last renewal.
pub const BUILD_TTL: &str = "3h";

/// One builder of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedBuilder {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: BuilderType,
    pub instance_type: String,
    /// `<component>-<version>-<builder>-<CREATED_AT>`, with characters AMI names refuse as `-`.
    pub ami_name: String,
    /// Tags on the AMI and its snapshots, in every region: gears' own and the file's `tags`.
    pub tags: BTreeMap<String, String>,
    /// Tags of its build instance: gears' own and the file's `run_tags`.
    pub run_tags: BTreeMap<String, String>,
    /// Its base AMI: its own, else the component's.
    pub base_ami: BaseAmi,
    pub architecture: Option<Architecture>,
    /// The build instance's settings: the builder's over the component's.
    pub settings: BuildSettings,
}

/// A bake, decided.
#[derive(Debug, Clone, Serialize)]
pub struct BakePlan {
    pub component: String,
    pub version: String,
    pub git_sha: String,
    pub repo: String,
    /// UTC `YYYYMMDDhhmm`.
    pub created_at: String,
    /// `<version>-<created_at>`: unique per bake of a version.
    pub ami_version: String,
    pub run_id: String,
    pub build_region: String,
    pub copy_regions: Vec<String>,
    pub builders: Vec<PlannedBuilder>,
    /// Tags of the temporary build instance, for reapers and humans.
    pub run_tags: BTreeMap<String, String>,
    /// The vars the playbook gets: COMPONENT_NAME, COMPONENT_VERSION, then the component's.
    pub ansible_vars: serde_json::Map<String, serde_json::Value>,
    /// What a human should know before the bake (shown on stderr and by `--explain`).
    pub warnings: Vec<String>,
}

/// EC2's limits, checked before anything is launched (moto does not enforce them; AWS does,
/// after the build instance is up).
pub const MAX_TAG_KEY: usize = 128;
pub const MAX_TAG_VALUE: usize = 256;
/// EC2's limit of tags on one resource (an AMI, a snapshot).
pub const MAX_TAGS: usize = 50;
pub const MAX_AMI_NAME: usize = 128;

/// The characters EC2 accepts in AMI names; others become `-`.
fn ami_name_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The end of every AMI name of a bake: the last 8 hex digits of its run id.
pub fn run_suffix(run_id: &str) -> String {
    let hex: Vec<char> = run_id.chars().filter(char::is_ascii_hexdigit).collect();
    hex[hex.len().saturating_sub(8)..].iter().collect()
}

/// `<component>-<version>-<builder>-<CREATED_AT>-<8 hex of the run id>`, at most 128
/// characters: the version part is shortened when it must be, never the builder or the unique
/// suffix, so names differ per builder and per bake whatever the version's length.
pub fn ami_name(
    component: &str,
    version: &str,
    builder: &str,
    created_at: &str,
    run_id: &str,
) -> Result<String, String> {
    let suffix = run_suffix(run_id);
    let fixed = ami_name_safe(&format!("{component}--{builder}-{created_at}-{suffix}"));
    let room = MAX_AMI_NAME.saturating_sub(fixed.chars().count());
    if room == 0 {
        return Err(format!(
            "the AMI name of builder `{builder}` would be longer than EC2's {MAX_AMI_NAME} characters even without the version; use a shorter component or builder name"
        ));
    }
    let version: String = ami_name_safe(version).chars().take(room).collect();
    Ok(ami_name_safe(&format!(
        "{component}-{version}-{builder}-{created_at}-{suffix}"
    )))
}

fn check_value(source: &str, what: &str, value: &str) -> Result<(), InputError> {
    match unsafe_reason(value) {
        Some(why) => Err(InputError::whole_file(source, format!("{what} {why}"))
            .with_hint("change the value; gears refuses values it cannot carry intact rather than let them be changed")),
        None => Ok(()),
    }
}

fn check_json(source: &str, path: &str, v: &serde_json::Value) -> Result<(), InputError> {
    match v {
        serde_json::Value::String(s) => check_value(source, &format!("ansible var `{path}`"), s),
        serde_json::Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| check_json(source, &format!("{path}[{i}]"), x)),
        serde_json::Value::Object(m) => m
            .iter()
            .try_for_each(|(k, x)| check_json(source, &format!("{path}.{k}"), x)),
        _ => Ok(()),
    }
}

/// Decides a bake. `created_at` is UTC `YYYYMMDDhhmm`; `run_id` names this run.
pub fn plan(
    component: &Component,
    meta: &Metadata,
    created_at: &str,
    run_id: &str,
) -> Result<BakePlan, InputError> {
    check_metadata(component, meta)?;
    let ansible_vars = ansible_vars(component, meta)?;
    let ami_version = format!("{}-{created_at}", meta.version.value);
    let base_tags = ami_tags(component, meta, &ami_version, created_at, run_id);
    let builders = planned_builders(component, meta, &base_tags, created_at, run_id)?;
    check_tag_lengths(&builders, component, meta)?;
    let mut warnings = ssh_warnings(component, &builders);
    warnings.extend(chroot_warnings(component, &builders));
    Ok(BakePlan {
        component: component.name.clone(),
        version: meta.version.value.clone(),
        git_sha: meta.git_sha.value.clone(),
        repo: meta.repo.value.clone(),
        created_at: created_at.to_owned(),
        ami_version,
        run_id: run_id.to_owned(),
        build_region: component.regions[0].0.clone(),
        copy_regions: component.regions[1..].iter().map(|r| r.0.clone()).collect(),
        builders,
        run_tags: run_tags(component, meta, run_id),
        ansible_vars,
        warnings,
    })
}

/// A warning for each amazon-ebs builder whose build instance Packer's temporary security
/// group opens to SSH from anywhere (the SSH communicator, and neither `security_group_ids`,
/// `ssh_cidrs` nor `ssh_interface: session_manager`).
fn ssh_warnings(component: &Component, builders: &[PlannedBuilder]) -> Vec<String> {
    if !communicates(component) {
        return Vec::new();
    }
    builders
        .iter()
        .filter(|b| b.kind == BuilderType::AmazonEbs && b.settings.ssh_from_anywhere())
        .map(|b| format!(
            "builder `{}`: the build instance accepts SSH from anywhere (Packer's temporary security group opens port 22 to 0.0.0.0/0); set `ssh_cidrs`, `security_group_ids` or `ssh_interface: session_manager` in {}",
            b.name,
            component.path.display()
        ))
        .collect()
}

/// A warning for each amazon-chroot builder when the component sets what only amazon-ebs
/// builders use (the build instance's settings): the chroot builder bakes without them.
fn chroot_warnings(component: &Component, builders: &[PlannedBuilder]) -> Vec<String> {
    if component.ebs_only.is_empty() {
        return Vec::new();
    }
    let keys: Vec<String> = component
        .ebs_only
        .iter()
        .map(|k| format!("`{k}`"))
        .collect();
    (builders.iter())
        .filter(|b| b.kind == BuilderType::AmazonChroot)
        .map(|b| format!(
            "builder `{}` is amazon-chroot, which launches no build instance: the component's {} in {} are for amazon-ebs builders and do not apply to it (set them on the amazon-ebs builders instead)",
            b.name,
            keys.join(", "),
            component.path.display()
        ))
        .collect()
}

/// The version, git sha, repo and component name can be carried intact (see [`unsafe_reason`]).
fn check_metadata(component: &Component, meta: &Metadata) -> Result<(), InputError> {
    for (what, v) in [
        ("version", &meta.version),
        ("git sha", &meta.git_sha),
        ("repo", &meta.repo),
    ] {
        check_value(&v.source, what, &v.value)?;
    }
    check_value(
        &component.path.display().to_string(),
        "component name",
        &component.name,
    )
}

/// The playbook's vars: COMPONENT_NAME, COMPONENT_VERSION, then the component's own, each
/// checked.
fn ansible_vars(
    component: &Component,
    meta: &Metadata,
) -> Result<serde_json::Map<String, serde_json::Value>, InputError> {
    let mut ansible_vars = serde_json::Map::new();
    ansible_vars.insert("COMPONENT_NAME".into(), component.name.clone().into());
    ansible_vars.insert(
        "COMPONENT_VERSION".into(),
        meta.version.value.clone().into(),
    );
    if let Some(a) = &component.ansible {
        let src = component.path.display().to_string();
        for (k, v) in &a.vars {
            check_value(&src, "ansible var name", k)?;
            check_json(&src, k, v)?;
            ansible_vars.insert(k.clone(), v.clone());
        }
    }
    Ok(ansible_vars)
}

/// The tags every AMI of the bake carries (each builder adds its name), with the record of
/// its encryption when the file has `encrypt:`.
fn ami_tags(
    component: &Component,
    meta: &Metadata,
    ami_version: &str,
    created_at: &str,
    run_id: &str,
) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::from([
        ("COMPONENT_NAME".to_owned(), component.name.clone()),
        ("COMPONENT_VERSION".to_owned(), meta.version.value.clone()),
        ("AMI_VERSION".to_owned(), ami_version.to_owned()),
        ("GIT_SHA".to_owned(), meta.git_sha.value.clone()),
        ("COMPONENT_REPO".to_owned(), meta.repo.value.clone()),
        ("CREATED_AT".to_owned(), created_at.to_owned()),
        (crate::tags::COMPONENT.to_owned(), component.name.clone()),
        (crate::tags::RUN_ID.to_owned(), run_id.to_owned()),
        (crate::tags::MANAGED_BY.to_owned(), "gears".to_owned()),
    ]);
    // What a reuse of this bake must match (bake::reuse).
    if let Some(e) = &component.encrypt {
        tags.insert(
            crate::tags::ENCRYPT.to_owned(),
            e.record(&component.regions),
        );
    }
    tags
}

/// Each builder of the component with its instance type, AMI name and tags.
fn planned_builders(
    component: &Component,
    meta: &Metadata,
    base_tags: &BTreeMap<String, String>,
    created_at: &str,
    run_id: &str,
) -> Result<Vec<PlannedBuilder>, InputError> {
    let file = component.path.display().to_string();
    let mut builders = Vec::with_capacity(component.builders.len());
    let gears_run_tags = run_tags(component, meta, run_id);
    for b in &component.builders {
        let settings = component.build.with(&b.settings);
        // The file's tags cannot name gears' own (refused when it was read): added, never over.
        let mut tags = settings.tags.clone();
        tags.extend(base_tags.clone());
        tags.insert(crate::tags::BUILDER.into(), b.name.clone());
        let mut run_tags = settings.run_tags.clone();
        run_tags.extend(gears_run_tags.clone());
        let ami_name = ami_name(
            &component.name,
            &meta.version.value,
            &b.name,
            created_at,
            run_id,
        )
        .map_err(|why| InputError::whole_file(&file, why))?;
        builders.push(PlannedBuilder {
            name: b.name.clone(),
            kind: b.kind,
            instance_type: b
                .instance_type
                .clone()
                .unwrap_or_else(|| component.instance_type.clone()),
            ami_name,
            tags,
            run_tags,
            base_ami: b
                .base_ami
                .clone()
                .unwrap_or_else(|| component.base_ami.clone()),
            architecture: b.architecture,
            settings,
        });
    }
    Ok(builders)
}

/// How many of builder `b`'s AMI tags come from the file's `tags:`.
fn settings_tags(b: &PlannedBuilder) -> usize {
    b.settings.tags.len()
}

/// Each builder's tag count and each tag value against EC2's limits, naming where the value
/// came from.
fn check_tag_lengths(
    builders: &[PlannedBuilder],
    component: &Component,
    meta: &Metadata,
) -> Result<(), InputError> {
    let file = component.path.display().to_string();
    let source_of = |tag: &str| match tag {
        "COMPONENT_VERSION" | "AMI_VERSION" => ("version", meta.version.source.clone()),
        "GIT_SHA" => ("git sha", meta.git_sha.source.clone()),
        "COMPONENT_REPO" => ("repo", meta.repo.source.clone()),
        _ => ("component name", file.clone()),
    };
    for b in builders {
        // gears:base-ami and gears:base-ami-parameter are added at bake time.
        let n = b.tags.len() + 2;
        if n > MAX_TAGS {
            return Err(InputError::whole_file(
                file.clone(),
                format!(
                    "builder `{}`'s AMIs would carry {n} tags ({} from the file's `tags:`, {} of gears'), and EC2 allows at most {MAX_TAGS} on an AMI",
                    b.name,
                    settings_tags(b),
                    n - settings_tags(b)
                ),
            )
            .with_hint("drop some of the file's `tags:`; nothing was launched"));
        }
    }
    for (k, v) in builders.iter().flat_map(|b| b.tags.iter()) {
        let n = v.chars().count();
        if n > MAX_TAG_VALUE {
            let (what, source) = source_of(k);
            return Err(InputError::whole_file(
                source,
                format!("the {what} is too long: the AMI tag {k} would be {n} characters, and EC2 allows at most {MAX_TAG_VALUE}"),
            )
            .with_hint("use a shorter value; nothing was launched"));
        }
        debug_assert!(k.chars().count() <= MAX_TAG_KEY);
    }
    Ok(())
}

/// The tags of the temporary build instance, for reapers and humans.
fn run_tags(component: &Component, meta: &Metadata, run_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "Name".to_owned(),
            format!("gears-bake {} {}", component.name, meta.version.value)
                .chars()
                .take(MAX_TAG_VALUE)
                .collect(),
        ),
        (crate::tags::COMPONENT.to_owned(), component.name.clone()),
        (crate::tags::RUN_ID.to_owned(), run_id.to_owned()),
        (crate::tags::PURPOSE.to_owned(), "bake".to_owned()),
        (crate::tags::TTL.to_owned(), BUILD_TTL.to_owned()),
        (crate::tags::MANAGED_BY.to_owned(), "gears".to_owned()),
    ])
}

/// The `--extra-vars` arguments for ansible-local: Packer joins them with spaces and runs them
/// through `sh -c`, so the JSON is one single-quoted word.
pub fn ansible_extra_arguments(plan: &BakePlan) -> Vec<String> {
    let json = serde_json::Value::Object(plan.ansible_vars.clone()).to_string();
    vec!["--extra-vars".to_owned(), shell_quote(&json)]
}

/// Whether this plan's builds talk to an instance.
pub fn communicates(component: &Component) -> bool {
    component.communicator == Communicator::Ssh
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::metadata::Sourced;

    fn plan_of(version: &str, builders: &str) -> Result<BakePlan, InputError> {
        let text = format!(
            "component: svc\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {{id: ami-0123456789abcdef0}}\nbuilders: {builders}\n"
        );
        let c = crate::component::file::parse(std::path::Path::new("gears.yaml"), &text).unwrap();
        let s = |v: &str, src: &str| Sourced {
            value: v.into(),
            source: src.into(),
        };
        let meta = Metadata {
            warnings: vec![],
            version: s(version, "--version"),
            git_sha: s("abc", "--git-sha"),
            repo: s("r", "gears.yaml"),
        };
        plan(
            &c,
            &meta,
            "202611241200",
            "0193f0a2-1b2c-7d3e-8f40-1234567890ab",
        )
    }

    /// The component's amazon-ebs-only settings are named to each amazon-chroot builder, which
    /// bakes without them; a file that sets none (defaults only) gets no such warning.
    #[test]
    fn a_chroot_builder_is_told_which_component_settings_do_not_apply() {
        let chroot = "[amazon-ebs, {type: amazon-chroot, name: agent}]";
        let p = plan_of("1.0", &format!("{chroot}\ninstance_type: t3.large\nspot: {{max_price: auto}}\nrun_tags: {{Owner: ci}}")).unwrap();
        let w: Vec<&String> = p
            .warnings
            .iter()
            .filter(|w| w.contains("amazon-chroot"))
            .collect();
        assert_eq!(w.len(), 1, "{:?}", p.warnings);
        assert!(w[0].starts_with("builder `agent` is amazon-chroot, which launches no build instance: the component's `instance_type`, `spot`, `run_tags` in gears.yaml are for amazon-ebs builders"), "{}", w[0]);
        let p = plan_of("1.0", chroot).unwrap();
        assert!(
            !p.warnings.iter().any(|w| w.contains("amazon-chroot")),
            "{:?}",
            p.warnings
        );
    }

    /// EC2 allows 50 tags on an AMI: a file whose `tags:` would take a builder's AMIs past that
    /// (with gears' own and the two added at bake time) is refused before anything is launched.
    #[test]
    fn more_tags_than_ec2_allows_on_an_ami_are_refused_before_the_build() {
        let tags = |n: usize| {
            let kv: Vec<String> = (0..n).map(|i| format!("t{i}: v")).collect();
            format!("[amazon-ebs]\ntags: {{{}}}", kv.join(", "))
        };
        let ours = plan_of("1.0", "[amazon-ebs]").unwrap().builders[0]
            .tags
            .len()
            + 2;
        assert!(plan_of("1.0", &tags(MAX_TAGS - ours)).is_ok());
        let e = plan_of("1.0", &tags(MAX_TAGS - ours + 1)).unwrap_err();
        assert!(
            e.message.starts_with(&format!(
                "builder `amazon-ebs`'s AMIs would carry 51 tags ({} from the file's `tags:`",
                MAX_TAGS - ours + 1
            )),
            "{e}"
        );
    }

    #[test]
    fn ami_names_stay_unique_per_builder_and_bake_for_any_version_length() {
        let long = "9".repeat(200);
        let p = plan_of(&long, "[amazon-ebs, {type: amazon-ebs, name: large}]").unwrap();
        let names: Vec<&str> = p.builders.iter().map(|b| b.ami_name.as_str()).collect();
        assert_ne!(names[0], names[1]);
        for n in &names {
            assert_eq!(n.chars().count(), MAX_AMI_NAME, "{n}");
            assert!(n.ends_with("-202611241200-567890ab"), "{n}");
        }
        assert!(names[1].contains("-large-"), "{}", names[1]);
        let short = plan_of("1.0", "[amazon-ebs]").unwrap();
        assert_eq!(
            short.builders[0].ami_name,
            "svc-1.0-amazon-ebs-202611241200-567890ab"
        );
        // Two bakes of one version in the same minute differ by their run ids.
        let a = ami_name(
            "svc",
            "1.0",
            "web",
            "202611241200",
            "0193f0a2-0000-7000-8000-aaaaaaaaaaaa",
        );
        let b = ami_name(
            "svc",
            "1.0",
            "web",
            "202611241200",
            "0193f0a2-0000-7000-8000-bbbbbbbbbbbb",
        );
        assert_ne!(a, b);
        assert!(ami_name(&"c".repeat(120), "1", "web", "202611241200", "x-12345678").is_err());
    }

    #[test]
    fn tag_values_over_ec2_limits_are_refused_naming_the_value() {
        // AMI_VERSION is the version plus 13 characters: 243 is the longest version that fits.
        assert!(plan_of(&"1".repeat(243), "[amazon-ebs]").is_ok());
        let e = plan_of(&"1".repeat(244), "[amazon-ebs]").unwrap_err();
        assert_eq!(e.path, "--version");
        assert!(
            e.message.contains("AMI_VERSION would be 257 characters"),
            "{e}"
        );
        let e = plan_of(&"1".repeat(300), "[amazon-ebs]").unwrap_err();
        assert!(e.message.contains("the version is too long"), "{e}");
    }
}
