//! `gears smoke`: a Smolder-compatible smoke-test runner.
//!
//! [`load`] reads the file and [`spec`] parses it, [`run`] (the stage) runs it with [`runner`]
//! and returns a [`Report`], [`outcome`] decides each check, [`secrets`] masks, and
//! [`report`] writes the console text, JUnit XML and JSON ([`report::write`] is the front that
//! decides what goes where). A failing check is data in the report; only "could not decide"
//! (bad file, unwritable report, interruption) is an `Err`.

pub mod outcome;
pub mod report;
pub mod runner;
pub mod schema;
pub mod secrets;
pub mod settings;
pub mod spec;
pub mod target;

use crate::cancel::Cancel;
use crate::error::Error;
use crate::exit::Exit;
use crate::settings::OutputFormat;
use crate::smoke::settings::{SmokeSettings, Source};
use crate::ui::Reporter;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The largest smoke file gears reads: 4 MiB (a file of 5,000 tests is about 500 KB). A larger
/// file, or an endless standard input, is refused after reading 4 MiB of it. YAML parsing holds
/// the whole event stream (about 30 bytes per byte of YAML), so this also bounds memory: a
/// 4 MiB file with an error on its last line peaks near 250 MB in the worst case.
pub const MAX_FILE: u64 = 4 * 1024 * 1024;

/// A component's smoke file as `gears test` and the deploy's gate use it: read, parsed, and
/// its tests checked against a placeholder instance at `port` (the address comes later), so a
/// bad file is refused before anything launches or changes.
pub async fn load_for_instances(
    path: &std::path::Path,
    port: Option<u16>,
    cancel: &Cancel,
) -> Result<spec::SmokeFile, Error> {
    let file = load(&Source::File(path.to_path_buf()), cancel).await?;
    let placeholder = target::Target {
        host: "127.0.0.1".into(),
        port,
        scheme: None,
    };
    runner::prepare(&file, &placeholder)?;
    Ok(file)
}

/// Reads the smoke file named by the settings (or standard input) and parses it. Anything but a
/// regular file (standard input, a FIFO) is read on its own thread, so a signal still ends the
/// run while it waits (`sleep 999 | gears smoke HOST`: exit 143 on SIGTERM).
pub async fn load(source: &Source, cancel: &Cancel) -> Result<spec::SmokeFile, Error> {
    let name = match source {
        Source::File(p) => p.display().to_string(),
        Source::Stdin => "<stdin>".to_owned(),
    };
    // A regular file is read at once: nothing there can keep the read waiting, and a thread
    // (with its stack and allocator arena) is most of a one-test run's start (issue 21).
    if let Source::File(p) = source {
        if std::fs::metadata(p).is_ok_and(|m| m.is_file()) {
            let text = read_capped(source, &name)?;
            return Ok(spec::parse(&name, &text)?);
        }
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (src, n) = (source.clone(), name.clone());
    std::thread::spawn(move || {
        let _ = tx.send(read_capped(&src, &n));
    });
    let text = tokio::select! {
        biased;
        _ = cancel.cancelled() => {
            return Err(Error::Interrupted(cancel.ended_by()))
        }
        read = rx => read.map_err(|_| Error::Read {
            path: name.clone(),
            source: std::io::Error::other("the reading thread stopped"),
        })??,
    };
    Ok(spec::parse(&name, &text)?)
}

fn read_capped(source: &Source, name: &str) -> Result<String, Error> {
    let read_error = |e| Error::Read {
        path: name.to_owned(),
        source: e,
    };
    let reader: Box<dyn Read> = match source {
        Source::File(p) => Box::new(std::fs::File::open(p).map_err(read_error)?),
        Source::Stdin => Box::new(std::io::stdin()),
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(crate::error::InputError::whole_file(
            name,
            format!(
                "the file is larger than {} MiB, the most gears reads for a smoke file",
                MAX_FILE / (1024 * 1024)
            ),
        )
        .with_hint("split it into several files")
        .into());
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let text = String::from_utf8_lossy(valid);
        let line = text.matches('\n').count() + 1;
        let column = text.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        crate::error::InputError::at(name, &text, line, column, "the file is not UTF-8 text").into()
    })
}

/// What a smoke run decided: the verdicts, in file order. The stage returns it; the front
/// ([`report::write`]) decides what goes to stdout and files.
#[derive(Debug, Clone)]
pub struct Report {
    /// The smoke file as the user named it.
    pub file: String,
    /// The target as the user wrote it.
    pub target: String,
    pub results: Vec<runner::TestResult>,
    /// Wall time of the run, in seconds.
    pub elapsed_s: f64,
}

impl Report {
    /// Every test passed.
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.passed())
    }

    /// The exit code of the verdicts: 0, or 1 when a test failed.
    pub fn exit(&self) -> Exit {
        if self.passed() {
            Exit::Success
        } else {
            Exit::SmokeFailed
        }
    }
}

/// The stage: runs a parsed file and returns its [`Report`]. The console report streams to `ui`
/// as tests finish (in file order), with a heartbeat line while tests wait.
pub async fn run(
    file: &spec::SmokeFile,
    settings: &SmokeSettings,
    cancel: &Cancel,
    ui: &dyn Reporter,
) -> Result<Report, Error> {
    let colour = settings.colour && settings.output != OutputFormat::Json;
    let plan = runner::prepare(file, &settings.target)?;
    for w in &file.warnings {
        ui.warning(&format!("{}: {w}", file.path));
    }
    ui.section(&report::console::preamble(file.tests.len()));
    let interrupted = || Error::Interrupted(cancel.ended_by());
    if let Some(sleep) = settings.sleep {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(interrupted()),
            _ = tokio::time::sleep(sleep) => {}
        }
    }
    let opts = runner::RunOptions {
        target: settings.target.clone(),
        jobs: settings.jobs,
        wait: settings.wait,
        cancel: cancel.clone(),
    };
    let start = Instant::now();
    let done = AtomicUsize::new(0);
    let results = {
        let run = runner::run_plan(&plan, &opts, |r| {
            done.fetch_add(1, Ordering::SeqCst);
            ui.section(&report::console::test_block(r, colour));
        });
        tokio::pin!(run);
        // A line at least every `heartbeat` while tests wait (`--wait`), so CI logs never go silent.
        let every = settings.heartbeat;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                biased;
                r = &mut run => break r?,
                _ = tick.tick() => ui.heartbeat(
                    "smoke",
                    &format!(
                        "{} of {} tests done after {}",
                        done.load(Ordering::SeqCst),
                        file.tests.len(),
                        crate::text::human_duration(start.elapsed())
                    ),
                ),
            }
        }
    };
    if cancel.is_cancelled() {
        // A signal is never a verdict on the host, whatever the tests had found by then.
        return Err(interrupted());
    }
    Ok(Report {
        file: file.path.clone(),
        target: settings.target_text.clone(),
        results,
        elapsed_s: start.elapsed().as_secs_f64(),
    })
}
