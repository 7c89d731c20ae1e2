//! The packer adapter: [`machine`] parses `-machine-readable` lines (pure), [`process`] runs
//! `packer build` and follows its output, [`validate()`] runs `packer validate`, [`version`]
//! decides what the Packer in use needs (pure) and [`setup`] reads its version and sees to its
//! plugins.

pub mod machine;
pub mod process;
pub mod setup;
mod validate;
pub mod version;

pub use validate::validate;

/// Packer failed or produced no AMI (exit 4).
#[derive(Debug, thiserror::Error)]
pub enum PackerError {
    /// `packer` is not on PATH.
    #[error("packer is not installed (no `{0}` on PATH)")]
    Missing(String),
    /// `packer version` said no version.
    #[error("cannot tell which Packer this is: `packer version` said {0:?}")]
    UnknownVersion(String),
    /// Packer 1.10 or later without a plugin the template needs.
    #[error(
        "Packer {version} ships no builders or provisioners, and {} not installed",
        missing_names(plugins)
    )]
    MissingPlugins {
        version: String,
        plugins: Vec<version::Plugin>,
    },
    /// `packer init` failed (no network to the plugins' releases, a proxy...).
    #[error("packer init could not install the plugins:\n{said}")]
    Init {
        said: String,
        plugins: Vec<version::Plugin>,
    },
    /// A packer command before the build (`init`, `version`, `plugins installed`) did not
    /// finish in time and was stopped.
    #[error("`packer {command}` did not finish within {} and was stopped{}", crate::text::human_duration(*after), said_tail(said))]
    TimedOut {
        command: String,
        after: std::time::Duration,
        said: String,
        plugins: Vec<version::Plugin>,
    },
    /// packer ran and failed.
    #[error("packer build failed (exit code {code}):\n{errors}")]
    Failed {
        code: i32,
        errors: String,
        log: Option<String>,
    },
    /// packer succeeded but printed no AMI.
    #[error("packer finished but produced no AMI")]
    NoArtifact { log: Option<String> },
    /// packer could not be started or read.
    #[error("cannot run packer: {0}")]
    Io(#[from] std::io::Error),
}

impl PackerError {
    /// What to do next.
    pub fn hint(&self) -> Option<String> {
        match self {
            PackerError::Missing(_) => Some(
                "install Packer (Debian: `apt-get install -y packer`) or pass --packer PATH".into(),
            ),
            PackerError::MissingPlugins { plugins, .. }
            | PackerError::Init { plugins, .. }
            | PackerError::TimedOut { plugins, .. }
                if !plugins.is_empty() =>
            {
                Some(format!(
                    "install {}:\n  {}",
                    if plugins.len() == 1 { "it" } else { "them" },
                    plugins
                        .iter()
                        .map(version::Plugin::install_command)
                        .collect::<Vec<_>>()
                        .join("\n  ")
                ))
            }
            PackerError::Failed { log: Some(l), .. } | PackerError::NoArtifact { log: Some(l) } => {
                Some(format!("the full packer log is in {l}"))
            }
            _ => None,
        }
    }
}

/// `; it said:` and what, when it said anything.
fn said_tail(said: &str) -> String {
    if said.is_empty() {
        String::new()
    } else {
        format!("; it said:\n{said}")
    }
}

/// `the amazon plugin is`, `the amazon and ansible plugins are`.
fn missing_names(plugins: &[version::Plugin]) -> String {
    let names: Vec<&str> = plugins.iter().map(|p| p.name).collect();
    match names.as_slice() {
        [one] => format!("the {one} plugin is"),
        _ => format!("the {} plugins are", names.join(" and ")),
    }
}
