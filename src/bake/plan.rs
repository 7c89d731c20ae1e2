//! The plan of a bake: everything decided before anything runs (names, tags, quoted Ansible
//! arguments), so `--dry-run` and `gears validate` show exactly what a bake would do.

use super::quote::{shell_quote, unsafe_reason};
use crate::component::file::{BuilderType, Communicator, Component};
use crate::component::metadata::Metadata;
use crate::error::InputError;
use serde::Serialize;
use std::collections::BTreeMap;

/// One builder of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedBuilder {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: BuilderType,
    pub instance_type: String,
    /// `<component>-<version>-<builder>-<CREATED_AT>`, with characters AMI names refuse as `-`.
    pub ami_name: String,
    /// Tags on the AMI and its snapshots, in every region.
    pub tags: BTreeMap<String, String>,
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
}

/// The characters EC2 accepts in AMI names.
fn ami_name_safe(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    cleaned.chars().take(128).collect()
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
    )?;
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
    let ami_version = format!("{}-{created_at}", meta.version.value);
    let base_tags = BTreeMap::from([
        ("COMPONENT_NAME".to_owned(), component.name.clone()),
        ("COMPONENT_VERSION".to_owned(), meta.version.value.clone()),
        ("AMI_VERSION".to_owned(), ami_version.clone()),
        ("GIT_SHA".to_owned(), meta.git_sha.value.clone()),
        ("COMPONENT_REPO".to_owned(), meta.repo.value.clone()),
        ("CREATED_AT".to_owned(), created_at.to_owned()),
        ("gears:component".to_owned(), component.name.clone()),
        ("gears:run-id".to_owned(), run_id.to_owned()),
        ("gears:managed-by".to_owned(), "gears".to_owned()),
    ]);
    let builders = component
        .builders
        .iter()
        .map(|b| {
            let mut tags = base_tags.clone();
            tags.insert("gears:builder".into(), b.name.clone());
            PlannedBuilder {
                name: b.name.clone(),
                kind: b.kind,
                instance_type: b
                    .instance_type
                    .clone()
                    .unwrap_or_else(|| component.instance_type.clone()),
                ami_name: ami_name_safe(&format!(
                    "{}-{}-{}-{created_at}",
                    component.name, meta.version.value, b.name
                )),
                tags,
            }
        })
        .collect();
    let run_tags = BTreeMap::from([
        (
            "Name".to_owned(),
            format!("gears-bake {} {}", component.name, meta.version.value),
        ),
        ("gears:component".to_owned(), component.name.clone()),
        ("gears:run-id".to_owned(), run_id.to_owned()),
        ("gears:purpose".to_owned(), "bake".to_owned()),
        ("gears:ttl".to_owned(), "3h".to_owned()),
        ("gears:managed-by".to_owned(), "gears".to_owned()),
    ]);
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
        run_tags,
        ansible_vars,
    })
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
