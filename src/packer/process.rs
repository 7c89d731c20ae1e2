//! Runs `packer build -machine-readable`: stdout and stderr read concurrently line by line,
//! every line parsed and kept in a log file, a heartbeat when packer is quiet, and SIGINT/SIGTERM
//! passed on to packer, whose cleanup (instance, key pair, security group) gears waits for.

use super::machine::{parse_line, BuildSummary, Event};
use super::PackerError;
use crate::cancel::Cancel;
use crate::error::Error;
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

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
    /// Where the full log goes.
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

/// Runs packer to the end. `Err` for a failed build, no AMI, a missing packer, or an
/// interruption (after packer's cleanup).
pub async fn run(
    cmd: &PackerCommand,
    cancel: &Cancel,
    mut on_progress: impl FnMut(Progress<'_>),
) -> Result<BuildOutput, Error> {
    let start = Instant::now();
    let mut log = std::fs::File::create(&cmd.log).map_err(|e| Error::Write {
        path: cmd.log.display().to_string(),
        source: e,
    })?;
    let mut child = tokio::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .current_dir(&cmd.dir)
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
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
    let pid = child.id();
    // Split on newlines as bytes: a step may print bytes that are not UTF-8, and a pipe that
    // is no longer read would block packer.
    let mut stdout = BufReader::new(child.stdout.take().expect("piped")).split(b'\n');
    let mut stderr = BufReader::new(child.stderr.take().expect("piped")).split(b'\n');
    let text = |bytes: Vec<u8>| {
        String::from_utf8_lossy(&bytes)
            .trim_end_matches('\r')
            .to_owned()
    };
    let mut exited: Option<(std::process::ExitStatus, Instant)> = None;
    let (mut out_done, mut err_done) = (false, false);
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut summary = BuildSummary::default();
    let mut stopping: Option<(crate::cancel::Signal, Instant)> = None;
    let mut last_output = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut keep = |line: &str, tail: &mut VecDeque<String>| {
        let _ = writeln!(log, "{line}");
        if tail.len() == TAIL {
            tail.pop_front();
        }
        tail.push_back(line.to_owned());
    };
    while !(out_done && err_done) {
        tokio::select! {
            line = stdout.next_segment(), if !out_done => match line {
                Ok(Some(line)) => {
                    let line = text(line);
                    last_output = Instant::now();
                    keep(&line, &mut tail);
                    if let Some(ev) = parse_line(&line) {
                        summary.observe(&ev);
                        on_progress(Progress::Event(&ev));
                    }
                }
                _ => out_done = true,
            },
            line = stderr.next_segment(), if !err_done => match line {
                Ok(Some(line)) => {
                    let line = text(line);
                    last_output = Instant::now();
                    keep(&format!("stderr: {line}"), &mut tail);
                    summary.ui_errors.push(line);
                }
                _ => err_done = true,
            },
            _ = cancel.cancelled(), if stopping.is_none() => {
                let sig = cancel.signal().unwrap_or(crate::cancel::Signal::Int);
                if let Some(pid) = pid {
                    // SAFETY: kill(2) on the process group of the packer we spawned (its own group, so the
                    // shell-local and ansible children stop too, as on a terminal); no memory involved.
                    unsafe { libc::kill(-(pid as i32), sig.number()) };
                }
                stopping = Some((sig, Instant::now()));
                on_progress(Progress::Stopping(sig));
            },
            status = child.wait(), if exited.is_none() => {
                exited = Some((status.map_err(PackerError::Io)?, Instant::now()));
            },
            _ = tick.tick() => {
                if let (Some((_, since)), Some(pid), None) = (stopping, pid, exited) {
                    if since.elapsed() > cmd.cleanup_grace {
                        // SAFETY: kill(2) on the process group we spawned; no memory involved.
                        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                    }
                }
                // packer is gone but something it started still holds a pipe: stop reading.
                if exited.is_some_and(|(_, at)| at.elapsed() > Duration::from_secs(2)) {
                    break;
                }
                if last_output.elapsed() >= cmd.heartbeat {
                    last_output = Instant::now();
                    on_progress(Progress::Heartbeat(start.elapsed()));
                }
            },
        }
    }
    let status = match exited {
        Some((status, _)) => status,
        None => child.wait().await.map_err(PackerError::Io)?,
    };
    let log_path = Some(cmd.log.display().to_string());
    if let Some((sig, _)) = stopping {
        return Err(Error::Interrupted(sig));
    }
    if !status.success() {
        let errors = if !summary.build_errors.is_empty() {
            summary.build_errors.join("\n")
        } else if !summary.ui_errors.is_empty() {
            summary.ui_errors.join("\n")
        } else {
            tail.iter().cloned().collect::<Vec<_>>().join("\n")
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
