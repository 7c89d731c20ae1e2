//! Child processes gears runs in their own process group (packer, `packer validate`,
//! `ansible-playbook --syntax-check`): a terminal's Ctrl-C reaches gears only, and gears stops
//! the whole group itself, children of the child included.

use crate::cancel::Cancel;
use std::process::Output;

/// Sends `signal` (a raw number: `libc::SIGKILL`, [`crate::cancel::Signal::number`]) to the
/// process group that `pid` leads (a child spawned with `process_group(0)`).
pub fn signal_group(pid: u32, signal: i32) {
    // Never 0 or negative: kill(2) would then signal gears' own group, or every process.
    let Some(group) = i32::try_from(pid).ok().filter(|g| *g > 0) else {
        return;
    };
    // SAFETY: kill(2) on the process group of a child gears spawned; no memory involved.
    unsafe { libc::kill(-group, signal) };
}

/// The output of `child` (spawned in its own process group, its stdout and stderr piped), or
/// `None` when `cancel` fires first: then the whole group is killed (a check creates nothing
/// that needs cleaning up).
pub async fn output_unless_cancelled(
    child: tokio::process::Child,
    cancel: &Cancel,
) -> std::io::Result<Option<Output>> {
    let pid = child.id();
    tokio::select! {
        o = child.wait_with_output() => o.map(Some),
        _ = cancel.cancelled() => {
            if let Some(pid) = pid {
                signal_group(pid, libc::SIGKILL);
            }
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    fn spawn(script: &str) -> tokio::process::Child {
        tokio::process::Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .unwrap()
    }

    #[tokio::test]
    async fn output_until_the_child_ends_and_the_group_killed_at_a_signal() {
        let o = output_unless_cancelled(spawn("echo out; echo err >&2"), &Cancel::new())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (&o.stdout[..], &o.stderr[..]),
            (&b"out\n"[..], &b"err\n"[..])
        );
        // A grandchild holding the pipes open goes too: the whole group is killed.
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("still-here");
        let script = format!("(sleep 2; : > '{}') & sleep 30", marker.display());
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            c2.cancel(crate::cancel::Signal::Int);
        });
        let start = Instant::now();
        let o = output_unless_cancelled(spawn(&script), &cancel)
            .await
            .unwrap();
        assert!(o.is_none());
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "the grandchild was killed with its group");
    }

    #[test]
    fn no_group_of_our_own_is_ever_signalled() {
        // pid 0 would be gears' own process group: nothing is sent.
        signal_group(0, 0);
        signal_group(u32::MAX, 0);
    }
}
