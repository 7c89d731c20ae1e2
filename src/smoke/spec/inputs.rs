//! `inputs`: what Python `requests.request(**inputs)` would accept, each value checked where it
//! is written (header and cookie values, CA bundles, client certificates, proxy URLs).

use super::helpers::*;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

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
    let shown = crate::smoke::secrets::mask_url(url);
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
