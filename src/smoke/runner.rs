//! Runs smoke tests: HTTP(S) requests and TCP connects, concurrently (`jobs`), each retried
//! until it passes or the `--wait` deadline passes. Results come back in file order.

use super::outcome::{effective_checks, evaluate, Body, CheckResult, Response};
use super::secrets::{basic_auth, cookies, is_secret_name, mask_url, Secrets};
use super::spec::{
    ca_bundle, ClientCert, Data, Inputs, Method, Outcome, Protocol, Proxies, SmokeFile, TestSpec,
    Verify,
};
use super::target::Target;
use crate::cancel::Cancel;
use crate::error::{Error, InputError};
use futures::StreamExt;
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How to run a file.
#[derive(Clone)]
pub struct RunOptions {
    pub target: Target,
    /// Tests in flight at once.
    pub jobs: usize,
    /// Retry failing tests until this much time has passed since the start.
    pub wait: Option<Duration>,
    pub cancel: Cancel,
}

/// What one test found.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub name: String,
    pub url: String,
    /// The equivalent curl command, secrets masked.
    pub curl: String,
    pub protocol: Protocol,
    pub checks: Vec<CheckResult>,
    /// Could not get a response at all (connection refused, timeout): JUnit `<error>`.
    pub error: Option<String>,
    /// The body, when the test asks for `show_body`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub attempts: u32,
    pub duration_ms: f64,
    #[serde(skip)]
    pub colour: bool,
}

impl TestResult {
    /// All checks passed and a response came.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|c| c.passed)
    }
}

/// A test with everything resolved: URL, client, secrets.
struct Prepared<'a> {
    spec: &'a TestSpec,
    protocol: Protocol,
    host: String,
    port: u16,
    url: String,
    curl: String,
    client: Option<reqwest::Client>,
    secrets: Secrets,
}

#[derive(Hash, PartialEq, Eq, Clone)]
struct ClientKey {
    verify: Option<String>,
    redirects: bool,
    proxies: Proxies,
    cert: Option<ClientCert>,
}

fn client_key(inputs: &Inputs) -> ClientKey {
    ClientKey {
        verify: match &inputs.verify {
            None | Some(Verify::Yes) => Some(String::new()),
            Some(Verify::No) => None,
            Some(Verify::CaBundle(p)) => Some(p.clone()),
        },
        redirects: inputs.allow_redirects.is_some_and(|f| f.0),
        proxies: inputs.proxies.clone().unwrap_or_default(),
        cert: inputs.cert.clone(),
    }
}

fn build_client(key: &ClientKey) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .redirect(if key.redirects {
            reqwest::redirect::Policy::limited(30)
        } else {
            reqwest::redirect::Policy::none()
        })
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true);
    match &key.verify {
        None => b = b.danger_accept_invalid_certs(true),
        Some(p) if p.is_empty() => {}
        Some(path) => {
            b = b.tls_built_in_root_certs(false);
            for c in ca_bundle(path)? {
                b = b.add_root_certificate(c);
            }
        }
    }
    // The file was checked when it was read; a password in a proxy URL is never printed.
    if let Some(u) = &key.proxies.http {
        b = b.proxy(reqwest::Proxy::http(u).map_err(|e| format!("proxy {}: {e}", mask_url(u)))?);
    }
    if let Some(u) = &key.proxies.https {
        b = b.proxy(reqwest::Proxy::https(u).map_err(|e| format!("proxy {}: {e}", mask_url(u)))?);
    }
    if let Some(cert) = &key.cert {
        b = b.identity(cert.identity()?);
    }
    b.build().map_err(|e| super::spec::error_words(&e))
}

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

/// The curl command a human can paste to repeat the request; secrets are `***`.
fn curl_command(spec: &TestSpec, url: &str, protocol: Protocol) -> String {
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
                parts.push(format!("-d {}", shell_double_quote(&format!("{k}={v}"))));
            }
        }
        Some(Data::Raw(s)) => parts.push(format!("-d {}", shell_double_quote(s))),
        None => {}
    }
    if let Some(j) = &i.json {
        parts.push("-H \"Content-Type: application/json\"".to_owned());
        parts.push(format!("-d {}", shell_double_quote(&j.to_string())));
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
    let mut full_url = url.to_owned();
    if let Some(p) = &i.params {
        let q: Vec<String> = p.0.iter().map(|(k, v)| format!("{k}={}", v.0)).collect();
        full_url.push(if url.contains('?') { '&' } else { '?' });
        full_url.push_str(&q.join("&"));
    }
    parts.push(shell_double_quote(&full_url));
    parts.join(" ")
}

/// A file's tests, resolved and checked (URLs, clients, headers): nothing runs before this
/// succeeds.
pub struct Plan<'a>(Vec<Prepared<'a>>);

/// Resolves every test of `file` against `target`; bad input (an unreadable CA bundle, a bad
/// proxy URL or client certificate) is an error before anything runs.
pub fn prepare<'a>(file: &'a SmokeFile, target: &Target) -> Result<Plan<'a>, Error> {
    let mut clients: HashMap<ClientKey, reqwest::Client> = HashMap::new();
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for spec in &file.tests {
        let protocol = spec.protocol.or(target.scheme).unwrap_or(Protocol::Http);
        let port = spec.port.or(target.port).unwrap_or(match protocol {
            Protocol::Https => 443,
            _ => 80,
        });
        let url = format!(
            "{}://{}:{}{}",
            protocol.as_str(),
            target.url_host(),
            port,
            spec.uri
        );
        let mut client = None;
        if protocol != Protocol::Tcp {
            let key = client_key(&spec.inputs);
            if let Some(c) = clients.get(&key) {
                client = Some(c.clone());
            } else {
                match build_client(&key) {
                    Ok(c) => {
                        clients.insert(key, c.clone());
                        client = Some(c);
                    }
                    Err(e) => errors.push(InputError::whole_file(
                        file.path.clone(),
                        Secrets::of(&spec.inputs, &spec.uri)
                            .mask(&format!("test `{}`: {e}", spec.name)),
                    )),
                }
            }
        }
        let secrets = Secrets::of(&spec.inputs, &spec.uri);
        out.push(Prepared {
            spec,
            protocol,
            host: target.host.clone(),
            port,
            curl: secrets.mask(&curl_command(spec, &url, protocol)),
            url,
            client,
            secrets,
        });
    }
    match errors.len() {
        0 => Ok(Plan(out)),
        1 => Err(errors.remove(0).into()),
        _ => Err(Error::Inputs(errors)),
    }
}

/// Runs every test of `file`; `on_result` sees each result as soon as it and all tests before it
/// are done, so a report streams in file order. Returns the results in file order.
pub async fn run(
    file: &SmokeFile,
    opts: &RunOptions,
    on_result: impl FnMut(&TestResult),
) -> Result<Vec<TestResult>, Error> {
    let plan = prepare(file, &opts.target)?;
    run_plan(&plan, opts, on_result).await
}

/// Runs a prepared plan; see [`run`].
pub async fn run_plan(
    plan: &Plan<'_>,
    opts: &RunOptions,
    mut on_result: impl FnMut(&TestResult),
) -> Result<Vec<TestResult>, Error> {
    let prepared = &plan.0;
    let deadline = opts.wait.map(|w| Instant::now() + w);
    let mut stream = futures::stream::iter(prepared.iter())
        .map(|p| run_until(p, deadline, &opts.cancel))
        .buffered(opts.jobs.max(1));
    let mut results = Vec::with_capacity(prepared.len());
    let interrupted =
        || Error::Interrupted(opts.cancel.signal().unwrap_or(crate::cancel::Signal::Int));
    loop {
        tokio::select! {
            // A signal wins over a result that came in the same instant: a test cut short by
            // it is not a verdict on the host.
            biased;
            _ = opts.cancel.cancelled() => return Err(interrupted()),
            next = stream.next() => match next {
                Some(r) => {
                    on_result(&r);
                    results.push(r);
                }
                None => break,
            },
        }
    }
    if opts.cancel.is_cancelled() {
        return Err(interrupted());
    }
    Ok(results)
}

async fn run_until(p: &Prepared<'_>, deadline: Option<Instant>, cancel: &Cancel) -> TestResult {
    let backoff = crate::wait::Backoff {
        first: Duration::from_millis(250),
        max: Duration::from_secs(5),
    };
    let deadline = deadline.map(tokio::time::Instant::from_std);
    let (mut r, attempts) = match crate::wait::poll_until(
        deadline,
        backoff,
        cancel,
        || {
            // With --wait, no attempt runs past the deadline (at least 1 s each).
            let cap = deadline.map(|d| {
                d.saturating_duration_since(tokio::time::Instant::now())
                    .max(Duration::from_secs(1))
            });
            run_once(p, cap)
        },
        TestResult::passed,
    )
    .await
    {
        crate::wait::Polled::Ready(r, n)
        | crate::wait::Polled::TimedOut(r, n)
        | crate::wait::Polled::Cancelled(r, n) => (r, n),
    };
    r.attempts = attempts;
    r
}

async fn tcp_check(host: &str, port: u16) -> CheckResult {
    let ok = matches!(
        tokio::time::timeout(
            Duration::from_secs(1),
            tokio::net::TcpStream::connect((host, port))
        )
        .await,
        Ok(Ok(_))
    );
    CheckResult::new("tcp", ok, format!("Connecting to {host} on port {port}"))
}

async fn run_once(p: &Prepared<'_>, cap: Option<Duration>) -> TestResult {
    let start = Instant::now();
    let mut result = TestResult {
        name: p.spec.name.clone(),
        url: p.url.clone(),
        curl: p.curl.clone(),
        protocol: p.protocol,
        checks: Vec::new(),
        error: None,
        body: None,
        attempts: 1,
        duration_ms: 0.0,
        colour: p.spec.colour,
    };
    if p.protocol == Protocol::Tcp || p.spec.tcp_test {
        let check = tcp_check(&p.host, p.port).await;
        let failed = !check.passed;
        result.checks.push(check);
        if p.protocol == Protocol::Tcp || failed {
            if failed && p.protocol != Protocol::Tcp {
                result.error = Some(format!("cannot connect to {} on port {}", p.host, p.port));
            }
            result.duration_ms = start.elapsed().as_secs_f64() * 1000.0;
            return result;
        }
    }
    match fetch(p, cap).await {
        Ok(resp) => {
            let checks = effective_checks(p.spec, p.protocol);
            result
                .checks
                .extend(evaluate(p.spec, &checks, &resp, &p.secrets));
            if p.spec.show_body {
                result.body = Some(resp.body.shown(&p.secrets));
            }
        }
        Err(Failure::Tls(why)) => result.checks.push(CheckResult::new(
            "SSLVerify",
            false,
            format!("Certificate verify failed and not ignored by inputs['verify']: {why}"),
        )),
        Err(Failure::Request(why)) => {
            result
                .checks
                .push(CheckResult::new("request", false, why.clone()));
            result.error = Some(why);
        }
    }
    for c in &mut result.checks {
        c.message = p.secrets.mask(&c.message);
    }
    result.url = p.secrets.mask(&result.url);
    result.curl = p.secrets.mask(&result.curl);
    result.error = result.error.map(|e| p.secrets.mask(&e));
    result.duration_ms = start.elapsed().as_secs_f64() * 1000.0;
    result
}

enum Failure {
    Tls(String),
    Request(String),
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut v = vec![e.to_string()];
    let mut s = e.source();
    while let Some(x) = s {
        v.push(x.to_string());
        s = x.source();
    }
    v
}

fn classify(e: reqwest::Error, p: &Prepared<'_>, timeout: f64) -> Failure {
    let chain = error_chain(&e);
    let root = chain.last().cloned().unwrap_or_default();
    if e.is_timeout() {
        return Failure::Request(format!("timed out after {timeout}s"));
    }
    if chain.iter().any(|c| c.contains("certificate")) {
        return Failure::Tls(root);
    }
    if e.is_connect() {
        let why = if root.contains("refused") {
            "connection refused".to_owned()
        } else {
            root
        };
        return Failure::Request(format!("cannot connect to {}:{}: {why}", p.host, p.port));
    }
    Failure::Request(format!("request failed: {}", chain.join(": ")))
}

async fn fetch(p: &Prepared<'_>, cap: Option<Duration>) -> Result<Response, Failure> {
    let i = &p.spec.inputs;
    let client = p.client.as_ref().expect("http tests have a client");
    let timeout = i.timeout.map(|t| t.0).unwrap_or(30.0);
    let timeout = match cap {
        Some(c) if c.as_secs_f64() < timeout => (c.as_secs_f64() * 10.0).round() / 10.0,
        _ => timeout,
    };
    let method = match p.spec.method {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Delete => reqwest::Method::DELETE,
        Method::Options => reqwest::Method::OPTIONS,
        Method::Head => reqwest::Method::HEAD,
        Method::Patch => reqwest::Method::PATCH,
        Method::Purge => reqwest::Method::from_bytes(b"PURGE").expect("valid method"),
    };
    let start = Instant::now();
    let mut req = client
        .request(method, &p.url)
        .timeout(Duration::from_secs_f64(timeout));
    if let Some(params) = &i.params {
        let q: Vec<(&str, &str)> = params
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.0.as_str()))
            .collect();
        req = req.query(&q);
    }
    for (k, v) in i.headers.iter().flat_map(|h| h.0.iter()) {
        req = req.header(k.as_str(), v.0.as_str());
    }
    if let Some((u, pw)) = basic_auth(i) {
        req = req.basic_auth(u, Some(pw));
    }
    let cookies = cookies(i);
    if !cookies.is_empty() {
        let c: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        req = req.header(reqwest::header::COOKIE, c.join("; "));
    }
    let multipart = i.file.is_some() || i.files.is_some();
    if multipart {
        let mut form = reqwest::multipart::Form::new();
        if let Some(Data::Form(fields)) = &i.data {
            for (k, v) in fields {
                form = form.text(k.clone(), v.clone());
            }
        }
        if let Some(f) = &i.file {
            form = form.part(
                "file",
                reqwest::multipart::Part::text(f.content.clone()).file_name(f.filename.clone()),
            );
        }
        for (k, v) in i.files.iter().flat_map(|f| f.0.iter()) {
            form = form.part(
                k.clone(),
                reqwest::multipart::Part::text(v.0.clone()).file_name(k.clone()),
            );
        }
        req = req.multipart(form);
    } else {
        match &i.data {
            Some(Data::Form(fields)) => req = req.form(fields),
            Some(Data::Raw(s)) => req = req.body(s.clone()),
            None => {
                if let Some(j) = &i.json {
                    req = req.json(j);
                }
            }
        }
    }
    let resp = req.send().await.map_err(|e| classify(e, p, timeout))?;
    let status = resp.status().as_u16();
    let mut headers: Vec<(String, String)> = Vec::new();
    for (k, v) in resp.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match headers.iter_mut().find(|(n, _)| n == k.as_str()) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(&v);
            }
            None => headers.push((k.as_str().to_owned(), v)),
        }
    }
    let needles: Vec<&str> = p
        .spec
        .checks
        .iter()
        .filter_map(|c| match c {
            Outcome::BodyContains(s) | Outcome::BodyDoesntContain(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    let body = read_body(resp, &needles, BODY_CAP)
        .await
        .map_err(|e| classify(e, p, timeout))?;
    Ok(Response {
        status,
        headers,
        body,
        elapsed_ms: start.elapsed().as_secs_f64() * 1000.0,
    })
}

/// The most of a response body gears keeps to check and show (4 MiB). Beyond it the body is
/// only searched for `response_body_contains`/`response_body_doesnt_contain` as it streams,
/// for as long as one of them is still undecided, and then dropped: a server that streams
/// forever costs time (up to the timeout), never memory.
pub const BODY_CAP: usize = 4 * 1024 * 1024;

/// Reads a body, keeping at most `cap` bytes, and searching every needle in all of it.
async fn read_body(
    mut resp: reqwest::Response,
    needles: &[&str],
    cap: usize,
) -> Result<Body, reqwest::Error> {
    let finders: Vec<regex::bytes::Regex> = needles
        .iter()
        .filter_map(|n| regex::bytes::Regex::new(&regex::escape(n)).ok())
        .collect();
    let longest = needles.iter().map(|n| n.len()).max().unwrap_or(0);
    let mut found = vec![false; needles.len()];
    let mut kept: Vec<u8> = Vec::new();
    let mut carry: Vec<u8> = Vec::new();
    let mut total: u64 = 0;
    let mut cut = false;
    while let Some(chunk) = resp.chunk().await? {
        total += chunk.len() as u64;
        if !finders.is_empty() {
            let mut window = std::mem::take(&mut carry);
            window.extend_from_slice(&chunk);
            for (f, hit) in finders.iter().zip(found.iter_mut()) {
                *hit = *hit || f.is_match(&window);
            }
            let keep_from = window.len().saturating_sub(longest.saturating_sub(1));
            carry = window.split_off(keep_from);
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..room.min(chunk.len())]);
        if chunk.len() > room {
            cut = true;
            if found.iter().all(|f| *f) {
                // Nothing more to learn from the rest.
                break;
            }
        }
    }
    if cut {
        // Do not end on half a character.
        if let Err(e) = std::str::from_utf8(&kept) {
            if e.error_len().is_none() {
                kept.truncate(e.valid_up_to());
            }
        }
    }
    Ok(Body {
        text: String::from_utf8_lossy(&kept).into_owned(),
        cut,
        read: total,
        found: needles.iter().map(|n| (*n).to_owned()).zip(found).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smoke::spec::parse;
    use base64::Engine;

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
        assert_eq!(secrets2.mask("proxy prox-pw refused"), "proxy *** refused");
    }
}
