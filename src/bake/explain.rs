//! `gears bake --explain`: where each value of a bake comes from.

use super::plan::BakePlan;
use crate::component::metadata::Metadata;
use crate::component::Component;

/// `gears bake --explain`: where each value came from.
pub fn explain(component: &Component, meta: &Metadata, plan: &BakePlan) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "component          {}    (from {})\n",
        component.name,
        component.path.display()
    ));
    s.push_str(&format!(
        "version            {}    (from {})\n",
        meta.version.value, meta.version.source
    ));
    s.push_str(&format!(
        "git sha            {}    (from {})\n",
        meta.git_sha.value, meta.git_sha.source
    ));
    s.push_str(&format!(
        "repo               {}    (from {})\n",
        meta.repo.value, meta.repo.source
    ));
    s.push_str(&format!(
        "created at         {}    (UTC, now)\n",
        plan.created_at
    ));
    s.push_str(&format!(
        "ami version        {}    (version-created at)\n",
        plan.ami_version
    ));
    s.push_str(&format!(
        "regions            {}    (build in {}, copy to the rest)\n",
        component
            .regions
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        plan.build_region
    ));
    for b in &plan.builders {
        s.push_str(&format!(
            "builder            {} ({}): AMI name {}\n",
            b.name,
            b.kind.as_str(),
            b.ami_name
        ));
    }
    let base = &component.base_ami;
    match (&base.id, &base.name) {
        (Some(id), _) => s.push_str(&format!("base AMI           {id}\n")),
        (_, Some(n)) => s.push_str(&format!(
            "base AMI           newest of name {n}, owners [{}], tags {:?}\n",
            base.owners.join(", "),
            base.tags
        )),
        _ => {}
    }
    s
}
