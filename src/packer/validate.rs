//! `packer validate` of a rendered template: syntax and the builders' and provisioners'
//! settings, no AWS call. The child runs in its own process group, so a terminal's Ctrl-C
//! reaches gears only; gears then stops the child and reports the interruption (130/143), not a
//! refused template.

use super::PackerError;
use crate::cancel::Cancel;
use crate::error::{Error, InputError};
use std::path::Path;

/// Runs `packer validate path`: `Ok(None)` when packer is not installed, `Ok(Some(what packer
/// said))` when it accepts the template, exit 3 naming the file when it refuses, and
/// [`Error::Interrupted`] when the run is cancelled first.
pub async fn validate(
    program: &Path,
    path: &Path,
    cancel: &Cancel,
) -> Result<Option<String>, Error> {
    let Some(child) = super::setup::spawn(
        program,
        &[std::ffi::OsStr::new("validate"), path.as_os_str()],
    )?
    else {
        return Ok(None);
    };
    let o = crate::process::output_unless_cancelled(child, cancel)
        .await
        .map_err(PackerError::Io)?;
    let Some(o) = o else {
        return Err(interrupted(cancel));
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if o.status.success() {
        Ok(Some(text.trim().to_owned()))
    } else if cancel.is_cancelled() {
        Err(interrupted(cancel))
    } else {
        Err(InputError::whole_file(
            path.display().to_string(),
            format!(
                "packer validate rejected the rendered template:\n{}",
                text.trim()
            ),
        )
        .into())
    }
}

fn interrupted(cancel: &Cancel) -> Error {
    Error::Interrupted(cancel.ended_by())
}
