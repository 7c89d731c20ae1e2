//! Renders the Packer template with tera: strict (an undefined variable is an error), every
//! value JSON-encoded (`json_encode()`) in a JSON template, an HCL2 literal (`hcl`, see
//! [`super::hcl`]) in an HCL2 one. Values that Packer's own template engine would evaluate (`{{`) were
//! refused when the plan was made (see `quote`). The playbook's vars go to the build instance
//! in a file of their own (see [`write_ansible_vars`]), never through Packer or a shell.

use super::plan::{ansible_extra_arguments, BakePlan};
use super::quote::ansible_vars_file;
use crate::component::file::{Ansible, Communicator, Component, TemplateFormat};
use crate::error::Error;
use crate::error::{located, InputError};
use crate::text::shell_quote;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The templates gears ships (templates/packer.json.tera, templates/packer.pkr.hcl.tera).
pub const BUILTIN: &str = include_str!("../../templates/packer.json.tera");
pub const BUILTIN_HCL: &str = include_str!("../../templates/packer.pkr.hcl.tera");
/// The templates they include, per builder and for the provisioners; a component's own
/// template may include them too.
pub const BUILDERS: [(&str, &str); 6] = [
    (
        "amazon-ebs.json.tera",
        include_str!("../../templates/amazon-ebs.json.tera"),
    ),
    (
        "amazon-chroot.json.tera",
        include_str!("../../templates/amazon-chroot.json.tera"),
    ),
    (
        "provisioners.json.tera",
        include_str!("../../templates/provisioners.json.tera"),
    ),
    (
        "amazon-ebs.pkr.hcl.tera",
        include_str!("../../templates/amazon-ebs.pkr.hcl.tera"),
    ),
    (
        "amazon-chroot.pkr.hcl.tera",
        include_str!("../../templates/amazon-chroot.pkr.hcl.tera"),
    ),
    (
        "provisioners.pkr.hcl.tera",
        include_str!("../../templates/provisioners.pkr.hcl.tera"),
    ),
];
/// Their names in messages.
pub const BUILTIN_NAME: &str = "templates/packer.json.tera";
pub const BUILTIN_HCL_NAME: &str = "templates/packer.pkr.hcl.tera";

/// What the template needs besides the plan.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// The base AMI id, when already resolved; otherwise the component's lookup is rendered.
    pub source_ami: Option<String>,
    /// `custom_endpoint_ec2` (emulators, VPC endpoints).
    pub endpoint: Option<String>,
    /// Where packer's manifest post-processor writes.
    pub manifest: String,
    /// Where the playbook's vars file is written (see [`write_ansible_vars`]), in a folder of
    /// its own: ansible-local uploads that folder.
    pub ansible_vars: String,
    /// The format rendered (the built-in template of that format, or the component's own).
    pub format: TemplateFormat,
    /// The `packer { required_plugins {...} }` block, on Packer 1.7 and later (HCL2 only).
    pub packer_block: String,
    /// Each builder's base AMI when looked up: its id and root device name.
    pub builder_amis: BTreeMap<String, (String, String)>,
    /// Whether the Packer in use has the amazon builders' `metadata_options` (1.7 and later).
    pub metadata_options: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            source_ami: None,
            endpoint: None,
            manifest: String::new(),
            ansible_vars: String::new(),
            format: TemplateFormat::Json,
            packer_block: String::new(),
            builder_amis: BTreeMap::new(),
            metadata_options: false,
        }
    }
}

/// The name of the folder ansible-local uploads the vars file in (under its staging directory,
/// `playbooks/<this>`), and of the file.
pub const ANSIBLE_VARS_DIR: &str = "gears-vars";
pub const ANSIBLE_VARS_FILE: &str = "extra-vars.yml";

/// Where the vars file goes in a run's work folder.
pub fn ansible_vars_path(work: &Path) -> std::path::PathBuf {
    work.join(ANSIBLE_VARS_DIR).join(ANSIBLE_VARS_FILE)
}

/// Writes the playbook's vars file for ansible-local (every string `!unsafe`, so Ansible never
/// evaluates template syntax in a value), when the component has a playbook.
pub fn write_ansible_vars(
    plan: &BakePlan,
    component: &Component,
    opts: &RenderOptions,
) -> Result<(), Error> {
    if component.ansible.is_none() {
        return Ok(());
    }
    let path = Path::new(&opts.ansible_vars);
    let write = |e: std::io::Error| Error::Write {
        path: path.display().to_string(),
        source: e,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write)?;
    }
    std::fs::write(path, ansible_vars_file(&plan.ansible_vars)).map_err(write)
}

/// The role directories ansible-local uploads: it puts each path of `role_paths` at
/// `<staging>/roles/<its name>`, so a component's roles folder (a search path, as
/// `ANSIBLE_ROLES_PATH` takes it) is given as the roles inside it.
fn roles_in(search_path: &[String]) -> Vec<String> {
    let mut roles = Vec::new();
    for dir in search_path {
        let mut inside: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.path().display().to_string())
            .collect();
        inside.sort();
        roles.extend(inside);
    }
    roles
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

/// A map of strings as the context holds it.
pub(super) fn strings(m: &BTreeMap<String, String>) -> Value {
    text_map(m)
}

/// A builder's tags, plus `gears:base-ami`: Packer fills in the base AMI it used (a template
/// expression of ours, not a user value), so a reused bake can tell which base it was built on.
pub(super) fn builder_tags(tags: &BTreeMap<String, String>) -> Value {
    let mut v = text_map(tags);
    v[crate::tags::BASE_AMI] = Value::String("{{ .SourceAMI }}".to_owned());
    v
}

/// The tera context of a bake (documented at the top of templates/packer.json.tera).
pub fn context(plan: &BakePlan, component: &Component, opts: &RenderOptions) -> Value {
    let builders: Vec<Value> = plan
        .builders
        .iter()
        .map(|b| super::template_settings::builder(b, component, opts))
        .collect();
    let source_ami = opts
        .source_ami
        .clone()
        .or_else(|| component.base_ami.id.clone())
        .or_else(|| {
            (component.base_ami.ssm.as_ref())
                .map(|_| super::template_settings::UNREAD_PARAMETER_AMI.to_owned())
        });
    let ansible = component
        .ansible
        .as_ref()
        .map(|a| ansible_context(a, plan, component, opts));
    json!({
        "component": text(&plan.component),
        "run_id": plan.run_id,
        "build_region": plan.build_region,
        "copy_regions": plan.copy_regions,
        "builders": builders,
        "source_ami": source_ami,
        "source_ami_filter": source_ami_filter(component),
        "vpc_id": component.vpc_id.as_deref().map(text),
        "subnet_id": component.subnet_id.as_deref().map(text),
        "endpoint": opts.endpoint,
        "communicator": match component.communicator { Communicator::Ssh => "ssh", Communicator::None => "none" },
        "ssh_username": text(&component.ssh_username),
        "run_tags": text_map(&plan.run_tags),
        "ansible": ansible,
        "encrypt": encrypt_context(component),
        "manifest": text(&opts.manifest),
        "template_format": opts.format.as_str(),
        "packer_block": opts.packer_block,
    })
}

/// The `encrypt` of the context: null, or the build region's key (null for the default key)
/// and each copy region's.
fn encrypt_context(component: &Component) -> Value {
    match &component.encrypt {
        None => Value::Null,
        Some(e) => json!({
            "kms_key_id": e.kms_key_id.as_ref().map(|k| text(&k.0)),
            "region_kms_key_ids": e.region_kms_key_ids.iter().map(|(r, k)| (r.clone(), text(&k.0))).collect::<Map<_, _>>(),
        }),
    }
}

/// The `source_ami_filter` of the context: the base AMI's name and tags, available ones only,
/// from its owners.
fn source_ami_filter(component: &Component) -> Value {
    filter_of(&component.base_ami)
}

/// The `source_ami_filter` of a base AMI lookup.
pub(super) fn filter_of(base: &crate::component::file::BaseAmi) -> Value {
    let mut filters = BTreeMap::new();
    if let Some(n) = &base.name {
        filters.insert("name".to_owned(), n.clone());
    }
    for (k, v) in &base.tags {
        filters.insert(format!("tag:{k}"), v.clone());
    }
    filters.insert("state".into(), "available".into());
    json!({"filters": text_map(&filters), "owners": base.owners.iter().map(|o| text(o)).collect::<Vec<_>>()})
}

/// The `ansible` of the context: playbook, roles, the vars file's way onto the instance, and
/// the local syntax check.
fn ansible_context(
    a: &Ansible,
    plan: &BakePlan,
    component: &Component,
    opts: &RenderOptions,
) -> Value {
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
    // ansible-local runs on the instance, in a staging directory of this run that it
    // removes afterwards; the vars file's folder goes there with `playbook_paths`.
    let staging = format!("/tmp/gears-ansible-{}", plan.run_id);
    let vars_dir = Path::new(&opts.ansible_vars)
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let remote_vars = format!("{staging}/playbooks/{ANSIBLE_VARS_DIR}/{ANSIBLE_VARS_FILE}");
    json!({
        "playbook": text(&playbook),
        "role_paths": roles_in(&roles).iter().map(|r| text(r)).collect::<Vec<_>>(),
        "vars_dir": text(&vars_dir),
        "staging_directory": text(&staging),
        "extra_arguments": [text("--extra-vars"), text(&shell_quote(&format!("@{remote_vars}")))],
        "local_check": text(&check),
    })
}

/// Renders the component's template (or the built-in one of `opts.format`) and checks that a
/// JSON result is JSON (an HCL2 one is read by `packer validate`).
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
        None => match opts.format {
            TemplateFormat::Json => (BUILTIN_NAME.to_owned(), BUILTIN.to_owned()),
            TemplateFormat::Hcl2 => (BUILTIN_HCL_NAME.to_owned(), BUILTIN_HCL.to_owned()),
        },
    };
    render_source(&name, &source, &context(plan, component, opts), opts.format)
}

/// Renders template text with a context; errors name the template.
pub fn render_source(
    name: &str,
    source: &str,
    ctx: &Value,
    format: TemplateFormat,
) -> Result<String, InputError> {
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
    tera.register_filter("hcl", super::hcl::filter);
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
    if format == TemplateFormat::Hcl2 {
        return Ok(out);
    }
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
            warnings: vec![],
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
                ansible_vars: "/tmp/w/gears-vars/extra-vars.yml".into(),
                ..Default::default()
            },
        )
        .unwrap();
        serde_json::from_str(&out).unwrap()
    }

    /// Issue 33 item 1: `encrypt:` becomes Packer's encrypt_boot, kms_key_id and
    /// region_kms_key_ids in both builders; without it, none of them.
    #[test]
    fn encryption_renders_into_both_builders() {
        let t = rendered("builders: [amazon-ebs, {type: amazon-chroot, name: agent}]\nshare: {accounts: [\"111111111111\"]}\nencrypt: {kms_key_id: alias/amis, region_kms_key_ids: {eu-west-1: alias/amis-euw1}}\n");
        for b in [&t["builders"][0], &t["builders"][1]] {
            assert_eq!(b["encrypt_boot"], true);
            assert_eq!(b["kms_key_id"], "alias/amis");
            assert_eq!(
                b["region_kms_key_ids"],
                json!({"eu-west-1": "alias/amis-euw1"})
            );
        }
        let default_key = rendered("encrypt: {}\n");
        assert_eq!(default_key["builders"][0]["encrypt_boot"], true);
        assert!(default_key["builders"][0].get("kms_key_id").is_none());
        let plain = rendered("");
        assert!(plain["builders"][0].get("encrypt_boot").is_none());
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
    fn ansible_local_gets_playbook_roles_and_the_vars_file() {
        let t = rendered("");
        let p = &t["provisioners"][0];
        assert_eq!(p["type"], "ansible-local");
        assert!(p["playbook_file"]
            .as_str()
            .unwrap()
            .ends_with("/examples/hello-service/ansible/site.yml"));
        // Each role inside the component's roles folder, so it lands at <staging>/roles/hello.
        assert_eq!(p["role_paths"].as_array().unwrap().len(), 1);
        assert!(p["role_paths"][0]
            .as_str()
            .unwrap()
            .ends_with("/examples/hello-service/ansible/roles/hello"));
        assert_eq!(p["playbook_paths"], json!(["/tmp/w/gears-vars"]));
        assert_eq!(p["staging_directory"], "/tmp/gears-ansible-run-1");
        assert_eq!(p["clean_staging_directory"], true);
        assert_eq!(
            p["extra_arguments"],
            json!([
                "--extra-vars",
                "'@/tmp/gears-ansible-run-1/playbooks/gears-vars/extra-vars.yml'"
            ])
        );
        // Without a communicator the playbook is only syntax-checked here, with the vars inline.
        let t = rendered("communicator: none\n");
        assert_eq!(t["provisioners"][0]["type"], "shell-local");
        let check = t["provisioners"][0]["inline"][0].as_str().unwrap();
        assert!(check.starts_with("ANSIBLE_ROLES_PATH="), "{check}");
        assert!(
            check.ends_with(r#" --extra-vars '{"COMPONENT_NAME":"svc","COMPONENT_VERSION":"1.2","k":"a '\''b'\'' $c"}'"#),
            "{check}"
        );
    }

    #[test]
    fn the_vars_file_is_written_where_ansible_local_uploads_it_from() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::component::file::parse(
            &Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello-service")).join("gears.yaml"),
            "component: svc\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-0123456789abcdef0}\nansible: {playbook: ansible/site.yml, vars: {v: \"{%raw%}\"}}\n",
        )
        .unwrap();
        let s = |v: &str| Sourced {
            value: v.into(),
            source: "test".into(),
        };
        let meta = Metadata {
            warnings: vec![],
            version: s("2.0 {#"),
            git_sha: s("abc"),
            repo: s("r"),
        };
        let plan = super::super::plan::plan(&c, &meta, "202611231200", "run-1").unwrap();
        let path = ansible_vars_path(dir.path());
        let opts = RenderOptions {
            ansible_vars: path.display().to_string(),
            ..Default::default()
        };
        write_ansible_vars(&plan, &c, &opts).unwrap();
        assert!(path.ends_with("gears-vars/extra-vars.yml"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(r#""COMPONENT_VERSION": !unsafe "2.0 {#""#),
            "{text}"
        );
        assert!(text.contains(r#""v": !unsafe "{%raw%}""#), "{text}");
    }
}
