//! The command line through its asks into each stage's settings: what a flag becomes, and
//! what is refused before anything runs.

use crate::bake::settings::BakeSettings;
use crate::cli::{Cli, Command};
use crate::context::RunContext;
use crate::error::Error;
use crate::settings::{AmiChoice, OutputFormat};
use crate::smoke::settings::{SmokeSettings, Source};
use crate::test_stage::settings::TestSettings;
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

fn smoke(argv: &[&str], ctx: &RunContext) -> Result<SmokeSettings, Error> {
    let cli = Cli::try_parse_from(argv).unwrap();
    let Command::Smoke(a) = cli.command else {
        panic!("not smoke")
    };
    SmokeSettings::resolve((&a).into(), ctx)
}

#[test]
fn env_fallbacks_as_in_smolder() {
    let ctx = RunContext::from_vars([("TEST_HOST", "h:81"), ("TEST_FILE", "t.yaml")]);
    let s = smoke(&["gears", "smoke"], &ctx).unwrap();
    assert_eq!(s.target.port, Some(81));
    assert_eq!(s.source, Source::File("t.yaml".into()));
    let s = smoke(&["gears", "smoke", "other"], &ctx).unwrap();
    assert_eq!(s.target.host, "other");
}

#[test]
fn no_host_is_a_usage_error() {
    let e = smoke(&["gears", "smoke"], &RunContext::default()).unwrap_err();
    assert_eq!(e.exit(), crate::exit::Exit::Usage);
    let e = smoke(&["gears", "smoke", "h:99999"], &RunContext::default()).unwrap_err();
    assert_eq!(e.exit(), crate::exit::Exit::Usage);
    let bad: [&[&str]; 4] = [
        &["--wait=-1"],
        &["--wait", "1e20"],
        &["--heartbeat", "0"],
        &["--heartbeat", "18446744073709551615"],
    ];
    for flags in bad {
        let mut argv = vec!["gears", "smoke", "h", "f.yaml"];
        argv.extend_from_slice(flags);
        // Refused by the unit's parser as the line is parsed: exit 2 like every usage error.
        let e = Cli::try_parse_from(&argv).unwrap_err();
        assert_eq!(
            e.kind(),
            clap::error::ErrorKind::ValueValidation,
            "{flags:?}"
        );
    }
}

#[test]
fn a_junit_report_in_a_missing_folder_is_refused_up_front() {
    let e = smoke(
        &[
            "gears",
            "smoke",
            "h",
            "f.yaml",
            "--junit",
            "/no/such/dir/r.xml",
        ],
        &RunContext::default(),
    )
    .unwrap_err();
    assert_eq!(e.exit(), crate::exit::Exit::Usage);
    assert!(e.to_string().contains("/no/such/dir does not exist"), "{e}");
    let e = smoke(
        &["gears", "smoke", "h", "f.yaml", "--junit", "/tmp"],
        &RunContext::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("is a folder"), "{e}");
    assert!(smoke(
        &["gears", "smoke", "h", "f.yaml", "--junit", "r.xml"],
        &RunContext::default()
    )
    .is_ok());
}

#[test]
fn a_bad_host_is_a_usage_error() {
    for host in ["exa mple.com", "127.0.0.1:80:90"] {
        let e = smoke(&["gears", "smoke", host, "f.yaml"], &RunContext::default()).unwrap_err();
        assert_eq!(e.exit(), crate::exit::Exit::Usage, "{host}");
    }
}

#[test]
fn stdin_on_a_terminal_is_not_waited_on() {
    let mut ctx = RunContext::default();
    ctx.stdin_tty = true;
    let e = smoke(&["gears", "smoke", "h"], &ctx).unwrap_err();
    assert_eq!(e.exit(), crate::exit::Exit::Usage);
    assert!(smoke(&["gears", "smoke", "h", "f.yaml"], &ctx).is_ok());
}

#[test]
fn no_file_means_stdin() {
    let s = smoke(&["gears", "smoke", "h"], &RunContext::default()).unwrap();
    assert_eq!(s.source, Source::Stdin);
}

fn bake(argv: &[&str], ctx: &RunContext) -> Result<BakeSettings, Error> {
    let Command::Bake(a) = Cli::try_parse_from(argv).unwrap().command else {
        panic!("not bake")
    };
    BakeSettings::resolve((&a).into(), ctx)
}

#[test]
fn endpoint_flag_then_service_variable_then_global() {
    let ctx = RunContext::from_vars([
        ("AWS_ENDPOINT_URL", "http://g"),
        ("AWS_ENDPOINT_URL_EC2", "http://e"),
    ]);
    assert_eq!(
        bake(&["gears", "bake"], &ctx).unwrap().endpoint.as_deref(),
        Some("http://e")
    );
    let s = bake(&["gears", "bake", "--endpoint-url", "http://f"], &ctx).unwrap();
    assert_eq!(
        (s.endpoint.as_deref(), s.endpoint_flag.as_deref()),
        (Some("http://f"), Some("http://f"))
    );
    let ctx = RunContext::from_vars([("AWS_ENDPOINT_URL", "http://g")]);
    let s = bake(&["gears", "bake"], &ctx).unwrap();
    assert_eq!(
        (s.endpoint.as_deref(), s.endpoint_flag),
        (Some("http://g"), None)
    );
    assert!(Cli::try_parse_from(["gears", "bake", "--endpoint-url", "ftp://x"]).is_err());
}

#[test]
fn flags_become_settings() {
    let s = bake(
        &[
            "gears",
            "bake",
            "-c",
            "x.yaml",
            "--version",
            "1.0",
            "--force",
            "--output",
            "json",
        ],
        &RunContext::default(),
    )
    .unwrap();
    assert_eq!(s.component_file, PathBuf::from("x.yaml"));
    assert_eq!(s.overrides.version.as_deref(), Some("1.0"));
    assert!(s.force && !s.dry_run);
    assert_eq!(s.output, OutputFormat::Json);
    assert!(bake(&["gears", "bake", "--version", " "], &RunContext::default()).is_err());
}

#[test]
fn durations_and_test_flags() {
    let ctx = RunContext::from_vars(Vec::<(String, String)>::new());
    let parse = |argv: &[&str]| {
        let cli = Cli::try_parse_from(argv).unwrap();
        match cli.command {
            Command::Test(a) => TestSettings::resolve((&a).into(), &ctx),
            _ => unreachable!(),
        }
    };
    let s = parse(&["gears", "test"]).unwrap();
    assert!(matches!(
        s.ami,
        AmiChoice::Manifest {
            builder: None,
            region: None,
            ..
        }
    ));
    assert_eq!(s.ttl, Duration::from_secs(3600));
    let s = parse(&[
        "gears",
        "test",
        "--ami",
        "ami-0123456789abcdef0",
        "--region",
        "eu-west-1",
    ])
    .unwrap();
    assert_eq!(
        s.ami,
        AmiChoice::Explicit {
            ami: "ami-0123456789abcdef0".into(),
            region: "eu-west-1".into()
        }
    );
    assert!(parse(&["gears", "test", "--ami", "nope", "--region", "r"]).is_err());
    assert!(parse(&["gears", "test", "--target-host", "exa mple:80"]).is_err());
    assert!(parse(&["gears", "test", "--junit", "/nonexistent/dir/r.xml"]).is_err());
    assert!(Cli::try_parse_from(["gears", "test", "--ami", "ami-0123456789abcdef0"]).is_err());
}
