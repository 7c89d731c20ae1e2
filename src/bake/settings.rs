//! What `gears bake` and `gears validate` are asked ([`BakeAsk`], by the command line or a
//! pipeline's `bake:` stage) and the settings they run with, resolved by
//! [`BakeSettings::resolve`]: the ask, then the run's environment for the EC2 endpoint.

use crate::component::metadata::Overrides;
use crate::context::RunContext;
use crate::error::Error;
use crate::settings::{not_blank, OutputFormat};
use crate::units::Seconds;
use std::path::PathBuf;
use std::time::Duration;

/// The defaults of what a bake may leave out, for the flags' help and a pipeline alike.
pub mod defaults {
    use crate::units::Seconds;
    /// The packer executable.
    pub const PACKER: &str = "packer";
    /// Where rendered templates and packer logs are kept, one folder per run.
    pub const WORK_DIR: &str = ".gears";
    /// Silence from packer before a heartbeat line.
    pub const HEARTBEAT: Seconds = Seconds::of(30);
}

/// One bake as asked; what is left out is `None` (or `false`).
#[derive(Debug, Clone)]
pub struct BakeAsk {
    pub component_file: PathBuf,
    pub version: Option<String>,
    pub git_sha: Option<String>,
    /// `--endpoint-url`: the EC2 endpoint, also for the SDK.
    pub endpoint_url: Option<String>,
    pub packer: Option<PathBuf>,
    pub work_dir: Option<PathBuf>,
    pub manifest: Option<PathBuf>,
    pub dry_run: bool,
    pub explain: bool,
    pub force: bool,
    pub output: OutputFormat,
    pub heartbeat: Option<Seconds>,
}

impl BakeAsk {
    /// A bake of `component_file` with every knob at its default.
    pub fn new(component_file: PathBuf) -> Self {
        BakeAsk {
            component_file,
            version: None,
            git_sha: None,
            endpoint_url: None,
            packer: None,
            work_dir: None,
            manifest: None,
            dry_run: false,
            explain: false,
            force: false,
            output: OutputFormat::Human,
            heartbeat: None,
        }
    }
}

/// Everything `gears bake` and `gears validate` need.
#[derive(Debug, Clone)]
pub struct BakeSettings {
    pub component_file: PathBuf,
    pub overrides: Overrides,
    /// The EC2 endpoint for packer (flag, then AWS_ENDPOINT_URL_EC2, then AWS_ENDPOINT_URL).
    pub endpoint: Option<String>,
    /// The endpoint given on the command line, which the SDK must be told about (it reads the
    /// environment variables itself).
    pub endpoint_flag: Option<String>,
    pub manifest: PathBuf,
    pub work_dir: PathBuf,
    pub packer: PathBuf,
    pub dry_run: bool,
    pub explain: bool,
    pub force: bool,
    pub output: OutputFormat,
    /// Silence from packer before a heartbeat line.
    pub heartbeat: Duration,
}

impl BakeSettings {
    /// Resolves a bake: the ask's values, then `AWS_ENDPOINT_URL_EC2` and `AWS_ENDPOINT_URL`
    /// for packer's endpoint, then the defaults.
    pub fn resolve(ask: BakeAsk, ctx: &RunContext) -> Result<Self, Error> {
        not_blank("--version", &ask.version)?;
        not_blank("--git-sha", &ask.git_sha)?;
        let endpoint = ask
            .endpoint_url
            .clone()
            .or_else(|| ctx.var("AWS_ENDPOINT_URL_EC2").map(str::to_owned))
            .or_else(|| ctx.var("AWS_ENDPOINT_URL").map(str::to_owned));
        Ok(BakeSettings {
            component_file: ask.component_file,
            overrides: Overrides {
                version: ask.version,
                git_sha: ask.git_sha,
            },
            endpoint,
            endpoint_flag: ask.endpoint_url,
            manifest: ask
                .manifest
                .unwrap_or_else(|| PathBuf::from(crate::manifest::DEFAULT_FILE)),
            work_dir: ask.work_dir.unwrap_or_else(|| defaults::WORK_DIR.into()),
            packer: ask.packer.unwrap_or_else(|| defaults::PACKER.into()),
            dry_run: ask.dry_run,
            explain: ask.explain,
            force: ask.force,
            output: ask.output,
            heartbeat: ask.heartbeat.unwrap_or(defaults::HEARTBEAT).into(),
        })
    }
}
