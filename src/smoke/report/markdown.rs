//! A smoke run as Markdown for a CI server's summary page (GitHub's `$GITHUB_STEP_SUMMARY`):
//! the counts, then every failed check and every test without a response. Made from the same
//! results as the console, JSON and JUnit reports, whose secrets are already masked.

use crate::smoke::runner::TestResult;

/// A table cell: no `|` or line break of the text ends it.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\r', '\n'], " ")
}

/// The summary of a run of `file` against `target`.
pub fn render(file: &str, target: &str, results: &[TestResult]) -> String {
    let failed: Vec<(&str, &str, &str)> = results
        .iter()
        .flat_map(|r| {
            let checks = r
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(move |c| (r.name.as_str(), c.check.as_str(), c.message.as_str()));
            let error = r.error.as_deref().map(|e| (r.name.as_str(), "response", e));
            error.into_iter().chain(checks)
        })
        .collect();
    let tests_failed = results.iter().filter(|r| !r.passed()).count();
    let mut md = format!(
        "### gears smoke: {} against {}\n\n{} of {} tests passed.\n",
        cell(file),
        cell(target),
        results.len() - tests_failed,
        results.len()
    );
    if !failed.is_empty() {
        md.push_str("\n| test | check | what was found |\n|---|---|---|\n");
        for (test, check, message) in failed {
            md.push_str(&format!(
                "| {} | {} | {} |\n",
                cell(test),
                cell(check),
                cell(message)
            ));
        }
    }
    md.push('\n');
    md
}
