//! Runs `packer build -machine-readable`: packer writes stdout and stderr to log files, which gears
//! follows line by line (every line parsed), a heartbeat when packer is quiet, and SIGINT/SIGTERM
//! passed on to packer, whose cleanup (instance, key pair, security group) gears waits for. A
//! watchdog in packer's process group has packer clean up the same way when gears itself is
//! killed (`kill -9` by a CI agent).

use super::machine::{parse_line, BuildSummary, Event};
use super::PackerError;
use crate::cancel::Cancel;
use crate::error::Error;
use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// How to run packer.
#[derive(Debug, Clone)]
pub struct PackerCommand {
    /// The packer executable (a name looked up on PATH, or a path).
    pub program: PathBuf,
    /// Arguments after the program, e.g. `build -machine-readable template.json`.
    pub args: Vec<String>,
    pub dir: PathBuf,
    /// Extra environment for packer.
    pub env: Vec<(String, String)>,
    /// Where the full log goes: packer's stdout (its stderr goes beside it, see [`stderr_log`]).
    pub log: PathBuf,
    /// How long to wait for packer's own cleanup after passing on a signal.
    pub cleanup_grace: Duration,
    /// Silence before a heartbeat.
    pub heartbeat: Duration,
}

/// What the caller is told while packer runs.
#[derive(Debug, Clone)]
pub enum Progress<'a> {
    /// A parsed line.
    Event(&'a Event),
    /// packer has been quiet for a while; it has run this long.
    Heartbeat(Duration),
    /// A signal was passed on to packer; waiting for its cleanup.
    Stopping(crate::cancel::Signal),
}

/// A successful build.
#[derive(Debug, Clone, Default)]
pub struct BuildOutput {
    /// AMI ids per builder, then per region (artifact 0 of each builder).
    pub amis: BTreeMap<String, BTreeMap<String, String>>,
    pub duration: Duration,
}

const TAIL: usize = 30;

/// How often gears looks for new output in packer's files.
const POLL: Duration = Duration::from_millis(100);

/// One of packer's output files, followed as packer writes it (as `tail -f` does).
struct Follow {
    file: std::fs::File,
    buf: Vec<u8>,
}

impl Follow {
    fn open(path: &Path) -> Result<Self, PackerError> {
        let file = std::fs::File::open(path)?;
        Ok(Follow {
            file,
            buf: Vec::new(),
        })
    }

    /// The next complete line (split on the byte `\n`: a step may print bytes that are not
    /// UTF-8), or `None` when packer has not written one yet. With `at_end` (packer has
    /// exited), a last line without a newline is returned too.
    ///
    /// Reads a local regular file, which never waits for the writer; the only wait is the
    /// caller's poll interval.
    fn next_line(&mut self, at_end: bool) -> Option<Vec<u8>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let rest = self.buf.split_off(i + 1);
                let mut line = std::mem::replace(&mut self.buf, rest);
                line.pop();
                return Some(line);
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.file.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        (at_end && !self.buf.is_empty()).then(|| std::mem::take(&mut self.buf))
    }
}

/// Starts the watchdog: a tiny `sh` in packer's process group that blocks reading its stdin, a
/// pipe whose write end only gears holds. When gears ends without saying `done` (even by
/// `kill -9`, which nothing can catch), the kernel closes the pipe, `read` returns, and the
/// watchdog sends SIGINT to the whole group: packer cancels the build and cleans up as on
/// Ctrl-C (measured: SIGINT to packer's top process alone is ignored). packer's output goes to
/// files, so it never dies on a broken pipe meanwhile.
fn watchdog(group: u32) -> std::io::Result<(tokio::process::Child, tokio::process::ChildStdin)> {
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", r#"read -r word; [ "$word" = done ] || kill -INT 0"#])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(group as i32)
        .spawn()?;
    let stdin = child.stdin.take().expect("piped");
    Ok((child, stdin))
}

/// Runs packer to the end. `Err` for a failed build, no AMI, a missing packer, or an
/// interruption (after packer's cleanup).
///
/// packer's stdout is the log (`cmd.log`, machine-readable lines) and its stderr goes beside it
/// (`.stderr.log`); gears follows both files. If gears dies, packer writes on, and the watchdog
/// makes it clean up (see [`watchdog`]).
pub async fn run(
    cmd: &PackerCommand,
    cancel: &Cancel,
    mut on_progress: impl FnMut(Progress<'_>),
) -> Result<BuildOutput, Error> {
    let start = Instant::now();
    let stderr_log = stderr_log(&cmd.log);
    let mut child = spawn(cmd, &stderr_log)?;
    let pid = child.id();
    // Without a watchdog (no `sh`, or packer already gone) the build still runs; only a hard
    // kill of gears would then leave packer's resources behind.
    let guard = pid.and_then(|pid| watchdog(pid).ok());
    let mut out = Output {
        stdout: Follow::open(&cmd.log)?,
        stderr: Follow::open(&stderr_log)?,
        tail: VecDeque::new(),
        summary: BuildSummary::default(),
        last_output: Instant::now(),
    };
    let (status, stopped) = follow_until_exit(
        cmd,
        &mut child,
        pid,
        &mut out,
        cancel,
        start,
        &mut on_progress,
    )
    .await?;
    // packer is done: tell the watchdog, so it leaves quietly (it is gone already if a signal
    // was passed on to the group; then the write fails, which is fine).
    if let Some((mut watchdog, mut stdin)) = guard {
        let _ = stdin.write_all(b"done\n").await;
        drop(stdin);
        let _ = watchdog.wait().await;
    }
    outcome(status, stopped, out, &cmd.log, start)
}

/// Creates the two log files and starts packer writing into them, in its own process group.
fn spawn(cmd: &PackerCommand, stderr_log: &Path) -> Result<tokio::process::Child, Error> {
    let create = |path: &Path| {
        std::fs::File::create(path).map_err(|e| Error::Write {
            path: path.display().to_string(),
            source: e,
        })
    };
    let (out_file, err_file) = (create(&cmd.log)?, create(stderr_log)?);
    let child = tokio::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .current_dir(&cmd.dir)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_file))
        .stderr(Stdio::from(err_file))
        // Not killed when this future is dropped: the watchdog then has it clean up instead.
        .kill_on_drop(false)
        // Its own process group: a terminal's Ctrl-C reaches gears only, and gears passes it on
        // once, so packer cleans up instead of seeing two interrupts.
        .process_group(0)
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                PackerError::Missing(cmd.program.display().to_string())
            } else {
                PackerError::Io(e)
            }
        })?;
    Ok(child)
}

/// What gears has read of packer's output so far.
struct Output {
    stdout: Follow,
    stderr: Follow,
    /// The last [`TAIL`] lines of both files, for the error message.
    tail: VecDeque<String>,
    summary: BuildSummary,
    /// When packer last wrote a line (or gears last said a heartbeat).
    last_output: Instant,
}

impl Output {
    /// Reads every line packer has written since the last call: stdout lines are parsed and
    /// reported, stderr lines kept as errors. With `at_end`, last lines without a newline too.
    fn drain(&mut self, at_end: bool, on_progress: &mut impl FnMut(Progress<'_>)) {
        while let Some(line) = self.stdout.next_line(at_end) {
            let line = line_text(line);
            self.last_output = Instant::now();
            if let Some(ev) = parse_line(&line) {
                self.summary.observe(&ev);
                on_progress(Progress::Event(&ev));
            }
            self.keep(line);
        }
        while let Some(line) = self.stderr.next_line(at_end) {
            let line = line_text(line);
            self.last_output = Instant::now();
            self.keep(format!("stderr: {line}"));
            self.summary.ui_errors.push(line);
        }
    }

    /// Keeps `line` in the tail, dropping the oldest past [`TAIL`].
    fn keep(&mut self, line: String) {
        if self.tail.len() == TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }
}

/// A line of packer's output as text (bytes that are not UTF-8 replaced), without its `\r`.
fn line_text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes)
        .trim_end_matches('\r')
        .to_owned()
}

/// Follows packer's output until it exits: passes a signal on to its process group once, kills
/// the group when its cleanup outlasts `cmd.cleanup_grace`, and says a heartbeat when packer
/// is quiet. Returns packer's exit status and the signal passed on, if any.
async fn follow_until_exit(
    cmd: &PackerCommand,
    child: &mut tokio::process::Child,
    pid: Option<u32>,
    out: &mut Output,
    cancel: &Cancel,
    start: Instant,
    on_progress: &mut impl FnMut(Progress<'_>),
) -> Result<(std::process::ExitStatus, Option<crate::cancel::Signal>), Error> {
    let mut exited: Option<std::process::ExitStatus> = None;
    let mut stopping: Option<(crate::cancel::Signal, Instant)> = None;
    loop {
        out.drain(exited.is_some(), on_progress);
        if let Some(status) = exited {
            return Ok((status, stopping.map(|(sig, _)| sig)));
        }
        tokio::select! {
            _ = cancel.cancelled(), if stopping.is_none() => {
                let sig = cancel.ended_by();
                if let Some(pid) = pid {
                    // Its own group: the shell-local and ansible children stop too, as on a
                    // terminal.
                    crate::process::signal_group(pid, sig.number());
                }
                stopping = Some((sig, Instant::now()));
                on_progress(Progress::Stopping(sig));
            },
            status = child.wait() => {
                exited = Some(status.map_err(PackerError::Io)?);
            },
            _ = tokio::time::sleep(POLL) => {
                if let (Some((_, since)), Some(pid)) = (stopping, pid) {
                    if since.elapsed() > cmd.cleanup_grace {
                        crate::process::signal_group(pid, libc::SIGKILL);
                    }
                }
                if out.last_output.elapsed() >= cmd.heartbeat {
                    out.last_output = Instant::now();
                    on_progress(Progress::Heartbeat(start.elapsed()));
                }
            },
        }
    }
}

/// What an ended packer run comes to: interrupted, failed (with its errors), no AMI, or the
/// AMIs it built.
fn outcome(
    status: std::process::ExitStatus,
    stopped: Option<crate::cancel::Signal>,
    out: Output,
    log: &Path,
    start: Instant,
) -> Result<BuildOutput, Error> {
    let log_path = Some(log.display().to_string());
    if let Some(sig) = stopped {
        return Err(Error::Interrupted(sig));
    }
    let summary = out.summary;
    if !status.success() {
        let errors = if !summary.build_errors.is_empty() {
            summary.build_errors.join("\n")
        } else if !summary.ui_errors.is_empty() {
            summary.ui_errors.join("\n")
        } else {
            out.tail.iter().cloned().collect::<Vec<_>>().join("\n")
        };
        return Err(PackerError::Failed {
            code: status.code().unwrap_or(-1),
            errors,
            log: log_path,
        }
        .into());
    }
    if summary.amis.values().all(BTreeMap::is_empty) {
        return Err(PackerError::NoArtifact { log: log_path }.into());
    }
    Ok(BuildOutput {
        amis: summary.amis,
        duration: start.elapsed(),
    })
}

/// Where packer's stderr goes: beside the log, `packer.log` → `packer.stderr.log`.
pub fn stderr_log(log: &Path) -> PathBuf {
    log.with_extension("stderr.log")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn follow_returns_whole_lines_as_they_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut w = std::fs::File::create(&path).unwrap();
        let mut f = Follow::open(&path).unwrap();
        assert_eq!(f.next_line(false), None);
        w.write_all(b"one\ntw").unwrap();
        assert_eq!(f.next_line(false).as_deref(), Some(&b"one"[..]));
        assert_eq!(f.next_line(false), None, "half a line waits for the rest");
        w.write_all(b"o\n\xff\n").unwrap();
        assert_eq!(f.next_line(false).as_deref(), Some(&b"two"[..]));
        assert_eq!(f.next_line(false).as_deref(), Some(&b"\xff"[..]));
        w.write_all(b"last").unwrap();
        assert_eq!(f.next_line(false), None);
        assert_eq!(f.next_line(true).as_deref(), Some(&b"last"[..]));
        assert_eq!(f.next_line(true), None);
    }

    /// A process group like packer's: a shell that records a SIGINT, with a child in the
    /// foreground (as packer's plugins and provisioners are). Returns once its trap is set (a
    /// signal before that would kill the shell without a record).
    async fn group(marker: &Path) -> tokio::process::Child {
        let ready = marker.with_extension("ready");
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args([
            "-c",
            // Short sleeps, not one long one: a SIGINT that reaches the group while the shell
            // forks a sleep can be lost by the child, and the shell's trap then runs only when
            // that sleep ends (seen under load: the whole 30 s).
            r#"trap 'echo interrupted > "$0"; exit 0' INT; : > "$1"; i=0; while [ $i -lt 150 ]; do sleep 0.2; i=$((i+1)); done; echo finished > "$0""#,
        ])
        .arg(marker)
        .arg(&ready)
        .process_group(0)
        .kill_on_drop(true);
        // A shell started with SIGINT ignored (as a background job of a non-interactive shell
        // is, e.g. under some CI runners) cannot trap it: give it the default disposition, as
        // packer (Go) takes SIGINT back itself.
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        for _ in 0..500 {
            if ready.exists() {
                return child;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the test shell never set its trap");
    }

    #[tokio::test]
    async fn the_watchdog_interrupts_the_group_when_gears_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("m");
        let mut packer = group(&marker).await;
        let (mut watchdog, stdin) = watchdog(packer.id().unwrap()).unwrap();
        // What the kernel does when gears dies, even by SIGKILL: the write end closes.
        drop(stdin);
        let status = tokio::time::timeout(Duration::from_secs(10), packer.wait())
            .await
            .expect("the group was interrupted")
            .unwrap();
        assert!(status.success());
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "interrupted\n");
        watchdog.wait().await.unwrap();
    }

    #[tokio::test]
    async fn the_watchdog_leaves_quietly_when_told_done() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("m");
        let mut packer = group(&marker).await;
        let (mut watchdog, mut stdin) = watchdog(packer.id().unwrap()).unwrap();
        stdin.write_all(b"done\n").await.unwrap();
        drop(stdin);
        assert!(watchdog.wait().await.unwrap().success());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(packer.try_wait().unwrap().is_none(), "not interrupted");
        assert!(!marker.exists());
        crate::process::signal_group(packer.id().unwrap(), libc::SIGKILL);
        packer.wait().await.unwrap();
    }
}
