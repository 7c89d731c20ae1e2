//! Verdicts: what a test's checks found. Pure functions of a received [`Response`], so every
//! message can be unit tested; the runner only fetches.

use super::schema;
use super::secrets::Secrets;
use super::spec::{Outcome, Pattern, Protocol, TestSpec};
use serde::Serialize;

/// What the server sent back.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, values as received (repeated headers joined with `, `).
    pub headers: Vec<(String, String)>,
    pub body: Body,
    /// Wall time of the whole request, body included.
    pub elapsed_ms: f64,
}

/// A response body as far as gears kept it (see `runner::BODY_CAP`).
#[derive(Debug, Clone, Default)]
pub struct Body {
    /// The body, or its start when `cut`.
    pub text: String,
    /// The body was longer than the cap: `text` is its start.
    pub cut: bool,
    /// Bytes read in all (when cut, reading may have stopped before the end).
    pub read: u64,
    /// Each `response_body_contains`/`doesnt_contain` string, and whether it was found
    /// anywhere in the body as it streamed (past the cap too).
    pub found: Vec<(String, bool)>,
}

/// A shown body is cut here (characters), after masking.
pub const SHOWN_BODY: usize = 64 * 1024;

impl Body {
    /// A whole body (tests).
    pub fn whole(text: &str) -> Self {
        Body {
            text: text.to_owned(),
            read: text.len() as u64,
            ..Body::default()
        }
    }

    /// Whether `needle` is in the body: in the text as Smolder searches it, or, when the body
    /// was cut, as it was searched while it streamed.
    pub fn contains(&self, needle: &str) -> bool {
        match self.found.iter().find(|(n, _)| n == needle) {
            Some((_, hit)) if self.cut => *hit,
            _ => self.text.contains(needle),
        }
    }

    /// What the report says about a cut, e.g. ` (the body was cut at 4194304 of 9000000+ bytes
    /// read)`, or nothing.
    pub fn cut_note(&self) -> String {
        if self.cut {
            format!(
                " (gears kept the first {} bytes of a longer body: {} bytes read)",
                self.text.len(),
                self.read
            )
        } else {
            String::new()
        }
    }

    /// The body for `show_body`: secrets masked first (a secret cut at the end of what was kept
    /// too), then cut to [`SHOWN_BODY`] characters, saying so.
    pub fn shown(&self, secrets: &Secrets) -> String {
        let masked = if self.cut {
            secrets.mask_cut(&self.text)
        } else {
            secrets.mask(&self.text)
        };
        let n = masked.chars().count();
        if n <= SHOWN_BODY && !self.cut {
            return masked;
        }
        let head: String = masked.chars().take(SHOWN_BODY).collect();
        let read = if self.cut {
            format!("{}+", self.read)
        } else {
            self.read.to_string()
        };
        format!(
            "{head}\n[gears: body cut for display: {} of {read} bytes shown]\n",
            head.len()
        )
    }
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

/// The body in a failure message: masked first, then cut (a secret straddling the cut would
/// otherwise be printed less its last characters).
fn quoted_body(body: &Body, secrets: &Secrets) -> String {
    let masked = if body.cut {
        secrets.mask_cut(&body.text)
    } else {
        secrets.mask(&body.text)
    };
    let n = masked.chars().count();
    if n <= BODY_IN_MESSAGE && !body.cut {
        format!("\"{masked}\"")
    } else {
        let head: String = masked.chars().take(BODY_IN_MESSAGE).collect();
        if body.cut {
            format!(
                "\"{head}…\" (a body of more than {} bytes, cut there by gears)",
                body.text.len()
            )
        } else {
            format!("\"{head}…\" ({n} characters)")
        }
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
/// `secrets` are masked in the body before it is quoted and cut.
pub fn evaluate(
    test: &TestSpec,
    checks: &[Outcome],
    resp: &Response,
    secrets: &Secrets,
) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for check in checks {
        match check {
            Outcome::StatusCode(n) => out.push(status_code(resp, *n)),
            Outcome::BodyContains(s) => out.push(body_contains(resp, s, secrets)),
            Outcome::BodyDoesntContain(s) => out.push(body_doesnt_contain(resp, s)),
            Outcome::JsonContains(entries) => out.extend(json_contains(resp, entries)),
            Outcome::MaxTimeMs(max) => out.push(max_time(resp, *max)),
            Outcome::Redirect(re) => out.push(redirect(resp, re)),
            Outcome::ResponseHeaders(names) => out.extend(
                names
                    .iter()
                    .map(|h| header_present("response_headers", resp, h)),
            ),
            Outcome::HeadersPresent => out.extend(headers_present(test, resp)),
            Outcome::HeaderValues(entries) => {
                out.extend(entries.iter().map(|(h, want)| header_value(resp, h, want)))
            }
            Outcome::HeaderValueContains(entries) => out.extend(
                entries
                    .iter()
                    .map(|(h, re)| header_value_contains(resp, h, re)),
            ),
            Outcome::ValidateJson(s) => out.push(validate_json(resp, s)),
        }
    }
    out
}

/// The body parsed as JSON, or why it is not JSON.
fn body_json(resp: &Response) -> Result<serde_json::Value, String> {
    serde_json::from_str::<serde_json::Value>(&resp.body.text)
        .map_err(|e| format!("{e}{}", resp.body.cut_note()))
}

/// `expect_status_code`: the status is `n`.
fn status_code(resp: &Response, n: u16) -> CheckResult {
    if resp.status == n {
        CheckResult::new("expect_status_code", true, format!("Status code == {n}"))
    } else {
        CheckResult::new(
            "expect_status_code",
            false,
            format!("Expecting status code {n} but got {} instead", resp.status),
        )
    }
}

/// `response_body_contains`: the body contains `s` (quoted, masked, when it does not).
fn body_contains(resp: &Response, s: &str, secrets: &Secrets) -> CheckResult {
    if resp.body.contains(s) {
        CheckResult::new(
            "response_body_contains",
            true,
            format!("Body contains \"{s}\""),
        )
    } else {
        CheckResult::new(
            "response_body_contains",
            false,
            format!(
                "{} does not contain \"{s}\"",
                quoted_body(&resp.body, secrets)
            ),
        )
    }
}

/// `response_body_doesnt_contain`: the body does not contain `s`.
fn body_doesnt_contain(resp: &Response, s: &str) -> CheckResult {
    if resp.body.contains(s) {
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
    }
}

/// `response_json_contains`: one line per path, or one failure when the body is not JSON.
fn json_contains(resp: &Response, entries: &[(String, serde_json::Value)]) -> Vec<CheckResult> {
    let doc = match body_json(resp) {
        Err(e) => {
            return vec![CheckResult::new(
                "response_json_contains",
                false,
                format!("response is not JSON: {e}"),
            )]
        }
        Ok(doc) => doc,
    };
    entries
        .iter()
        .map(|(path, expected)| match json_path(&doc, path) {
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
                format!("Invalid json value {actual} at path \"{path}\", expecting {expected}"),
            ),
        })
        .collect()
}

/// `response_max_time_ms`: the whole request took at most `max` ms.
fn max_time(resp: &Response, max: f64) -> CheckResult {
    // Smolder's words: the difference first, the measured time in brackets.
    let took = resp.elapsed_ms.round();
    let diff = (max - took).abs();
    if took <= max {
        CheckResult::new(
            "response_max_time_ms",
            true,
            format!("Response time was {diff:.0}ms shorter than max ({took:.0}ms)"),
        )
    } else {
        CheckResult::new(
            "response_max_time_ms",
            false,
            format!("Response time was {diff:.0}ms longer than {max}ms max ({took:.0}ms)"),
        )
    }
}

/// `response_redirect`: a 30x whose `Location` matches `re` from its start.
fn redirect(resp: &Response, re: &Pattern) -> CheckResult {
    let is_redirect = resp.status.to_string().contains("30");
    let location = resp.header("location");
    match (is_redirect, location) {
        (false, _) | (true, None) => CheckResult::new(
            "response_redirect",
            false,
            format!("Not being redirected: {}", resp.status),
        ),
        (true, Some(l)) => {
            // Python's re.match: anchored at the start only.
            let matched = re.regex.find(l).is_some_and(|m| m.start() == 0)
                || regex::Regex::new(&format!("^(?:{})", re.source)).is_ok_and(|r| r.is_match(l));
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
    }
}

/// `headers_present`: every header of the test's `response_headers_present` list is there.
fn headers_present(test: &TestSpec, resp: &Response) -> Vec<CheckResult> {
    if test.response_headers_present.is_empty() {
        return vec![CheckResult::new(
            "headers_present",
            false,
            "no `response_headers_present` list in this test: nothing to check",
        )];
    }
    test.response_headers_present
        .iter()
        .map(|h| header_present("headers_present", resp, h))
        .collect()
}

/// `response_header_values`: header `h` is there with the value `want`.
fn header_value(resp: &Response, h: &str, want: &str) -> CheckResult {
    match resp.header(h) {
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
    }
}

/// `response_header_value_contains`: header `h` is there and `re` matches its value.
fn header_value_contains(resp: &Response, h: &str, re: &Pattern) -> CheckResult {
    match resp.header(h) {
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
    }
}

/// `validate_json`: the body is JSON and matches the schema `s`.
fn validate_json(resp: &Response, s: &serde_json::Value) -> CheckResult {
    match body_json(resp) {
        Err(e) => CheckResult::new("validate_json", false, format!("response is not JSON: {e}")),
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
    }
}

/// A header check: header `h` is there.
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
        evaluate(
            t,
            &effective_checks(t, Protocol::Http),
            resp,
            &Secrets::new(vec!["sekrit-value".into()]),
        )
    }

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect(),
            body: Body::whole(body),
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

    #[test]
    fn secrets_are_masked_before_the_body_is_cut() {
        // The secret straddles the 500-character cut: masked first, nothing of it is left.
        let body = format!("{}sekrit-value{}", "y".repeat(495), "z".repeat(100));
        let r = run("      response_body_contains: x\n", &resp(200, &[], &body));
        assert!(!r[1].message.contains("sekrit"), "{}", r[1].message);
        assert!(r[1].message.contains("***"), "{}", r[1].message);
    }

    #[test]
    fn a_cut_body_is_searched_as_it_streamed_and_says_so() {
        let mut resp = resp(200, &[], "{\"a\": ");
        resp.body.cut = true;
        resp.body.read = 9_000_000;
        resp.body.found = vec![("needle".into(), true), ("absent".into(), false)];
        let r = run(
            "      response_body_contains: needle\n      response_body_doesnt_contain: absent\n      response_json_contains: {a: 1}\n",
            &resp,
        );
        assert!(r[1].passed && r[2].passed, "{r:?}");
        let missing = run("      response_body_contains: absent\n", &resp);
        assert!(
            missing[1].message.contains("cut there by gears"),
            "{}",
            missing[1].message
        );
        assert!(
            r[3].message.contains("gears kept the first"),
            "{}",
            r[3].message
        );
        let shown = resp.body.shown(&Secrets::default());
        assert!(shown.contains("[gears: body cut"), "{shown}");
    }
}
