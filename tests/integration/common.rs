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
