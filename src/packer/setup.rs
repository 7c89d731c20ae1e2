//! What runs before a build, once per run: `packer version`, then what the Packer in use needs
//! for its plugins ([`super::version::plugin_step`]): `packer init` on a `required_plugins`
//! block, and on Packer 1.10 and later `packer plugins installed`. All before any AWS call.

use super::version::{missing, plugin_step, required_plugins_block, PackerVersion, Plugin};
use super::PackerError;
use crate::cancel::Cancel;
use crate::component::file::TemplateFormat;
use crate::error::Error;
use crate::process::{output_within, Ended};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// How long `packer init` may take to install the plugins (a download that hangs, a proxy
/// that never answers): then it is stopped, exit 4.
pub const INIT_DEADLINE: Duration = Duration::from_secs(10 * 60);

/// How long `packer version` and `packer plugins installed` may take (they read local files).
const QUICK_DEADLINE: Duration = Duration::from_secs(2 * 60);

/// How much of what a packer command prints is kept, of each of stdout and stderr: the last
/// 64 KiB (the end holds what went wrong).
const OUTPUT_TAIL: usize = 64 * 1024;

/// `program args` started for its output (in its own process group, so a terminal's Ctrl-C
/// reaches gears only, which then stops it; no update check): `None` when packer is not
/// installed.
pub(super) fn spawn<A: AsRef<std::ffi::OsStr>>(
    program: &Path,
    args: &[A],
) -> Result<Option<tokio::process::Child>, Error> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .env("CHECKPOINT_DISABLE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0)
        .spawn();
    match child {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PackerError::Io(e).into()),
        Ok(c) => Ok(Some(c)),
    }
}

/// What a packer command said: whether it succeeded and the tail of its output (stdout then
/// stderr, [`OUTPUT_TAIL`]); `None` when packer is not installed. It is stopped at `deadline`:
/// exit 4 saying so, with the tail of what it printed, and `plugins` in the hint.
async fn packer_output(
    program: &Path,
    args: &[&str],
    deadline: Duration,
    plugins: &[Plugin],
    cancel: &Cancel,
) -> Result<Option<(bool, String)>, Error> {
    let Some(child) = spawn(program, args)? else {
        return Ok(None);
    };
    let (ended, text) = output_within(child, cancel, deadline, OUTPUT_TAIL)
        .await
        .map_err(PackerError::Io)?;
    match ended {
        Ended::Exited(status) => Ok(Some((status.success(), text))),
        Ended::Cancelled => Err(Error::Interrupted(cancel.ended_by())),
        Ended::TimedOut => Err(PackerError::TimedOut {
            command: args.join(" "),
            after: deadline,
            said: text.trim().to_owned(),
            plugins: plugins.to_vec(),
        }
        .into()),
    }
}

/// `packer version`: `None` when packer is not installed; an answer without a version is an
/// error (exit 4) quoting it.
pub async fn read_version(program: &Path, cancel: &Cancel) -> Result<Option<PackerVersion>, Error> {
    let Some((_, text)) = packer_output(program, &["version"], QUICK_DEADLINE, &[], cancel).await?
    else {
        return Ok(None);
    };
    match PackerVersion::parse(&text) {
        Some(v) => Ok(Some(v)),
        None => Err(PackerError::UnknownVersion(text.trim().to_owned()).into()),
    }
}

/// `packer init` on a file holding only the `required_plugins` block (written into `work`),
/// stopped at `deadline` (exit 4 saying so); a failure is exit 4 with the tail of what it said.
async fn init(
    program: &Path,
    plugins: &[Plugin],
    work: &Path,
    deadline: Duration,
    cancel: &Cancel,
) -> Result<(), Error> {
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
    match packer_output(program, &["init", &path], deadline, plugins, cancel).await? {
        None => Err(PackerError::Missing(program.display().to_string()).into()),
        Some((true, _)) => Ok(()),
        Some((false, said)) => Err(PackerError::Init {
            said: said.trim().to_owned(),
            plugins: plugins.to_vec(),
        }
        .into()),
    }
}

/// Makes sure the plugins a build needs are there, as [`plugin_step`] decides: `packer init`
/// on a file holding only the `required_plugins` block (written into `work`; stopped after
/// [`INIT_DEADLINE`]), then, on Packer 1.10 and later, `packer plugins installed`: a missing plugin stops the bake (exit 4) naming
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
        init(program, plugins, work, INIT_DEADLINE, cancel).await?;
    }
    if step.check {
        let listing = ["plugins", "installed"];
        let Some((_, listed)) =
            packer_output(program, &listing, QUICK_DEADLINE, &[], cancel).await?
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packer::version::AMAZON;

    /// A stand-in `packer` in `dir` whose `init` runs `init` (a shell snippet).
    fn stand_in(dir: &Path, init: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let packer = dir.join("packer");
        let script =
            format!("#!/bin/sh\ncase \"$1\" in\n  init) {init} ;;\n  *) exit 0 ;;\nesac\n");
        std::fs::write(&packer, script).unwrap();
        std::fs::set_permissions(&packer, std::fs::Permissions::from_mode(0o755)).unwrap();
        packer
    }

    /// Prints ~300 KiB on stderr, the last line `last words`.
    const CHATTY: &str = "i=0; while [ $i -lt 6000 ]; do echo \"downloading part $i of the amazon plugin, still downloading, still downloading\" >&2; i=$((i+1)); done; echo 'last words' >&2";

    /// A `packer init` that hangs (a download that never ends) is stopped at its deadline, exit
    /// 4 saying so with the tail of what it printed and the install commands; one that fails
    /// after printing a lot keeps only the last 64 KiB of it for the message.
    #[tokio::test]
    async fn packer_init_is_stopped_at_its_deadline_and_its_output_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let amazon = std::slice::from_ref(&AMAZON);
        let packer = stand_in(dir.path(), &format!("{CHATTY}; exec sleep 60"));
        let start = std::time::Instant::now();
        let e = init(
            &packer,
            amazon,
            dir.path(),
            Duration::from_secs(2),
            &Cancel::new(),
        )
        .await
        .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(e.exit(), crate::exit::Exit::Packer, "{e}");
        let (shown, hint) = (e.to_string(), e.render());
        assert!(shown.starts_with("`packer init /"), "{shown}");
        assert!(
            shown.contains("did not finish within 2.0s and was stopped; it said:\n["),
            "{shown}"
        );
        assert!(shown.ends_with("still downloading\nlast words"), "{shown}");
        assert!(shown.len() < OUTPUT_TAIL + 1024, "{} bytes", shown.len());
        assert!(
            hint.contains("packer plugins install github.com/hashicorp/amazon"),
            "{hint}"
        );

        let packer = stand_in(dir.path(), &format!("{CHATTY}; exit 1"));
        let e = init(&packer, amazon, dir.path(), INIT_DEADLINE, &Cancel::new())
            .await
            .unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.contains("packer init could not install the plugins:\n["),
            "{shown}"
        );
        assert!(shown.ends_with("still downloading\nlast words"), "{shown}");
        assert!(shown.len() < OUTPUT_TAIL + 1024, "{} bytes", shown.len());
    }
}
