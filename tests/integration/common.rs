//! Shared helpers: where the servers are, and running gears.

use std::process::{Command, Output, Stdio};

/// An environment variable set by scripts/test.sh for a server a test needs; without it the
/// test fails saying which server and how scripts/test.sh starts it. Tests that need no server
/// never call this, so they pass under a plain `cargo test`.
pub fn need(var: &str) -> String {
    let what = match var {
        "GEARS_TEST_MOTO" => "moto, the AWS emulator (scripts/lib.sh: start_moto)",
        "GEARS_TEST_HTTPBIN" => "httpbin over HTTP (scripts/lib.sh: start_httpbin)",
        "GEARS_TEST_HTTPBIN_TLS" | "GEARS_TEST_CA" => {
            "httpbin over TLS and its CA (scripts/lib.sh: start_httpbin_tls)"
        }
        "GEARS_TEST_VENV" => {
            "the Python venv with moto, httpbin and ansible-core (scripts/lib.sh: ensure_venv)"
        }
        _ => "a server that scripts/test.sh starts",
    };
    std::env::var(var).unwrap_or_else(|_| {
        panic!("this test needs {what}; {var} is not set: run it with scripts/test.sh [TEST NAME], which installs and starts it on 127.0.0.1")
    })
}

/// A host for tests that stop before any request (bad input, bad flags): nothing listens
/// there, so a test that did connect would fail instead of passing by accident.
pub fn no_server() -> String {
    format!("127.0.0.1:{}", closed_port())
}

/// `127.0.0.1:PORT` of httpbin.
pub fn httpbin() -> String {
    need("GEARS_TEST_HTTPBIN")
}

/// `127.0.0.1:PORT` of httpbin over TLS, and the CA that signed its certificate.
pub fn httpbin_tls() -> (String, String) {
    (need("GEARS_TEST_HTTPBIN_TLS"), need("GEARS_TEST_CA"))
}

/// A port on 127.0.0.1 with nothing listening.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The gears binary under test, with a clean environment for the variables it reads.
pub fn gears() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gears"));
    for v in [
        "TEST_HOST",
        "TEST_FILE",
        "NO_COLOR",
        "CI",
        "GO_SERVER_URL",
        "JENKINS_URL",
        "BUILD_NUMBER",
        "GITHUB_ACTIONS",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_RUN_NUMBER",
        "GITHUB_RUN_ATTEMPT",
        "GITHUB_SHA",
        "GITHUB_SERVER_URL",
        "GITHUB_REPOSITORY",
        "GITLAB_CI",
        "CI_PIPELINE_IID",
        "CI_COMMIT_SHA",
        "CI_PROJECT_URL",
    ] {
        c.env_remove(v);
    }
    c
}

/// Runs gears with `stdin` as standard input.
pub fn run_with_stdin(cmd: &mut Command, stdin: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// stdout, stderr and the exit code of a finished run.
pub fn parts(o: &Output) -> (String, String, i32) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

/// A temporary directory that lives as long as the value.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A name no other test (or earlier run against the same moto) uses.
pub fn unique_name(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{:x}{:x}", std::process::id(), n)
}

/// gears with moto's environment (set by scripts/test.sh) and the test venv (ansible) on PATH.
pub fn gears_moto(dir: &std::path::Path) -> Command {
    need("GEARS_TEST_MOTO");
    let mut c = gears();
    let path = format!(
        "{}/bin:{}",
        need("GEARS_TEST_VENV"),
        std::env::var("PATH").unwrap_or_default()
    );
    c.env("PATH", path).current_dir(dir);
    c
}

/// An EC2 client on moto (scripts/test.sh exports AWS_ENDPOINT_URL and test credentials).
pub async fn ec2_client(region: &str) -> aws_sdk_ec2::Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .load()
        .await;
    aws_sdk_ec2::Client::new(&conf)
}

/// Writes an executable `sh` script.
pub fn script(path: &std::path::Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Waits up to `secs` for `f` to hold, polling every 100 ms; how long it took.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> Option<std::time::Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(secs) {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    None
}

/// A name no other test (or earlier run against the same moto) uses: tests share one moto
/// without resetting it.
pub fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{:x}{:x}", std::process::id(), n)
}
