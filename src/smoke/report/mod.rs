//! Reports of a smoke run: the Smolder-shaped console text, JUnit XML and JSON.
pub mod console;
pub mod json;
pub mod junit;
pub mod markdown;

use super::Report;
use crate::error::Error;
use crate::settings::OutputFormat;
use crate::smoke::settings::SmokeSettings;
use crate::ui::Reporter;
use std::io::Write;

/// The front of `gears smoke` once the stage has returned: the summary to humans (through
/// `ui`, after the streamed test blocks), the JSON report to `out` (stdout) with
/// `--output json`, the JUnit file with `--junit`.
pub fn write(
    report: &Report,
    settings: &SmokeSettings,
    ui: &dyn Reporter,
    out: &mut dyn Write,
) -> Result<(), Error> {
    ui.section(&console::summary(&report.results, report.elapsed_s));
    if settings.output == OutputFormat::Json {
        let _ = out.write_all(
            json::render(
                &report.file,
                &report.target,
                &report.results,
                report.elapsed_s,
            )
            .as_bytes(),
        );
        let _ = out.flush();
    }
    if let Some(path) = &settings.junit {
        write_junit(path, &report.file, &report.results, report.elapsed_s)?;
    }
    Ok(())
}

/// Writes the JUnit report of `results` from smoke file `file` (its name is the suite's).
pub fn write_junit(
    path: &std::path::Path,
    file: &str,
    results: &[super::runner::TestResult],
    elapsed_s: f64,
) -> Result<(), Error> {
    let suite = std::path::Path::new(file)
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.to_owned());
    std::fs::write(path, junit::render(&suite, results, elapsed_s)).map_err(|e| Error::Write {
        path: path.display().to_string(),
        source: e,
    })
}
