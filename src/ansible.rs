//! The ansible adapter: `ansible-playbook --syntax-check` of a component's playbook (used by
//! `gears validate`). The child runs in its own process group, so a terminal's Ctrl-C reaches
//! gears only; gears then stops the child and reports the interruption (130/143), not a failed
//! check.

use crate::cancel::Cancel;
use crate::error::{Error, InputError};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Runs `ansible-playbook --syntax-check -i localhost, playbook` with the role paths in
/// `ANSIBLE_ROLES_PATH`: `Ok(None)` when ansible is not installed, `Ok(Some(what it said))` when
/// the playbook passes, exit 3 naming the playbook when it fails, and [`Error::Interrupted`]
/// when the run is cancelled first.
pub async fn syntax_check(
    playbook: &Path,
    roles: &[PathBuf],
    cancel: &Cancel,
) -> Result<Option<String>, Error> {
    let roles: Vec<String> = roles.iter().map(|r| r.display().to_string()).collect();
    let child = tokio::process::Command::new("ansible-playbook")
        .args(["--syntax-check", "-i", "localhost,"])
        .arg(playbook)
        .env("ANSIBLE_ROLES_PATH", roles.join(":"))
        .env("ANSIBLE_NOCOLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0)
        .spawn();
    // Not installed (or not startable): the check is skipped, as before.
    let Ok(child) = child else {
        return Ok(None);
    };
    let interrupted = || Error::Interrupted(cancel.ended_by());
    let o = match crate::process::output_unless_cancelled(child, cancel).await {
        Ok(Some(o)) => o,
        Ok(None) => return Err(interrupted()),
        Err(_) => return Ok(None),
    };
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    if o.status.success() {
        Ok(Some(stdout.trim().to_owned()))
    } else if cancel.is_cancelled() {
        Err(interrupted())
    } else {
        Err(InputError::whole_file(
            playbook.display().to_string(),
            format!(
                "ansible-playbook --syntax-check failed:\n{}{}",
                stdout.trim(),
                stderr.trim()
            ),
        )
        .into())
    }
}
