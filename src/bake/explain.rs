//! `gears bake --explain`: where each value of a bake comes from.

use super::plan::BakePlan;
use crate::component::file::{BaseAmi, BuildSettings, Builder};
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
    s.push_str(&format!(
        "base AMI           {}\n",
        base_text(
            &component.base_ami,
            &plan.build_region,
            "base_ami_parameter"
        )
    ));
    for b in &component.builders {
        s.push_str(&builder_settings(component, b, &plan.build_region));
    }
    s.push_str(&after_bake(component));
    for w in &plan.warnings {
        s.push_str(&format!("warning            {w}\n"));
    }
    s
}

/// What follows the bake (and a reuse), from the component file: the encryption, the shares,
/// the deprecation and the deregistration protection.
fn after_bake(component: &Component) -> String {
    let from = format!("(from {})", component.path.display());
    let mut s = String::new();
    if let Some(e) = &component.encrypt {
        let keys: Vec<String> = component
            .regions
            .iter()
            .map(|r| match e.key_of(&component.regions, &r.0) {
                Some(k) => format!("{}: {k}", r.0),
                None => format!("{}: the account's default EBS key", r.0),
            })
            .collect();
        s.push_str(&format!(
            "encrypt            {}    {from}\n",
            keys.join(", ")
        ));
    }
    let share = &component.share;
    if !share.is_empty() {
        let mut who: Vec<String> = share
            .accounts
            .iter()
            .map(|a| format!("account {a}"))
            .collect();
        who.extend(
            share
                .organizations
                .iter()
                .map(|o| format!("organization {o}")),
        );
        who.extend(
            share
                .organizational_units
                .iter()
                .map(|o| format!("organizational unit {o}")),
        );
        s.push_str(&format!(
            "share              {}    {from}, after the bake and on reuse, read back\n",
            who.join(", ")
        ));
    }
    if let Some(d) = component.deprecate_after {
        s.push_str(&format!(
            "deprecate after    {} days from the bake's minute    {from}\n",
            d.0
        ));
    }
    if let Some(p) = component.deregistration_protection {
        s.push_str(&format!(
            "deregistration     protection {}    {from}\n",
            p.as_str()
        ));
    }
    s
}

/// What `base` names; `recorded`: the manifest's key that records the parameter it came from.
fn base_text(base: &BaseAmi, region: &str, recorded: &str) -> String {
    match (&base.id, &base.name) {
        (Some(id), _) => id.clone(),
        _ if base.ssm.is_some() => format!(
            "the value of the SSM parameter {}, read in {region} when the bake starts (the manifest records its version and the AMI: {recorded})",
            base.ssm.as_deref().unwrap_or_default()
        ),
        (_, n) => format!(
            "newest of name {}, owners [{}], tags {:?}",
            n.as_deref().unwrap_or("*"),
            base.owners.join(", "),
            base.tags
        ),
    }
}

/// Each build setting of builder `b` that is set, and where it came from: the builder's own
/// entry in `builders`, or the component's key.
fn builder_settings(component: &Component, b: &Builder, region: &str) -> String {
    let file = component.path.display().to_string();
    let own = format!("builders[{}] in {file}", b.name);
    let (c, o) = (&component.build, &b.settings);
    let merged = c.with(o);
    let both = format!("builders[{}] over the component's, in {file}", b.name);
    // The value in use (the builder's over the component's) and where it came from.
    let show = |v: &dyn Fn(&BuildSettings) -> Option<String>| -> Option<(String, &str)> {
        let value = v(&merged)?;
        match (v(o), v(c)) {
            (Some(_), Some(_)) => Some((value, both.as_str())),
            (Some(_), None) => Some((value, own.as_str())),
            _ => Some((value, file.as_str())),
        }
    };
    let rows: Vec<(&str, Option<(String, &str)>)> = vec![
        ("instance_profile", show(&|s| s.instance_profile.clone())),
        (
            "security_group_ids",
            show(&|s| s.security_group_ids.as_ref().map(json)),
        ),
        ("ssh_cidrs", show(&|s| s.ssh_cidrs.as_ref().map(json))),
        (
            "ssh_interface",
            show(&|s| s.ssh_interface.map(|i| i.as_str().to_owned())),
        ),
        ("root_volume", show(&|s| s.root_volume.as_ref().map(json))),
        ("spot", show(&|s| s.spot.as_ref().map(json))),
        (
            "tags",
            show(&|s| (!s.tags.is_empty()).then(|| json(&s.tags))),
        ),
        (
            "run_tags",
            show(&|s| (!s.run_tags.is_empty()).then(|| json(&s.run_tags))),
        ),
    ];
    let mut out = String::new();
    if let Some(base) = &b.base_ami {
        out.push_str(&format!(
            "  {}: base AMI {}    (from {own})\n",
            b.name,
            base_text(base, region, "builder_base_ami_parameters")
        ));
    }
    if let Some(a) = b.architecture {
        out.push_str(&format!(
            "  {}: architecture {}    (from {own}; checked against the base AMI's before anything is launched)\n",
            b.name,
            a.as_str()
        ));
    }
    for (key, row) in rows {
        if let Some((value, from)) = row {
            out.push_str(&format!("  {}: {key} {value}    (from {from})\n", b.name));
        }
    }
    out
}

/// A value shown as compact JSON.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
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

    /// Issues 33 and 36: `--explain` says what follows the bake, from the component file:
    /// each region's key, the shares, the deprecation and the protection.
    #[test]
    fn what_follows_the_bake_is_explained() {
        let text = "component: svc\nrepo: r\nami_regions: [us-east-1, eu-west-1]\nbase_ami: {id: ami-0123456789abcdef0}\nshare: {accounts: [\"111111111111\"], organizations: [arn:aws:organizations::123456789012:organization/o-abcd123456]}\nencrypt: {kms_key_id: alias/amis, region_kms_key_ids: {eu-west-1: alias/amis-euw1}}\ndeprecate_after: 12w\nderegistration_protection: with-cooldown\n";
        let c = crate::component::file::parse(std::path::Path::new("gears.yaml"), text).unwrap();
        let s = after_bake(&c);
        for want in [
            "encrypt            us-east-1: alias/amis, eu-west-1: alias/amis-euw1    (from gears.yaml)",
            "share              account 111111111111, organization arn:aws:organizations::123456789012:organization/o-abcd123456    (from gears.yaml)",
            "deprecate after    84 days from the bake's minute",
            "deregistration     protection with-cooldown",
        ] {
            assert!(s.contains(want), "{want}\n{s}");
        }
        let plain = crate::component::file::parse(
            std::path::Path::new("gears.yaml"),
            "component: svc\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-0123456789abcdef0}\n",
        )
        .unwrap();
        assert_eq!(after_bake(&plain), "");
    }
}
