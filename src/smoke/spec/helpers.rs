//! Serde helpers for smoke files: scalars checked inside the visitor (so a bad value is reported
//! at its own line and column), and the small typed fields of a test (protocol, method, uri,
//! port, timeout, regex, booleans as PyYAML reads them).

use crate::error::closest;
use regex::Regex;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

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
pub(crate) fn checked<'de, D, T, F>(d: D, expecting: &'static str, f: F) -> Result<T, D::Error>
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
