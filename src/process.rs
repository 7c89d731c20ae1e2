//! Child processes gears runs in their own process group (packer, `packer validate`,
//! `packer init`, `ansible-playbook --syntax-check`): a terminal's Ctrl-C reaches gears only,
//! and gears stops the whole group itself, children of the child included.

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

/// The last bytes a stream gave, at most `cap` of them, and how many came before them.
#[derive(Debug, Default)]
pub struct Tail {
    bytes: Vec<u8>,
    cap: usize,
    dropped: u64,
}

impl Tail {
    fn new(cap: usize) -> Self {
        Tail {
            bytes: Vec::new(),
            cap,
            dropped: 0,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        let over = self.bytes.len().saturating_sub(self.cap);
        if over > 0 {
            self.bytes.drain(..over);
            self.dropped += over as u64;
        }
    }

    /// Reads `from` to its end, keeping the tail.
    async fn read_all(
        &mut self,
        from: Option<impl tokio::io::AsyncRead + Unpin>,
    ) -> std::io::Result<()> {
        use tokio::io::AsyncReadExt;
        let Some(mut from) = from else {
            return Ok(());
        };
        let mut chunk = [0u8; 8 * 1024];
        loop {
            match from.read(&mut chunk).await? {
                0 => return Ok(()),
                n => self.push(&chunk[..n]),
            }
        }
    }

    /// As text (bytes that are not UTF-8 replaced); when the start was dropped, a line saying
    /// how much, then the kept bytes from their first whole line.
    pub fn text(&self) -> String {
        if self.dropped == 0 {
            return String::from_utf8_lossy(&self.bytes).into_owned();
        }
        let start = (self.bytes.iter().position(|b| *b == b'\n')).map_or(0, |i| i + 1);
        let left_out = self.dropped + start as u64;
        format!(
            "[{left_out} bytes before these not kept]\n{}",
            String::from_utf8_lossy(&self.bytes[start..])
        )
    }
}

/// How a child run by [`output_within`] ended.
#[derive(Debug)]
pub enum Ended {
    /// It exited by itself.
    Exited(std::process::ExitStatus),
    /// The deadline passed first: its process group was killed.
    TimedOut,
    /// `cancel` fired first: its process group was killed.
    Cancelled,
}

/// Runs `child` (spawned in its own process group, its stdout and stderr piped) to its end,
/// its deadline or a cancel, whichever comes first, keeping only the last `cap` bytes of each
/// of stdout and stderr: how it ended, and that output as text (stdout, then stderr). At the
/// deadline or a cancel the whole group is killed (a setup command creates nothing that needs
/// cleaning up).
pub async fn output_within(
    mut child: tokio::process::Child,
    cancel: &Cancel,
    deadline: std::time::Duration,
    cap: usize,
) -> std::io::Result<(Ended, String)> {
    let pid = child.id();
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (mut out, mut err) = (Tail::new(cap), Tail::new(cap));
    let ended = {
        let run = async {
            tokio::try_join!(out.read_all(stdout), err.read_all(stderr))?;
            child.wait().await
        };
        tokio::select! {
            status = run => status.map(Ended::Exited),
            _ = tokio::time::sleep(deadline) => Ok(Ended::TimedOut),
            _ = cancel.cancelled() => Ok(Ended::Cancelled),
        }
    };
    // Anything but its own exit (a deadline, a cancel, a pipe that failed): the whole group is
    // killed, never only the command (`kill_on_drop`), so none of its children outlives it.
    if let (false, Some(pid)) = (matches!(ended, Ok(Ended::Exited(_))), pid) {
        signal_group(pid, libc::SIGKILL);
    }
    Ok((ended?, format!("{}{}", out.text(), err.text())))
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

    /// A child that prints more than the cap and then hangs: stopped at the deadline, its
    /// group killed, and only the end of what it printed kept, from a whole line.
    #[tokio::test]
    async fn output_within_keeps_the_tail_and_stops_at_the_deadline() {
        // A grandchild that would leave a mark after 3 s: killed with the group.
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("still-here");
        let script = format!("(sleep 3; : > '{}') & i=0; while [ $i -lt 3000 ]; do echo \"line $i of the output\"; i=$((i+1)); done; echo last words >&2; sleep 30", marker.display());
        let start = Instant::now();
        let (ended, text) = output_within(
            spawn(&script),
            &Cancel::new(),
            Duration::from_millis(1500),
            1024,
        )
        .await
        .unwrap();
        assert!(matches!(ended, Ended::TimedOut), "{ended:?}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        assert!(text.len() < 1100, "{} bytes", text.len());
        assert!(text.starts_with("["), "{text}");
        assert!(
            text.contains(" bytes before these not kept]\nline "),
            "{text}"
        );
        assert!(
            text.contains("line 2999 of the output\nlast words\n"),
            "{text}"
        );
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "the grandchild was killed with its group");
        // Within the deadline: the exit status and all of a short output.
        let (ended, text) = output_within(
            spawn("echo out; echo err >&2; exit 3"),
            &Cancel::new(),
            Duration::from_secs(30),
            1024,
        )
        .await
        .unwrap();
        assert!(
            matches!(ended, Ended::Exited(s) if s.code() == Some(3)),
            "{ended:?}"
        );
        assert_eq!(text, "out\nerr\n");
    }

    #[test]
    fn no_group_of_our_own_is_ever_signalled() {
        // pid 0 would be gears' own process group: nothing is sent.
        signal_group(0, 0);
        signal_group(u32::MAX, 0);
    }
}
