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

/// The words PyYAML (YAML 1.1, what Smolder reads files with) takes for booleans.
pub fn yaml11_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// A boolean where Smolder expects one: `true`/`false`, and the YAML 1.1 words `yes`/`no`/
/// `on`/`off` that PyYAML reads as booleans (YAML 1.2, which serde_yaml follows, reads them as
/// strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "true or false", |v| match v {
            Scalar::Bool(b) => Ok(Flag(b)),
            Scalar::Str(s) => yaml11_bool(&s).map(Flag).ok_or_else(|| {
                format!("invalid value: expected true or false (or yes/no, on/off), got \"{s}\"")
            }),
            other => Err(format!(
                "invalid type: expected true or false (or yes/no, on/off), got {other}"
            )),
        })
    }
}

/// A key that must be absent or null (`request_headers`, `url` in Smolder's schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Absent;

impl<'de> Deserialize<'de> for Absent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Absent;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("nothing: Smolder's schema requires this key to be absent or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Absent, E> {
                Ok(Absent)
            }
            fn visit_none<E: de::Error>(self) -> Result<Absent, E> {
                Ok(Absent)
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
            Scalar::Str(s) if s.chars().any(char::is_control) => Err(format!(
                "uri has a control character ({}): a request line cannot carry it",
                s.chars().find(|c| c.is_control()).map(|c| format!("U+{:04X}", c as u32)).unwrap_or_default()
            )),
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

/// `inputs.cookie`/`cookies`: a mapping, or a `a=b; c=d` string. Names and values are checked
/// where they are written, as header values are: a newline or a `;` would change the request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cookies(pub Vec<(String, String)>);

fn cookie_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a cookie needs a name".to_owned());
    }
    name.chars()
        .find(|c| c.is_control() || c.is_whitespace() || matches!(c, '=' | ';' | ','))
        .map(|c| {
            format!(
                "cookie name `{}` has a character a Cookie header cannot carry ({})",
                name.escape_debug(),
                describe_char(c)
            )
        })
}

fn cookie_value_problem(name: &str, value: &str) -> Option<String> {
    value
        .chars()
        .find(|c| c.is_control() || *c == ';')
        .map(|c| {
            format!(
                "the value of cookie `{}` has a character a Cookie header cannot carry ({})",
                name.escape_debug(),
                describe_char(c)
            )
        })
}

/// `U+000A (a newline)`.
pub fn describe_char(c: char) -> String {
    let what = match c {
        '\n' => " (a newline)",
        '\r' => " (a carriage return)",
        '\t' => " (a tab)",
        ';' => " (a semicolon)",
        ' ' => " (a space)",
        _ => "",
    };
    format!("U+{:04X}{what}", c as u32)
}

struct CookieName(String);

impl<'de> Deserialize<'de> for CookieName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "a cookie name", |v| {
            let name = match v {
                Scalar::Str(s) => s,
                other => other.to_string(),
            };
            match cookie_name_problem(&name) {
                Some(why) => Err(why),
                None => Ok(CookieName(name)),
            }
        })
    }
}

/// A cookie value checked against its name, where it is written.
struct CookieValue<'a>(&'a str);

impl<'de> de::DeserializeSeed<'de> for CookieValue<'_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let name = self.0;
        checked(d, "a cookie value", |v| {
            let value = match v {
                Scalar::Str(s) => s,
                Scalar::Bool(b) => if b { "True" } else { "False" }.to_owned(),
                other => other.to_string(),
            };
            match cookie_value_problem(name, &value) {
                Some(why) => Err(why),
                None => Ok(value),
            }
        })
    }
}

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
                        return Err(E::custom(format!(
                            "cookie `{}` has no `=`",
                            part.escape_debug()
                        )));
                    };
                    let (k, val) = (k.trim(), val.trim());
                    if let Some(why) =
                        cookie_name_problem(k).or_else(|| cookie_value_problem(k, val))
                    {
                        return Err(E::custom(why));
                    }
                    out.push((k.to_owned(), val.to_owned()));
                }
                Ok(Cookies(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Cookies, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<CookieName>()? {
                    let v = m.next_value_seed(CookieValue(&k.0))?;
                    out.push((k.0, v));
                }
                Ok(Cookies(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `inputs.verify`: `true`/`false` (or Python's `"True"`/`"False"`, or YAML 1.1's `yes`/`no`),
/// or a CA bundle path, read and checked when the file is read.
#[derive(Debug, Clone, PartialEq)]
pub enum Verify {
    Yes,
    No,
    CaBundle(String),
}

/// The words of an error's chain, `a: b: c`.
pub fn error_words(e: &(dyn std::error::Error + 'static)) -> String {
    let mut v = vec![e.to_string()];
    let mut s = e.source();
    while let Some(x) = s {
        let t = x.to_string();
        if !v.contains(&t) {
            v.push(t);
        }
        s = x.source();
    }
    v.join(": ")
}

fn read_named_file(what: &str, path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the {what} `{path}`: {e}"))
}

/// Reads and checks a CA bundle named by `verify`.
pub fn ca_bundle(path: &str) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = read_named_file("CA bundle", path)?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(format!(
            "the CA bundle `{path}` has no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )),
        Err(e) => Err(format!(
            "the CA bundle `{path}` is not a PEM certificate bundle: {}",
            error_words(&e)
        )),
    }
}

impl<'de> Deserialize<'de> for Verify {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "true, false or the path of a CA bundle", |v| match v {
            Scalar::Bool(b) => Ok(if b { Verify::Yes } else { Verify::No }),
            Scalar::Str(s) => match yaml11_bool(&s) {
                Some(true) => Ok(Verify::Yes),
                Some(false) => Ok(Verify::No),
                None => ca_bundle(&s).map(|_| Verify::CaBundle(s)),
            },
            other => Err(format!(
                "invalid type: verify must be true, false or the path of a CA bundle, got {other}"
            )),
        })
    }
}

/// `inputs.file`: `{filename, content}` (or just the content), sent as multipart field `file`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "{filename, content} or the content as a string"
)]
pub struct FileUpload {
    #[serde(default = "default_filename")]
    pub filename: String,
    pub content: String,
}

fn default_filename() -> String {
    "file".to_owned()
}

/// `inputs.proxies`, each URL checked when the file is read.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Hash, Eq)]
#[serde(deny_unknown_fields, expecting = "a mapping {http: URL, https: URL}")]
pub struct Proxies {
    #[serde(default, deserialize_with = "proxy_url")]
    pub http: Option<String>,
    #[serde(default, deserialize_with = "proxy_url")]
    pub https: Option<String>,
}

/// What is wrong with a proxy URL, its password masked.
pub fn proxy_problem(url: &str) -> Option<String> {
    let shown = super::secrets::mask_url(url);
    match reqwest::Url::parse(url) {
        Err(e) => Some(format!("proxy URL `{shown}` is not a valid URL: {e}")),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => Some(format!(
            "proxy URL `{shown}`: give it as http://host:port or https://host:port"
        )),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            Some(format!("proxy URL `{shown}` has no host"))
        }
        Ok(_) => reqwest::Proxy::all(url)
            .err()
            .map(|e| format!("proxy URL `{shown}`: {}", error_words(&e))),
    }
}

struct ProxyUrl(String);

impl<'de> Deserialize<'de> for ProxyUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        checked(d, "a proxy URL like http://proxy:3128", |v| match v {
            Scalar::Str(s) => match proxy_problem(&s) {
                Some(why) => Err(why),
                None => Ok(ProxyUrl(s)),
            },
            other => Err(format!(
                "invalid type: a proxy must be a URL like http://proxy:3128, got {other}"
            )),
        })
    }
}

fn proxy_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<ProxyUrl>::deserialize(d)?.map(|p| p.0))
}

/// `inputs.cert`: one PEM file with certificate and key, or `[cert, key]`; read and checked
/// when the file is read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientCert {
    Combined(String),
    Pair(String, String),
}

impl ClientCert {
    /// The PEM of certificate and key, read and checked.
    pub fn identity(&self) -> Result<reqwest::Identity, String> {
        let pem = match self {
            ClientCert::Combined(p) => read_named_file("client certificate", p)?,
            ClientCert::Pair(c, k) => {
                let mut v = read_named_file("client certificate", c)?;
                v.push(b'\n');
                v.extend(read_named_file("client key", k)?);
                v
            }
        };
        let named = match self {
            ClientCert::Combined(p) => format!("`{p}`"),
            ClientCert::Pair(c, k) => format!("`{c}` and `{k}`"),
        };
        reqwest::Identity::from_pem(&pem).map_err(|e| {
            format!(
                "client certificate {named}: not a PEM certificate and private key: {}",
                error_words(&e)
            )
        })
    }
}

impl<'de> Deserialize<'de> for ClientCert {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ClientCert;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("the path of a PEM file with certificate and key, or [cert, key]")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ClientCert, E> {
                let c = ClientCert::Combined(v.to_owned());
                c.identity().map_err(E::custom)?;
                Ok(c)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<ClientCert, A::Error> {
                let (Some(cert), Some(key), None) = (
                    s.next_element::<String>()?,
                    s.next_element::<String>()?,
                    s.next_element::<de::IgnoredAny>()?,
                ) else {
                    return Err(de::Error::custom(
                        "cert must be one path, or a list of two: [cert, key]",
                    ));
                };
                let c = ClientCert::Pair(cert, key);
                c.identity().map_err(de::Error::custom)?;
                Ok(c)
            }
        }
        d.deserialize_any(V)
    }
}

/// `auth: [user, password]`.
fn auth_pair<'de, D: Deserializer<'de>>(d: D) -> Result<Option<(Text, Text)>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<(Text, Text)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of two: [user, password]")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
            match (
                s.next_element::<Text>()?,
                s.next_element::<Text>()?,
                s.next_element::<de::IgnoredAny>()?,
            ) {
                (Some(u), Some(p), None) => Ok(Some((u, p))),
                _ => Err(de::Error::custom(
                    "auth must be a list of two: [user, password]",
                )),
            }
        }
    }
    d.deserialize_any(V)
}

/// The `inputs` of a test: what Python `requests.request(**inputs)` would accept, plus the
/// documented `username`/`password`, `cookie` and `file`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of inputs (headers, params, data, json, cookie, ...)"
)]
pub struct Inputs {
    #[serde(default, deserialize_with = "http_headers")]
    pub headers: Option<Ordered<Text>>,
    pub username: Option<Text>,
    pub password: Option<Text>,
    #[serde(default, deserialize_with = "auth_pair")]
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
    pub allow_redirects: Option<Flag>,
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

/// `inputs.headers`, each name and value checked as HTTP allows where it is written.
fn http_headers<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ordered<Text>>, D::Error> {
    struct Name(String);
    impl<'de> Deserialize<'de> for Name {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            checked(d, "a header name", |v| {
                let name = match v {
                    Scalar::Str(s) => s,
                    other => other.to_string(),
                };
                match reqwest::header::HeaderName::from_bytes(name.as_bytes()) {
                    Ok(_) => Ok(Name(name)),
                    Err(_) => Err(format!(
                        "`{}` is not a valid HTTP header name",
                        name.escape_debug()
                    )),
                }
            })
        }
    }
    struct Value<'a>(&'a str);
    impl<'de> de::DeserializeSeed<'de> for Value<'_> {
        type Value = Text;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Text, D::Error> {
            let name = self.0;
            checked(d, "a header value", |v| {
                let text = match v {
                    Scalar::Str(s) => s,
                    Scalar::Bool(b) => if b { "True" } else { "False" }.to_owned(),
                    other => other.to_string(),
                };
                match text.chars().find(|c| c.is_control() && *c != '\t') {
                    Some(c) => Err(format!(
                        "the value of header `{name}` has a character HTTP does not allow ({})",
                        describe_char(c)
                    )),
                    None => Ok(Text(text)),
                }
            })
        }
    }
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
            while let Some(k) = m.next_key::<Name>()? {
                let v = m.next_value_seed(Value(&k.0))?;
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
            super::schema::check_schema(&v).map_err(de::Error::custom)?;
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
                        "show_body" => {
                            out.show_body = Some(m.next_value::<Flag>()?.0);
                            continue;
                        }
                        "colour_output" => {
                            out.colour_output = Some(m.next_value::<Flag>()?.0);
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
        let (_, first) = walk(&mut serde_json::Deserializer::from_str(source), Some(dup));
        let mut f = json_error(e);
        f.error = Box::new(duplicate_message(*f.error, first.first_line()));
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
        let (_, first) = walk(serde_yaml::Deserializer::from_str(source), Some(dup));
        let mut f = yaml_failed(false, e);
        f.error = Box::new(duplicate_message(*f.error, first.first_line()));
        return Err(f);
    }
    if !state.merges {
        return serde_yaml::from_str(source).map_err(|e| yaml_failed(false, e));
    }
    // Merge keys: applied on the document, as PyYAML does (explicit keys win).
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(source).map_err(|e| yaml_failed(true, e))?;
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
    /// The error raised at that first occurrence: its message carries the place.
    first_line_error: Option<String>,
    /// The document uses merge keys (`<<`).
    merges: bool,
}

impl WalkState {
    /// The line of the first occurrence of the duplicate, from the parser's message
    /// (`... at line 3 column 5`).
    fn first_line(&self) -> Option<usize> {
        let m = self.first_line_error.as_deref()?;
        let (_, rest) = m.rsplit_once(" at line ")?;
        rest.split(' ').next()?.parse().ok()
    }
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
    let mut st = state.into_inner();
    if st.first_of.is_some() {
        if let Err(e) = &r {
            st.first_line_error = Some(e.to_string());
        }
    }
    (r, st)
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
    let line = if e.line > 0 {
        source.lines().nth(e.line - 1)
    } else {
        None
    };
    let mut values = Vec::new();
    if let Ok(doc) = serde_yaml::from_str::<serde_json::Value>(source) {
        super::secrets::in_document(&doc, &mut values);
    }
    if let Some(l) = line {
        values.extend(super::secrets::on_line(l));
    }
    let secrets = super::secrets::Secrets::new(values);
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
