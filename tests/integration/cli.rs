//! The built binary: stdout, stderr and exit codes of `gears smoke`.

use crate::common::{closed_port, gears, httpbin, no_server, parts, run_with_stdin, tempdir};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn example(name: &str) -> String {
    format!("{ROOT}/smoke-tests/{name}")
}

#[test]
fn passing_file_exits_0_with_smolders_summary() {
    let o = gears()
        .args(["smoke", &httpbin(), &example("httpbin.yaml")])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.starts_with("Preparing to execute 6 tests\n"), "{out}");
    assert!(out.contains("ALL TESTS PASSED!\n"), "{out}");
    assert!(out.contains("6 tests: 6 passed, 0 failed"), "{out}");
    assert!(
        !out.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    // Smolder's shape: 108 dashes, centred name, dotted outcome lines of 108 columns.
    assert!(out.contains(&format!("{}\n", "-".repeat(108))));
    let line = out
        .lines()
        .find(|l| l.starts_with("expect_status_code: Status code == 200"))
        .unwrap();
    assert_eq!(
        line.len(),
        110,
        "Smolder's add_output makes 110 columns: {line:?}"
    );
    assert!(line.ends_with("..  [PASS]"), "{line:?}");
    assert!(
        !out.contains("ops:correct-horse"),
        "the password is masked in the curl line"
    );
    assert!(out.contains("-u \"ops:***\""), "{out}");
}

#[test]
fn failing_file_exits_1_and_counts_checks_like_smolder() {
    let o = gears()
        .args(["smoke", &httpbin(), &example("failing.yaml")])
        .output()
        .unwrap();
    let (out, _err, code) = parts(&o);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FOUND 1 FAILURES IN 2 TESTS\n"), "{out}");
    assert!(out.contains("2 tests: 1 passed, 1 failed"), "{out}");
    assert!(out.contains("Expecting status code 200 but got 503 instead"));
    assert!(
        !out.contains("top-secret-token"),
        "Authorization is masked:\n{out}"
    );
}

#[test]
fn invalid_file_exits_3_names_the_place_and_runs_nothing() {
    let dir = tempdir();
    let f = dir.path().join("bad.yaml");
    std::fs::write(
        &f,
        "tests:\n  - name: a\n    uri: /get\n    outcomes:\n      expect_staus_code: 200\n",
    )
    .unwrap();
    let o = gears()
        .args(["smoke", &no_server(), f.to_str().unwrap()])
        .output()
        .unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 3, "{err}");
    assert_eq!(out, "", "nothing ran");
    assert!(
        err.contains(&format!("error: {}:5:7: ", f.display())),
        "{err}"
    );
    assert!(err.contains("unknown key `expect_staus_code`"), "{err}");
    assert!(
        err.contains("hint: did you mean `expect_status_code`?"),
        "{err}"
    );
    assert!(err.contains("5 |       expect_staus_code: 200"), "{err}");
}

#[test]
fn each_kind_of_bad_input_is_exit_3() {
    let cases = [
        ("tests: [\n", "<stdin>:2:1: "),
        ("{\"tests\": [}", "expected value"),
        ("name: x\n", "unknown key `name`"),
        ("tests: []\n", "empty"),
        ("tests:\n  - name: a\n    port: 0\n", "between 1 and 65535"),
        (
            "tests:\n  - name: a\n    protocol: ftp\n",
            "unknown value `ftp`",
        ),
        (
            "tests:\n  - name: a\n    outcomes: {response_max_time_ms: fast}\n",
            "invalid type",
        ),
        ("tests:\n  - uri: /x\n", "missing field `name`"),
        ("", "empty"),
        (
            "tests:\n  - name: a\n    inputs: {headers: {\"Bad Header\": x}}\n",
            "<stdin>:3:24: tests[0].inputs.headers: `Bad Header` is not a valid HTTP header name",
        ),
    ];
    for (src, want) in cases {
        let o = run_with_stdin(gears().args(["smoke", &no_server()]), src);
        let (out, err, code) = parts(&o);
        assert_eq!(code, 3, "{src:?} → {err}");
        assert!(err.contains(want), "{src:?}: {err}");
        assert!(err.starts_with("error: <stdin>"), "{src:?}: {err}");
        assert_eq!(out, "");
    }
}

#[test]
fn missing_file_is_exit_3_and_missing_host_exit_2() {
    let o = gears()
        .args(["smoke", "127.0.0.1", "/nonexistent/smoke.yaml"])
        .output()
        .unwrap();
    let (_, err, code) = parts(&o);
    assert_eq!(code, 3);
    assert!(
        err.contains("error: cannot read /nonexistent/smoke.yaml\ncaused by: "),
        "{err}"
    );
    let o = gears().args(["smoke"]).output().unwrap();
    let (_, err, code) = parts(&o);
    assert_eq!(code, 2);
    assert!(err.contains("no host to test"), "{err}");
    let o = gears()
        .args(["smoke", "h", "--jobs", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn env_fallbacks_and_stdin() {
    let o = gears()
        .args(["smoke"])
        .env("TEST_HOST", httpbin())
        .env("TEST_FILE", example("failing.yaml"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let o = run_with_stdin(
        gears().args(["smoke"]).env("TEST_HOST", httpbin()),
        "tests:\n  - name: a\n    uri: /get\n",
    );
    let (out, _, code) = parts(&o);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn json_output_and_junit_report() {
    let dir = tempdir();
    let junit = dir.path().join("smoke.xml");
    let port = closed_port();
    let src = format!(
        "tests:\n  - name: ok\n    uri: /get\n  - name: bad <status>\n    uri: /status/500\n  - name: down\n    uri: /get\n    port: {port}\n    inputs: {{password: hunter22, username: u}}\n"
    );
    let o = run_with_stdin(
        gears().args([
            "smoke",
            &httpbin(),
            "--output",
            "json",
            "--junit",
            junit.to_str().unwrap(),
        ]),
        &src,
    );
    let (out, err, code) = parts(&o);
    assert_eq!(code, 1, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("stdout is JSON only");
    assert_eq!(v["tests_total"], 3);
    assert_eq!(v["tests_failed"], 2);
    assert_eq!(v["passed"], false);
    assert_eq!(v["tests"][1]["checks"][0]["passed"], false);
    assert!(v["tests"][2]["error"]
        .as_str()
        .unwrap()
        .contains("connection refused"));
    assert!(
        err.contains("FOUND 2 FAILURES IN 3 TESTS"),
        "the human report goes to stderr: {err}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    // Well-formed XML, as a CI server's parser sees it.
    let parsed = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])",
            junit.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(
        parsed.success(),
        "JUnit report is not well-formed XML:\n{xml}"
    );
    assert!(
        xml.contains("<testsuite name=\"<stdin>\"")
            || xml.contains("<testsuite name=\"&lt;stdin&gt;\""),
        "{xml}"
    );
    assert!(
        xml.contains("tests=\"3\" failures=\"1\" errors=\"1\""),
        "{xml}"
    );
    assert!(xml.contains("name=\"bad &lt;status&gt;\""), "{xml}");
    assert!(xml.contains("<failure message=\"expect_status_code: Expecting status code 200 but got 500 instead\""), "{xml}");
    assert!(
        xml.contains("<error message=\"cannot connect to 127.0.0.1:"),
        "{xml}"
    );
    for text in [&out, &err, &xml] {
        assert!(!text.contains("hunter22"), "password leaked");
    }
}

#[test]
fn secrets_echoed_by_the_server_are_masked() {
    let src = "tests:\n  - name: echo\n    uri: /headers\n    show_body: true\n    inputs:\n      headers: {Authorization: Bearer sekrit-token-123}\n      cookie: {session: cookie-value-456}\n    outcomes: {response_body_contains: nothing-like-this}\n";
    let o = run_with_stdin(gears().args(["smoke", &httpbin()]), src);
    let (out, err, code) = parts(&o);
    assert_eq!(code, 1);
    assert!(out.contains("***"), "{out}");
    for secret in ["sekrit-token-123", "cookie-value-456"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} leaked:\n{out}"
        );
    }
    // On GitHub Actions the failed checks go to the step summary too, secrets masked there.
    let dir = tempdir();
    let summary = dir.path().join("summary.md");
    let o = run_with_stdin(
        gears()
            .args(["smoke", &httpbin()])
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", &summary),
        src,
    );
    assert_eq!(parts(&o).2, 1);
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("0 of 1 tests passed"), "{md}");
    assert!(md.contains("| echo | response_body_contains |"), "{md}");
    for secret in ["sekrit-token-123", "cookie-value-456"] {
        assert!(
            !md.contains(secret),
            "{secret} leaked into the summary:\n{md}"
        );
    }
}

#[test]
fn sigint_stops_the_run_with_130() {
    let mut child = gears()
        .args(["smoke", &httpbin(), "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"tests:\n  - name: slow\n    uri: /delay/10\n")
            .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(700));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let o = child.wait_with_output().unwrap();
    let (_, err, code) = parts(&o);
    assert_eq!(code, 130, "{err}");
    assert!(err.contains("interrupted by SIGINT"), "{err}");
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    // `script` runs gears on a pseudo-terminal.
    let cmd = format!(
        "{} smoke {} {}",
        env!("CARGO_BIN_EXE_gears"),
        httpbin(),
        example("failing.yaml")
    );
    let run = |no_color: bool| {
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"]).env_remove("NO_COLOR");
        if no_color {
            c.env("NO_COLOR", "1");
        }
        parts(&c.output().unwrap())
    };
    let (out, _, code) = run(false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("\x1b[92m  [PASS]\x1b[0m") && out.contains("\x1b[91m  [FAIL]\x1b[0m"),
        "{out}"
    );
    let (out, _, _) = run(true);
    assert!(out.contains("  [FAIL]") && !out.contains('\x1b'), "{out}");
}

#[test]
fn waiting_runs_print_a_heartbeat_on_stderr() {
    let o = run_with_stdin(
        gears().args(["smoke", &httpbin(), "--wait", "2.5", "--heartbeat", "1"]),
        "tests:\n  - name: never healthy\n    uri: /status/503\n",
    );
    let (out, err, code) = parts(&o);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("smoke: still running: 0 of 1 tests done after"),
        "{err}"
    );
    assert!(out.contains("(still failing after"), "{out}");
}

/// Issue 35 item 4, GitHub Actions: a bad component file is also an annotation on its line;
/// `gears pipeline run` appends its stage table to `$GITHUB_STEP_SUMMARY`; without
/// `GITHUB_ACTIONS=true` neither appears.
#[test]
fn on_github_actions_errors_are_annotations_and_the_pipeline_writes_a_summary() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("gears.yaml"),
        "component: hello\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-0123456789abcdef0}\ndeploy:\n  bake_time: 0\n",
    )
    .unwrap();
    let summary = dir.path().join("summary.md");
    let github = |args: &[&str]| {
        parts(
            &gears()
                .current_dir(dir.path())
                .env("GITHUB_ACTIONS", "true")
                .env("GITHUB_STEP_SUMMARY", &summary)
                .env("AWS_ENDPOINT_URL", format!("http://{}", no_server()))
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let (_, err, code) = github(&["validate"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("::error file=gears.yaml,line=6,col=14::")
                && l.contains("give seconds")),
        "{err}"
    );
    // Plain CI prints no workflow command.
    let (_, err, _) = parts(
        &gears()
            .current_dir(dir.path())
            .env("CI", "true")
            .arg("validate")
            .output()
            .unwrap(),
    );
    assert!(!err.contains("::error"), "{err}");

    std::fs::write(
        dir.path().join("gears.yaml"),
        "component: hello\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-0123456789abcdef0}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "component: gears.yaml\nmanifest: missing-manifest.json\ndeploy:\n  - {environment: stage}\n  - {environment: live}\n",
    )
    .unwrap();
    let (out, err, code) = github(&["pipeline", "run", "p.yaml"]);
    assert_ne!(code, 0, "{out}{err}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("| stage | result | exit | time | detail |"),
        "{md}"
    );
    assert!(md.contains("| deploy:stage | failed | 3 |"), "{md}");
    assert!(md.contains("| deploy:live | skipped | - |"), "{md}");
    // The stage's output in a group; its error after the group, as an annotation too.
    let open = err
        .find("::group::gears pipeline: deploy:stage")
        .expect(&err);
    let close = err[open..]
        .find("::endgroup::")
        .map(|i| i + open)
        .expect(&err);
    let annotation = err.find("::error").expect(&err);
    assert!(open < close && close < annotation, "{err}");

    // GitLab: the same stage in a collapsible section, no GitHub markers.
    let (_, err, _) = parts(
        &gears()
            .current_dir(dir.path())
            .env("GITLAB_CI", "true")
            .env("AWS_ENDPOINT_URL", format!("http://{}", no_server()))
            .args(["pipeline", "run", "p.yaml"])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("section_start:")
            && err.contains(":deploy_stage[collapsed=true]\r\x1b[0Kgears pipeline: deploy:stage"),
        "{err:?}"
    );
    assert!(
        err.contains("section_end:") && err.contains(":deploy_stage\r"),
        "{err:?}"
    );
    assert!(
        !err.contains("::group::") && !err.contains("::error"),
        "{err}"
    );
}
