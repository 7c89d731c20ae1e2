//! The component file (`gears.yaml`): what a team keeps in its repository to describe how its
//! component is baked. Parsed with `deny_unknown_fields`; every error names `file:line:col`.

mod base_ami;
use base_ami::check_base_ami;
pub mod bake;
pub mod keys;
mod place;
use place::key_place;

pub use bake::{Architecture, BuildSettings, TemplateFormat};

use crate::error::{yaml_error, InputError};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A builder type gears ships a template for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum BuilderType {
    /// Launch an instance, provision it, snapshot it.
    #[serde(rename = "amazon-ebs")]
    AmazonEbs,
    /// Build on the EC2 agent itself by chroot into an attached volume (Beamly's build agents).
    #[serde(rename = "amazon-chroot")]
    AmazonChroot,
}

impl BuilderType {
    pub fn as_str(self) -> &'static str {
        match self {
            BuilderType::AmazonEbs => "amazon-ebs",
            BuilderType::AmazonChroot => "amazon-chroot",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "amazon-ebs" => Ok(BuilderType::AmazonEbs),
            "amazon-chroot" => Ok(BuilderType::AmazonChroot),
            other => Err(
                match crate::error::closest(other, &["amazon-ebs", "amazon-chroot"]) {
                    Some(c) => format!("unknown builder type `{other}`; did you mean `{c}`?"),
                    None => format!(
                        "unknown builder type `{other}` (expected amazon-ebs or amazon-chroot)"
                    ),
                },
            ),
        }
    }
}

impl<'de> Deserialize<'de> for BuilderType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        BuilderType::parse(&s).map_err(de::Error::custom)
    }
}

/// One builder: `amazon-ebs`, or `{type, name, instance_type, ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Builder {
    pub kind: BuilderType,
    /// Unique among the component's builders; part of the AMI name.
    pub name: String,
    pub instance_type: Option<String>,
    /// Its own base AMI, in place of the component's.
    pub base_ami: Option<BaseAmi>,
    /// Checked against the base AMI's before anything is launched.
    pub architecture: Option<Architecture>,
    /// What it sets of the build instance's settings, over the component's.
    pub settings: BuildSettings,
}

impl Builder {
    /// A builder of `kind` named after it, with nothing of its own.
    pub fn of(kind: BuilderType) -> Self {
        Builder {
            kind,
            name: kind.as_str().to_owned(),
            instance_type: None,
            base_ami: None,
            architecture: None,
            settings: BuildSettings::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuilderMap {
    #[serde(rename = "type")]
    kind: BuilderType,
    name: Option<String>,
    instance_type: Option<String>,
    base_ami: Option<BaseAmi>,
    architecture: Option<Architecture>,
    instance_profile: Option<String>,
    security_group_ids: Option<Vec<String>>,
    ssh_cidrs: Option<Vec<String>>,
    ssh_interface: Option<bake::SshInterface>,
    root_volume: Option<bake::RootVolume>,
    spot: Option<bake::Spot>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    run_tags: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for Builder {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Builder;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a builder type (amazon-ebs, amazon-chroot) or {type, name, instance_type}",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Builder, E> {
                Ok(Builder::of(BuilderType::parse(v).map_err(E::custom)?))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, m: A) -> Result<Builder, A::Error> {
                let b = BuilderMap::deserialize(de::value::MapAccessDeserializer::new(m))?;
                let name = b.name.unwrap_or_else(|| b.kind.as_str().to_owned());
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(de::Error::custom(format!(
                        "builder name `{name}` may only contain letters, digits, `-` and `_`"
                    )));
                }
                Ok(Builder {
                    kind: b.kind,
                    name,
                    instance_type: b.instance_type,
                    base_ami: b.base_ami,
                    architecture: b.architecture,
                    settings: BuildSettings {
                        instance_profile: b.instance_profile,
                        security_group_ids: b.security_group_ids,
                        ssh_cidrs: b.ssh_cidrs,
                        ssh_interface: b.ssh_interface,
                        root_volume: b.root_volume,
                        spot: b.spot,
                        tags: b.tags,
                        run_tags: b.run_tags,
                    },
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// An AWS region name such as `eu-west-1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Region(pub String);

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let re = regex::Regex::new(r"^[a-z]{2}(-[a-z]+)+-\d+$").expect("valid regex");
        if re.is_match(&s) {
            Ok(Region(s))
        } else {
            Err(de::Error::custom(format!(
                "`{s}` is not an AWS region name like eu-west-1"
            )))
        }
    }
}

/// The base AMI: an id, or a lookup where the newest match wins.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BaseAmi {
    pub id: Option<String>,
    /// A Parameter Store parameter whose value is the AMI id, resolved in the build region
    /// (`/aws/service/ami-amazon-linux-latest/...`, or the organisation's golden AMI).
    pub ssm: Option<String>,
    /// Name pattern, `*` wildcards as in EC2 filters.
    pub name: Option<String>,
    #[serde(default)]
    pub owners: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// The Ansible provisioning of the image.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ansible {
    /// Playbook, relative to the component file.
    pub playbook: PathBuf,
    /// Role directories, relative to the component file.
    #[serde(default)]
    pub roles: Vec<PathBuf>,
    /// Extra vars, passed to the playbook with COMPONENT_NAME and COMPONENT_VERSION.
    #[serde(default)]
    pub vars: serde_json::Map<String, serde_json::Value>,
}

/// How Packer reaches the build instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Communicator {
    /// SSH to the build instance (real AWS).
    #[default]
    Ssh,
    /// No connection (emulators and tests): instance provisioners cannot run, so the playbook is
    /// only syntax-checked locally.
    None,
}

/// Which address of the test instance the smoke tests go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TestAddress {
    /// The private IP (CI agents inside the VPC).
    #[default]
    PrivateIp,
    /// The public IP.
    PublicIp,
}

/// How `gears test` launches and checks a test instance (the `test:` section).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSection {
    /// Default: the component's `instance_type`.
    pub instance_type: Option<String>,
    /// Default: the component's `subnet_id`, else the default VPC's.
    pub subnet_id: Option<String>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// An instance profile name or ARN.
    pub instance_profile: Option<String>,
    pub key_name: Option<String>,
    /// User data, inline.
    pub user_data: Option<String>,
    /// User data from a file, relative to the component file.
    pub user_data_file: Option<PathBuf>,
    /// The smoke-test file, relative to the component file (default `smoke.yaml`).
    pub smoke_file: Option<PathBuf>,
    /// The port the smoke tests go to (default: each test's own, else 80).
    pub port: Option<u16>,
    #[serde(default)]
    pub address: TestAddress,
    /// The test instance's metadata service: `v2` (default: tokens required) or `v1`
    /// (also allowed, asked for explicitly).
    #[serde(default)]
    pub imds: crate::aws::Imds,
}

/// What `gears deploy` takes from the component file (the `deploy:` section).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySection {
    /// A DynamoDB table for the deploy locks (a true compare-and-swap), used unless
    /// `--lock-table` or `GEARS_LOCK_TABLE` names another.
    pub lock_table: Option<String>,
    /// CloudWatch alarms that gate every deploy of the component (beside `--alarm`).
    #[serde(default)]
    pub alarms: Vec<String>,
    /// Seconds a healthy batch keeps being gated before gears acts on it (`--bake-time`
    /// overrides).
    pub bake_time: Option<crate::units::Seconds>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    component: String,
    repo: Option<String>,
    ami_regions: Vec<Region>,
    #[serde(default)]
    builders: Option<Vec<Builder>>,
    base_ami: BaseAmi,
    instance_type: Option<String>,
    vpc_id: Option<String>,
    subnet_id: Option<String>,
    #[serde(default)]
    communicator: Communicator,
    ssh_username: Option<String>,
    instance_profile: Option<String>,
    security_group_ids: Option<Vec<String>>,
    ssh_cidrs: Option<Vec<String>>,
    ssh_interface: Option<bake::SshInterface>,
    root_volume: Option<bake::RootVolume>,
    spot: Option<bake::Spot>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    run_tags: BTreeMap<String, String>,
    ansible: Option<Ansible>,
    template: Option<PathBuf>,
    template_format: Option<TemplateFormat>,
    #[serde(default)]
    test: TestSection,
    #[serde(default)]
    deploy: DeploySection,
    /// Each environment's account: the role gears assumes to act there.
    #[serde(default)]
    accounts: crate::accounts::Accounts,
    /// Who may launch the AMIs besides the baking account.
    #[serde(default)]
    share: crate::accounts::Shares,
    /// The AMIs' boot volumes encrypted, with which KMS keys.
    encrypt: Option<super::encrypt::Encrypt>,
    /// Days after its bake each AMI is deprecated.
    deprecate_after: Option<super::hygiene::Days>,
    /// EC2's deregistration protection on each AMI.
    deregistration_protection: Option<super::hygiene::Protection>,
}

/// A validated component file.
#[derive(Debug, Clone)]
pub struct Component {
    /// Where it was read from.
    pub path: PathBuf,
    /// The directory paths in it are relative to.
    pub dir: PathBuf,
    pub name: String,
    pub repo: Option<String>,
    /// The first region is where the build runs; the AMI is copied to the others.
    pub regions: Vec<Region>,
    pub builders: Vec<Builder>,
    pub base_ami: BaseAmi,
    pub instance_type: String,
    pub vpc_id: Option<String>,
    pub subnet_id: Option<String>,
    pub communicator: Communicator,
    pub ssh_username: String,
    /// The build instance's settings (each builder's own over them: [`Builder::settings`]).
    pub build: BuildSettings,
    /// The component's keys the file sets that only amazon-ebs builders use (an amazon-chroot
    /// builder launches no build instance), for the warning a chroot builder gets.
    pub ebs_only: Vec<&'static str>,
    pub ansible: Option<Ansible>,
    /// The component's own template, resolved against `dir`.
    pub template: Option<PathBuf>,
    /// The template's format as the file asks (`template_format`, or its own template's name);
    /// `None`: the Packer in use decides ([`crate::packer::version::default_format`]).
    pub template_format: Option<TemplateFormat>,
    /// How `gears test` runs (paths resolved against `dir`).
    pub test: TestSection,
    /// What `gears deploy` takes from the file.
    pub deploy: DeploySection,
    /// Each environment's account (`accounts:`): the role gears assumes there.
    pub accounts: crate::accounts::Accounts,
    /// Who may launch the AMIs besides the baking account (`share:`), after every bake and
    /// reuse, in every region.
    pub share: crate::accounts::Shares,
    /// The boot volumes encrypted (`encrypt:`), with the organisation's keys.
    pub encrypt: Option<super::encrypt::Encrypt>,
    /// Days after its bake each AMI is deprecated (`deprecate_after:`).
    pub deprecate_after: Option<super::hygiene::Days>,
    /// EC2's deregistration protection on each AMI (`deregistration_protection:`).
    pub deregistration_protection: Option<super::hygiene::Protection>,
}

/// Reads and validates a component file.
pub fn load(path: &Path) -> Result<Component, crate::error::Error> {
    let source = std::fs::read_to_string(path).map_err(|e| crate::error::Error::Read {
        path: path.display().to_string(),
        source: e,
    })?;
    Ok(parse(path, &source)?)
}

/// Something wrong in a component file: the key it is at, and what is wrong, in words.
type Problem = (&'static str, String);

/// Parses a component file's text; `path` names it in errors and anchors relative paths.
pub fn parse(path: &Path, source: &str) -> Result<Component, InputError> {
    let name = path.display().to_string();
    if source.trim().is_empty() {
        return Err(InputError::whole_file(&name, "the component file is empty")
            .with_hint("see examples/hello-service/gears.yaml"));
    }
    let raw: RawComponent =
        serde_yaml::from_str(source).map_err(|e| yaml_error(&name, source, e))?;
    let at_path = |(key, msg): bake::Problem| {
        let (l, c) = key_place(source, &key);
        InputError::at(&name, source, l, c, msg)
    };
    let at = |(key, msg): Problem| at_path((vec![key.to_owned()], msg));
    check_name(&raw.component).map_err(at)?;
    check_regions(&raw.ami_regions).map_err(at)?;
    let builders = builders(raw.builders).map_err(at)?;
    check_base_ami(&raw.base_ami).map_err(|(k, msg)| at_path((bake::base_ami_key(k), msg)))?;
    let given = [
        ("instance_type", raw.instance_type.is_some()),
        ("vpc_id", raw.vpc_id.is_some()),
        ("subnet_id", raw.subnet_id.is_some()),
        ("ssh_username", raw.ssh_username.is_some()),
    ];
    let build = BuildSettings {
        instance_profile: raw.instance_profile,
        security_group_ids: raw.security_group_ids,
        ssh_cidrs: raw.ssh_cidrs,
        ssh_interface: raw.ssh_interface,
        root_volume: raw.root_volume,
        spot: raw.spot,
        tags: raw.tags,
        run_tags: raw.run_tags,
    };
    bake::check_all(&build, &builders, check_base_ami).map_err(at_path)?;
    let ebs_only = ebs_only(given, &build);
    let dir = component_dir(path);
    if let Some(a) = &raw.ansible {
        check_ansible(a, &dir).map_err(at)?;
    }
    if let Some(e) = &raw.encrypt {
        e.check(&raw.ami_regions, !raw.share.is_empty())
            .map_err(|(key, msg)| at_path((vec![key], msg)))?;
    }
    let template = template(raw.template, &dir).map_err(at)?;
    let template_format =
        bake::template_format(raw.template_format, template.as_deref()).map_err(at)?;
    let test = test_section(raw.test, &dir).map_err(at)?;
    Ok(Component {
        path: path.to_path_buf(),
        dir,
        name: raw.component,
        repo: raw.repo,
        regions: raw.ami_regions,
        builders,
        base_ami: raw.base_ami,
        instance_type: raw.instance_type.unwrap_or_else(|| "t3.micro".into()),
        vpc_id: raw.vpc_id,
        subnet_id: raw.subnet_id,
        communicator: raw.communicator,
        ssh_username: raw.ssh_username.unwrap_or_else(|| "ec2-user".into()),
        build,
        ebs_only,
        ansible: raw.ansible,
        template,
        template_format,
        test,
        deploy: raw.deploy,
        accounts: raw.accounts,
        share: raw.share,
        encrypt: raw.encrypt,
        deprecate_after: raw.deprecate_after,
        deregistration_protection: raw.deregistration_protection,
    })
}

/// The component's keys the file sets (of `given` and the build settings) that only
/// amazon-ebs builders use.
fn ebs_only(given: [(&'static str, bool); 4], build: &BuildSettings) -> Vec<&'static str> {
    (given.into_iter().chain(bake::instance_settings(build)))
        .filter(|(_, set)| *set)
        .map(|(key, _)| key)
        .collect()
}

/// The component name is not empty and only letters, digits, `-`, `_` and `.`.
fn check_name(component: &str) -> Result<(), Problem> {
    if component.is_empty()
        || !component
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err((
            "component",
            format!(
                "component name `{component}` may only contain letters, digits, `-`, `_` and `.`"
            ),
        ));
    }
    Ok(())
}

/// `ami_regions` names at least one region, none twice.
fn check_regions(regions: &[Region]) -> Result<(), Problem> {
    if regions.is_empty() {
        return Err((
            "ami_regions",
            "`ami_regions` is empty: name at least one region".into(),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in regions {
        if !seen.insert(r) {
            return Err(("ami_regions", format!("region `{}` is listed twice", r.0)));
        }
    }
    Ok(())
}

/// The builders: amazon-ebs when the file has none, else the file's, each with its own name.
fn builders(listed: Option<Vec<Builder>>) -> Result<Vec<Builder>, Problem> {
    let builders = listed.unwrap_or_else(|| vec![Builder::of(BuilderType::AmazonEbs)]);
    if builders.is_empty() {
        return Err((
            "builders",
            "`builders` is empty: leave it out for amazon-ebs".into(),
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for b in &builders {
        if !names.insert(b.name.as_str()) {
            return Err((
                "builders",
                format!(
                    "two builders are named `{}`: give each a distinct `name`",
                    b.name
                ),
            ));
        }
    }
    Ok(builders)
}

/// The folder of the component file, which relative paths in it are relative to (`.` for a
/// bare file name).
fn component_dir(path: &Path) -> PathBuf {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    }
}

/// The ansible playbook is a file and each role path a folder, relative to `dir`.
fn check_ansible(a: &Ansible, dir: &Path) -> Result<(), Problem> {
    if !dir.join(&a.playbook).is_file() {
        return Err((
            "playbook",
            format!(
                "playbook `{}` not found (paths are relative to {})",
                a.playbook.display(),
                dir.display()
            ),
        ));
    }
    for r in &a.roles {
        if !dir.join(r).is_dir() {
            return Err((
                "roles",
                format!("role path `{}` is not a directory", r.display()),
            ));
        }
    }
    Ok(())
}

/// The component's own packer template, made relative to `dir`, if it names one that exists.
fn template(template: Option<PathBuf>, dir: &Path) -> Result<Option<PathBuf>, Problem> {
    let template = template.map(|t| dir.join(t));
    if let Some(t) = &template {
        if !t.is_file() {
            return Err(("template", format!("template `{}` not found", t.display())));
        }
    }
    Ok(template)
}

/// The `test:` section checked, with its file paths made relative to `dir`.
fn test_section(mut test: TestSection, dir: &Path) -> Result<TestSection, Problem> {
    if test.user_data.is_some() && test.user_data_file.is_some() {
        return Err((
            "user_data_file",
            "`test` has both `user_data` and `user_data_file`: give one".into(),
        ));
    }
    if let Some(f) = &test.user_data_file {
        let f = dir.join(f);
        if !f.is_file() {
            return Err((
                "user_data_file",
                format!("user data file `{}` not found", f.display()),
            ));
        }
        test.user_data_file = Some(f);
    }
    if test.port == Some(0) {
        return Err(("port", "`port` must be between 1 and 65535".into()));
    }
    test.smoke_file = test.smoke_file.map(|f| dir.join(f));
    Ok(test)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "component: hello\nami_regions: [us-east-1, eu-west-1]\nbase_ami: {id: ami-04681a1dbd79675a5}\n";

    fn p(src: &str) -> Result<Component, InputError> {
        parse(Path::new("gears.yaml"), src)
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let c = p(OK).unwrap();
        assert_eq!(c.name, "hello");
        assert_eq!(c.regions[0].0, "us-east-1");
        assert_eq!(c.builders[0].kind, BuilderType::AmazonEbs);
        assert_eq!(c.instance_type, "t3.micro");
        assert_eq!(c.communicator, Communicator::Ssh);
    }

    #[test]
    fn builders_by_name_or_map() {
        let c = p(&format!(
            "{OK}builders:\n  - amazon-ebs\n  - {{type: amazon-chroot, name: chroot}}\n"
        ))
        .unwrap();
        assert_eq!(c.builders[1].name, "chroot");
        let e = p(&format!("{OK}builders: [amazon-ebs, amazon-ebs]\n")).unwrap_err();
        assert!(
            e.message.contains("two builders are named `amazon-ebs`"),
            "{e}"
        );
        assert_eq!(e.line, 4);
        let e = p(&format!("{OK}builders: [amazon-ebx]\n")).unwrap_err();
        assert!(e.message.contains("did you mean `amazon-ebs`"), "{e}");
        assert_eq!((e.line, e.column), (4, 12));
    }

    #[test]
    fn errors_are_located() {
        let e = p("component: hello\nami_regions: [us-east-1, westeros]\nbase_ami: {id: ami-04681a1dbd79675a5}\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("not an AWS region"), "{e}");
        let e = p(&format!("{OK}instnce_type: t3.large\n")).unwrap_err();
        assert_eq!((e.line, e.column), (4, 1));
        assert_eq!(e.hint.as_deref(), Some("did you mean `instance_type`?"));
        let e =
            p("component: hello\nami_regions: [us-east-1]\nbase_ami: {id: ami-1}\n").unwrap_err();
        assert!(e.message.contains("not an AMI id"), "{e}");
        let e = p("component: hello\nami_regions: [us-east-1]\nbase_ami: {owners: [amazon]}\n")
            .unwrap_err();
        assert_eq!(e.line, 3);
        let e = p("ami_regions: [us-east-1]\nbase_ami: {id: ami-04681a1dbd79675a5}\n").unwrap_err();
        assert!(e.message.contains("missing field `component`"), "{e}");
        let e = p(&format!("{OK}ansible: {{playbook: nope.yml}}\n")).unwrap_err();
        assert!(e.message.contains("playbook `nope.yml` not found"), "{e}");
        assert_eq!(e.line, 4);
    }

    /// A unit's value is refused at its own place by its one parser, whatever text before it
    /// looks like the key.
    #[test]
    fn a_bad_bake_time_is_placed_at_its_value() {
        let src = "component: hello\nrepo: \"see bake_time: 10\"\nami_regions: [us-east-1]\nbase_ami: {id: ami-04681a1dbd79675a5}\ndeploy:\n  bake_time: 0\n";
        let e = p(src).unwrap_err();
        assert_eq!((e.line, e.column), (6, 14), "{e}");
        assert!(e.message.contains("more than 0"), "{e}");
        let ok = p(&src.replace("bake_time: 0", "bake_time: 90")).unwrap();
        assert_eq!(ok.deploy.bake_time, Some(crate::units::Seconds::of(90)));
    }
}
