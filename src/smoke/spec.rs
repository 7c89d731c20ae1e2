//! Smolder-compatible smoke files: parsing and validation.
//!
//! A file is YAML (or JSON) with a top-level `tests:` list. Parsing goes straight into typed
//! structures with `deny_unknown_fields`, so every mistake is reported by serde with its line and
//! column; [`parse`] turns that into an [`InputError`] with the source line and, for a typo, the
//! closest valid key. Outcomes keep their file order (Smolder's plugin order is not kept, see
//! `shared/research/smolder-spec.md`).

use crate::error::{closest, located, yaml_error, InputError};
use regex::Regex;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// A parsed smoke file.
#[derive(Debug, Clone)]
pub struct SmokeFile {
    /// Where it came from, as the user named it.
    pub path: String,
    /// The tests, in file order.
    pub tests: Vec<TestSpec>,
    /// Things that run but deserve a word (keys Smolder ignores), once each.
    pub warnings: Vec<String>,
}

/// A YAML/JSON scalar, for checks that must run while serde still knows the value's place.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Str(s) => write!(f, "\"{s}\""),
            Scalar::Int(n) => write!(f, "{n}"),
            Scalar::Float(n) => write!(f, "{n}"),
            Scalar::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Deserializes a scalar and converts it inside the visitor, so that a conversion error carries
/// the value's line and column.
fn checked<'de, D, T, F>(d: D, expecting: &'static str, f: F) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(Scalar) -> Result<T, String>,
{
    struct V<F>(F, &'static str);
    impl<T, F: FnOnce(Scalar) -> Result<T, String>> Visitor<'_> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.1)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.0)(Scalar::Str(v.to_owned())).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            (self.0)(Scalar::Int(v)).map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            (self.0)(Scalar::Int(v.min(i64::MAX as u64) as i64)).map_err(E::custom)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            (self.0)(Scalar::Float(v)).map_err(E::custom)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
            (self.0)(Scalar::Bool(v)).map_err(E::custom)
        }
    }
    d.deserialize_any(V(f, expecting))
}

fn suggest(word: &str, valid: &[&str]) -> String {
    match closest(&word.to_ascii_lowercase(), valid) {
        Some(c) => format!(
            "unknown value `{word}`; did you mean `{c}`? (expected one of: {})",
            valid.join(", ")
        ),
        None => format!(
            "unknown value `{word}` (expected one of: {})",
            valid.join(", ")
        ),
    }
}

/// The protocol of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Http,
    Https,
    Tcp,
}

impl Protocol {
    /// The scheme as written in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
            Protocol::Tcp => "tcp",
        }
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "a protocol: http, https or tcp", |v| {
            let Scalar::Str(s) = v else {
                return Err(format!("protocol must be http, https or tcp, got {v}"));
            };
            match s.to_ascii_lowercase().as_str() {
                "http" => Ok(Protocol::Http),
                "https" => Ok(Protocol::Https),
                "tcp" => Ok(Protocol::Tcp),
                "ldap" | "ldaps" => Err(format!(
                    "protocol `{s}` is not supported by gears (Smolder's ldap checks were not carried over); use `tcp` to check the port"
                )),
                _ => Err(suggest(&s, &["http", "https", "tcp"])),
            }
        })
    }
}

/// The HTTP method of a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
    Options,
    Purge,
    Head,
    Patch,
}

impl Method {
    /// The method as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Purge => "PURGE",
            Method::Head => "HEAD",
            Method::Patch => "PATCH",
        }
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const VALID: &[&str] = &[
            "GET", "POST", "PUT", "DELETE", "OPTIONS", "PURGE", "HEAD", "PATCH",
        ];
        checked(d, "an HTTP method", |v| {
            let Scalar::Str(s) = v else {
                return Err(format!("method must be a string like GET, got {v}"));
            };
            Ok(match s.to_ascii_uppercase().as_str() {
                "GET" => Method::Get,
                "POST" => Method::Post,
                "PUT" => Method::Put,
                "DELETE" => Method::Delete,
                // Smolder's schema spells it OPTION and sends it literally; servers know OPTIONS.
                "OPTION" | "OPTIONS" => Method::Options,
                "PURGE" => Method::Purge,
                "HEAD" => Method::Head,
                "PATCH" => Method::Patch,
                _ => {
                    let upper = s.to_ascii_uppercase();
                    return Err(match closest(&upper, VALID) {
                        Some(c) => format!("unknown method `{s}`; did you mean `{c}`?"),
                        None => format!(
                            "unknown method `{s}` (expected one of: {})",
                            VALID.join(", ")
                        ),
                    });
                }
            })
        })
    }
}

/// A scalar written as a string, number or boolean, kept as text (header values, form fields).
#[derive(Debug, Clone, PartialEq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                // Python's str(True), as Smolder would send it.
                Ok(Text(if v { "True" } else { "False" }.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A mapping whose entries keep their file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ordered<T>(pub Vec<(String, T)>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<Text>()? {
                    out.push((k.0, m.next_value()?));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A test's `uri`: empty, or a path (or query) that goes right after `host:port`, as Smolder
/// builds URLs without joining: so it must start with `/` or `?`.
#[derive(Debug, Clone, PartialEq)]
pub struct Uri(pub String);

impl<'de> Deserialize<'de> for Uri {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "a path like /health", |v| {
            match v {
            Scalar::Str(s) if s.is_empty() || s.starts_with('/') || s.starts_with('?') => Ok(Uri(s)),
            Scalar::Str(s) => Err(format!(
                "uri `{s}` must start with `/` (the URL is host:port followed by the uri); did you mean `/{s}`?"
            )),
            other => Err(format!("invalid type: uri must be a path like /health, got {other}")),
        }
        })
    }
}

/// A TCP/HTTP port, 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "a port number", |v| match v {
            Scalar::Int(n) if (1..=65535).contains(&n) => Ok(Port(n as u16)),
            Scalar::Int(n) => Err(format!("port must be between 1 and 65535, got {n}")),
            other => Err(format!(
                "invalid type: port must be a whole number between 1 and 65535, got {other}"
            )),
        })
    }
}

/// A positive number of seconds (`timeout`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(pub f64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "a number of seconds", |v| {
            let n = match v {
                Scalar::Int(n) => n as f64,
                Scalar::Float(n) => n,
                other => {
                    return Err(format!(
                        "invalid type: timeout must be a number of seconds, got {other}"
                    ))
                }
            };
            if n.is_finite() && n > 0.0 && n <= 86_400.0 {
                Ok(Seconds(n))
            } else if n > 86_400.0 {
                Err(format!(
                    "timeout must be at most 86400 seconds (a day), got {n}"
                ))
            } else {
                Err(format!(
                    "timeout must be a positive number of seconds, got {n}"
                ))
            }
        })
    }
}

/// A regular expression, checked when the file is read.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// As written.
    pub source: String,
    /// Compiled.
    pub regex: Regex,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "a regular expression", |v| {
            let source = match v {
                Scalar::Str(s) => s,
                other => other.to_string(),
            };
            match Regex::new(&source) {
                Ok(regex) => Ok(Pattern { source, regex }),
                Err(e) => Err(format!(
                    "invalid regular expression `{source}`: {}",
                    e.to_string().lines().last().unwrap_or("")
                )),
            }
        })
    }
}

/// `inputs.data`: a mapping is form-encoded, a string is sent as the raw body.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    Form(Vec<(String, String)>),
    Raw(String),
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Data;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of form fields or a string body")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Data, E> {
                Ok(Data::Raw(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Data, A::Error> {
                let o = Ordered::<serde_json::Value>::deserialize(
                    de::value::MapAccessDeserializer::new(m),
                )?;
                Ok(Data::Form(form_pairs(o.0)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Form fields as Python requests encodes a `data` dict: a list gives one field per item, a
/// nested mapping one field per key (requests iterates it), `null` is left out.
fn form_pairs(fields: Vec<(String, serde_json::Value)>) -> Vec<(String, String)> {
    use serde_json::Value;
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(true) => Some("True".to_owned()),
        Value::Bool(false) => Some("False".to_owned()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    let mut out = Vec::new();
    for (k, v) in fields {
        match &v {
            Value::Array(items) => {
                out.extend(items.iter().filter_map(text).map(|t| (k.clone(), t)))
            }
            Value::Object(m) => out.extend(m.keys().map(|t| (k.clone(), t.clone()))),
            other => out.extend(text(other).map(|t| (k.clone(), t))),
        }
    }
    out
}

/// `inputs.cookie`/`cookies`: a mapping, or a `a=b; c=d` string.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cookies(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Cookies {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cookies;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of cookie names to values, or a \"a=b; c=d\" string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cookies, E> {
                let mut out = Vec::new();
                for part in v.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                    let Some((k, val)) = part.split_once('=') else {
                        return Err(E::custom(format!("cookie `{part}` has no `=`")));
                    };
                    out.push((k.trim().to_owned(), val.trim().to_owned()));
                }
                Ok(Cookies(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Cookies, A::Error> {
                let o = Ordered::<Text>::deserialize(de::value::MapAccessDeserializer::new(m))?;
                Ok(Cookies(o.0.into_iter().map(|(k, v)| (k, v.0)).collect()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `inputs.verify`: `true`/`false` (or Python's `"True"`/`"False"`), or a CA bundle path.
#[derive(Debug, Clone, PartialEq)]
pub enum Verify {
    Yes,
    No,
    CaBundle(String),
}

impl<'de> Deserialize<'de> for Verify {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Verify;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false or the path of a CA bundle")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Verify, E> {
                Ok(if v { Verify::Yes } else { Verify::No })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Verify, E> {
                Ok(match v {
                    "True" | "true" => Verify::Yes,
                    "False" | "false" => Verify::No,
                    path => Verify::CaBundle(path.to_owned()),
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `inputs.file`: `{filename, content}` (or just the content), sent as multipart field `file`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpload {
    #[serde(default = "default_filename")]
    pub filename: String,
    pub content: String,
}

fn default_filename() -> String {
    "file".to_owned()
}

/// `inputs.proxies`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Hash, Eq)]
#[serde(deny_unknown_fields)]
pub struct Proxies {
    pub http: Option<String>,
    pub https: Option<String>,
}

/// `inputs.cert`: one PEM file with certificate and key, or `[cert, key]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(untagged)]
pub enum ClientCert {
    Combined(String),
    Pair(String, String),
}

/// The `inputs` of a test: what Python `requests.request(**inputs)` would accept, plus the
/// documented `username`/`password`, `cookie` and `file`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    #[serde(default, deserialize_with = "http_headers")]
    pub headers: Option<Ordered<Text>>,
    pub username: Option<Text>,
    pub password: Option<Text>,
    pub auth: Option<(Text, Text)>,
    pub cookie: Option<Cookies>,
    pub cookies: Option<Cookies>,
    pub data: Option<Data>,
    pub json: Option<serde_json::Value>,
    pub params: Option<Ordered<Text>>,
    #[serde(default, deserialize_with = "file_upload")]
    pub file: Option<FileUpload>,
    pub files: Option<Ordered<Text>>,
    pub verify: Option<Verify>,
    pub allow_redirects: Option<bool>,
    pub timeout: Option<Seconds>,
    pub proxies: Option<Proxies>,
    pub cert: Option<ClientCert>,
    /// Smolder's ldap inputs: known, so accepted; gears refuses ldap tests, so never used.
    #[serde(default, rename = "bind_dn")]
    pub _bind_dn: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "bind_pw")]
    pub _bind_pw: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "dn")]
    pub _dn: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "attr_key")]
    pub _attr_key: Option<serde::de::IgnoredAny>,
}

/// `inputs.headers`, each name and value checked as HTTP allows while serde still knows where
/// it is in the file.
fn http_headers<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ordered<Text>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Ordered<Text>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a mapping of header names to values")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(k) = m.next_key::<Text>()? {
                if reqwest::header::HeaderName::from_bytes(k.0.as_bytes()).is_err() {
                    return Err(de::Error::custom(format!(
                        "`{}` is not a valid HTTP header name",
                        k.0
                    )));
                }
                let v: Text = m.next_value()?;
                if reqwest::header::HeaderValue::from_str(&v.0).is_err() {
                    return Err(de::Error::custom(format!(
                        "the value of header `{}` has characters HTTP does not allow (a newline?)",
                        k.0
                    )));
                }
                out.push((k.0, v));
            }
            Ok(Some(Ordered(out)))
        }
    }
    d.deserialize_any(V)
}

fn file_upload<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FileUpload>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<FileUpload>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("{filename, content} or the content as a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(FileUpload {
                filename: default_filename(),
                content: v.to_owned(),
            }))
        }
        fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Value, A::Error> {
            FileUpload::deserialize(de::value::MapAccessDeserializer::new(m)).map(Some)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

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
#[serde(deny_unknown_fields)]
struct Schema {
    schema: serde_json::Value,
}

impl<'de> Deserialize<'de> for Outcomes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
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
                    let check = match key.as_str() {
                        "expect_status_code" => {
                            Outcome::StatusCode(m.next_value::<StatusCode>()?.0)
                        }
                        "response_body_contains" => {
                            Outcome::BodyContains(m.next_value::<Text>()?.0)
                        }
                        "response_body_doesnt_contain" => {
                            Outcome::BodyDoesntContain(m.next_value::<Text>()?.0)
                        }
                        "response_json_contains" => {
                            let map: serde_json::Map<String, serde_json::Value> = m.next_value()?;
                            Outcome::JsonContains(map.into_iter().collect())
                        }
                        "response_max_time_ms" => {
                            let n: f64 = m.next_value()?;
                            Outcome::MaxTimeMs(n)
                        }
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
                        "show_body" => {
                            out.show_body = Some(m.next_value()?);
                            continue;
                        }
                        "colour_output" => {
                            out.colour_output = Some(m.next_value()?);
                            continue;
                        }
                        // In Smolder's examples (header_test.json) under outcomes, where Smolder
                        // ignores it; gears checks the headers, as the author meant.
                        "response_headers_present" => {
                            let v: Vec<Text> = m.next_value()?;
                            Outcome::ResponseHeaders(v.into_iter().map(|t| t.0).collect())
                        }
                        // In Smolder's own fixtures; Smolder ignores it (colour stays on).
                        "colour" => {
                            m.next_value::<de::IgnoredAny>()?;
                            out.ignored.push(
                                "`colour` under outcomes is ignored, as Smolder ignores it; did you mean `colour_output`?".to_owned(),
                            );
                            continue;
                        }
                        // Smolder's ldap check: known, so accepted; only ldap tests use it, and
                        // gears refuses those.
                        "ldap_attribute_value_equals" => {
                            m.next_value::<de::IgnoredAny>()?;
                            continue;
                        }
                        other => return Err(de::Error::unknown_field(other, OUTCOME_KEYS)),
                    };
                    out.checks.push(check);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

/// One test as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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
    tcp_test: Option<bool>,
    show_body: Option<bool>,
    response_headers_present: Option<Vec<Text>>,
    /// Must be absent or null in Smolder's schema.
    #[allow(dead_code)]
    request_headers: Option<()>,
    /// Must be absent or null in Smolder's schema.
    #[allow(dead_code)]
    url: Option<()>,
    description: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// A test ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSpec {
    pub name: String,
    pub description: Option<String>,
    pub uri: String,
    pub port: Option<u16>,
    pub protocol: Option<Protocol>,
    pub method: Method,
    pub inputs: Inputs,
    pub checks: Vec<Outcome>,
    pub tcp_test: bool,
    pub show_body: bool,
    pub colour: bool,
    pub response_headers_present: Vec<String>,
}

/// Parses a smoke file. `path` is only used in messages.
pub fn parse(path: &str, source: &str) -> Result<SmokeFile, InputError> {
    let trimmed = source.trim_start();
    if trimmed.is_empty() {
        return Err(InputError::whole_file(
            path,
            "the file is empty: expected a top-level `tests:` list",
        )
        .with_hint("a smoke file looks like:\n  tests:\n    - name: home page\n      uri: /"));
    }
    let raw: RawFile = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::from_str(source).map_err(|e| json_error(path, source, e))?
    } else {
        serde_yaml::from_str(source).map_err(|e| yaml_error(path, source, e))?
    };
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
                tcp_test: t.tcp_test.unwrap_or(false),
                show_body: t.show_body.unwrap_or(false) || outcomes.show_body.unwrap_or(false),
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

fn json_error(path: &str, source: &str, e: serde_json::Error) -> InputError {
    located(path, source, e.line(), e.column(), &e.to_string())
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
}
