//! The component file's keys about how the bake runs on Packer: the template's format, and the
//! build instance's settings ([`BuildSettings`]), per component and overridable per builder.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// How Packer reaches the build instance over SSH (`ssh_interface:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SshInterface {
    PublicIp,
    PrivateIp,
    /// Through AWS Systems Manager: no inbound SSH (the Session Manager plugin on the machine
    /// running Packer, and an instance profile allowing SSM on the build instance).
    SessionManager,
}

impl SshInterface {
    pub fn as_str(self) -> &'static str {
        match self {
            SshInterface::PublicIp => "public_ip",
            SshInterface::PrivateIp => "private_ip",
            SshInterface::SessionManager => "session_manager",
        }
    }
}

/// A builder's CPU architecture (`architecture:`), checked against its base AMI's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl Architecture {
    /// As EC2 names it (`Architecture` of DescribeImages).
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }
}

/// The build instance's root volume (`root_volume:`): what the AMI's root snapshot is made
/// from.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RootVolume {
    /// Size in GiB (1 to 16384).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<u32>,
    /// `gp2`, `gp3`, `io1`, `io2`, `st1`, `sc1` or `standard`.
    #[serde(rename = "type")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Provisioned IOPS (`gp3`, `io1`, `io2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iops: Option<u32>,
    /// Throughput in MiB/s (`gp3`: 125 to 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<bool>,
    /// The root device's name. Default: the base AMI's (`RootDeviceName`), `/dev/xvda` before
    /// it is looked up (`--dry-run`, `gears validate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
}

impl RootVolume {
    /// `self` with what `over` sets in place of its own.
    fn with(&self, over: &RootVolume) -> RootVolume {
        RootVolume {
            size_gb: over.size_gb.or(self.size_gb),
            kind: over.kind.clone().or_else(|| self.kind.clone()),
            iops: over.iops.or(self.iops),
            throughput: over.throughput.or(self.throughput),
            encrypted: over.encrypted.or(self.encrypted),
            device_name: over
                .device_name
                .clone()
                .or_else(|| self.device_name.clone()),
        }
    }
}

/// A Spot price: `auto` (the current Spot price, capped at on-demand) or dollars an hour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpotPrice(pub String);

impl<'de> Deserialize<'de> for SpotPrice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Number(n) => n.to_string(),
            Raw::Text(t) => t,
        };
        let ok = text == "auto" || text.parse::<f64>().is_ok_and(|p| p > 0.0 && p.is_finite());
        if ok {
            Ok(SpotPrice(text))
        } else {
            Err(de::Error::custom(format!(
                "`{text}` is not a Spot price: `auto`, or dollars an hour like 0.05"
            )))
        }
    }
}

/// Spot capacity for the build instance (`spot:`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Spot {
    /// The highest price: `auto` or dollars an hour.
    pub max_price: SpotPrice,
    /// Instance types Packer may choose from (in place of the builder's `instance_type`).
    #[serde(default)]
    pub instance_types: Vec<String>,
}

/// The build instance's settings, per component and overridable per builder.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct BuildSettings {
    /// An instance profile name for the build instance.
    pub instance_profile: Option<String>,
    /// Security groups of the build instance (Packer then makes no temporary one).
    pub security_group_ids: Option<Vec<String>>,
    /// The CIDRs Packer's temporary security group lets SSH in from.
    pub ssh_cidrs: Option<Vec<String>>,
    pub ssh_interface: Option<SshInterface>,
    pub root_volume: Option<RootVolume>,
    pub spot: Option<Spot>,
    /// Tags added to gears' own on the AMIs and snapshots.
    pub tags: BTreeMap<String, String>,
    /// Tags added to gears' own on the build instance and its volumes.
    pub run_tags: BTreeMap<String, String>,
}

impl BuildSettings {
    /// `self` (the component's) with what a builder's `over` sets in its place: each setting
    /// the builder gives wins (the root volume key by key), tags are added.
    pub fn with(&self, over: &BuildSettings) -> BuildSettings {
        let mut tags = self.tags.clone();
        tags.extend(over.tags.clone());
        let mut run_tags = self.run_tags.clone();
        run_tags.extend(over.run_tags.clone());
        BuildSettings {
            instance_profile: over
                .instance_profile
                .clone()
                .or_else(|| self.instance_profile.clone()),
            security_group_ids: over
                .security_group_ids
                .clone()
                .or_else(|| self.security_group_ids.clone()),
            ssh_cidrs: over.ssh_cidrs.clone().or_else(|| self.ssh_cidrs.clone()),
            ssh_interface: over.ssh_interface.or(self.ssh_interface),
            root_volume: match (&self.root_volume, &over.root_volume) {
                (Some(a), Some(b)) => Some(a.with(b)),
                (a, b) => b.clone().or_else(|| a.clone()),
            },
            spot: over.spot.clone().or_else(|| self.spot.clone()),
            tags,
            run_tags,
        }
    }

    /// Whether SSH reaches the build instance from anywhere: Packer's temporary security group
    /// then lets `0.0.0.0/0` in.
    pub fn ssh_from_anywhere(&self) -> bool {
        self.security_group_ids.as_ref().is_none_or(Vec::is_empty)
            && self.ssh_cidrs.as_ref().is_none_or(Vec::is_empty)
            && self.ssh_interface != Some(SshInterface::SessionManager)
    }
}

/// Something wrong: the path of the key it is at (`["root_volume", "type"]`, a list's index as
/// a number; for its line and column) and what, in words.
pub type Problem = (Vec<String>, String);

/// A key's path from its parts.
fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

/// The tags gears writes on every AMI and snapshot, which `tags:` may not set.
pub const GEARS_AMI_TAGS: [&str; 6] = [
    "COMPONENT_NAME",
    "COMPONENT_VERSION",
    "AMI_VERSION",
    "GIT_SHA",
    "COMPONENT_REPO",
    "CREATED_AT",
];

/// Checks what needs no AWS: ids, CIDRs, the volume, the price, and the tags (none of gears'
/// own, `gears:*` or `aws:*`; within EC2's lengths; no `{{`, which Packer would evaluate).
pub fn check(b: &BuildSettings) -> Result<(), Problem> {
    let p = |key: &[&str], msg: String| Err((path(key), msg));
    if b.instance_profile.as_deref() == Some("") {
        return p(&["instance_profile"], "`instance_profile` is empty".into());
    }
    let sg = regex::Regex::new("^sg-[0-9a-f]{8,17}$").expect("valid regex");
    for id in b.security_group_ids.iter().flatten() {
        if !sg.is_match(id) {
            return p(
                &["security_group_ids"],
                format!("`{id}` is not a security group id like sg-0123456789abcdef0"),
            );
        }
    }
    for c in b.ssh_cidrs.iter().flatten() {
        if !is_cidr(c) {
            return p(
                &["ssh_cidrs"],
                format!("`{c}` is not a CIDR like 10.0.0.0/16"),
            );
        }
    }
    if let Some(v) = &b.root_volume {
        check_volume(v).map_err(|(k, m)| (path(&["root_volume", k]), m))?;
    }
    if let Some(s) = &b.spot {
        if s.instance_types.iter().any(String::is_empty) {
            return p(
                &["spot", "instance_types"],
                "an empty instance type in `spot.instance_types`".into(),
            );
        }
    }
    // Every free-text value reaches Packer's template engine as the tags do.
    let texts = (b
        .instance_profile
        .iter()
        .map(|v| (None, "instance_profile", v)))
    .chain(
        b.spot
            .iter()
            .flat_map(|s| (s.instance_types.iter()).map(|v| (Some("spot"), "instance_types", v))),
    )
    .chain(
        b.root_volume
            .iter()
            .flat_map(|r| (r.device_name.iter()).map(|v| (Some("root_volume"), "device_name", v))),
    );
    for (parent, key, v) in texts {
        if let Some(why) = crate::bake::quote::unsafe_reason(v) {
            let at: Vec<&str> = parent.into_iter().chain([key]).collect();
            return p(&at, format!("`{key}` {why}"));
        }
    }
    check_tags(&b.tags, &GEARS_AMI_TAGS, "tags")?;
    check_tags(&b.run_tags, &["Name"], "run_tags")
}

/// The build settings of the component and of each builder, merged as a bake merges them, and
/// each builder's own base AMI (by `check_base`). A builder's problem is at its own key
/// (`builders`, its index, the key).
pub fn check_all(
    build: &BuildSettings,
    builders: &[super::Builder],
    check_base: fn(&super::BaseAmi) -> Result<(), (&'static str, String)>,
) -> Result<(), Problem> {
    check(build)?;
    for (i, b) in builders.iter().enumerate() {
        let own = |key: Vec<String>| [path(&["builders", &i.to_string()]), key].concat();
        check(&b.settings).map_err(|(key, m)| (own(key), m))?;
        if b.kind == super::BuilderType::AmazonChroot {
            let own_type = b.instance_type.is_some().then_some("instance_type");
            if let Some(key) = own_type.or_else(|| instance_setting(&b.settings)) {
                return Err((
                    own(path(&[key])),
                    format!("builder `{}` is amazon-chroot, which launches no build instance: `{key}` is for amazon-ebs builders", b.name),
                ));
            }
        }
        let merged = build.with(&b.settings);
        if merged.ssh_interface == Some(SshInterface::SessionManager)
            && merged.instance_profile.is_none()
        {
            let key = path(&["ssh_interface"]);
            return Err((
                if b.settings.ssh_interface.is_some() { own(key) } else { key },
                format!("builder `{}`: `ssh_interface: session_manager` needs an `instance_profile` that allows Systems Manager (AmazonSSMManagedInstanceCore)", b.name),
            ));
        }
        if let Some(base) = &b.base_ami {
            check_base(base)
                .map_err(|(k, m)| (own(base_ami_key(k)), format!("builder `{}`: {m}", b.name)))?;
        }
    }
    Ok(())
}

/// The path of a key `check_base_ami` names (`base_ami` itself, or one of its keys).
pub fn base_ami_key(key: &str) -> Vec<String> {
    match key {
        "base_ami" => path(&["base_ami"]),
        k => path(&["base_ami", k]),
    }
}

/// The first setting of the build instance `b` sets (none of which an amazon-chroot builder has).
fn instance_setting(b: &BuildSettings) -> Option<&'static str> {
    (instance_settings(b).into_iter())
        .find(|(_, set)| *set)
        .map(|(key, _)| key)
}

/// Each setting of the build instance, and whether `b` sets it.
pub fn instance_settings(b: &BuildSettings) -> [(&'static str, bool); 7] {
    [
        ("instance_profile", b.instance_profile.is_some()),
        ("security_group_ids", b.security_group_ids.is_some()),
        ("ssh_cidrs", b.ssh_cidrs.is_some()),
        ("ssh_interface", b.ssh_interface.is_some()),
        ("root_volume", b.root_volume.is_some()),
        ("spot", b.spot.is_some()),
        ("run_tags", !b.run_tags.is_empty()),
    ]
}

/// `a.b.c.d/n` or an IPv6 prefix.
fn is_cidr(c: &str) -> bool {
    let Some((ip, bits)) = c.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits <= 32,
        Ok(std::net::IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

fn check_volume(v: &RootVolume) -> Result<(), (&'static str, String)> {
    const TYPES: [&str; 7] = ["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"];
    let kind = v.kind.as_deref();
    if let Some(k) = kind.filter(|k| !TYPES.contains(k)) {
        return Err((
            "type",
            format!("volume type `{k}` is not one of {}", TYPES.join(", ")),
        ));
    }
    if let Some(n) = v.size_gb.filter(|n| !(1..=16384).contains(n)) {
        return Err((
            "size_gb",
            format!("`size_gb: {n}` is not between 1 and 16384 GiB"),
        ));
    }
    if v.iops.is_some() && !matches!(kind, Some("gp3" | "io1" | "io2")) {
        return Err(("iops", "`iops` needs `type: gp3`, `io1` or `io2`".into()));
    }
    if let Some(t) = v.throughput {
        if kind != Some("gp3") {
            return Err(("throughput", "`throughput` needs `type: gp3`".into()));
        }
        if !(125..=1000).contains(&t) {
            return Err((
                "throughput",
                format!("`throughput: {t}` is not between 125 and 1000 MiB/s"),
            ));
        }
    }
    Ok(())
}

fn check_tags(tags: &BTreeMap<String, String>, own: &[&str], what: &str) -> Result<(), Problem> {
    for (k, v) in tags {
        let why = if own.contains(&k.as_str()) || k.starts_with("gears:") {
            Some(format!(
                "`{what}` may not set `{k}`: gears writes that tag itself"
            ))
        } else if k.starts_with("aws:") {
            Some(format!(
                "`{what}` may not set `{k}`: the `aws:` prefix is AWS's"
            ))
        } else if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            Some(format!("tag `{k}` in `{what}`: EC2 takes keys of 1 to 128 characters and values of at most 256"))
        } else if k.contains("{{") || v.contains("{{") {
            // As every value gears hands Packer (see bake::quote): Packer would evaluate it.
            Some(format!("tag `{k}` in `{what}` contains `{{{{`, which Packer evaluates as a template, so it cannot arrive intact"))
        } else {
            k.chars()
                .chain(v.chars())
                .find(|c| c.is_control())
                .map(|c| {
                    format!(
                        "tag `{k}` in `{what}` contains the control character U+{:04X}",
                        c as u32
                    )
                })
        };
        if let Some(why) = why {
            return Err((path(&[what, k]), why));
        }
    }
    Ok(())
}

/// The format of the template gears renders (`template_format:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateFormat {
    /// HCL2 (`.pkr.hcl`): Packer's format since 1.7; Packer 1.6.6 reads it too.
    Hcl2,
    /// JSON: Packer's legacy format.
    Json,
}

impl TemplateFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateFormat::Hcl2 => "hcl2",
            TemplateFormat::Json => "json",
        }
    }

    /// The rendered template's file name: Packer tells the formats apart by it.
    pub fn file_name(self) -> &'static str {
        match self {
            TemplateFormat::Hcl2 => "template.pkr.hcl",
            TemplateFormat::Json => "template.json",
        }
    }

    /// The format a template's file name says: `*.pkr.hcl[.tera]` or `*.json[.tera]`.
    pub fn of_name(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?;
        let name = name.strip_suffix(".tera").unwrap_or(name);
        if name.ends_with(".pkr.hcl") {
            Some(TemplateFormat::Hcl2)
        } else if name.ends_with(".json") {
            Some(TemplateFormat::Json)
        } else {
            None
        }
    }
}

/// The format a component asks for: `template_format:`, else its own template's by name
/// (`None`: the Packer in use decides). A name that says one format and a `template_format`
/// that says the other is an error, and so is an own template whose name says none without
/// `template_format`.
pub fn template_format(
    asked: Option<TemplateFormat>,
    own: Option<&Path>,
) -> Result<Option<TemplateFormat>, (&'static str, String)> {
    let Some(own) = own else { return Ok(asked) };
    match (asked, TemplateFormat::of_name(own)) {
        (Some(a), Some(n)) if a != n => Err((
            "template_format",
            format!(
                "`template_format: {}` but the template `{}` is named as {}",
                a.as_str(),
                own.display(),
                n.as_str()
            ),
        )),
        (None, None) => Err((
            "template",
            format!(
                "cannot tell the format of template `{}`: name it `*.pkr.hcl.tera` or `*.json.tera`, or set `template_format`",
                own.display()
            ),
        )),
        (a, n) => Ok(a.or(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_settings_win_and_tags_add_up() {
        let component = BuildSettings {
            instance_profile: Some("bake".into()),
            ssh_cidrs: Some(vec!["10.0.0.0/8".into()]),
            root_volume: Some(RootVolume {
                kind: Some("gp3".into()),
                encrypted: Some(true),
                ..Default::default()
            }),
            tags: BTreeMap::from([("Team".into(), "a".into()), ("Cost".into(), "1".into())]),
            ..Default::default()
        };
        let builder = BuildSettings {
            ssh_interface: Some(SshInterface::SessionManager),
            root_volume: Some(RootVolume {
                size_gb: Some(30),
                ..Default::default()
            }),
            tags: BTreeMap::from([("Team".into(), "b".into())]),
            ..Default::default()
        };
        let m = component.with(&builder);
        assert_eq!(m.instance_profile.as_deref(), Some("bake"));
        assert_eq!(m.ssh_interface, Some(SshInterface::SessionManager));
        let v = m.root_volume.unwrap();
        assert_eq!(
            (v.size_gb, v.kind.as_deref(), v.encrypted),
            (Some(30), Some("gp3"), Some(true))
        );
        assert_eq!(m.tags["Team"], "b");
        assert_eq!(m.tags["Cost"], "1");
        assert!(!component.ssh_from_anywhere());
        assert!(BuildSettings::default().ssh_from_anywhere());
    }

    /// Every free-text setting meets Packer's template engine: `{{` in one is refused at its
    /// key; a tag's key and value are checked each on its own (`a{` and `{b` are fine).
    #[test]
    fn template_syntax_in_any_setting_is_refused_at_its_key() {
        let profile = BuildSettings {
            instance_profile: Some("{{ env `AWS_SECRET_ACCESS_KEY` }}".into()),
            ..Default::default()
        };
        let (key, why) = check(&profile).unwrap_err();
        assert_eq!(key, ["instance_profile"]);
        assert!(why.contains("{{"), "{why}");
        let device = BuildSettings {
            root_volume: Some(RootVolume {
                device_name: Some("/dev/{{user `x`}}".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            check(&device).unwrap_err().0,
            ["root_volume", "device_name"]
        );
        let tags = BuildSettings {
            tags: BTreeMap::from([("a{".to_owned(), "{b".to_owned())]),
            ..Default::default()
        };
        assert_eq!(check(&tags), Ok(()));
    }

    #[test]
    fn settings_are_checked_without_aws() {
        let bad = |b: BuildSettings| check(&b).unwrap_err();
        let tags = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert_eq!(
            bad(BuildSettings {
                ssh_cidrs: Some(vec!["10.0.0.0/33".into()]),
                ..Default::default()
            })
            .0,
            ["ssh_cidrs"]
        );
        assert_eq!(
            bad(BuildSettings {
                security_group_ids: Some(vec!["default".into()]),
                ..Default::default()
            })
            .0,
            ["security_group_ids"]
        );
        let e = bad(BuildSettings {
            tags: tags("gears:run-id", "x"),
            ..Default::default()
        });
        assert_eq!(e.0, ["tags", "gears:run-id"]);
        assert!(e.1.contains("gears writes that tag itself"), "{e:?}");
        assert_eq!(
            bad(BuildSettings {
                tags: tags("GIT_SHA", "x"),
                ..Default::default()
            })
            .0,
            ["tags", "GIT_SHA"]
        );
        assert_eq!(
            bad(BuildSettings {
                run_tags: tags("Name", "x"),
                ..Default::default()
            })
            .0,
            ["run_tags", "Name"]
        );
        assert!(bad(BuildSettings {
            tags: tags("T", "{{ .Foo }}"),
            ..Default::default()
        })
        .1
        .contains("`{{`"));
        let vol = |v: RootVolume| BuildSettings {
            root_volume: Some(v),
            ..Default::default()
        };
        assert_eq!(
            bad(vol(RootVolume {
                kind: Some("gp9".into()),
                ..Default::default()
            }))
            .0,
            ["root_volume", "type"]
        );
        assert_eq!(
            bad(vol(RootVolume {
                throughput: Some(200),
                ..Default::default()
            }))
            .0,
            ["root_volume", "throughput"]
        );
        assert_eq!(
            bad(vol(RootVolume {
                kind: Some("gp2".into()),
                iops: Some(3000),
                ..Default::default()
            }))
            .0,
            ["root_volume", "iops"]
        );
        assert!(check(&vol(RootVolume {
            kind: Some("gp3".into()),
            iops: Some(3000),
            throughput: Some(250),
            size_gb: Some(20),
            ..Default::default()
        }))
        .is_ok());
        assert!(check(&BuildSettings {
            ssh_cidrs: Some(vec!["10.0.0.0/8".into(), "2001:db8::/32".into()]),
            run_tags: tags("Owner", "me"),
            ..Default::default()
        })
        .is_ok());
    }

    #[test]
    fn an_own_templates_format_comes_from_its_name_or_the_key() {
        use TemplateFormat::*;
        let p = Path::new;
        assert_eq!(template_format(None, None), Ok(None));
        assert_eq!(template_format(Some(Hcl2), None), Ok(Some(Hcl2)));
        assert_eq!(
            template_format(None, Some(p("x/own.pkr.hcl.tera"))),
            Ok(Some(Hcl2))
        );
        assert_eq!(
            template_format(None, Some(p("own.json.tera"))),
            Ok(Some(Json))
        );
        assert_eq!(template_format(None, Some(p("own.json"))), Ok(Some(Json)));
        assert_eq!(
            template_format(Some(Json), Some(p("own.tpl"))),
            Ok(Some(Json))
        );
        assert_eq!(
            template_format(Some(Json), Some(p("own.pkr.hcl.tera")))
                .unwrap_err()
                .0,
            "template_format"
        );
        assert_eq!(
            template_format(None, Some(p("own.tpl"))).unwrap_err().0,
            "template"
        );
    }
}
