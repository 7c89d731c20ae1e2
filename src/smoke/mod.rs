//! `gears smoke`: a Smolder-compatible smoke-test runner.
//!
//! [`spec`] reads the file, [`runner`] runs it, [`outcome`] decides each check, [`report`]
//! writes the console text, JUnit XML and JSON. A failing check is data in the report; only
//! "could not decide" (bad file, unwritable report, interruption) is an `Err`.

pub mod outcome;
pub mod report;
pub mod runner;
pub mod schema;
pub mod spec;
pub mod target;

use crate::cancel::Cancel;
use crate::error::Error;
use crate::exit::Exit;
use crate::settings::{OutputFormat, SmokeSettings, Source};
use std::io::{Read, Write};
use std::time::Instant;

/// Reads the smoke file named by the settings (or standard input).
pub fn load(source: &Source) -> Result<spec::SmokeFile, Error> {
    let (name, text) = match source {
        Source::File(p) => {
            let name = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|e| Error::Read {
                path: name.clone(),
                source: e,
            })?;
            (name, text)
        }
        Source::Stdin => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Error::Read {
                    path: "<stdin>".into(),
                    source: e,
                })?;
            ("<stdin>".to_owned(), text)
        }
    };
    Ok(spec::parse(&name, &text)?)
}

/// Runs a parsed file and writes the reports. The console report goes to `out` (stdout), or to
/// `err` when `out` carries the JSON report.
pub async fn execute(
    file: &spec::SmokeFile,
    settings: &SmokeSettings,
    cancel: &Cancel,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Exit, Error> {
    let json = settings.output == OutputFormat::Json;
    let colour = settings.colour && !json;
    let plan = runner::prepare(file, &settings.target)?;
    for w in &file.warnings {
        let _ = writeln!(err, "warning: {}: {w}", file.path);
    }
    {
        let console: &mut dyn Write = if json { &mut *err } else { &mut *out };
        let _ = console.write_all(report::console::preamble(file.tests.len()).as_bytes());
    }
    if let Some(sleep) = settings.sleep {
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = cancel.cancelled() => return Err(Error::Interrupted(cancel.signal().unwrap_or(crate::cancel::Signal::Int))),
        }
    }
    let opts = runner::RunOptions {
        target: settings.target.clone(),
        jobs: settings.jobs,
        wait: settings.wait,
        cancel: cancel.clone(),
    };
    let start = Instant::now();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results = {
        let console: &mut dyn Write = if json { &mut *err } else { &mut *out };
        let run = runner::run_plan(&plan, &opts, |r| {
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = console.write_all(report::console::test_block(r, colour).as_bytes());
            let _ = console.flush();
        });
        tokio::pin!(run);
        // A line at least every `heartbeat` while tests wait (`--wait`), so CI logs never go silent.
        let every = settings.heartbeat;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                r = &mut run => break r?,
                _ = tick.tick() => crate::ui::heartbeat(
                    "smoke",
                    &format!(
                        "{} of {} tests done after {}",
                        done.load(std::sync::atomic::Ordering::SeqCst),
                        file.tests.len(),
                        crate::ui::human_duration(start.elapsed())
                    ),
                ),
            }
        }
    };
    let elapsed = start.elapsed().as_secs_f64();
    {
        let console: &mut dyn Write = if json { &mut *err } else { &mut *out };
        let _ = console.write_all(report::console::summary(&results, elapsed).as_bytes());
    }
    if json {
        let _ = out.write_all(
            report::json::render(&file.path, &settings.target_text, &results, elapsed).as_bytes(),
        );
    }
    if let Some(path) = &settings.junit {
        let suite = std::path::Path::new(&file.path)
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.path.clone());
        std::fs::write(path, report::junit::render(&suite, &results, elapsed)).map_err(|e| {
            Error::Write {
                path: path.display().to_string(),
                source: e,
            }
        })?;
    }
    let _ = out.flush();
    Ok(if results.iter().all(|r| r.passed()) {
        Exit::Success
    } else {
        Exit::SmokeFailed
    })
}
