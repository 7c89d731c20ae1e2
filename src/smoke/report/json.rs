//! `--output json`: the summary artifact the next pipeline stage reads.

use crate::smoke::runner::TestResult;
use serde::Serialize;

/// The JSON report.
#[derive(Serialize)]
pub struct Report<'a> {
    pub file: &'a str,
    pub target: &'a str,
    pub passed: bool,
    pub tests_total: usize,
    pub tests_failed: usize,
    pub checks_total: usize,
    pub checks_failed: usize,
    pub duration_ms: f64,
    pub tests: &'a [TestResult],
}

/// Builds the report of a run.
pub fn render(file: &str, target: &str, results: &[TestResult], elapsed_s: f64) -> String {
    let checks_failed = results
        .iter()
        .flat_map(|r| r.checks.iter())
        .filter(|c| !c.passed)
        .count();
    let tests_failed = results.iter().filter(|r| !r.passed()).count();
    let report = Report {
        file,
        target,
        passed: tests_failed == 0,
        tests_total: results.len(),
        tests_failed,
        checks_total: results.iter().map(|r| r.checks.len()).sum(),
        checks_failed,
        duration_ms: elapsed_s * 1000.0,
        tests: results,
    };
    serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
}
