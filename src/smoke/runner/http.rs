//! The HTTP side of a test: one client per set of TLS/proxy/redirect options, the request
//! built as Python requests builds it, and the body read up to [`BODY_CAP`].

use super::Prepared;
use crate::smoke::outcome::{Body, Response};
use crate::smoke::secrets::{basic_auth, cookies, mask_url};
use crate::smoke::spec::{ca_bundle, ClientCert, Data, Inputs, Method, Outcome, Proxies, Verify};
use std::time::{Duration, Instant};

/// What makes two tests need different clients.
#[derive(Hash, PartialEq, Eq, Clone)]
pub(super) struct ClientKey {
    verify: Option<String>,
    redirects: bool,
    proxies: Proxies,
    cert: Option<ClientCert>,
}

pub(super) fn client_key(inputs: &Inputs) -> ClientKey {
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

pub(super) fn build_client(key: &ClientKey) -> Result<reqwest::Client, String> {
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
    b.build().map_err(|e| crate::smoke::spec::error_words(&e))
}

/// Why a test got no response to check.
pub(super) enum Failure {
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

/// Sends the test's request and reads its response (the body up to [`BODY_CAP`]), within the
/// test's timeout, or `cap` when that is shorter.
pub(super) async fn fetch(p: &Prepared<'_>, cap: Option<Duration>) -> Result<Response, Failure> {
    let timeout = effective_timeout(&p.spec.inputs, cap);
    let start = Instant::now();
    let req = build_request(p, timeout);
    let resp = req.send().await.map_err(|e| classify(e, p, timeout))?;
    let status = resp.status().as_u16();
    let headers = joined_headers(resp.headers());
    let needles = body_needles(p);
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

/// The test's `timeout` (30 s by default) in seconds, or `cap` rounded to a tenth when shorter.
fn effective_timeout(i: &Inputs, cap: Option<Duration>) -> f64 {
    let timeout = i.timeout.map(|t| t.0).unwrap_or(30.0);
    match cap {
        Some(c) if c.as_secs_f64() < timeout => (c.as_secs_f64() * 10.0).round() / 10.0,
        _ => timeout,
    }
}

/// The HTTP method of a test's `method`.
fn http_method(m: Method) -> reqwest::Method {
    match m {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Delete => reqwest::Method::DELETE,
        Method::Options => reqwest::Method::OPTIONS,
        Method::Head => reqwest::Method::HEAD,
        Method::Patch => reqwest::Method::PATCH,
        Method::Purge => reqwest::Method::from_bytes(b"PURGE").expect("valid method"),
    }
}

/// The request of a test: method, URL, query params, headers, basic auth, cookies and body.
fn build_request(p: &Prepared<'_>, timeout: f64) -> reqwest::RequestBuilder {
    let i = &p.spec.inputs;
    let client = p.client.as_ref().expect("http tests have a client");
    let mut req = client
        .request(http_method(p.spec.method), &p.url)
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
    with_body(req, i)
}

/// The request body as Python requests builds it: multipart when there are files (form data
/// as its text fields), else the form data, the raw data, or the JSON.
fn with_body(req: reqwest::RequestBuilder, i: &Inputs) -> reqwest::RequestBuilder {
    let multipart = i.file.is_some() || i.files.is_some();
    if !multipart {
        return match &i.data {
            Some(Data::Form(fields)) => req.form(fields),
            Some(Data::Raw(s)) => req.body(s.clone()),
            None => match &i.json {
                Some(j) => req.json(j),
                None => req,
            },
        };
    }
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
    req.multipart(form)
}

/// The response headers in order, names as reqwest gives them (lower case), a repeated
/// header's values joined with `, `.
fn joined_headers(received: &reqwest::header::HeaderMap) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for (k, v) in received {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match headers.iter_mut().find(|(n, _)| n == k.as_str()) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(&v);
            }
            None => headers.push((k.as_str().to_owned(), v)),
        }
    }
    headers
}

/// The strings the test's body checks look for, searched in all of the body as it streams.
fn body_needles<'a>(p: &'a Prepared<'_>) -> Vec<&'a str> {
    p.spec
        .checks
        .iter()
        .filter_map(|c| match c {
            Outcome::BodyContains(s) | Outcome::BodyDoesntContain(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
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
    let mut body = BodyReader::new(needles, cap);
    while let Some(chunk) = resp.chunk().await? {
        if body.push(&chunk) {
            break;
        }
    }
    Ok(body.finish())
}

/// A body as it arrives in chunks: at most `cap` bytes kept, every needle searched in all of
/// it. A body within the cap is searched once, at the end; past the cap, what is kept is
/// searched, then each further chunk as it streams (after the end of the one before, for a
/// needle across two).
struct BodyReader<'a> {
    needles: &'a [&'a str],
    finders: Vec<memchr::memmem::Finder<'a>>,
    /// The longest needle's length less one: what a chunk keeps of the one before.
    overlap: usize,
    found: Vec<bool>,
    kept: Vec<u8>,
    carry: Vec<u8>,
    cap: usize,
    read: u64,
    cut: bool,
}

impl<'a> BodyReader<'a> {
    fn new(needles: &'a [&'a str], cap: usize) -> Self {
        BodyReader {
            needles,
            finders: needles
                .iter()
                .map(|n| memchr::memmem::Finder::new(n.as_bytes()))
                .collect(),
            overlap: needles
                .iter()
                .map(|n| n.len())
                .max()
                .unwrap_or(0)
                .saturating_sub(1),
            found: vec![false; needles.len()],
            kept: Vec::new(),
            carry: Vec::new(),
            cap,
            read: 0,
            cut: false,
        }
    }

    /// Takes the next chunk; true when the rest of the body has nothing more to tell (past the
    /// cap, with every needle found).
    fn push(&mut self, chunk: &[u8]) -> bool {
        self.read += chunk.len() as u64;
        let room = self.cap.saturating_sub(self.kept.len());
        let (keep, past) = chunk.split_at(room.min(chunk.len()));
        self.kept.extend_from_slice(keep);
        if past.is_empty() {
            return false;
        }
        if !self.cut {
            self.cut = true;
            search(&self.finders, &mut self.found, &self.kept);
            self.carry = self.kept[self.kept.len().saturating_sub(self.overlap)..].to_vec();
        }
        if !self.finders.is_empty() {
            let mut window = std::mem::take(&mut self.carry);
            window.extend_from_slice(past);
            search(&self.finders, &mut self.found, &window);
            self.carry = window.split_off(window.len().saturating_sub(self.overlap));
        }
        self.found.iter().all(|f| *f)
    }

    fn finish(mut self) -> Body {
        if self.cut {
            // Do not end on half a character.
            if let Err(e) = std::str::from_utf8(&self.kept) {
                if e.error_len().is_none() {
                    self.kept.truncate(e.valid_up_to());
                }
            }
        } else {
            search(&self.finders, &mut self.found, &self.kept);
        }
        Body {
            text: String::from_utf8_lossy(&self.kept).into_owned(),
            cut: self.cut,
            read: self.read,
            found: self
                .needles
                .iter()
                .map(|n| (*n).to_owned())
                .zip(self.found)
                .collect(),
        }
    }
}

/// Marks each needle found in `bytes`.
fn search(finders: &[memchr::memmem::Finder], found: &mut [bool], bytes: &[u8]) {
    for (f, hit) in finders.iter().zip(found.iter_mut()) {
        *hit = *hit || f.find(bytes).is_some();
    }
}

#[cfg(test)]
mod tests {
    use super::BodyReader;

    fn read(chunks: &[&str], needles: &[&str], cap: usize) -> crate::smoke::outcome::Body {
        let mut r = BodyReader::new(needles, cap);
        for c in chunks {
            if r.push(c.as_bytes()) {
                break;
            }
        }
        r.finish()
    }

    #[test]
    fn a_body_within_the_cap_is_kept_whole_and_searched() {
        let b = read(&["hello ", "wor", "ld"], &["o w", "world", "nope"], 64);
        assert_eq!((b.text.as_str(), b.cut, b.read), ("hello world", false, 11));
        let found: Vec<bool> = b.found.iter().map(|(_, f)| *f).collect();
        assert_eq!(found, [true, true, false]);
    }

    #[test]
    fn past_the_cap_needles_are_found_in_the_kept_start_across_the_cap_and_across_chunks() {
        // Cap 4: "abcd" kept. "cdef" spans the cap, "ghij" two chunks, "ab" is in the kept start.
        let b = read(
            &["abc", "defgh", "ij", "klm"],
            &["ab", "cdef", "ghij", "zz"],
            4,
        );
        assert_eq!((b.text.as_str(), b.cut, b.read), ("abcd", true, 13));
        let found: Vec<bool> = b.found.iter().map(|(_, f)| *f).collect();
        assert_eq!(found, [true, true, true, false]);
    }

    #[test]
    fn past_the_cap_reading_stops_once_every_needle_is_found() {
        let b = read(&["abcd", "efgh", "ijkl"], &["f"], 4);
        assert_eq!((b.cut, b.read), (true, 8), "the third chunk is never read");
        let b = read(&["abcd", "efgh", "ijkl"], &[], 4);
        assert_eq!(
            (b.cut, b.read),
            (true, 8),
            "no needle: nothing to read past the cap"
        );
    }

    #[test]
    fn a_cut_body_does_not_end_on_half_a_character() {
        let b = read(&["aé", "zz"], &[], 2);
        assert_eq!((b.text.as_str(), b.cut), ("a", true));
    }
}
