//! Renders the Packer template with tera: strict (an undefined variable is an error), every
//! value JSON-encoded. Values that Packer's own template engine would evaluate (`{{`) were
//! refused when the plan was made (see `quote`).

use super::plan::{ansible_extra_arguments, BakePlan};
use super::quote::shell_quote;
use crate::component::file::{Communicator, Component};
use crate::error::{located, InputError};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The template gears ships (templates/packer.json.tera).
pub const BUILTIN: &str = include_str!("../../templates/packer.json.tera");
/// The per-builder templates it includes; a component's own template may include them too.
pub const BUILDERS: [(&str, &str); 2] = [
    (
        "amazon-ebs.json.tera",
        include_str!("../../templates/amazon-ebs.json.tera"),
    ),
    (
        "amazon-chroot.json.tera",
        include_str!("../../templates/amazon-chroot.json.tera"),
    ),
];
/// Its name in messages.
pub const BUILTIN_NAME: &str = "templates/packer.json.tera";

/// What the template needs besides the plan.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// The base AMI id, when already resolved; otherwise the component's lookup is rendered.
    pub source_ami: Option<String>,
    /// `custom_endpoint_ec2` (emulators, VPC endpoints).
    pub endpoint: Option<String>,
    /// Where packer's manifest post-processor writes.
    pub manifest: String,
}

fn text(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn text_map(m: &BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), text(v)))
            .collect::<Map<_, _>>(),
    )
}

fn abs(dir: &Path, p: &Path) -> String {
    let joined = dir.join(p);
    std::fs::canonicalize(&joined)
        .unwrap_or(joined)
        .display()
        .to_string()
}

/// A builder's tags, plus `gears:base-ami`: Packer fills in the base AMI it used (a template
/// expression of ours, not a user value), so a reused bake can tell which base it was built on.
fn builder_tags(tags: &BTreeMap<String, String>) -> Value {
    let mut v = text_map(tags);
    v["gears:base-ami"] = Value::String("{{ .SourceAMI }}".to_owned());
    v
}

/// The tera context of a bake (documented at the top of templates/packer.json.tera).
pub fn context(plan: &BakePlan, component: &Component, opts: &RenderOptions) -> Value {
    let builders: Vec<Value> = plan
        .builders
        .iter()
        .map(|b| {
            json!({
                "name": b.name,
                "type": b.kind.as_str(),
                "instance_type": text(&b.instance_type),
                "ami_name": text(&b.ami_name),
                "tags": builder_tags(&b.tags),
            })
        })
        .collect();
    let filter = {
        let base = &component.base_ami;
        let mut filters = BTreeMap::new();
        if let Some(n) = &base.name {
            filters.insert("name".to_owned(), n.clone());
        }
        for (k, v) in &base.tags {
            filters.insert(format!("tag:{k}"), v.clone());
        }
        filters.insert("state".into(), "available".into());
        json!({"filters": text_map(&filters), "owners": base.owners.iter().map(|o| text(o)).collect::<Vec<_>>()})
    };
    let source_ami = opts
        .source_ami
        .clone()
        .or_else(|| component.base_ami.id.clone());
    let ansible = component.ansible.as_ref().map(|a| {
        let playbook = abs(&component.dir, &a.playbook);
        let roles: Vec<String> = a.roles.iter().map(|r| abs(&component.dir, r)).collect();
        let extra = ansible_extra_arguments(plan);
        let mut check = String::new();
        if !roles.is_empty() {
            check.push_str(&format!(
                "ANSIBLE_ROLES_PATH={} ",
                shell_quote(&roles.join(":"))
            ));
        }
        check.push_str(&format!(
            "ansible-playbook --syntax-check -i localhost, {} {}",
            shell_quote(&playbook),
            extra.join(" ")
        ));
        json!({
            "playbook": text(&playbook),
            "role_paths": roles.iter().map(|r| text(r)).collect::<Vec<_>>(),
            "extra_arguments": extra.iter().map(|a| text(a)).collect::<Vec<_>>(),
            "local_check": text(&check),
        })
    });
    json!({
        "component": text(&plan.component),
        "run_id": plan.run_id,
        "build_region": plan.build_region,
        "copy_regions": plan.copy_regions,
        "builders": builders,
        "source_ami": source_ami,
        "source_ami_filter": filter,
        "vpc_id": component.vpc_id.as_deref().map(text),
        "subnet_id": component.subnet_id.as_deref().map(text),
        "endpoint": opts.endpoint,
        "communicator": match component.communicator { Communicator::Ssh => "ssh", Communicator::None => "none" },
        "ssh_username": text(&component.ssh_username),
        "run_tags": text_map(&plan.run_tags),
        "ansible": ansible,
        "manifest": text(&opts.manifest),
    })
}

/// Renders the component's template (or the built-in one) and checks that the result is JSON.
pub fn render(
    plan: &BakePlan,
    component: &Component,
    opts: &RenderOptions,
) -> Result<String, InputError> {
    let (name, source) = match &component.template {
        Some(p) => (
            p.display().to_string(),
            std::fs::read_to_string(p).map_err(|e| {
                InputError::whole_file(p.display().to_string(), format!("cannot read: {e}"))
            })?,
        ),
        None => (BUILTIN_NAME.to_owned(), BUILTIN.to_owned()),
    };
    render_source(&name, &source, &context(plan, component, opts))
}

/// Renders template text with a context; errors name the template.
pub fn render_source(name: &str, source: &str, ctx: &Value) -> Result<String, InputError> {
    let chain = |e: &tera::Error| {
        let mut msg = e.to_string();
        let mut s = std::error::Error::source(e);
        while let Some(x) = s {
            msg.push_str(&format!(": {x}"));
            s = x.source();
        }
        msg
    };
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![]);
    for (builder, text) in BUILDERS {
        tera.add_raw_template(builder, text).map_err(|e| {
            InputError::whole_file(
                format!("templates/{builder}"),
                format!("template error: {}", chain(&e)),
            )
        })?;
    }
    tera.add_raw_template(name, source)
        .map_err(|e| InputError::whole_file(name, format!("template error: {}", chain(&e))))?;
    let ctx = tera::Context::from_value(ctx.clone())
        .map_err(|e| InputError::whole_file(name, format!("template context: {e}")))?;
    let out = tera
        .render(name, &ctx)
        .map_err(|e| InputError::whole_file(name, format!("cannot render: {}", chain(&e))))?;
    if let Err(e) = serde_json::from_str::<Value>(&out) {
        let rendered = format!("{name} (rendered)");
        return Err(located(
            &rendered,
            &out,
            e.line(),
            e.column(),
            &format!("the rendered template is not valid JSON: {e}"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::metadata::{Metadata, Sourced};

    fn rendered(extra: &str) -> Value {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello-service");
        let text = format!(
            "component: svc\nrepo: r\nami_regions: [us-east-1, eu-west-1]\nbase_ami: {{name: \"base-*\", owners: [amazon], tags: {{Team: x}}}}\nansible: {{playbook: ansible/site.yml, roles: [ansible/roles], vars: {{k: \"a 'b' $c\"}}}}\n{extra}"
        );
        let c = crate::component::file::parse(&std::path::Path::new(dir).join("gears.yaml"), &text)
            .unwrap();
        let s = |v: &str| Sourced {
            value: v.into(),
            source: "test".into(),
        };
        let meta = Metadata {
            version: s("1.2"),
            git_sha: s("abc"),
            repo: s("r"),
        };
        let plan = super::super::plan::plan(&c, &meta, "202611231200", "run-1").unwrap();
        let out = render(
            &plan,
            &c,
            &RenderOptions {
                manifest: "/tmp/m.json".into(),
                ..Default::default()
            },
        )
        .unwrap();
        serde_json::from_str(&out).unwrap()
    }

    #[test]
    fn both_builder_templates_render() {
        let t = rendered("builders: [amazon-ebs, {type: amazon-chroot, name: agent}]\n");
        let ebs = &t["builders"][0];
        let chroot = &t["builders"][1];
        assert_eq!(ebs["type"], "amazon-ebs");
        assert_eq!(ebs["communicator"], "ssh");
        assert_eq!(ebs["ami_regions"], serde_json::json!(["eu-west-1"]));
        assert_eq!(ebs["source_ami_filter"]["filters"]["name"], "base-*");
        assert_eq!(ebs["source_ami_filter"]["filters"]["tag:Team"], "x");
        assert_eq!(ebs["tags"]["COMPONENT_VERSION"], "1.2");
        assert_eq!(ebs["tags"], ebs["snapshot_tags"]);
        assert_eq!(ebs["run_tags"]["gears:run-id"], "run-1");
        assert_eq!(chroot["type"], "amazon-chroot");
        assert_eq!(chroot["name"], "agent");
        assert!(chroot.get("instance_type").is_none() && chroot.get("communicator").is_none());
        assert_eq!(chroot["tags"]["gears:builder"], "agent");
        assert!(t.get("variables").is_none());
    }

    #[test]
    fn ansible_local_gets_playbook_roles_and_one_quoted_extra_vars_word() {
        let t = rendered("");
        let p = &t["provisioners"][0];
        assert_eq!(p["type"], "ansible-local");
        assert!(p["playbook_file"]
            .as_str()
            .unwrap()
            .ends_with("/examples/hello-service/ansible/site.yml"));
        assert!(p["role_paths"][0]
            .as_str()
            .unwrap()
            .ends_with("/examples/hello-service/ansible/roles"));
        assert_eq!(p["extra_arguments"][0], "--extra-vars");
        assert_eq!(
            p["extra_arguments"][1],
            r#"'{"COMPONENT_NAME":"svc","COMPONENT_VERSION":"1.2","k":"a '\''b'\'' $c"}'"#
        );
        let t = rendered("communicator: none\n");
        assert_eq!(t["provisioners"][0]["type"], "shell-local");
        assert!(t["provisioners"][0]["inline"][0]
            .as_str()
            .unwrap()
            .starts_with("ANSIBLE_ROLES_PATH="));
    }
}
