//! Reading a whole file: JSON or YAML by parse, a walk for duplicate and merge keys, the typed
//! parse into [`RawFile`], and errors located, with a closest-key hint and secrets masked.

use super::*;
use crate::error::{located, yaml_error, InputError};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// One test as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a test: a mapping with a `name` and optionally `uri`, `port`, `protocol`, `method`, `inputs`, `outcomes`"
)]
struct RawTest {
    name: Text,
    #[serde(default)]
    uri: Option<Uri>,
    port: Option<Port>,
    protocol: Option<Protocol>,
    method: Option<Method>,
    #[serde(default)]
    inputs: Option<Inputs>,
    #[serde(default)]
    outcomes: Option<Outcomes>,
    tcp_test: Option<Flag>,
    show_body: Option<Flag>,
    response_headers_present: Option<Vec<Text>>,
    /// Must be absent or null in Smolder's schema.
    #[allow(dead_code)]
    request_headers: Option<Absent>,
    /// Must be absent or null in Smolder's schema.
    #[allow(dead_code)]
    url: Option<Absent>,
    description: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with a `tests:` list at the top of the file"
)]
struct RawFile {
    #[serde(default, deserialize_with = "non_empty_tests")]
    tests: Option<Vec<RawTest>>,
}

fn non_empty_tests<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<RawTest>>, D::Error> {
    let v: Option<Vec<RawTest>> = Option::deserialize(d)?;
    match v {
        Some(v) if v.is_empty() => Err(de::Error::custom(
            "the `tests` list is empty: there is nothing to run",
        )),
        None => Err(de::Error::custom(
            "`tests` is null: there is nothing to run",
        )),
        v => Ok(v),
    }
}

/// Parses a smoke file. `path` is only used in messages.
///
/// JSON or YAML is decided by parsing, not by the first byte: a file starting with `{` is read
/// as JSON, and as YAML (flow style) when it is not JSON. Before the typed parse a walk of the
/// whole document refuses a key given twice in one mapping (at the second, naming the first)
/// and notices YAML merge keys (`<<: *base`), which are then applied as PyYAML does. Secrets on
/// the line shown under an error are masked.
pub fn parse(path: &str, source: &str) -> Result<SmokeFile, InputError> {
    let trimmed = source.trim_start();
    if trimmed.is_empty() {
        return Err(InputError::whole_file(
            path,
            "the file is empty: expected a top-level `tests:` list",
        )
        .with_hint("a smoke file looks like:\n  tests:\n    - name: home page\n      uri: /"));
    }
    let raw = read_raw(path, source).map_err(|e| redact(improve_hint(e), source))?;
    let Some(raw_tests) = raw.tests else {
        return Err(InputError::at(
            path,
            source,
            1,
            1,
            "no `tests` list at the top level of the file",
        )
        .with_hint("a smoke file looks like:\n  tests:\n    - name: home page\n      uri: /"));
    };
    let mut warnings: Vec<String> = Vec::new();
    let tests = raw_tests
        .into_iter()
        .map(|t| {
            let outcomes = t.outcomes.unwrap_or_default();
            for w in &outcomes.ignored {
                if !warnings.contains(w) {
                    warnings.push(w.clone());
                }
            }
            TestSpec {
                name: t.name.0,
                description: t.description.map(|d| d.0),
                uri: t.uri.map(|u| u.0).unwrap_or_default(),
                port: t.port.map(|p| p.0),
                protocol: t.protocol,
                method: t.method.unwrap_or(Method::Get),
                inputs: t.inputs.unwrap_or_default(),
                checks: outcomes.checks,
                tcp_test: t.tcp_test.is_some_and(|f| f.0),
                show_body: t.show_body.is_some_and(|f| f.0) || outcomes.show_body.unwrap_or(false),
                colour: outcomes.colour_output.unwrap_or(true),
                response_headers_present: t
                    .response_headers_present
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| t.0)
                    .collect(),
            }
        })
        .collect();
    Ok(SmokeFile {
        path: path.to_owned(),
        tests,
        warnings,
    })
}

/// A parse that failed: whether the text is not even well-formed (then another format may be
/// tried), and the error.
struct Failed {
    syntax: bool,
    error: Box<InputError>,
}

fn read_raw(path: &str, source: &str) -> Result<RawFile, InputError> {
    let trimmed = source.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        match json_raw(path, source) {
            Ok(raw) => return Ok(raw),
            Err(Failed {
                syntax: false,
                error,
            }) => return Err(*error),
            // Not JSON: YAML's flow style starts the same way (`{tests: [{name: a}]}`).
            Err(Failed { error, .. }) => {
                return match yaml_raw(path, source) {
                    Ok(raw) => Ok(raw),
                    Err(Failed { syntax: true, .. }) => Err(*error),
                    Err(Failed { error, .. }) => Err(*error),
                }
            }
        }
    }
    yaml_raw(path, source).map_err(|f| *f.error)
}

fn json_raw(path: &str, source: &str) -> Result<RawFile, Failed> {
    let json_error = |e: serde_json::Error| Failed {
        syntax: !matches!(e.classify(), serde_json::error::Category::Data),
        error: Box::new(located(path, source, e.line(), e.column(), &e.to_string())),
    };
    let (walked, state) = walk(&mut serde_json::Deserializer::from_str(source), None);
    if let Err(e) = walked {
        let Some(dup) = state.dup else {
            return Err(json_error(e));
        };
        // The second walk stops at the first occurrence: its error's place is that line.
        let (first, _) = walk(&mut serde_json::Deserializer::from_str(source), Some(dup));
        let mut f = json_error(e);
        let first_line = first.err().map(|e| e.line()).filter(|l| *l > 0);
        f.error = Box::new(duplicate_message(*f.error, first_line));
        return Err(f);
    }
    serde_json::from_str(source).map_err(json_error)
}

fn yaml_raw(path: &str, source: &str) -> Result<RawFile, Failed> {
    if let Some((line, col, c)) = yaml_char_problem(source) {
        return Err(Failed {
            syntax: true,
            error: Box::new(
                InputError::at(
                    path,
                    source,
                    line,
                    col,
                    format!(
                        "a YAML file cannot contain the control character {}",
                        describe_char(c)
                    ),
                )
                .with_hint(
                    "remove it, or write it as an escape inside double quotes (\"\\u0007\")",
                ),
            ),
        });
    }
    let yaml_failed = |syntax: bool, e: serde_yaml::Error| Failed {
        syntax,
        error: Box::new(yaml_error(path, source, e)),
    };
    let (walked, state) = walk(serde_yaml::Deserializer::from_str(source), None);
    if let Err(e) = walked {
        let Some(dup) = state.dup else {
            return Err(yaml_failed(true, e));
        };
        // The second walk stops at the first occurrence: its error's place is that line.
        let (first, _) = walk(serde_yaml::Deserializer::from_str(source), Some(dup));
        let mut f = yaml_failed(false, e);
        let first_line = first.err().and_then(|e| e.location()).map(|l| l.line());
        f.error = Box::new(duplicate_message(*f.error, first_line));
        return Err(f);
    }
    let anchored = anchored_top_keys(source);
    if !state.merges && anchored.is_empty() {
        return serde_yaml::from_str(source).map_err(|e| yaml_failed(false, e));
    }
    // Merge keys: applied on the document, as PyYAML does (explicit keys win). Top-level keys
    // that only hold an anchor for the tests to use (`defaults: &defaults`) are dropped, as
    // Smolder ignores them.
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(source).map_err(|e| yaml_failed(true, e))?;
    if let serde_yaml::Value::Mapping(m) = &mut doc {
        for k in &anchored {
            m.remove(k.as_str());
        }
    }
    doc.apply_merge().map_err(|e| Failed {
        syntax: false,
        error: Box::new(
            InputError::whole_file(path, format!("merge key (`<<`): {e}"))
                .with_hint("`<<` takes an alias of a mapping (`<<: *base`) or a list of them"),
        ),
    })?;
    RawFile::deserialize(doc).map_err(|merged| {
        // The merged document has no places; the same mistake in the text as written has one.
        let as_written = serde_yaml::from_str::<RawFile>(source).err();
        let error = match as_written {
            Some(e) if e.to_string().contains(&merged.to_string()) => yaml_error(path, source, e),
            _ => InputError::whole_file(path, merged.to_string()).with_hint(
                "the place could not be pinned down because the test takes keys from a merge key (`<<`)",
            ),
        };
        Failed {
            syntax: false,
            error: Box::new(error),
        }
    })
}

/// Top-level keys other than `tests` whose value carries an anchor (`defaults: &defaults`):
/// somewhere to keep what tests merge in.
fn anchored_top_keys(source: &str) -> Vec<String> {
    // No anchor without a `&`: the pattern below takes longer to build than most runs take.
    if !source.contains('&') {
        return Vec::new();
    }
    static ANCHORED: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"(?m)^["']?([^\s"':#][^"':#]*?)["']?[ \t]*:[ \t]*&[^\s]+"#)
            .expect("valid regex")
    });
    ANCHORED
        .captures_iter(source)
        .map(|c| c[1].trim().to_owned())
        .filter(|k| k != "tests")
        .collect()
}

/// The first character YAML does not allow (libyaml's "control characters are not allowed"),
/// with its line and column.
fn yaml_char_problem(source: &str) -> Option<(usize, usize, char)> {
    let (mut line, mut col) = (1, 1);
    for c in source.chars() {
        let bad = match c {
            '\t' | '\n' | '\r' | '\u{85}' => false,
            c if (c as u32) < 0x20 => true,
            '\u{7f}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}' => true,
            _ => false,
        };
        if bad {
            return Some((line, col, c));
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    None
}

fn duplicate_message(mut e: InputError, first_line: Option<usize>) -> InputError {
    if let Some(l) = first_line {
        e.message = format!(
            "{}: it is also given at line {l} of this mapping, and only one can count",
            e.message
        );
    }
    e.hint = Some(
        "remove one of them (Smolder would silently keep the last one; gears does not guess)"
            .to_owned(),
    );
    e
}

/// What a walk of the whole document found.
#[derive(Default)]
struct WalkState {
    /// Mappings seen so far, in document order: their number names a mapping across walks.
    maps: usize,
    /// The mapping and key given twice.
    dup: Option<(usize, String)>,
    /// On a second walk: the duplicate to stop at the first time it is seen.
    first_of: Option<(usize, String)>,
    /// The document uses merge keys (`<<`).
    merges: bool,
}

/// Walks a whole document. The error of a key seen twice is raised while the key itself is
/// read, so the parser gives it the key's place.
fn walk<'de, D: Deserializer<'de>>(
    d: D,
    first_of: Option<(usize, String)>,
) -> (Result<(), D::Error>, WalkState)
where
    D::Error: fmt::Display,
{
    let state = std::cell::RefCell::new(WalkState {
        first_of,
        ..WalkState::default()
    });
    let r = de::DeserializeSeed::deserialize(Walk(&state), d);
    (r, state.into_inner())
}

struct Walk<'a>(&'a std::cell::RefCell<WalkState>);

impl<'de> de::DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        Ok(())
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        while s.next_element_seed(Walk(self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        let id = {
            let mut st = self.0.borrow_mut();
            st.maps += 1;
            st.maps
        };
        let mut seen = std::collections::HashSet::new();
        while m
            .next_key_seed(Key {
                state: self.0,
                id,
                seen: &mut seen,
            })?
            .is_some()
        {
            m.next_value_seed(Walk(self.0))?;
        }
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, e: A) -> Result<(), A::Error> {
        // A tagged value (`!tag x`).
        let (_, v) = e.variant::<de::IgnoredAny>()?;
        de::VariantAccess::newtype_variant_seed(v, Walk(self.0))
    }
}

struct Key<'a, 'b> {
    state: &'a std::cell::RefCell<WalkState>,
    id: usize,
    seen: &'b mut std::collections::HashSet<String>,
}

impl Key<'_, '_> {
    fn key<E: de::Error>(self, k: String) -> Result<(), E> {
        let mut st = self.state.borrow_mut();
        if k == "<<" {
            st.merges = true;
            return Ok(());
        }
        if st
            .first_of
            .as_ref()
            .is_some_and(|(id, key)| *id == self.id && *key == k)
        {
            return Err(E::custom("first occurrence"));
        }
        if !self.seen.insert(k.clone()) {
            let msg = format!("duplicate key `{k}`");
            st.dup = Some((self.id, k));
            return Err(E::custom(msg));
        }
        Ok(())
    }
}

impl<'de> de::DeserializeSeed<'de> for Key<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Key<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.key(v.to_owned())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.key(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.key(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.key(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.key(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.key("null".to_owned())
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, s: A) -> Result<(), A::Error> {
        Walk(self.state).visit_seq(s)
    }
    fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<(), A::Error> {
        Walk(self.state).visit_map(m)
    }
}

/// A hint for a key that is the singular or plural of a valid one (`proxy` → `proxies`), which
/// edit distance misses.
fn improve_hint(mut e: InputError) -> InputError {
    let Some(list) = e
        .hint
        .as_deref()
        .and_then(|h| h.strip_prefix("expected one of: "))
    else {
        return e;
    };
    let Some(word) = e
        .message
        .split("unknown key `")
        .nth(1)
        .and_then(|r| r.split('`').next())
    else {
        return e;
    };
    let stem = |s: &str| {
        let s = s.to_ascii_lowercase();
        let s = s.strip_suffix('s').unwrap_or(&s).to_owned();
        let s = s.strip_suffix("ie").unwrap_or(&s).to_owned();
        s.strip_suffix('y').unwrap_or(&s).to_owned()
    };
    let w = stem(word);
    if w.len() >= 3 {
        if let Some(c) = list.split(", ").find(|c| stem(c) == w) {
            e.hint = Some(format!("did you mean `{c}`?"));
        }
    }
    e
}

/// Masks secrets in an error about the file: in the line shown under it (values of
/// secret-named keys, cookie values, passwords in URLs, by the rule of [`super::secrets`]), and
/// in the message and hint (serde quotes values: `invalid type: string "hunter2"`).
fn redact(mut e: InputError, source: &str) -> InputError {
    use crate::smoke::secrets;
    let line = if e.line > 0 {
        source.lines().nth(e.line - 1)
    } else {
        None
    };
    let mut values = Vec::new();
    match line {
        Some(l) => {
            // By the line alone, and by the keys it sits under (`sid: x` under `cookie:`):
            // cheap, where parsing the whole document again would cost as much as the parse.
            values.extend(secrets::on_line(l));
            if secrets::under_secret_key(source, e.line) {
                let value = l.split_once(':').map_or(l, |(_, v)| v);
                let value = value.trim().trim_start_matches("- ").trim_end_matches(',');
                values.push(value.to_owned());
                values.push(value.trim_matches(['"', '\'']).to_owned());
            }
        }
        None => {
            if let Ok(doc) = serde_yaml::from_str::<serde_json::Value>(source) {
                secrets::in_document(&doc, &mut values);
            }
        }
    }
    let secrets = secrets::Secrets::new(values);
    if secrets.is_empty() {
        return e;
    }
    e.message = secrets.mask(&e.message);
    e.hint = e.hint.map(|h| secrets.mask(&h));
    if let Some(l) = line {
        let before: String = l.chars().take(e.column.saturating_sub(1)).collect();
        let column = secrets.mask(&before).chars().count() + 1;
        let (window, caret) = crate::error::line_window(&secrets.mask(l), column);
        e.source_line = Some(window);
        e.caret = caret;
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> InputError {
        parse("s.yaml", src).unwrap_err()
    }

    #[test]
    fn minimal_file_gets_smolder_defaults() {
        let f = parse("s.yaml", "tests:\n  - name: home\n").unwrap();
        let t = &f.tests[0];
        assert_eq!(t.name, "home");
        assert_eq!(t.uri, "");
        assert_eq!(t.method, Method::Get);
        assert!(t.checks.is_empty());
        assert!(t.colour);
    }

    #[test]
    fn outcomes_keep_file_order() {
        let f = parse(
            "s.yaml",
            "tests:\n  - name: a\n    outcomes:\n      response_body_contains: x\n      expect_status_code: \"301\"\n",
        )
        .unwrap();
        assert_eq!(
            f.tests[0].checks,
            vec![Outcome::BodyContains("x".into()), Outcome::StatusCode(301)]
        );
    }

    #[test]
    fn unknown_test_key_names_place_and_closest_key() {
        let e = err("tests:\n  - name: a\n    uir: /x\n");
        assert_eq!((e.line, e.column), (3, 5));
        assert!(e.message.contains("unknown key `uir`"), "{}", e.message);
        assert_eq!(e.hint.as_deref(), Some("did you mean `uri`?"));
    }

    #[test]
    fn unknown_outcome_suggests_closest() {
        let e = err("tests:\n  - name: a\n    outcomes:\n      expect_status: 200\n");
        assert_eq!(e.line, 4);
        assert_eq!(
            e.hint.as_deref(),
            Some("did you mean `expect_status_code`?")
        );
    }

    #[test]
    fn bad_port_and_protocol_are_located() {
        let e = err("tests:\n  - name: a\n    port: 70000\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("between 1 and 65535"), "{}", e.message);
        let e = err("tests:\n  - name: a\n    protocol: htps\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("did you mean `https`?"), "{}", e.message);
        let e = err("tests:\n  - name: a\n    method: gte\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("did you mean `GET`?"), "{}", e.message);
        let e = err("tests:\n  - name: a\n    protocol: ldap\n");
        assert!(e.message.contains("not supported"), "{}", e.message);
    }

    #[test]
    fn wrong_type_is_located() {
        let e = err("tests:\n  - name: a\n    port: eighty\n");
        assert_eq!((e.line, e.column), (3, 11));
        assert!(e.message.contains("invalid type"), "{}", e.message);
        let e = err("tests:\n  - name: a\n    outcomes:\n      response_body_contains: [a]\n");
        assert_eq!(e.line, 4);
        assert!(e.message.contains("invalid type"), "{}", e.message);
    }

    #[test]
    fn missing_and_empty_tests() {
        let e = err("other: 1\n");
        assert!(e.message.contains("unknown key `other`"), "{}", e.message);
        let e = err("{}\n");
        assert!(e.message.contains("no `tests`"), "{}", e.message);
        let e = err("tests: []\n");
        assert!(e.message.contains("empty"), "{}", e.message);
        assert_eq!(e.line, 1);
    }

    #[test]
    fn yaml_syntax_error_is_located() {
        let e = err("tests:\n  - name: a\n   uri: [\n");
        assert!(e.line >= 3, "{e:?}");
    }

    #[test]
    fn json_files_are_read_with_json_positions() {
        let f = parse("s.json", r#"{"tests": [{"name": "a", "uri": "/x"}]}"#).unwrap();
        assert_eq!(f.tests[0].uri, "/x");
        let e = parse(
            "s.json",
            "{\"tests\": [\n  {\"name\": \"a\", \"prot\": \"tcp\"}]}",
        )
        .unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.hint.as_deref(), Some("did you mean `port`?"));
    }

    #[test]
    fn inputs_accept_what_requests_accepts() {
        let f = parse(
            "s.yaml",
            "tests:\n  - name: a\n    inputs:\n      headers: {X-A: 1}\n      data: {k: v}\n      cookie: \"a=b; c=d\"\n      verify: \"False\"\n      timeout: 0.5\n      auth: [u, p]\n",
        )
        .unwrap();
        let i = &f.tests[0].inputs;
        assert_eq!(
            i.headers.as_ref().unwrap().0[0],
            ("X-A".into(), Text("1".into()))
        );
        assert_eq!(i.data, Some(Data::Form(vec![("k".into(), "v".into())])));
        assert_eq!(i.cookie.as_ref().unwrap().0.len(), 2);
        assert_eq!(i.verify, Some(Verify::No));
        assert_eq!(i.timeout, Some(Seconds(0.5)));
        assert_eq!(i.auth, Some((Text("u".into()), Text("p".into()))));
    }

    #[test]
    fn invalid_regex_is_an_input_error() {
        let e = err("tests:\n  - name: a\n    outcomes:\n      response_redirect: \"(\"\n");
        assert!(
            e.message.contains("invalid regular expression"),
            "{}",
            e.message
        );
    }

    #[test]
    fn nested_form_data_is_encoded_as_requests_does() {
        let f = parse("s.json", r#"{"tests": [{"name": "a", "inputs": {"data": {"downloadTransaction": {"status": "COMPLETE"}, "ids": [1, 2], "flag": true, "none": null}}}]}"#).unwrap();
        assert_eq!(
            f.tests[0].inputs.data,
            Some(Data::Form(vec![
                ("downloadTransaction".into(), "status".into()),
                ("ids".into(), "1".into()),
                ("ids".into(), "2".into()),
                ("flag".into(), "True".into()),
            ]))
        );
    }

    #[test]
    fn keys_from_smolders_own_examples_are_accepted() {
        // examples/header_test.json and tests/fixtures/github_status.json of Smolder.
        let f = parse(
            "s.json",
            r#"{"tests": [{"name": "a", "outcomes": {"expect_status_code": 301, "colour": "False", "response_headers_present": ["x-int-requestid"]}}, {"name": "b", "outcomes": {"colour": "False"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            f.tests[0].checks[1],
            Outcome::ResponseHeaders(vec!["x-int-requestid".into()])
        );
        assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
        assert!(f.warnings[0].contains("did you mean `colour_output`?"));
    }

    #[test]
    fn show_body_at_either_place() {
        let f = parse("s.yaml", "tests:\n  - name: a\n    show_body: true\n  - name: b\n    outcomes: {show_body: true}\n  - name: c\n").unwrap();
        let shows: Vec<bool> = f.tests.iter().map(|t| t.show_body).collect();
        assert_eq!(shows, vec![true, true, false]);
    }
    #[test]
    fn flow_style_yaml_is_yaml_not_bad_json() {
        let f = parse("s.yaml", "{tests: [{name: a, uri: /get}]}").unwrap();
        assert_eq!(f.tests[0].uri, "/get");
        // Real JSON with a mistake keeps JSON's error and place.
        let e = parse(
            "s.json",
            "{\"tests\": [{\"name\": \"a\", \"urii\": \"/x\"}]}",
        )
        .unwrap_err();
        assert!(e.message.contains("unknown key `urii`"), "{}", e.message);
        // Neither JSON nor YAML: JSON's error.
        let e = parse("s.json", "{\"tests\": [}").unwrap_err();
        assert!(e.message.contains("expected value"), "{}", e.message);
    }

    #[test]
    fn yaml_merge_keys_are_applied_and_explicit_keys_win() {
        let f = parse(
            "s.yaml",
            "tests:\n  - &base\n    name: a\n    uri: /get\n    inputs: {headers: {X-A: one}}\n    outcomes: {expect_status_code: 201}\n  - <<: *base\n    name: b\n",
        )
        .unwrap();
        assert_eq!(f.tests.len(), 2);
        assert_eq!(f.tests[1].name, "b");
        assert_eq!(f.tests[1].uri, "/get");
        assert_eq!(f.tests[1].checks, vec![Outcome::StatusCode(201)]);
        assert_eq!(f.tests[1].inputs.headers, f.tests[0].inputs.headers);
        // A mistake outside the merged part is still located.
        let e = parse(
            "s.yaml",
            "tests:\n  - &base\n    name: a\n  - <<: *base\n    port: 0\n",
        )
        .unwrap_err();
        assert!(e.message.contains("between 1 and 65535"), "{e:?}");
    }

    #[test]
    fn a_top_level_key_holding_an_anchor_is_where_merged_keys_live() {
        let f = parse(
            "s.yaml",
            "defaults: &defaults\n  uri: /get\n  inputs: {headers: {X-A: one}}\ntests:\n  - <<: *defaults\n    name: a\n  - name: b\n    inputs: *x\n",
        );
        // `*x` is not defined: a YAML error, located.
        assert!(f.is_err());
        let f = parse(
            "s.yaml",
            "defaults: &defaults\n  uri: /get\ntests:\n  - <<: *defaults\n    name: a\n",
        )
        .unwrap();
        assert_eq!(f.tests[0].uri, "/get");
        // Without an anchor, an unknown top-level key is still refused.
        let e = err("defaults:\n  uri: /get\ntests:\n  - name: a\n");
        assert!(
            e.message.contains("unknown key `defaults`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn duplicate_keys_are_refused_at_the_second_naming_the_first() {
        let e = err("tests:\n  - name: a\n    outcomes:\n      expect_status_code: 200\n      expect_status_code: 404\n");
        assert_eq!((e.line, e.column), (5, 7), "{e:?}");
        assert!(
            e.message.contains("duplicate key `expect_status_code`"),
            "{}",
            e.message
        );
        assert!(e.message.contains("line 4"), "{}", e.message);
        let e = err(
            "tests:\n  - name: a\n    inputs:\n      headers:\n        X-A: 1\n        X-A: 2\n",
        );
        assert_eq!(e.line, 6, "{e:?}");
        assert!(e.message.contains("line 5"), "{}", e.message);
        let e = err("tests:\n  - name: a\n    uri: /a\n    uri: /b\n");
        assert_eq!(e.line, 4, "{e:?}");
        let e = parse(
            "s.json",
            "{\"tests\": [{\"name\": \"a\",\n \"name\": \"b\"}]}",
        )
        .unwrap_err();
        assert_eq!(e.line, 2, "{e:?}");
        assert!(e.message.contains("line 1"), "{}", e.message);
        // The same key in two different mappings is fine.
        assert!(parse("s.yaml", "tests:\n  - name: a\n  - name: b\n").is_ok());
    }

    #[test]
    fn a_schema_that_is_not_a_mapping_is_refused_where_it_is() {
        let e = err(
            "tests:\n  - name: a\n    outcomes:\n      validate_json: {schema: \"not a schema\"}\n",
        );
        assert_eq!(e.line, 4, "{e:?}");
        assert!(e.message.contains("JSON schema"), "{}", e.message);
        let e = err("tests:\n  - name: a\n    outcomes:\n      validate_json:\n        schema: {properties: {a: 1}}\n");
        assert_eq!(e.line, 5, "{e:?}");
        assert!(
            e.message.contains("schema.properties.a must be a mapping"),
            "{}",
            e.message
        );
    }

    #[test]
    fn yaml_1_1_booleans_wherever_a_boolean_is_expected() {
        let f = parse(
            "s.yaml",
            "tests:\n  - name: a\n    tcp_test: yes\n    show_body: on\n    inputs: {allow_redirects: yes, verify: no}\n    outcomes: {colour_output: off}\n  - name: b\n    tcp_test: No\n    outcomes: {show_body: YES}\n",
        )
        .unwrap();
        let (a, b) = (&f.tests[0], &f.tests[1]);
        assert!(a.tcp_test && a.show_body && !a.colour);
        assert_eq!(a.inputs.allow_redirects, Some(Flag(true)));
        assert_eq!(a.inputs.verify, Some(Verify::No));
        assert!(!b.tcp_test && b.show_body);
        let e = err("tests:\n  - name: a\n    tcp_test: maybe\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("yes/no"), "{}", e.message);
    }

    #[test]
    fn control_characters_are_located_by_line_and_column() {
        let e = err("tests:\n  - name: a\u{7}b\n");
        assert_eq!((e.line, e.column), (2, 12), "{e:?}");
        assert!(e.message.contains("U+0007"), "{}", e.message);
        assert!(!e.message.contains("position"), "{}", e.message);
    }

    #[test]
    fn files_and_urls_named_in_the_file_are_checked_where_they_are_named() {
        let e = err("tests:\n  - name: a\n    inputs:\n      verify: /no/such/ca.pem\n");
        assert_eq!(e.line, 4, "{e:?}");
        assert!(
            e.message
                .contains("cannot read the CA bundle `/no/such/ca.pem`"),
            "{}",
            e.message
        );
        let e = err("tests:\n  - name: a\n    inputs:\n      cert: /no/such/client.pem\n");
        assert_eq!(e.line, 4, "{e:?}");
        assert!(e.message.contains("client certificate"), "{}", e.message);
        let e = err("tests:\n  - name: a\n    inputs:\n      cert: [/no/cert.pem, /no/key.pem]\n");
        assert_eq!(e.line, 4, "{e:?}");
        let e = err("tests:\n  - name: a\n    inputs:\n      proxies: {http: \"http://user:PASSWORD@host:99999\"}\n");
        assert_eq!(e.line, 4, "{e:?}");
        assert!(e.message.contains("invalid port number"), "{}", e.message);
        let shown = crate::error::Error::from(e).render();
        assert!(!shown.contains("PASSWORD"), "{shown}");
    }

    #[test]
    fn messages_name_no_internal_types() {
        let keys = [
            "name",
            "uri",
            "port",
            "protocol",
            "method",
            "inputs",
            "outcomes",
            "tcp_test",
            "show_body",
            "response_headers_present",
            "request_headers",
            "url",
            "description",
        ];
        let inputs = [
            "headers",
            "username",
            "password",
            "auth",
            "cookie",
            "cookies",
            "data",
            "json",
            "params",
            "file",
            "files",
            "verify",
            "allow_redirects",
            "timeout",
            "proxies",
            "cert",
        ];
        let mut files: Vec<String> = Vec::new();
        for v in ["[[1]]", "{a: {b: 1}}", "[1, 2, 3]"] {
            files.push(format!("tests:\n  - {v}\n"));
            files.push(format!("tests: {v}\n"));
            for k in keys {
                files.push(format!("tests:\n  - name: a\n    {k}: {v}\n"));
            }
            for k in inputs {
                files.push(format!(
                    "tests:\n  - name: a\n    inputs:\n      {k}: {v}\n"
                ));
            }
            for k in OUTCOME_KEYS {
                files.push(format!(
                    "tests:\n  - name: a\n    outcomes:\n      {k}: {v}\n"
                ));
            }
        }
        files.push("- a\n".into());
        for src in files {
            let Err(e) = parse("s.yaml", &src) else {
                continue;
            };
            let text = format!("{} {:?}", e.message, e.hint);
            for internal in [
                "struct ",
                "enum ",
                "RawTest",
                "RawFile",
                "ClientCert",
                "f64",
                "u16",
                "unit value, expected unit",
                "tuple",
            ] {
                assert!(!text.contains(internal), "{src:?}: {text}");
            }
            assert!(e.line > 0, "{src:?}: not located: {text}");
        }
    }

    #[test]
    fn proxy_suggests_proxies() {
        let e = err("tests:\n  - name: a\n    inputs:\n      proxy: {http: \"http://p:3128\"}\n");
        assert_eq!(e.hint.as_deref(), Some("did you mean `proxies`?"), "{e:?}");
    }

    #[test]
    fn cookie_values_that_would_change_the_request_are_refused_where_they_are() {
        let e = err("tests:\n  - name: a\n    inputs:\n      cookie: {sid: \"a\\nb\"}\n");
        assert_eq!(e.line, 4, "{e:?}");
        assert!(
            e.message.contains("cookie `sid`") && e.message.contains("newline"),
            "{}",
            e.message
        );
        let e = err("tests:\n  - name: a\n    inputs:\n      cookies:\n        sid: \"a;b\"\n");
        assert_eq!(e.line, 5, "{e:?}");
        let e = err("tests:\n  - name: a\n    inputs:\n      cookie: \"a=1; b=x\\ny\"\n");
        assert_eq!(e.line, 4, "{e:?}");
        let e = err("tests:\n  - name: a\n    uri: \"/get\\nHost: evil\"\n");
        assert_eq!(e.line, 3, "{e:?}");
        assert!(e.message.contains("control character"), "{}", e.message);
    }

    #[test]
    fn secrets_are_masked_in_the_line_under_an_error() {
        let src = "tests:\n  - name: a\n    uri: /get?password=hunter22&x=1\n    port: 0\n  - name: b\n    inputs: {password: [sekrit-list]}\n";
        let e = err(src);
        let shown = crate::error::Error::from(e).render();
        assert!(!shown.contains("hunter22"), "{shown}");
        let e = err("tests:\n  - name: a\n    inputs: {password: hunter22, port: 1}\n");
        let shown = crate::error::Error::from(e).render();
        assert!(!shown.contains("hunter22"), "{shown}");
        let e =
            err("tests:\n  - name: a\n    inputs:\n      cookie:\n        sid: [cookie-val-1]\n");
        let shown = crate::error::Error::from(e).render();
        assert!(!shown.contains("cookie-val-1"), "{shown}");
    }

    #[test]
    fn a_long_one_line_json_error_shows_a_window() {
        let filler = "x".repeat(1_000_000);
        let src = format!("{{\"tests\": [{{\"name\": \"{filler}\", \"prot\": 1}}]}}");
        let e = parse("big.json", &src).unwrap_err();
        let shown = crate::error::Error::from(e).render();
        assert!(shown.len() < 1000, "{} bytes of error", shown.len());
        assert!(shown.contains("\"prot\""), "{shown}");
    }
}
