//! Secret masking: what must never be printed (in the console report, `--output json`, the JUnit
//! file, error messages and the source lines shown under them), and the masking itself.
//!
//! One rule decides what is a secret, wherever the value is written: a header, query parameter
//! (in `params` or in the `uri`), form field, JSON key or YAML key whose name says credential
//! ([`is_secret_name`]); every cookie value (`cookie`/`cookies` inputs and `Cookie` headers);
//! basic-auth passwords and their base64 form; the password of a proxy URL.

use super::spec::{Data, Inputs};
use base64::Engine;

/// A header, form field, query parameter or JSON key whose value is a credential by its name:
/// `Authorization`, `Cookie`, `X-Auth-Token`, `api_key`, `password`, `client_secret`...
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "auth",
        "token",
        "secret",
        "passw",
        "key",
        "cookie",
        "session",
        "credential",
        "bind_pw",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// The password of a `scheme://user:password@host` URL.
pub fn url_password(url: &str) -> Option<String> {
    url_credentials(url).map(|(_, p)| p)
}

/// The user and password of a `scheme://user:password@host` URL, as written (percent-encoded).
pub fn url_credentials(url: &str) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let userinfo = &authority[..authority.rfind('@')?];
    userinfo
        .split_once(':')
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
}

/// Everything a user and password can be sent as, besides the password itself: the base64 of
/// `user:password` that an `Authorization`/`Proxy-Authorization: Basic` header carries (and an
/// echoing server returns), with and without its padding, and the decoded password when the
/// pair came from a URL (`p%40ss` is sent as `p@ss`).
pub fn credential_forms(user: &str, password: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let mut out = Vec::new();
    // A URL's user info is decoded without `+` meaning a space.
    let strict = |s: &str| percent_decode(&s.replace('+', "%2B"));
    let decoded = (strict(user), strict(password));
    for (u, p) in [(user.to_owned(), password.to_owned()), decoded] {
        let pair = format!("{u}:{p}");
        out.push(STANDARD.encode(&pair));
        out.push(STANDARD_NO_PAD.encode(&pair));
        out.push(p);
    }
    out
}

/// The password inside a `Basic <base64 of user:password>` credential, when it decodes as one.
fn basic_password(credential: &str) -> Option<String> {
    let (scheme, b64) = credential.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let pair = String::from_utf8(bytes).ok()?;
    pair.split_once(':').map(|(_, p)| p.to_owned())
}

/// `url` with the password of its user info, if any, as `***`.
pub fn mask_url(url: &str) -> String {
    match url_password(url) {
        Some(p) if !p.is_empty() => url.replacen(&format!(":{p}@"), ":***@", 1),
        _ => url.to_owned(),
    }
}

/// The values of the cookies in a `Cookie` header value (`a=1; b=2`).
pub fn cookie_header_values(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(';')
        .filter_map(|pair| pair.split_once('=').map(|(_, v)| v.trim()))
}

/// Percent-decodes a query component (`+` is a space), lossily.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%' && i + 3 <= b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (hex, b[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, c) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The values of secret-named parameters in the query of `uri` (`/get?token=…`), as written
/// and decoded.
pub fn query_secrets(uri: &str) -> Vec<String> {
    let Some((_, query)) = uri.split_once('?') else {
        return Vec::new();
    };
    let query = query.split('#').next().unwrap_or(query);
    let mut out = Vec::new();
    for pair in query.split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            if is_secret_name(&percent_decode(k)) {
                out.push(v.to_owned());
                out.push(percent_decode(v));
            }
        }
    }
    out
}

/// `url` with the value of every secret-named query parameter as `***`, however short.
pub fn mask_query(url: &str) -> String {
    let Some((base, rest)) = url.split_once('?') else {
        return url.to_owned();
    };
    let (query, fragment) = match rest.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (rest, None),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_name(&percent_decode(k)) => format!("{k}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    let mut out = format!("{base}?{}", pairs.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

/// A JSON value with every value under a secret-named key as `"***"`, however short.
pub fn masked_json(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, child)| {
                    let child = if is_secret_name(k) {
                        serde_json::Value::String("***".to_owned())
                    } else {
                        masked_json(child)
                    };
                    (k.clone(), child)
                })
                .collect(),
        ),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.iter().map(masked_json).collect())
        }
        other => other.clone(),
    }
}

/// Every scalar under `v`, as text.
fn scalars(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Number(n) => out.push(n.to_string()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| scalars(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| scalars(x, out)),
        _ => {}
    }
}

/// The secrets in a JSON or YAML document: every scalar under a secret-named key (so a whole
/// `cookie:` mapping, `auth: [u, p]`, `password`, an `Authorization` header), cookie values of
/// `Cookie` headers, secret query parameters of a `uri`, and proxy URL passwords. Used for the
/// request's `json` body and for the source lines shown under file errors.
pub fn in_document(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                if is_secret_name(k) {
                    scalars(child, out);
                    if let serde_json::Value::String(s) = child {
                        // "Basic xyz" / "Bearer xyz": the credential alone too.
                        if let Some((_, cred)) = s.split_once(' ') {
                            out.push(cred.to_owned());
                        }
                        out.extend(cookie_header_values(s).map(str::to_owned));
                    }
                }
                if let serde_json::Value::String(s) = child {
                    if k == "uri" {
                        out.extend(query_secrets(s));
                    }
                    out.extend(url_password(s));
                }
                in_document(child, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| in_document(x, out)),
        _ => {}
    }
}

/// Values on one line of a smoke file that are secret by the line alone (used under errors,
/// where the document may not parse): the value after a secret-named key (`password: x`,
/// `"token": "x"`, `?api_key=x`, `cookie: {sid: x}`) and passwords in URLs.
pub fn on_line(line: &str) -> Vec<String> {
    static KEY_VALUE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"(?i)([A-Za-z0-9_.-]*(?:auth|token|secret|passw|key|cookie|session|credential|bind_pw)[A-Za-z0-9_.-]*)["']?\s*[:=]\s*("[^"]*"|'[^']*'|[^,}\]&#\s][^,}\]&#]*)"#,
        )
        .expect("valid regex")
    });
    let mut out = Vec::new();
    for c in KEY_VALUE.captures_iter(line) {
        let v = c[2].trim();
        if v.starts_with('[') || v.starts_with('{') {
            // A flow list or mapping: every scalar in the rest of the line (for a mapping, the
            // values).
            let whole = c.get(2).map_or("", |m| &line[m.start()..]);
            let mapping = v.starts_with('{');
            for item in whole.split([',', '[', ']', '{', '}']) {
                let value = match (mapping, item.split_once(':')) {
                    (true, Some((_, val))) => val,
                    (true, None) => continue,
                    (false, _) => item,
                };
                let value = value.trim();
                out.push(value.to_owned());
                out.push(value.trim_matches(['"', '\'']).to_owned());
            }
            continue;
        }
        let unquoted = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
            .unwrap_or(v);
        out.push(v.to_owned());
        out.push(unquoted.to_owned());
        if let Some((_, cred)) = unquoted.split_once(' ') {
            out.push(cred.to_owned());
        }
        out.extend(cookie_header_values(unquoted).map(str::to_owned));
    }
    for word in line.split(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        out.extend(url_password(word));
    }
    out
}

/// Whether line `n` (1-based) of a block-style YAML file (or pretty-printed JSON) sits under a
/// secret-named key, judged by indentation: `sid: x` under `cookie:`, `- p` under `auth:`.
pub fn under_secret_key(source: &str, n: usize) -> bool {
    let indent = |l: &str| l.len() - l.trim_start_matches([' ', '-']).len();
    let key = |l: &str| {
        let t = l.trim_start_matches([' ', '-', '{']).trim_start();
        t.split_once(':')
            .map(|(k, _)| k.trim().trim_matches(['"', '\'']).to_owned())
    };
    let lines: Vec<&str> = source.lines().take(n).collect();
    let Some((last, before)) = lines.split_last() else {
        return false;
    };
    let mut at = indent(last);
    for l in before.iter().rev() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let i = indent(l);
        if i < at {
            if key(l).is_some_and(|k| is_secret_name(&k)) {
                return true;
            }
            at = i;
            if i == 0 {
                break;
            }
        }
    }
    false
}

/// The basic-auth user and password of a test's inputs (`auth`, else `username`/`password`).
pub fn basic_auth(inputs: &Inputs) -> Option<(String, String)> {
    if let Some((u, p)) = &inputs.auth {
        return Some((u.0.clone(), p.0.clone()));
    }
    inputs.username.as_ref().map(|u| {
        (
            u.0.clone(),
            inputs
                .password
                .as_ref()
                .map(|p| p.0.clone())
                .unwrap_or_default(),
        )
    })
}

/// The cookies of a test's inputs (`cookie` then `cookies`).
pub fn cookies(inputs: &Inputs) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for c in [&inputs.cookie, &inputs.cookies].into_iter().flatten() {
        all.extend(c.0.iter().cloned());
    }
    all
}

/// What must never be printed for one test, longest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// Secrets from a list of values: values shorter than 3 characters would mask innocent
    /// text, so they are left out (structural masking, e.g. in the curl line, still hides them).
    /// Each value is also masked as a URL query or a JSON string would carry it (an echoed
    /// URL shows `hunter%202`, an echoed JSON body `a\"b`).
    pub fn new(mut values: Vec<String>) -> Self {
        values.retain(|x| x.chars().count() >= 3);
        let mut forms = Vec::new();
        let json = |v: &str| {
            let j = serde_json::to_string(v).unwrap_or_default();
            j.get(1..j.len().saturating_sub(1)).unwrap_or("").to_owned()
        };
        for v in &values {
            let encoded = percent_encode(v);
            forms.push(encoded.replace("%20", "+"));
            forms.push(encoded);
            // What servers echo after decoding only part of it (`pass+word/9`).
            forms.push(v.replace(' ', "+"));
            forms.push(v.replace(' ', "%20"));
            // A JSON string, and a JSON string inside a JSON string (an echoed raw body).
            forms.push(json(v));
            forms.push(json(&json(v)));
        }
        values.extend(forms);
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Secrets(values)
    }

    /// Everything secret in a test's inputs and its `uri`.
    pub fn of(inputs: &Inputs, uri: &str) -> Self {
        let mut s = Vec::new();
        if let Some((u, p)) = basic_auth(inputs) {
            s.extend(credential_forms(&u, &p));
            s.push(p);
        }
        for (k, v) in inputs.headers.iter().flat_map(|h| h.0.iter()) {
            if is_secret_name(k) {
                s.push(v.0.clone());
                if let Some((_, cred)) = v.0.split_once(' ') {
                    s.push(cred.to_owned());
                }
                // `Authorization: Basic …` written out: a server may echo the pair decoded.
                s.extend(basic_password(&v.0));
            }
            if k.eq_ignore_ascii_case("cookie") {
                s.extend(cookie_header_values(&v.0).map(str::to_owned));
            }
        }
        s.extend(cookies(inputs).into_iter().map(|(_, v)| v));
        let params = inputs
            .params
            .iter()
            .flat_map(|p| p.0.iter().map(|(k, v)| (k.clone(), v.0.clone())));
        let form = match &inputs.data {
            Some(Data::Form(f)) => f.clone(),
            _ => Vec::new(),
        };
        for (k, v) in params.chain(form) {
            if is_secret_name(&k) {
                s.push(v);
            }
        }
        if let Some(j) = &inputs.json {
            in_document(j, &mut s);
        }
        for proxy in inputs
            .proxies
            .iter()
            .flat_map(|p| [&p.http, &p.https])
            .flatten()
        {
            // The proxy's user and password travel as `Proxy-Authorization: Basic …`.
            if let Some((u, p)) = url_credentials(proxy) {
                s.extend(credential_forms(&u, &p));
            }
        }
        s.extend(query_secrets(uri));
        Secrets::new(s)
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Replaces every secret in `text` by `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut t = text.to_owned();
        for s in &self.0 {
            if t.contains(s.as_str()) {
                t = t.replace(s.as_str(), "***");
            }
        }
        t
    }

    /// Masks a text that was cut (a body kept up to a cap): a secret that straddles the cut
    /// leaves only its start at the end, which is masked too.
    pub fn mask_cut(&self, text: &str) -> String {
        let mut t = self.mask(text);
        for s in &self.0 {
            let longest = (1..s.len())
                .rev()
                .filter(|&k| s.is_char_boundary(k))
                .find(|&k| t.ends_with(&s[..k]));
            if let Some(k) = longest {
                t.truncate(t.len() - k);
                t.push_str("***");
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_urls_and_queries() {
        assert!(is_secret_name("X-Auth-Token") && is_secret_name("Cookie"));
        assert!(!is_secret_name("q"));
        assert_eq!(url_password("http://u:pw@h:99999/x").as_deref(), Some("pw"));
        assert_eq!(url_password("http://h/x@y"), None);
        assert_eq!(mask_url("http://u:pw@h:99999"), "http://u:***@h:99999");
        assert_eq!(
            query_secrets("/get?q=1&password=hunter%32&api_key=k"),
            vec!["hunter%32", "hunter2", "k", "k"]
        );
        assert!(query_secrets("/get?q=token").is_empty());
    }

    #[test]
    fn secrets_on_a_line_alone() {
        let s = Secrets::new(on_line(
            r#"      inputs: {password: hunter22, headers: {"X-Auth-Token": "tok-9"}, uri: "/g?api_key=k-77&q=1"}"#,
        ));
        let m = s.mask(r#"password: hunter22 "tok-9" k-77 q=1"#);
        assert_eq!(m, "password: *** *** *** q=1");
        let s = Secrets::new(on_line("      auth: [u, hunter2, x]"));
        assert_eq!(s.mask("auth: [u, hunter2, x]"), "auth: [u, ***, x]");
        let s = Secrets::new(on_line("      cookie: {sid: \"ck-12\", theme: dark}"));
        assert_eq!(
            s.mask("cookie: {sid: \"ck-12\", theme: dark}"),
            "cookie: {sid: ***, theme: ***}"
        );
        let s = Secrets::new(on_line("    proxies: {http: http://u:prox-pw@h:1}"));
        assert_eq!(s.mask("http://u:prox-pw@h:1"), "http://u:***@h:1");
    }

    #[test]
    fn lines_under_a_secret_key() {
        let src = "tests:\n  - name: a\n    inputs:\n      cookie:\n        sid: x\n      auth:\n        - u\n        - p\n      params:\n        q: 1\n";
        assert!(under_secret_key(src, 5));
        assert!(under_secret_key(src, 8));
        assert!(!under_secret_key(src, 10));
        assert!(!under_secret_key(src, 2));
    }

    #[test]
    fn secrets_are_masked_as_urls_and_json_carry_them() {
        let s = Secrets::new(vec!["pass word\"1".into()]);
        assert_eq!(s.mask("url: /get?p=pass%20word%221"), "url: /get?p=***");
        assert_eq!(s.mask("form: p=pass+word%221"), "form: p=***");
        assert_eq!(s.mask(r#"{"p": "pass word\"1"}"#), r#"{"p": "***"}"#);
        assert_eq!(
            s.mask(r#""data": "{\"p\":\"pass word\\\"1\"}""#),
            r#""data": "{\"p\":\"***\"}""#
        );
        assert_eq!(s.mask("url: /get?p=pass+word\"1"), "url: /get?p=***");
    }

    #[test]
    fn credentials_are_masked_in_the_forms_they_are_sent_in() {
        use base64::engine::general_purpose::STANDARD;
        let f = parse_inputs("proxies: {http: \"http://u:p%40ss+1@h:3128\"}");
        let s = Secrets::of(&f, "/");
        // reqwest sends the decoded pair, `+` kept: `u:p@ss+1`.
        let sent = STANDARD.encode("u:p@ss+1");
        assert_eq!(s.mask(&format!("Basic {sent}")), "Basic ***");
        assert_eq!(s.mask("p@ss+1 and p%40ss+1"), "*** and ***");
        let h = parse_inputs("headers: {Authorization: \"Basic dTpzM2NyM3QtcHc=\"}");
        assert_eq!(Secrets::of(&h, "/").mask("u:s3cr3t-pw"), "u:***");
    }

    fn parse_inputs(inputs: &str) -> Inputs {
        let f = crate::smoke::spec::parse(
            "t.yaml",
            &format!("tests:\n  - name: a\n    inputs: {{{inputs}}}\n"),
        )
        .unwrap();
        f.tests[0].inputs.clone()
    }

    #[test]
    fn a_secret_cut_at_the_end_is_masked() {
        let s = Secrets::new(vec!["sekrit-value".into()]);
        assert_eq!(s.mask_cut("body sekrit-val"), "body ***");
        assert_eq!(s.mask_cut("a sekrit-value b"), "a *** b");
        assert_eq!(s.mask_cut("nothing here"), "nothing here");
    }

    #[test]
    fn documents_give_every_secret_scalar() {
        let v: serde_json::Value = serde_json::json!({
            "tests": [{"name": "a", "uri": "/get?token=tok-1",
              "inputs": {"cookie": {"sid": "c-1"}, "auth": ["u", "p-1"],
                         "headers": {"Cookie": "a=c-2; b=c-3", "X-A": "visible"},
                         "proxies": {"http": "http://u:prox-1@h:1"}}}]
        });
        let mut out = Vec::new();
        in_document(&v, &mut out);
        for want in ["tok-1", "c-1", "p-1", "c-2", "c-3", "prox-1"] {
            assert!(out.iter().any(|s| s == want), "{want} not in {out:?}");
        }
        assert!(!out.iter().any(|s| s == "visible"));
    }
}
