//! Runs smoke tests: HTTP(S) requests and TCP connects, concurrently (`jobs`), each retried
//! until it passes or the `--wait` deadline passes. Results come back in file order.
//!
//! This module schedules; [`http`] builds clients and fetches (body cap included), [`curl`]
//! writes the equivalent curl line, and [`crate::smoke::secrets`] masks.

mod curl;
mod http;

pub use http::BODY_CAP;

use super::outcome::{effective_checks, evaluate, CheckResult};
use super::secrets::Secrets;
use super::spec::{Protocol, SmokeFile, TestSpec};
use super::target::Target;
use crate::cancel::Cancel;
use crate::error::{Error, InputError};
use futures::StreamExt;
use http::{build_client, client_key, fetch, ClientKey, Failure};
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
    /// The command that repeats the test (curl; `nc -z` for tcp), secrets masked.
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
            curl: secrets.mask(&curl::repeat_command(
                spec,
                &url,
                protocol,
                &target.host,
                port,
            )),
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
    let interrupted = || Error::Interrupted(opts.cancel.ended_by());
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
        | crate::wait::Polled::Cancelled(r, n)
        | crate::wait::Polled::Failed(r, n) => (r, n),
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
    result.url = p.secrets.mask(&super::secrets::mask_query(&result.url));
    result.curl = p.secrets.mask(&result.curl);
    result.error = result.error.map(|e| p.secrets.mask(&e));
    result.duration_ms = start.elapsed().as_secs_f64() * 1000.0;
    result
}
