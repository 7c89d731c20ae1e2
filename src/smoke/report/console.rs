//! Smolder's console report: a header per test, one dotted line per outcome, a summary.

use crate::smoke::outcome::CheckResult;
use crate::smoke::runner::TestResult;

const WIDTH: usize = 108;
const GREEN: &str = "\x1b[92m";
const RED: &str = "\x1b[91m";
const RESET: &str = "\x1b[0m";

/// `Preparing to execute N tests`.
pub fn preamble(n: usize) -> String {
    format!("Preparing to execute {n} tests\n")
}

/// The block of one test: header, body (if asked), outcome lines, a blank line.
pub fn test_block(r: &TestResult, colour: bool) -> String {
    let dashes = "-".repeat(WIDTH);
    let cut = |s: &str| s.chars().take(WIDTH).collect::<String>();
    let mut out = format!(
        "{dashes}\n{:^WIDTH$}\n{:^WIDTH$}\n{}\n{dashes}\n",
        cut(&r.name),
        cut(&r.url),
        r.curl
    );
    if let Some(body) = &r.body {
        out.push_str(body);
        if !body.ends_with('\n') {
            out.push('\n');
        }
    }
    for c in &r.checks {
        out.push_str(&outcome_line(c, colour && r.colour));
        out.push('\n');
    }
    if r.attempts > 1 {
        out.push_str(&format!(
            "({} after {} attempts)\n",
            if r.passed() {
                "passed"
            } else {
                "still failing"
            },
            r.attempts
        ));
    }
    out.push('\n');
    out
}

/// `check: message......[PASS]`, as Smolder's `add_output` builds it: `name: message`, then
/// `108 - len(name) - len(message) - 8` dots, then the status right-aligned in 8 (110 columns).
pub fn outcome_line(c: &CheckResult, colour: bool) -> String {
    let dots = (WIDTH - 8).saturating_sub(c.check.chars().count() + c.message.chars().count());
    let status = if c.passed { "[PASS]" } else { "[FAIL]" };
    let status = format!("{status:>8}");
    let dots = ".".repeat(dots);
    if colour {
        let col = if c.passed { GREEN } else { RED };
        format!("{}: {}{dots}{col}{status}{RESET}", c.check, c.message)
    } else {
        format!("{}: {}{dots}{status}", c.check, c.message)
    }
}

/// Smolder's summary (checks counted as Smolder does), then gears' line about tests and time.
pub fn summary(results: &[TestResult], elapsed_s: f64) -> String {
    let checks: usize = results.iter().map(|r| r.checks.len()).sum();
    let failed_checks: usize = results
        .iter()
        .flat_map(|r| r.checks.iter())
        .filter(|c| !c.passed)
        .count();
    let failed_tests = results.iter().filter(|r| !r.passed()).count();
    let mut out = if failed_checks == 0 {
        "ALL TESTS PASSED!\n".to_owned()
    } else {
        format!("FOUND {failed_checks} FAILURES IN {checks} TESTS\n")
    };
    out.push_str(&format!(
        "{} tests: {} passed, {} failed ({} checks) in {:.2}s\n",
        results.len(),
        results.len() - failed_tests,
        failed_tests,
        checks,
        elapsed_s
    ));
    out
}
