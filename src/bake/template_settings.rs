//! A builder in the template's context (`b` in the builder templates): its names and tags, its
//! base AMI, and the build instance's settings as Packer's options (each `null` when not set,
//! so a template writes a line only for what is set).

use super::plan::PlannedBuilder;
use super::template::{builder_tags, filter_of, strings, RenderOptions};
use crate::aws::Imds;
use crate::component::file::bake::RootVolume;
use crate::component::Component;
use serde_json::{json, Map, Value};

/// The source AMI a template renders for a base AMI parameter not read (`--dry-run`,
/// `gears validate`: no AWS call), so `packer validate` sees an id, never a filter without owners
/// (which Packer refuses); a bake always reads the parameter first.
pub const UNREAD_PARAMETER_AMI: &str = "ami-00000000000000000";

/// `b` of the builder templates.
pub fn builder(b: &PlannedBuilder, component: &Component, opts: &RenderOptions) -> Value {
    let found = opts.builder_amis.get(&b.name);
    let source_ami = found
        .map(|(id, _)| id.clone())
        .or_else(|| b.base_ami.id.clone())
        .or_else(|| {
            b.base_ami
                .ssm
                .as_ref()
                .map(|_| UNREAD_PARAMETER_AMI.to_owned())
        });
    let root_device = found.map(|(_, d)| d.as_str()).filter(|d| !d.is_empty());
    let s = &b.settings;
    let spot = s
        .spot
        .as_ref()
        .map(|spot| json!({"price": spot.max_price.0, "instance_types": spot.instance_types}));
    json!({
        "name": b.name,
        "type": b.kind.as_str(),
        "instance_type": b.instance_type,
        "ami_name": b.ami_name,
        "tags": builder_tags(&b.tags),
        "run_tags": strings(&b.run_tags),
        "source_ami": source_ami,
        "source_ami_filter": filter_of(&b.base_ami),
        "instance_profile": s.instance_profile,
        "security_group_ids": s.security_group_ids,
        "ssh_cidrs": s.ssh_cidrs,
        "ssh_interface": s.ssh_interface.map(|i| i.as_str()),
        "root_volume": s.root_volume.as_ref().map(|v| root_volume(v, root_device)),
        "spot": spot,
        "metadata_options": opts.metadata_options.then(|| metadata_options(component)),
    })
}

/// The root volume as one of Packer's `launch_block_device_mappings`: what is set, the device
/// (the file's, else the base AMI's, else `/dev/xvda`), deleted with the build instance.
fn root_volume(v: &RootVolume, base_root_device: Option<&str>) -> Value {
    let mut m = Map::new();
    let device = v
        .device_name
        .as_deref()
        .or(base_root_device)
        .unwrap_or("/dev/xvda");
    m.insert("device_name".into(), json!(device));
    if let Some(n) = v.size_gb {
        m.insert("volume_size".into(), json!(n));
    }
    if let Some(t) = &v.kind {
        m.insert("volume_type".into(), json!(t));
    }
    if let Some(n) = v.iops {
        m.insert("iops".into(), json!(n));
    }
    if let Some(n) = v.throughput {
        m.insert("throughput".into(), json!(n));
    }
    if let Some(e) = v.encrypted {
        m.insert("encrypted".into(), json!(e));
    }
    m.insert("delete_on_termination".into(), json!(true));
    Value::Object(m)
}

/// The build instance's metadata service as `gears test`'s (`test.imds`): tokens required
/// unless v1 is asked for (Packer 1.7 and later; 1.6.6 has no `metadata_options`).
fn metadata_options(component: &Component) -> Value {
    let tokens = match component.test.imds {
        Imds::V2 => "required",
        Imds::V1 => "optional",
    };
    json!({"http_endpoint": "enabled", "http_tokens": tokens})
}

#[cfg(test)]
mod tests {
    use crate::bake::template::{render, RenderOptions};
    use crate::component::file::TemplateFormat;

    fn render_with(extra: &str, format: TemplateFormat, metadata_options: bool) -> String {
        let c = crate::component::file::parse(
            std::path::Path::new("gears.yaml"),
            &format!("component: svc\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {{id: ami-0123456789abcdef0}}\nbuilders: [{{type: amazon-ebs, name: web}}, {{type: amazon-ebs, name: arm, base_ami: {{id: ami-0a0a0a0a0a0a0a0a0}}}}]\n{extra}"),
        )
        .unwrap();
        let meta = crate::testing::metadata("1.0");
        let plan = crate::bake::plan::plan(&c, &meta, "202612070000", "run-1").unwrap();
        let opts = RenderOptions {
            format,
            metadata_options,
            builder_amis: [(
                "web".to_owned(),
                ("ami-0b0b0b0b0b0b0b0b0".to_owned(), "/dev/sda1".to_owned()),
            )]
            .into(),
            ..Default::default()
        };
        render(&plan, &c, &opts).unwrap()
    }

    /// Packer 1.7 and later: the build instance's metadata service as `gears test`'s (tokens
    /// required unless `test: {imds: v1}`); Packer 1.6.6 has no such option, so none is written.
    #[test]
    fn metadata_options_from_packer_1_7_follow_test_imds() {
        let hcl = render_with("", TemplateFormat::Hcl2, true);
        assert!(hcl.contains("  metadata_options {\n    http_endpoint = \"enabled\"\n    http_tokens = \"required\"\n  }"), "{hcl}");
        let v1 = render_with("test: {imds: v1}\n", TemplateFormat::Hcl2, true);
        assert!(v1.contains("http_tokens = \"optional\""), "{v1}");
        let json: serde_json::Value =
            serde_json::from_str(&render_with("", TemplateFormat::Json, true)).unwrap();
        assert_eq!(
            json["builders"][0]["metadata_options"]["http_tokens"],
            "required"
        );
        assert!(!render_with("", TemplateFormat::Hcl2, false).contains("metadata_options"));
    }

    /// Each builder's base AMI: the one looked up for it, else its own id; the root volume on
    /// the looked-up AMI's root device.
    #[test]
    fn each_builder_gets_its_base_ami_and_root_device() {
        let json: serde_json::Value = serde_json::from_str(&render_with(
            "root_volume: {size_gb: 16}\n",
            TemplateFormat::Json,
            false,
        ))
        .unwrap();
        let (web, arm) = (&json["builders"][0], &json["builders"][1]);
        assert_eq!(web["source_ami"], "ami-0b0b0b0b0b0b0b0b0");
        assert_eq!(arm["source_ami"], "ami-0a0a0a0a0a0a0a0a0");
        assert_eq!(
            web["launch_block_device_mappings"][0]["device_name"],
            "/dev/sda1"
        );
        assert_eq!(
            arm["launch_block_device_mappings"][0]["device_name"],
            "/dev/xvda"
        );
        assert_eq!(arm["launch_block_device_mappings"][0]["volume_size"], 16);
    }
}
