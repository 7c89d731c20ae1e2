//! What runs before a build, once per run: `packer version`, then what the Packer in use needs
//! for its plugins ([`super::version::plugin_step`]): `packer init` on a `required_plugins`
//! block, and on Packer 1.10 and later `packer plugins installed`. All before any AWS call.

use super::version::{missing, plugin_step, required_plugins_block, PackerVersion, Plugin};
use super::PackerError;
use crate::cancel::Cancel;
use crate::component::file::TemplateFormat;
use crate::error::Error;
use std::path::Path;
use std::process::Stdio;

/// What a packer command printed (stdout then stderr) and whether it succeeded; `None` when
/// packer is not installed.
async fn packer_output(
    program: &Path,
    args: &[&str],
    cancel: &Cancel,
) -> Result<Option<(bool, String)>, Error> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0)
        .spawn();
    let child = match child {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(PackerError::Io(e).into()),
        Ok(c) => c,
    };
    let o = crate::process::output_unless_cancelled(child, cancel)
        .await
        .map_err(PackerError::Io)?;
    let Some(o) = o else {
        return Err(Error::Interrupted(cancel.ended_by()));
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(Some((o.status.success(), text)))
}

/// `packer version`: `None` when packer is not installed; an answer without a version is an
/// error (exit 4) quoting it.
pub async fn read_version(program: &Path, cancel: &Cancel) -> Result<Option<PackerVersion>, Error> {
    let Some((_, text)) = packer_output(program, &["version"], cancel).await? else {
        return Ok(None);
    };
    match PackerVersion::parse(&text) {
        Some(v) => Ok(Some(v)),
        None => Err(PackerError::UnknownVersion(text.trim().to_owned()).into()),
    }
}

/// Makes sure the plugins a build needs are there, as [`plugin_step`] decides: `packer init`
/// on a file holding only the `required_plugins` block (written into `work`), then, on Packer
/// 1.10 and later, `packer plugins installed`: a missing plugin stops the bake (exit 4) naming
/// the command that installs it.
pub async fn ensure_plugins(
    program: &Path,
    version: Option<PackerVersion>,
    format: TemplateFormat,
    plugins: &[Plugin],
    work: &Path,
    cancel: &Cancel,
) -> Result<(), Error> {
    let step = plugin_step(version, format);
    if step.init {
        std::fs::create_dir_all(work).map_err(|e| Error::Write {
            path: work.display().to_string(),
            source: e,
        })?;
        let file = work.join("plugins.pkr.hcl");
        std::fs::write(&file, required_plugins_block(plugins)).map_err(|e| Error::Write {
            path: file.display().to_string(),
            source: e,
        })?;
        let path = file.display().to_string();
        match packer_output(program, &["init", &path], cancel).await? {
            None => return Err(PackerError::Missing(program.display().to_string()).into()),
            Some((true, _)) => {}
            Some((false, said)) => {
                return Err(PackerError::Init {
                    said: said.trim().to_owned(),
                    plugins: plugins.to_vec(),
                }
                .into())
            }
        }
    }
    if step.check {
        let Some((_, listed)) = packer_output(program, &["plugins", "installed"], cancel).await?
        else {
            return Err(PackerError::Missing(program.display().to_string()).into());
        };
        let absent = missing(&listed, plugins);
        if !absent.is_empty() {
            return Err(PackerError::MissingPlugins {
                version: version.map(|v| v.to_string()).unwrap_or_default(),
                plugins: absent,
            }
            .into());
        }
    }
    Ok(())
}
