//! JUnit XML, as Jenkins' `junit` step and GoCD's test tab read it: a failed check is a
//! `<failure>`, a test that got no response is an `<error>`.

use crate::smoke::runner::TestResult;

/// Whether XML 1.0 allows `c` at all (its `Char` production): not most control characters,
/// not U+FFFE or U+FFFF. Not even as a character reference.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escapes text for XML content and attributes. A character XML 1.0 forbids (a server can put
/// any in a body) is written as its `\u{…}` escape, as text, so the file stays well-formed and
/// a human still sees what came. Tabs and line breaks become character references, which
/// attribute values would otherwise turn into spaces.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if !xml_char(c) => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// The whole report. `suite` names the smoke file.
pub fn render(suite: &str, results: &[TestResult], elapsed_s: f64) -> String {
    let failures = results
        .iter()
        .filter(|r| r.error.is_none() && !r.passed())
        .count();
    let errors = results.iter().filter(|r| r.error.is_some()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"gears smoke\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{elapsed_s:.3}\">\n",
        results.len()
    ));
    out.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{elapsed_s:.3}\">\n",
        escape(suite),
        results.len()
    ));
    for r in results {
        out.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">\n",
            escape(&format!("smoke.{suite}")),
            escape(&r.name),
            r.duration_ms / 1000.0
        ));
        let details: Vec<String> = r
            .checks
            .iter()
            .map(|c| {
                format!(
                    "{} {}: {}",
                    if c.passed { "PASS" } else { "FAIL" },
                    c.check,
                    c.message
                )
            })
            .collect();
        let details = escape(&format!("{}\n{}\n{}", r.url, r.curl, details.join("\n")));
        if let Some(e) = &r.error {
            out.push_str(&format!(
                "      <error message=\"{}\" type=\"connection\">{details}</error>\n",
                escape(e)
            ));
        } else if !r.passed() {
            let first = r
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("{}: {}", c.check, c.message))
                .collect::<Vec<_>>()
                .join("; ");
            out.push_str(&format!(
                "      <failure message=\"{}\" type=\"check\">{details}</failure>\n",
                escape(&first)
            ));
        } else {
            out.push_str(&format!("      <system-out>{details}</system-out>\n"));
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smoke::outcome::CheckResult;
    use crate::smoke::spec::Protocol;

    fn result(name: &str, checks: Vec<CheckResult>, error: Option<&str>) -> TestResult {
        TestResult {
            name: name.into(),
            url: "http://h:80/x".into(),
            curl: "curl -X GET \"http://h:80/x\"".into(),
            protocol: Protocol::Http,
            checks,
            error: error.map(str::to_owned),
            body: None,
            attempts: 1,
            duration_ms: 1500.0,
            colour: false,
        }
    }

    #[test]
    fn the_report_is_exactly_this_xml() {
        let results = [
            result(
                "ok",
                vec![CheckResult::new(
                    "expect_status_code",
                    true,
                    "Status code == 200",
                )],
                None,
            ),
            result(
                "bad <one> & \"two\"",
                vec![
                    CheckResult::new("expect_status_code", true, "Status code == 200"),
                    CheckResult::new(
                        "response_body_contains",
                        false,
                        "\"a\u{1}b\u{fffe}\tc\" does not contain \"x\"",
                    ),
                ],
                None,
            ),
            result(
                "down",
                vec![CheckResult::new("request", false, "connection refused")],
                Some("cannot connect to h:80: connection refused"),
            ),
        ];
        let xml = render("smoke.yaml", &results, 4.5);
        assert_eq!(
            xml,
            r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="gears smoke" tests="3" failures="1" errors="1" time="4.500">
  <testsuite name="smoke.yaml" tests="3" failures="1" errors="1" time="4.500">
    <testcase classname="smoke.smoke.yaml" name="ok" time="1.500">
      <system-out>http://h:80/x&#10;curl -X GET &quot;http://h:80/x&quot;&#10;PASS expect_status_code: Status code == 200</system-out>
    </testcase>
    <testcase classname="smoke.smoke.yaml" name="bad &lt;one&gt; &amp; &quot;two&quot;" time="1.500">
      <failure message="response_body_contains: &quot;a\u{1}b\u{fffe}&#9;c&quot; does not contain &quot;x&quot;" type="check">http://h:80/x&#10;curl -X GET &quot;http://h:80/x&quot;&#10;PASS expect_status_code: Status code == 200&#10;FAIL response_body_contains: &quot;a\u{1}b\u{fffe}&#9;c&quot; does not contain &quot;x&quot;</failure>
    </testcase>
    <testcase classname="smoke.smoke.yaml" name="down" time="1.500">
      <error message="cannot connect to h:80: connection refused" type="connection">http://h:80/x&#10;curl -X GET &quot;http://h:80/x&quot;&#10;FAIL request: connection refused</error>
    </testcase>
  </testsuite>
</testsuites>
"#
        );
    }
}
