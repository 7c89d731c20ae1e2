//! What the settings of several stages share, below the stages: the output format, which AMI
//! a stage takes, and the checks of a report path. Each stage's own settings live beside it
//! (`smoke::settings`, `bake::settings`, `test_stage::settings`, `deploy::settings`,
//! `status`, `reap`, `amis`), each resolved by one function from what was asked (the command
//! line through `cli::ask`, or a pipeline entry), the run's environment ([`RunContext`]) and
//! the component file, in this precedence: a flag or pipeline entry, then the environment,
//! then the component file, then the default.

use crate::error::Error;
use std::path::{Path, PathBuf};

/// What stdout carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// A report for people (for smoke and test: Smolder's).
    #[default]
    Human,
    /// JSON for scripts (the human report, where there is one, goes to stderr).
    Json,
}

/// A report file must be writable where it is named: refused before any test runs, not after.
pub fn report_path(flag: &str, path: &Path) -> Result<(), Error> {
    if path.is_dir() {
        return Err(Error::usage(
            format!("{flag} {}: is a folder; name a file", path.display()),
            None,
        ));
    }
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(Error::usage(
            format!(
                "{flag} {}: the folder {} does not exist",
                path.display(),
                dir.display()
            ),
            Some(format!("create it first: mkdir -p {}", dir.display())),
        )),
        _ => Ok(()),
    }
}

/// A value that, when given, must not be blank (`--version " "`).
pub fn not_blank(flag: &str, v: &Option<String>) -> Result<(), Error> {
    match v {
        Some(s) if s.trim().is_empty() => Err(Error::usage(format!("{flag} is empty"), None)),
        _ => Ok(()),
    }
}

/// Which AMI `gears test` launches.
#[derive(Debug, Clone, PartialEq)]
pub enum AmiChoice {
    /// From bake's manifest: the builder (None: the first) in the region (None: its first).
    Manifest {
        path: PathBuf,
        builder: Option<String>,
        region: Option<String>,
    },
    /// Given on the command line.
    Explicit { ami: String, region: String },
}

impl AmiChoice {
    /// The region asked for (`--region`, or `--ami`'s), if any: the workers of a progress view.
    pub fn asked_regions(&self) -> Vec<String> {
        match self {
            AmiChoice::Explicit { region, .. } => vec![region.clone()],
            AmiChoice::Manifest { region, .. } => region.iter().cloned().collect(),
        }
    }
}
