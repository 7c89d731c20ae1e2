//! The arguments several commands share, each declared once and flattened into the commands
//! that take it, so a flag has one name, one help text and one parser everywhere.

use crate::accounts::{Role, RoleArn};
use crate::deploy::Strategy;
use crate::settings::OutputFormat;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::Args;
use std::path::PathBuf;

/// `-c/--component FILE`.
#[derive(Debug, Clone, Args)]
pub struct ComponentArg {
    /// The component file (YAML): its name, regions, builders and the sections of each stage.
    #[arg(
        id = "component",
        short = 'c',
        long = "component",
        value_name = "FILE",
        default_value = "gears.yaml"
    )]
    pub path: PathBuf,
}

/// `--output human|json`.
#[derive(Debug, Clone, Copy, Args)]
pub struct OutputArg {
    /// What stdout carries: a report for people, or JSON for scripts (the human report then
    /// goes to stderr where a command has one).
    #[arg(
        id = "output",
        long = "output",
        value_name = "FORMAT",
        default_value = "human",
        value_parser = PossibleValuesParser::new(["human", "json"])
            .map(|s| if s == "json" { OutputFormat::Json } else { OutputFormat::Human })
    )]
    pub format: OutputFormat,
}

/// `--endpoint-url URL`.
#[derive(Debug, Clone, Args)]
pub struct EndpointArg {
    /// The AWS endpoint, for an emulator or a proxy (default: $AWS_ENDPOINT_URL_<SERVICE>,
    /// then $AWS_ENDPOINT_URL); packer gets it as custom_endpoint_ec2.
    #[arg(id = "endpoint_url", long = "endpoint-url", value_name = "URL", value_parser = endpoint_url)]
    pub url: Option<String>,
}

/// An endpoint is an http:// or https:// URL.
fn endpoint_url(u: &str) -> Result<String, String> {
    if u.starts_with("http://") || u.starts_with("https://") {
        Ok(u.to_owned())
    } else {
        Err("expected an http:// or https:// URL".to_owned())
    }
}

/// `--role-arn ARN` and `--external-id ID`: the account a command acts in.
#[derive(Debug, Clone, Args)]
pub struct RoleArgs {
    /// Act in another account through this IAM role, assumed with STS (default: the
    /// environment's entry in the component file's `accounts:`, else the credentials' own
    /// account).
    #[arg(id = "role_arn", long = "role-arn", value_name = "ARN")]
    pub arn: Option<RoleArn>,
    /// The external id the role's trust policy asks for.
    #[arg(
        id = "external_id",
        long = "external-id",
        value_name = "ID",
        requires = "role_arn"
    )]
    pub external_id: Option<String>,
}

impl RoleArgs {
    /// The role asked for, if any.
    pub fn role(&self) -> Option<Role> {
        self.arn.clone().map(|role_arn| Role {
            role_arn,
            external_id: self.external_id.clone(),
        })
    }
}

/// `--region REGION`, once: the stage works in this region only.
#[derive(Debug, Clone, Args)]
pub struct RegionArg {
    /// Only this region (default: the manifest's: every region of it for deploy, the builder's
    /// first for test). Needed with --ami.
    #[arg(id = "region", long = "region", value_name = "REGION")]
    pub name: Option<String>,
}

/// Which AMI a stage takes: bake's manifest (of a builder, in a region), or one named.
#[derive(Debug, Clone, Args)]
pub struct AmiArgs {
    /// bake's manifest: the AMI of each builder per region.
    #[arg(long, value_name = "FILE", default_value = crate::manifest::DEFAULT_FILE)]
    pub manifest: PathBuf,
    /// This AMI instead of the manifest's (with --region).
    #[arg(long, value_name = "ID", requires = "region")]
    pub ami: Option<String>,
    #[command(flatten)]
    pub region: RegionArg,
    /// The manifest's builder (default: the component file's first).
    #[arg(long, value_name = "NAME", conflicts_with = "ami")]
    pub builder: Option<String>,
}

/// `--region REGION`, repeated: the regions to look in.
#[derive(Debug, Clone, Args)]
pub struct RegionsArg {
    /// A region to look in (repeat for several; default: the component file's ami_regions).
    #[arg(id = "region", long = "region", value_name = "REGION")]
    pub names: Vec<String>,
}

/// How gears runs packer and names what it bakes: shared by bake, validate and pipeline run.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// The component version (default: CI label, then git describe).
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    /// The git revision (default: CI revision, then git rev-parse HEAD).
    #[arg(long, value_name = "SHA")]
    pub git_sha: Option<String>,
    /// The packer executable.
    #[arg(long, value_name = "PATH", default_value = crate::bake::settings::defaults::PACKER)]
    pub packer: PathBuf,
    /// Where rendered templates, packer logs and console outputs are kept, one folder per run.
    #[arg(long, value_name = "DIR", default_value = crate::bake::settings::defaults::WORK_DIR)]
    pub work_dir: PathBuf,
}

/// `--strategy`'s values, parsed by [`Strategy`]'s one `FromStr`.
pub fn strategy_parser() -> impl TypedValueParser<Value = Strategy> {
    PossibleValuesParser::new(Strategy::NAMES).try_map(|s| s.parse::<Strategy>())
}
