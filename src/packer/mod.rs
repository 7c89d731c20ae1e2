//! The packer adapter: [`machine`] parses `-machine-readable` lines (pure), [`process`] runs
//! `packer build` and follows its output, [`validate()`] runs `packer validate`.

pub mod machine;
pub mod process;
mod validate;

pub use validate::validate;

/// Packer failed or produced no AMI (exit 4).
#[derive(Debug, thiserror::Error)]
pub enum PackerError {
    /// `packer` is not on PATH.
    #[error("packer is not installed (no `{0}` on PATH)")]
    Missing(String),
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
            PackerError::Failed { log: Some(l), .. } | PackerError::NoArtifact { log: Some(l) } => {
                Some(format!("the full packer log is in {l}"))
            }
            _ => None,
        }
    }
}
