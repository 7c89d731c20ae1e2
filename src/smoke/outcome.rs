//! Verdicts: what a test's checks found. Pure functions of a received [`Response`], so every
//! message can be unit tested; the runner only fetches.

use super::schema;
use super::spec::{Outcome, Protocol, TestSpec};
use serde::Serialize;

/// What the server sent back.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, values as received (repeated headers joined with `, `).
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wall time of the whole request, body included.
    pub elapsed_ms: f64,
}

impl Response {
    /// A header's value, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One outcome line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// The outcome key, e.g. `expect_status_code`.
    pub check: String,
    /// What was found, in Smolder's words.
    pub message: String,
    pub passed: bool,
}

impl CheckResult {
    pub fn new(check: &str, passed: bool, message: impl Into<String>) -> Self {
        CheckResult {
            check: check.to_owned(),
            message: message.into(),
            passed,
        }
    }
}

/// The checks of an http(s) test in the order they are run: file order, with Smolder's implicit
/// `expect_status_code: 200` first when the file has none.
pub fn effective_checks(test: &TestSpec, protocol: Protocol) -> Vec<Outcome> {
    let mut checks = test.checks.clone();
    if protocol != Protocol::Tcp && !checks.iter().any(|c| matches!(c, Outcome::StatusCode(_))) {
        checks.insert(0, Outcome::StatusCode(200));
    }
    checks
}

const BODY_IN_MESSAGE: usize = 500;

fn quoted_body(body: &str) -> String {
    let n = body.chars().count();
    if n <= BODY_IN_MESSAGE {
        format!("\"{body}\"")
    } else {
        let head: String = body.chars().take(BODY_IN_MESSAGE).collect();
        format!("\"{head}…\" ({n} characters)")
    }
}

/// Follows a slash path (`args/q`, `items/0/id`) into a JSON value.
pub fn json_path<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let mut cur = v;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        cur = match cur {
            serde_json::Value::Object(m) => m.get(part)?,
            serde_json::Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Runs every check against a response. One check may give several lines (one per header or
/// JSON path: Smolder only looked at the first entry, gears looks at all of them).
pub fn evaluate(test: &TestSpec, checks: &[Outcome], resp: &Response) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let json = || serde_json::from_str::<serde_json::Value>(&resp.body);
    for check in checks {
        match check {
            Outcome::StatusCode(n) => out.push(if resp.status == *n {
                CheckResult::new("expect_status_code", true, format!("Status code == {n}"))
            } else {
                CheckResult::new(
                    "expect_status_code",
                    false,
                    format!("Expecting status code {n} but got {} instead", resp.status),
                )
            }),
            Outcome::BodyContains(s) => out.push(if resp.body.contains(s.as_str()) {
                CheckResult::new(
                    "response_body_contains",
                    true,
                    format!("Body contains \"{s}\""),
                )
            } else {
                CheckResult::new(
                    "response_body_contains",
                    false,
                    format!("{} does not contain \"{s}\"", quoted_body(&resp.body)),
                )
            }),
            Outcome::BodyDoesntContain(s) => out.push(if resp.body.contains(s.as_str()) {
                CheckResult::new(
                    "response_body_doesnt_contain",
                    false,
                    format!("Body contains \"{s}\" and shouldn't"),
                )
            } else {
                CheckResult::new(
                    "response_body_doesnt_contain",
                    true,
                    format!("Body doesn't contain \"{s}\""),
                )
            }),
            Outcome::JsonContains(entries) => match json() {
                Err(e) => out.push(CheckResult::new(
                    "response_json_contains",
                    false,
                    format!("response is not JSON: {e}"),
                )),
                Ok(doc) => {
                    for (path, expected) in entries {
                        out.push(match json_path(&doc, path) {
                            None => CheckResult::new(
                                "response_json_contains",
                                false,
                                format!("no value at path \"{path}\""),
                            ),
                            Some(actual) if actual == expected => CheckResult::new(
                                "response_json_contains",
                                true,
                                format!("Body contains expected json value at path \"{path}\""),
                            ),
                            Some(actual) => CheckResult::new(
                                "response_json_contains",
                                false,
                                format!(
                                    "Invalid json value {actual} at path \"{path}\", expecting {expected}"
                                ),
                            ),
                        });
                    }
                }
            },
            Outcome::MaxTimeMs(max) => {
                // Smolder's words: the difference first, the measured time in brackets.
                let took = resp.elapsed_ms.round();
                let diff = (max - took).abs();
                out.push(if took <= *max {
                    CheckResult::new(
                        "response_max_time_ms",
                        true,
                        format!("Response time was {diff:.0}ms shorter than max ({took:.0}ms)"),
                    )
                } else {
                    CheckResult::new(
                        "response_max_time_ms",
                        false,
                        format!(
                            "Response time was {diff:.0}ms longer than {max}ms max ({took:.0}ms)"
                        ),
                    )
                })
            }
            Outcome::Redirect(re) => {
                let is_redirect = resp.status.to_string().contains("30");
                let location = resp.header("location");
                out.push(match (is_redirect, location) {
                    (false, _) | (true, None) => CheckResult::new(
                        "response_redirect",
                        false,
                        format!("Not being redirected: {}", resp.status),
                    ),
                    (true, Some(l)) => {
                        // Python's re.match: anchored at the start only.
                        let matched = re.regex.find(l).is_some_and(|m| m.start() == 0)
                            || regex::Regex::new(&format!("^(?:{})", re.source))
                                .is_ok_and(|r| r.is_match(l));
                        if matched {
                            CheckResult::new(
                                "response_redirect",
                                true,
                                format!("Redirect to {}", re.source),
                            )
                        } else {
                            CheckResult::new(
                                "response_redirect",
                                false,
                                format!("Got redirected to {l} instead of {}", re.source),
                            )
                        }
                    }
                });
            }
            Outcome::ResponseHeaders(names) => {
                for h in names {
                    out.push(header_present("response_headers", resp, h));
                }
            }
            Outcome::HeadersPresent => {
                if test.response_headers_present.is_empty() {
                    out.push(CheckResult::new(
                        "headers_present",
                        false,
                        "no `response_headers_present` list in this test: nothing to check",
                    ));
                }
                for h in &test.response_headers_present {
                    out.push(header_present("headers_present", resp, h));
                }
            }
            Outcome::HeaderValues(entries) => {
                for (h, want) in entries {
                    out.push(match resp.header(h) {
                        None => CheckResult::new(
                            "response_header_values",
                            false,
                            format!("Expected header {h} not present"),
                        ),
                        Some(v) if v == want => CheckResult::new(
                            "response_header_values",
                            true,
                            format!("Header {h}: {v} present"),
                        ),
                        Some(v) => CheckResult::new(
                            "response_header_values",
                            false,
                            format!("Expecting {h}: {want}, got {h}: {v}"),
                        ),
                    });
                }
            }
            Outcome::HeaderValueContains(entries) => {
                for (h, re) in entries {
                    out.push(match resp.header(h) {
                        None => CheckResult::new(
                            "response_header_value_contains",
                            false,
                            format!("Expected header {h} not present"),
                        ),
                        Some(v) if re.regex.is_match(v) => CheckResult::new(
                            "response_header_value_contains",
                            true,
                            format!("Header {h}: {v} present"),
                        ),
                        Some(v) => CheckResult::new(
                            "response_header_value_contains",
                            false,
                            format!("Expecting {h}: {}, got {h}: {v}", re.source),
                        ),
                    });
                }
            }
            Outcome::ValidateJson(s) => out.push(match json() {
                Err(e) => {
                    CheckResult::new("validate_json", false, format!("response is not JSON: {e}"))
                }
                Ok(doc) => match schema::validate(s, &doc) {
                    Ok(()) => CheckResult::new(
                        "validate_json",
                        true,
                        "Json response matches the schema provided",
                    ),
                    Err(why) => CheckResult::new(
                        "validate_json",
                        false,
                        format!("Json response fails to match the schema provided {why}"),
                    ),
                },
            }),
        }
    }
    out
}

fn header_present(check: &str, resp: &Response, h: &str) -> CheckResult {
    match resp.header(h) {
        Some(v) => CheckResult::new(check, true, format!("Header {h}: {v} present")),
        None => CheckResult::new(check, false, format!("Expected header {h} not present")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smoke::spec::parse;

    fn run(outcomes: &str, resp: &Response) -> Vec<CheckResult> {
        let src = format!(
            "tests:\n  - name: t\n    response_headers_present: [X-A]\n    outcomes:\n{outcomes}"
        );
        let f = parse("t.yaml", &src).unwrap();
        let t = &f.tests[0];
        evaluate(t, &effective_checks(t, Protocol::Http), resp)
    }

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect(),
            body: body.into(),
            elapsed_ms: 12.0,
        }
    }

    #[test]
    fn implicit_status_200_comes_first() {
        let r = run("      response_body_contains: hi\n", &resp(500, &[], "hi"));
        assert_eq!(
            r[0].message,
            "Expecting status code 200 but got 500 instead"
        );
        assert!(!r[0].passed);
        assert!(r[1].passed);
    }

    #[test]
    fn json_paths_check_every_entry() {
        let body = r#"{"a": {"b": [1, {"c": "x"}]}, "n": 1}"#;
        let r = run(
            "      response_json_contains:\n        a/b/1/c: x\n        n: \"1\"\n        zz: 1\n",
            &resp(200, &[], body),
        );
        assert!(r[1].passed, "{r:?}");
        assert_eq!(
            r[2].message,
            "Invalid json value 1 at path \"n\", expecting \"1\""
        );
        assert_eq!(r[3].message, "no value at path \"zz\"");
        let r = run(
            "      response_json_contains: {a: 1}\n",
            &resp(200, &[], "<html>"),
        );
        assert!(r[1].message.starts_with("response is not JSON"));
    }

    #[test]
    fn redirect_is_anchored_at_the_start() {
        let r = run(
            "      expect_status_code: 302\n      response_redirect: https://ex\n",
            &resp(302, &[("Location", "https://example.com/")], ""),
        );
        assert!(r[1].passed);
        let r = run(
            "      expect_status_code: 302\n      response_redirect: example\n",
            &resp(302, &[("Location", "https://example.com/")], ""),
        );
        assert_eq!(
            r[1].message,
            "Got redirected to https://example.com/ instead of example"
        );
        let r = run("      response_redirect: x\n", &resp(200, &[], ""));
        assert_eq!(r[1].message, "Not being redirected: 200");
    }

    #[test]
    fn header_checks() {
        let r = run(
            "      response_header_values: {Content-Type: text/plain, X-Missing: a}\n      response_header_value_contains: {content-type: \"^text/\"}\n      headers_present: true\n",
            &resp(200, &[("Content-Type", "text/plain"), ("X-A", "1")], ""),
        );
        assert!(r[1].passed);
        assert_eq!(r[2].message, "Expected header X-Missing not present");
        assert!(r[3].passed);
        assert!(r[4].passed, "{r:?}");
    }

    #[test]
    fn max_time() {
        let r = run("      response_max_time_ms: 10\n", &resp(200, &[], ""));
        assert_eq!(
            r[1].message,
            "Response time was 2ms longer than 10ms max (12ms)"
        );
        let r = run("      response_max_time_ms: 100\n", &resp(200, &[], ""));
        assert!(r[1].passed);
        assert_eq!(
            r[1].message,
            "Response time was 88ms shorter than max (12ms)"
        );
    }

    #[test]
    fn long_bodies_are_cut_in_messages() {
        let body = "y".repeat(2000);
        let r = run("      response_body_contains: x\n", &resp(200, &[], &body));
        assert!(r[1].message.len() < 700);
        assert!(r[1].message.contains("(2000 characters)"));
    }
}
