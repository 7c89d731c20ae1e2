//! The curl command a human can paste to repeat a test's request, in Smolder's order.

use crate::smoke::secrets::{basic_auth, cookies, is_secret_name, mask_query, masked_json};
use crate::smoke::spec::{Data, Protocol, TestSpec, Verify};

fn shell_double_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The command a human can paste to repeat a test: for a `tcp` test the connect as
/// `nc -z -w 1 HOST PORT` (the same 1 s timeout), otherwise the request as curl.
pub(super) fn repeat_command(
    spec: &TestSpec,
    url: &str,
    protocol: Protocol,
    host: &str,
    port: u16,
) -> String {
    if protocol == Protocol::Tcp {
        // HOST was checked when it was read: a name, an IPv4 or an IPv6 address, nothing a
        // shell would read differently.
        return format!("nc -z -w 1 {host} {port}");
    }
    curl_command(spec, url, protocol)
}

/// The curl command a human can paste to repeat the request; secrets are `***`.
pub(super) fn curl_command(spec: &TestSpec, url: &str, protocol: Protocol) -> String {
    let i = &spec.inputs;
    // Smolder's order: `curl [--insecure] -v -s -o /dev/null -H ... -d... -X METHOD "URL"`.
    let mut parts = vec!["curl".to_owned()];
    if protocol == Protocol::Https && i.verify == Some(Verify::No) {
        parts.push("--insecure".to_owned());
    }
    parts.push("-v -s -o /dev/null".to_owned());
    for (k, v) in i.headers.iter().flat_map(|h| h.0.iter()) {
        let v = if is_secret_name(k) {
            "***"
        } else {
            v.0.as_str()
        };
        parts.push(format!("-H {}", shell_double_quote(&format!("{k}: {v}"))));
    }
    if let Some((u, _)) = basic_auth(i) {
        parts.push(format!("-u {}", shell_double_quote(&format!("{u}:***"))));
    }
    let cookies = cookies(i);
    if !cookies.is_empty() {
        let c: Vec<String> = cookies.iter().map(|(k, _)| format!("{k}=***")).collect();
        parts.push(format!("-b {}", shell_double_quote(&c.join("; "))));
    }
    match &i.data {
        Some(Data::Form(f)) => {
            for (k, v) in f {
                let v = if is_secret_name(k) { "***" } else { v.as_str() };
                parts.push(format!("-d {}", shell_double_quote(&format!("{k}={v}"))));
            }
        }
        Some(Data::Raw(s)) => parts.push(format!("-d {}", shell_double_quote(s))),
        None => {}
    }
    if let Some(j) = &i.json {
        parts.push("-H \"Content-Type: application/json\"".to_owned());
        parts.push(format!(
            "-d {}",
            shell_double_quote(&masked_json(j).to_string())
        ));
    }
    if let Some(f) = &i.file {
        parts.push(format!(
            "-F {}",
            shell_double_quote(&format!("file=@{}", f.filename))
        ));
    }
    for (k, _) in i.files.iter().flat_map(|f| f.0.iter()) {
        parts.push(format!("-F {}", shell_double_quote(&format!("{k}=@{k}"))));
    }
    if i.allow_redirects.is_some_and(|f| f.0) {
        parts.push("-L".to_owned());
    }
    parts.push(format!("-X {}", spec.method.as_str()));
    let mut full_url = mask_query(url);
    if let Some(p) = &i.params {
        let q: Vec<String> =
            p.0.iter()
                .map(|(k, v)| {
                    let v = if is_secret_name(k) {
                        "***"
                    } else {
                        v.0.as_str()
                    };
                    format!("{k}={v}")
                })
                .collect();
        full_url.push(if url.contains('?') { '&' } else { '?' });
        full_url.push_str(&q.join("&"));
    }
    parts.push(shell_double_quote(&full_url));
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smoke::secrets::Secrets;
    use crate::smoke::spec::parse;
    use base64::Engine;

    #[test]
    fn a_tcp_test_is_repeated_with_nc() {
        let f = parse(
            "t.yaml",
            "tests:\n  - name: a\n    protocol: tcp\n    port: 22\n",
        )
        .unwrap();
        assert_eq!(
            repeat_command(&f.tests[0], "tcp://h:22", Protocol::Tcp, "h", 22),
            "nc -z -w 1 h 22"
        );
        assert!(
            repeat_command(&f.tests[0], "http://h:22", Protocol::Http, "h", 22)
                .starts_with("curl ")
        );
    }

    #[test]
    fn curl_masks_secrets_and_keeps_the_shape() {
        let f = parse(
            "t.yaml",
            "tests:\n  - name: a\n    uri: /x\n    method: post\n    inputs:\n      headers: {Authorization: Basic abc, X-A: b}\n      username: u\n      password: hunter2\n      cookie: {sid: s3cret}\n      data: {k: v}\n",
        )
        .unwrap();
        let c = curl_command(&f.tests[0], "http://h:80/x", Protocol::Http);
        assert_eq!(
            c,
            "curl -v -s -o /dev/null -H \"Authorization: ***\" -H \"X-A: b\" -u \"u:***\" -b \"sid=***\" -d \"k=v\" -X POST \"http://h:80/x\""
        );
        let secrets = Secrets::of(&f.tests[0].inputs, "/x");
        assert_eq!(secrets.mask("pw hunter2 and s3cret"), "pw *** and ***");

        let b64 = base64::engine::general_purpose::STANDARD.encode("u:hunter2");
        assert_eq!(secrets.mask(&format!("Basic {b64}")), "Basic ***");
        let f2 = parse(
            "t.yaml",
            "tests:\n  - name: a\n    uri: /get?token=tok-in-uri&x=1\n    inputs:\n      headers: {X-Auth-Token: tok-123, cookie: \"sid=ck-1; b=ck-2\"}\n      params: {api_key: key-456, q: visible}\n      data: {client_secret: sec-789}\n      json: {password: pw-000, nested: {token: pw-111}}\n      proxies: {http: \"http://u:prox-pw@p:3128\"}\n",
        )
        .unwrap();
        let t = &f2.tests[0];
        let secrets2 = Secrets::of(&t.inputs, &t.uri);
        let c = secrets2.mask(&curl_command(
            t,
            "http://h:80/get?token=tok-in-uri&x=1",
            Protocol::Http,
        ));
        for leaked in [
            "tok-123",
            "key-456",
            "sec-789",
            "pw-000",
            "pw-111",
            "tok-in-uri",
            "ck-1",
            "ck-2",
        ] {
            assert!(!c.contains(leaked), "{leaked} in {c}");
            assert_eq!(secrets2.mask(leaked), "***", "{leaked}");
        }
        assert!(c.contains("q=visible") && c.contains("x=1"), "{c}");
        // Short secrets too, by their names, where gears writes the line itself.
        let f3 = parse(
            "t.yaml",
            "tests:\n  - name: a\n    uri: /get?token=t1&q=ok\n    inputs:\n      params: {api_key: k1}\n      data: {password: p1}\n      json: {a: {secret: s1}, b: visible}\n",
        )
        .unwrap();
        let c = curl_command(
            &f3.tests[0],
            "http://h:80/get?token=t1&q=ok",
            Protocol::Http,
        );
        for short in ["t1", "k1", "p1", "s1"] {
            assert!(!c.contains(short), "{short} in {c}");
        }
        assert!(c.contains("q=ok") && c.contains("visible"), "{c}");
        assert_eq!(secrets2.mask("proxy prox-pw refused"), "proxy *** refused");
    }
}
