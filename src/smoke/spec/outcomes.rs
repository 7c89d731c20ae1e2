//! `outcomes`: the checks on a response, in file order, and the two display switches.

use super::helpers::*;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// One check on the response, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    StatusCode(u16),
    BodyContains(String),
    BodyDoesntContain(String),
    JsonContains(Vec<(String, serde_json::Value)>),
    MaxTimeMs(f64),
    Redirect(Pattern),
    ResponseHeaders(Vec<String>),
    HeaderValues(Vec<(String, String)>),
    HeaderValueContains(Vec<(String, Pattern)>),
    ValidateJson(serde_json::Value),
    /// Smolder's `headers_present`: checks the test's top-level `response_headers_present`.
    HeadersPresent,
}

/// `outcomes`: the checks plus the two display switches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcomes {
    pub checks: Vec<Outcome>,
    pub show_body: Option<bool>,
    pub colour_output: Option<bool>,
    /// Keys Smolder's own example files use but Smolder ignores: accepted, ignored, warned about.
    pub ignored: Vec<String>,
}

/// Every key `outcomes` accepts.
pub const OUTCOME_KEYS: &[&str] = &[
    "expect_status_code",
    "response_body_contains",
    "response_body_doesnt_contain",
    "response_json_contains",
    "response_max_time_ms",
    "response_redirect",
    "response_headers",
    "response_header_values",
    "response_header_value_contains",
    "validate_json",
    "headers_present",
    "show_body",
    "colour_output",
    "ldap_attribute_value_equals",
    "response_headers_present",
    "colour",
];

struct StatusCode(u16);

impl<'de> Deserialize<'de> for StatusCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "an HTTP status code", |v| {
            let n = match &v {
                Scalar::Int(n) => Some(*n),
                Scalar::Str(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            match n {
                Some(n) if (100..=999).contains(&n) => Ok(StatusCode(n as u16)),
                _ => Err(format!(
                    "expect_status_code must be an HTTP status code like 200, got {v}"
                )),
            }
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a mapping {schema: {...}}")]
struct Schema {
    #[serde(deserialize_with = "json_schema")]
    schema: serde_json::Value,
}

/// A JSON schema: a mapping, checked for the shape validictory needs.
fn json_schema<'de, D: Deserializer<'de>>(d: D) -> Result<serde_json::Value, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = serde_json::Value;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON schema: a mapping like {type: object, properties: {...}}")
        }
        fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Value, A::Error> {
            let v = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(m))?;
            crate::smoke::schema::check_schema(&v).map_err(de::Error::custom)?;
            Ok(v)
        }
    }
    d.deserialize_any(V)
}

/// `response_max_time_ms`: a number of milliseconds.
struct Millis(f64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "a number of milliseconds", |v| match v {
            Scalar::Int(n) if n >= 0 => Ok(Millis(n as f64)),
            Scalar::Float(n) if n.is_finite() && n >= 0.0 => Ok(Millis(n)),
            other => Err(format!(
                "invalid type: response_max_time_ms must be a number of milliseconds, got {other}"
            )),
        })
    }
}

impl<'de> Deserialize<'de> for Outcomes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OutcomesVisitor)
    }
}

/// Reads `outcomes`: a mapping of checks and switches, or nothing at all.
struct OutcomesVisitor;

impl<'de> Visitor<'de> for OutcomesVisitor {
    type Value = Outcomes;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping of outcome checks")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Outcomes, E> {
        Ok(Outcomes::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Outcomes, A::Error> {
        let mut out = Outcomes::default();
        while let Some(key) = m.next_key::<String>()? {
            match next_check(&key, &mut m)? {
                Some(check) => out.checks.push(check),
                None => next_switch(&key, &mut m, &mut out)?,
            }
        }
        Ok(out)
    }
}

/// The check `key` names, its value read from `m`; None (nothing read) when `key` is not a
/// check.
fn next_check<'de, A: MapAccess<'de>>(key: &str, m: &mut A) -> Result<Option<Outcome>, A::Error> {
    let check = match key {
        "expect_status_code" => Outcome::StatusCode(m.next_value::<StatusCode>()?.0),
        "response_body_contains" => Outcome::BodyContains(m.next_value::<Text>()?.0),
        "response_body_doesnt_contain" => Outcome::BodyDoesntContain(m.next_value::<Text>()?.0),
        "response_json_contains" => {
            let map: serde_json::Map<String, serde_json::Value> = m.next_value()?;
            Outcome::JsonContains(map.into_iter().collect())
        }
        "response_max_time_ms" => Outcome::MaxTimeMs(m.next_value::<Millis>()?.0),
        "response_redirect" => Outcome::Redirect(m.next_value()?),
        "response_headers" => {
            let v: Vec<Text> = m.next_value()?;
            Outcome::ResponseHeaders(v.into_iter().map(|t| t.0).collect())
        }
        "response_header_values" => {
            let o: Ordered<Text> = m.next_value()?;
            Outcome::HeaderValues(o.0.into_iter().map(|(k, v)| (k, v.0)).collect())
        }
        "response_header_value_contains" => {
            Outcome::HeaderValueContains(m.next_value::<Ordered<Pattern>>()?.0)
        }
        "validate_json" => Outcome::ValidateJson(m.next_value::<Schema>()?.schema),
        "headers_present" => {
            m.next_value::<de::IgnoredAny>()?;
            Outcome::HeadersPresent
        }
        // In Smolder's examples (header_test.json) under outcomes, where Smolder
        // ignores it; gears checks the headers, as the author meant.
        "response_headers_present" => {
            let v: Vec<Text> = m.next_value()?;
            Outcome::ResponseHeaders(v.into_iter().map(|t| t.0).collect())
        }
        _ => return Ok(None),
    };
    Ok(Some(check))
}

/// A key of `outcomes` that is not a check: a display switch, a key Smolder ignores, or an
/// unknown key (an error that lists the known ones).
fn next_switch<'de, A: MapAccess<'de>>(
    key: &str,
    m: &mut A,
    out: &mut Outcomes,
) -> Result<(), A::Error> {
    match key {
        "show_body" => out.show_body = Some(m.next_value::<Flag>()?.0),
        "colour_output" => out.colour_output = Some(m.next_value::<Flag>()?.0),
        // In Smolder's own fixtures; Smolder ignores it (colour stays on).
        "colour" => {
            m.next_value::<de::IgnoredAny>()?;
            out.ignored.push(
                "`colour` under outcomes is ignored, as Smolder ignores it; did you mean `colour_output`?".to_owned(),
            );
        }
        // Smolder's ldap check: known, so accepted; only ldap tests use it, and
        // gears refuses those.
        "ldap_attribute_value_equals" => {
            m.next_value::<de::IgnoredAny>()?;
        }
        other => return Err(de::Error::unknown_field(other, OUTCOME_KEYS)),
    }
    Ok(())
}
