//! `gears bake --explain`: where each value of a bake comes from.

use super::plan::BakePlan;
use crate::component::metadata::Metadata;
use crate::component::Component;

const CREATED: &str = "<created-at>";
const RUN: &str = "<run-id>";

/// An AMI name as the bake will make it: the part this run cannot know (the bake's own minute
/// and run id) as placeholders, so the name shown is never one the bake will not use. The
/// version part is shortened exactly as in the bake (the fixed parts have the same length).
pub fn ami_name_pattern(name: &str, created_at: &str, run_id: &str) -> String {
    let end = format!("-{created_at}-{}", super::plan::run_suffix(run_id));
    match name.strip_suffix(&end) {
        Some(head) => format!("{head}-{CREATED}-{RUN}"),
        None => name.to_owned(),
    }
}

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
    for w in &meta.warnings {
        s.push_str(&format!("warning            {w}\n"));
    }
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
            ami_name_pattern(&b.ami_name, &plan.created_at, &plan.run_id)
        ));
    }
    if !plan.builders.is_empty() {
        s.push_str(&format!(
            "                   ({CREATED}: the minute the bake starts, UTC; {RUN}: the last 8 hex digits of its run id, {}, new for every bake)\n",
            crate::tags::RUN_ID
        ));
    }
    let base = &component.base_ami;
    match (&base.id, &base.name) {
        (Some(id), _) => s.push_str(&format!("base AMI           {id}\n")),
        _ if base.ssm.is_some() => s.push_str(&format!(
            "base AMI           the value of the SSM parameter {}, read in {} when the bake starts (the manifest records its version and the AMI: base_ami_parameter)\n",
            base.ssm.as_deref().unwrap_or_default(),
            plan.build_region
        )),
        (_, Some(n)) => s.push_str(&format!(
            "base AMI           newest of name {n}, owners [{}], tags {:?}\n",
            base.owners.join(", "),
            base.tags
        )),
        _ => {}
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_explained_is_the_bakes_with_its_run_and_minute_as_placeholders() {
        let name = super::super::plan::ami_name(
            "svc",
            "1.2.3",
            "web",
            "202612020707",
            "0192f3a1-7c00-7aaa-8bbb-0123fedfaa53",
        )
        .unwrap();
        assert_eq!(name, "svc-1.2.3-web-202612020707-fedfaa53");
        assert_eq!(
            ami_name_pattern(
                &name,
                "202612020707",
                "0192f3a1-7c00-7aaa-8bbb-0123fedfaa53"
            ),
            "svc-1.2.3-web-<created-at>-<run-id>"
        );
    }
}
