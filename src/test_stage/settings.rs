//! What `gears test` is asked ([`TestAsk`], by the command line or a pipeline's `test:`
//! stage) and the settings it runs with, resolved by [`TestSettings::resolve`].

use crate::context::RunContext;
use crate::error::Error;
use crate::settings::{report_path, AmiChoice, OutputFormat};
use crate::smoke::target::Target;
use crate::units::{Delay, Seconds, Ttl};
use std::path::PathBuf;
use std::time::Duration;

/// The defaults of what a test may leave out, for the flags' help and a pipeline alike.
pub mod defaults {
    use crate::units::{Delay, Ttl};
    use std::time::Duration;
    /// How long the instance has to boot and pass the smoke tests.
    pub const READY_TIMEOUT: Delay = Delay(Duration::from_secs(600));
    /// When a kept or leftover instance expires.
    pub const TTL: Ttl = Ttl(Duration::from_secs(3600));
    /// Where the instance's console output and other run files are kept.
    pub const WORK_DIR: &str = ".gears";
}

/// One test as asked; what is left out is `None` (or `false`).
#[derive(Debug, Clone)]
pub struct TestAsk {
    pub component_file: PathBuf,
    pub ami: AmiChoice,
    /// Where the smoke tests go instead of the instance's address, as written.
    pub target_host: Option<String>,
    pub ready_timeout: Option<Delay>,
    pub ttl: Option<Ttl>,
    pub keep_on_failure: bool,
    pub junit: Option<PathBuf>,
    pub output: OutputFormat,
    pub heartbeat: Option<Seconds>,
    pub jobs: Option<usize>,
    pub endpoint_url: Option<String>,
    pub work_dir: Option<PathBuf>,
    /// The role to act through (`--role-arn`): the test instance runs in its account.
    pub role: Option<crate::accounts::Role>,
    /// The version under test (`--version`), for an AMI whose tags this account cannot see.
    pub version: Option<String>,
}

impl TestAsk {
    /// A test of `ami` with every knob at its default.
    pub fn new(component_file: PathBuf, ami: AmiChoice) -> Self {
        TestAsk {
            component_file,
            ami,
            target_host: None,
            ready_timeout: None,
            ttl: None,
            keep_on_failure: false,
            junit: None,
            output: OutputFormat::Human,
            heartbeat: None,
            jobs: None,
            endpoint_url: None,
            work_dir: None,
            role: None,
            version: None,
        }
    }
}

/// Everything `gears test` needs.
#[derive(Debug, Clone)]
pub struct TestSettings {
    pub component_file: PathBuf,
    pub ami: AmiChoice,
    /// Where the smoke tests go instead of the instance's address.
    pub target_host: Option<Target>,
    pub ready_timeout: Duration,
    pub ttl: Duration,
    pub keep_on_failure: bool,
    pub junit: Option<PathBuf>,
    pub output: OutputFormat,
    pub heartbeat: Duration,
    pub jobs: usize,
    pub endpoint_flag: Option<String>,
    pub work_dir: PathBuf,
    /// The account the test runs in, through its role (none: the credentials' own).
    pub account: Option<crate::accounts::RoleSession>,
    /// The version under test, when asked (`--version`): else the manifest's, else the AMI's
    /// `COMPONENT_VERSION` tag where EC2 shows it.
    pub version: Option<String>,
}

/// The component's name for a role session: the file's `component:` when it reads, else the
/// file's stem (the stage reports a file that does not read).
pub(crate) fn component_name(path: &std::path::Path) -> String {
    crate::component::load(path)
        .map(|c| c.name)
        .unwrap_or_else(|_| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
}

impl TestSettings {
    /// Resolves a test: the ask's values checked (an AMI id's form, the smoke target, a report
    /// path that can be written), then the defaults.
    pub fn resolve(ask: TestAsk, _ctx: &RunContext) -> Result<Self, Error> {
        if let AmiChoice::Explicit { ami, .. } = &ask.ami {
            if !crate::aws::is_ami_id(ami) {
                return Err(Error::usage(
                    format!("--ami {ami}: expected an AMI id like ami-0123456789abcdef0"),
                    None,
                ));
            }
        }
        let target_host = match &ask.target_host {
            Some(h) => Some(
                Target::parse(h)
                    .map_err(|e| Error::usage(format!("--target-host {h}: {e}"), None))?,
            ),
            None => None,
        };
        let jobs = ask.jobs.unwrap_or(crate::smoke::settings::defaults::JOBS);
        if jobs == 0 {
            return Err(Error::usage("--jobs 0: give at least 1", None));
        }
        // As for `gears smoke`: a report that cannot be written is refused before anything is
        // launched, not found out after the instance is gone.
        if let Some(j) = &ask.junit {
            report_path("--junit", j)?;
        }
        crate::settings::not_blank("--version", &ask.version)?;
        // The component's name only names a role's session: read only when there is one.
        let account = match ask.role {
            Some(role) => crate::accounts::session(
                "test",
                &component_name(&ask.component_file),
                Some(role),
                None,
                &crate::accounts::Accounts::new(),
            ),
            None => None,
        };
        Ok(TestSettings {
            account,
            component_file: ask.component_file,
            ami: ask.ami,
            target_host,
            ready_timeout: ask.ready_timeout.unwrap_or(defaults::READY_TIMEOUT).into(),
            ttl: ask.ttl.unwrap_or(defaults::TTL).into(),
            keep_on_failure: ask.keep_on_failure,
            junit: ask.junit,
            output: ask.output,
            heartbeat: ask
                .heartbeat
                .unwrap_or(crate::smoke::settings::defaults::HEARTBEAT)
                .into(),
            jobs,
            endpoint_flag: ask.endpoint_url,
            work_dir: ask.work_dir.unwrap_or_else(|| defaults::WORK_DIR.into()),
            version: ask.version,
        })
    }
}
