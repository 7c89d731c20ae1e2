//! Command line ∪ environment ∪ files → validated settings for each stage. Stages take these,
//! never clap types.

use crate::cli::{ComponentArgs, Output, SmokeArgs, TestArgs};
use crate::component::metadata::Overrides;
use crate::context::RunContext;
use crate::error::Error;
use crate::smoke::target::Target;
use std::path::PathBuf;
use std::time::Duration;

/// Where the smoke file comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    File(PathBuf),
    Stdin,
}

/// What stdout carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Human,
    Json,
}

/// Everything `gears smoke` needs.
#[derive(Debug, Clone)]
pub struct SmokeSettings {
    pub target: Target,
    /// The target as the user wrote it.
    pub target_text: String,
    pub source: Source,
    pub jobs: usize,
    pub wait: Option<Duration>,
    pub sleep: Option<Duration>,
    pub junit: Option<PathBuf>,
    pub output: OutputFormat,
    /// Colour the console report.
    pub colour: bool,
    /// Interval of the "still running" lines.
    pub heartbeat: Duration,
}

/// The longest wait gears accepts (a week): beyond it, deadlines would overflow the clock.
const MAX_SECONDS: f64 = 604_800.0;

fn seconds(flag: &str, v: Option<f64>) -> Result<Option<Duration>, Error> {
    match v {
        None => Ok(None),
        Some(s) if s.is_finite() && (0.0..=MAX_SECONDS).contains(&s) => {
            Ok(Some(Duration::from_secs_f64(s)))
        }
        Some(s) if s > MAX_SECONDS => Err(Error::usage(
            format!("{flag} {s}: at most {MAX_SECONDS} seconds (a week)"),
            None,
        )),
        Some(s) => Err(Error::usage(
            format!("{flag} {s}: expected a number of seconds, 0 or more"),
            None,
        )),
    }
}

fn heartbeat(secs: u64) -> Result<Duration, Error> {
    match secs {
        1..=86_400 => Ok(Duration::from_secs(secs)),
        _ => Err(Error::usage(
            format!("--heartbeat {secs}: give a number of seconds from 1 to 86400"),
            None,
        )),
    }
}

/// A report file must be writable where it is named: refused before any test runs, not after.
fn report_path(flag: &str, path: &std::path::Path) -> Result<(), Error> {
    if path.is_dir() {
        return Err(Error::usage(
            format!("{flag} {}: is a folder; name a file", path.display()),
            None,
        ));
    }
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(Error::usage(
            format!(
                "{flag} {}: the folder {} does not exist",
                path.display(),
                dir.display()
            ),
            Some(format!("create it first: mkdir -p {}", dir.display())),
        )),
        _ => Ok(()),
    }
}

impl SmokeSettings {
    /// Resolves `gears smoke` arguments with `TEST_HOST`/`TEST_FILE` as fallbacks.
    pub fn resolve(args: &SmokeArgs, ctx: &RunContext) -> Result<Self, Error> {
        let host = match (&args.host, ctx.var("TEST_HOST")) {
            (Some(h), _) => h.clone(),
            (None, Some(h)) => h.to_owned(),
            (None, None) => {
                return Err(Error::usage(
                    "no host to test: give HOST or set TEST_HOST",
                    Some("gears smoke HOST[:PORT] [FILE]".into()),
                ))
            }
        };
        let target =
            Target::parse(&host).map_err(|e| Error::usage(format!("invalid HOST: {e}"), None))?;
        let source = match (&args.file, ctx.var("TEST_FILE")) {
            (Some(f), _) if f.as_os_str() == "-" => Source::Stdin,
            (Some(f), _) => Source::File(f.clone()),
            (None, Some(f)) => Source::File(PathBuf::from(f)),
            (None, None) => Source::Stdin,
        };
        if source == Source::Stdin && ctx.stdin_tty {
            return Err(Error::usage(
                "no smoke file: give FILE, set TEST_FILE, or pipe a file in",
                Some("gears smoke HOST[:PORT] smoke.yaml".into()),
            ));
        }
        if args.jobs == 0 {
            return Err(Error::usage(
                "--jobs 0: at least one test must run at a time",
                None,
            ));
        }
        if let Some(j) = &args.junit {
            report_path("--junit", j)?;
        }
        Ok(SmokeSettings {
            target,
            target_text: host,
            source,
            jobs: args.jobs,
            wait: seconds("--wait", args.wait)?,
            sleep: seconds("--sleep", args.sleep)?,
            junit: args.junit.clone(),
            output: match args.output {
                Output::Human => OutputFormat::Human,
                Output::Json => OutputFormat::Json,
            },
            colour: ctx.stdout_color(),
            heartbeat: heartbeat(args.heartbeat)?,
        })
    }
}

/// Everything `gears bake` and `gears validate` need.
#[derive(Debug, Clone)]
pub struct BakeSettings {
    pub component_file: PathBuf,
    pub overrides: Overrides,
    /// The EC2 endpoint for packer (flag, then AWS_ENDPOINT_URL_EC2, then AWS_ENDPOINT_URL).
    pub endpoint: Option<String>,
    /// The endpoint given on the command line, which the SDK must be told about (it reads the
    /// environment variables itself).
    pub endpoint_flag: Option<String>,
    pub manifest: PathBuf,
    pub work_dir: PathBuf,
    pub packer: PathBuf,
    pub dry_run: bool,
    pub explain: bool,
    pub force: bool,
    pub output: OutputFormat,
    /// Silence from packer before a heartbeat line.
    pub heartbeat: Duration,
}

impl BakeSettings {
    /// Resolves the shared component arguments.
    pub fn resolve(args: &ComponentArgs, ctx: &RunContext) -> Result<Self, Error> {
        if let Some(u) = &args.endpoint_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(Error::usage(
                    format!("--endpoint-url {u}: expected an http:// or https:// URL"),
                    None,
                ));
            }
        }
        let endpoint = args
            .endpoint_url
            .clone()
            .or_else(|| ctx.var("AWS_ENDPOINT_URL_EC2").map(str::to_owned))
            .or_else(|| ctx.var("AWS_ENDPOINT_URL").map(str::to_owned));
        let nonempty = |flag: &str, v: &Option<String>| match v {
            Some(s) if s.trim().is_empty() => Err(Error::usage(format!("{flag} is empty"), None)),
            _ => Ok(()),
        };
        nonempty("--version", &args.version)?;
        nonempty("--git-sha", &args.git_sha)?;
        Ok(BakeSettings {
            component_file: args.component.clone(),
            overrides: Overrides {
                version: args.version.clone(),
                git_sha: args.git_sha.clone(),
            },
            endpoint,
            endpoint_flag: args.endpoint_url.clone(),
            manifest: PathBuf::from("gears-manifest.json"),
            work_dir: args.work_dir.clone(),
            packer: args.packer.clone(),
            dry_run: false,
            explain: false,
            force: false,
            output: OutputFormat::Human,
            heartbeat: Duration::from_secs(30),
        })
    }

    /// Resolves `gears bake` arguments.
    pub fn for_bake(args: &crate::cli::BakeArgs, ctx: &RunContext) -> Result<Self, Error> {
        let mut s = Self::resolve(&args.component, ctx)?;
        s.manifest = args.manifest.clone();
        s.dry_run = args.dry_run;
        s.explain = args.explain;
        s.force = args.force;
        s.heartbeat = heartbeat(args.heartbeat)?;
        s.output = match args.output {
            Output::Human => OutputFormat::Human,
            Output::Json => OutputFormat::Json,
        };
        Ok(s)
    }
}

/// Which AMI `gears test` launches.
#[derive(Debug, Clone, PartialEq)]
pub enum AmiChoice {
    /// From bake's manifest: the builder (None: the first) in the region (None: its first).
    Manifest {
        path: PathBuf,
        builder: Option<String>,
        region: Option<String>,
    },
    /// Given on the command line.
    Explicit { ami: String, region: String },
}

impl AmiChoice {
    /// The region asked for (`--region`, or `--ami`'s), if any: the workers of a progress view.
    pub fn asked_regions(&self) -> Vec<String> {
        match self {
            AmiChoice::Explicit { region, .. } => vec![region.clone()],
            AmiChoice::Manifest { region, .. } => region.iter().cloned().collect(),
        }
    }
}

/// Everything `gears test` needs.
#[derive(Debug, Clone)]
pub struct TestSettings {
    pub component_file: PathBuf,
    pub ami: AmiChoice,
    /// Where the smoke tests go instead of the instance's address.
    pub target_host: Option<Target>,
    pub ready_timeout: Duration,
    pub ttl: Duration,
    pub keep_on_failure: bool,
    pub junit: Option<PathBuf>,
    pub output: OutputFormat,
    pub heartbeat: Duration,
    pub jobs: usize,
    pub endpoint_flag: Option<String>,
    pub work_dir: PathBuf,
}

/// `3600`, `90s`, `90m`, `1h`, `2d` as a duration (at most a week).
pub fn duration(flag: &str, text: &str) -> Result<Duration, Error> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match num.parse::<u64>() {
        Ok(n) if per > 0 && n > 0 && n.saturating_mul(per) as f64 <= MAX_SECONDS => {
            Ok(Duration::from_secs(n * per))
        }
        _ => Err(Error::usage(
            format!("{flag} {text}: expected a duration like 3600, 90m, 1h or 2d, up to a week"),
            None,
        )),
    }
}

impl TestSettings {
    /// Resolves `gears test` arguments.
    pub fn resolve(args: &TestArgs, _ctx: &RunContext) -> Result<Self, Error> {
        let ami = match (&args.ami, &args.region) {
            (Some(ami), Some(region)) => {
                let re = regex::Regex::new("^ami-[0-9a-f]{8,17}$").expect("valid regex");
                if !re.is_match(ami) {
                    return Err(Error::usage(
                        format!("--ami {ami}: expected an AMI id like ami-0123456789abcdef0"),
                        None,
                    ));
                }
                AmiChoice::Explicit {
                    ami: ami.clone(),
                    region: region.clone(),
                }
            }
            _ => AmiChoice::Manifest {
                path: args.manifest.clone(),
                builder: args.builder.clone(),
                region: args.region.clone(),
            },
        };
        let target_host = match &args.target_host {
            Some(h) => Some(
                Target::parse(h)
                    .map_err(|e| Error::usage(format!("--target-host {h}: {e}"), None))?,
            ),
            None => None,
        };
        let ready_timeout = seconds("--ready-timeout", Some(args.ready_timeout))?
            .unwrap_or(Duration::from_secs(600));
        if args.jobs == 0 {
            return Err(Error::usage("--jobs 0: give at least 1", None));
        }
        // As for `gears smoke`: a report that cannot be written is refused before anything is
        // launched, not found out after the instance is gone.
        if let Some(j) = &args.junit {
            report_path("--junit", j)?;
        }
        Ok(TestSettings {
            component_file: args.component.clone(),
            ami,
            target_host,
            ready_timeout,
            ttl: duration("--ttl", &args.ttl)?,
            keep_on_failure: args.keep_on_failure,
            junit: args.junit.clone(),
            output: match args.output {
                Output::Human => OutputFormat::Human,
                Output::Json => OutputFormat::Json,
            },
            heartbeat: heartbeat(args.heartbeat)?,
            jobs: args.jobs,
            endpoint_flag: args.endpoint_url.clone(),
            work_dir: args.work_dir.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn smoke(argv: &[&str], ctx: &RunContext) -> Result<SmokeSettings, Error> {
        let cli = Cli::try_parse_from(argv).unwrap();
        let crate::cli::Command::Smoke(a) = cli.command else {
            panic!("not smoke")
        };
        SmokeSettings::resolve(&a, ctx)
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
            let e = smoke(&argv, &RunContext::default()).unwrap_err();
            assert_eq!(e.exit(), crate::exit::Exit::Usage, "{flags:?}");
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
}

#[cfg(test)]
mod bake_tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn bake(argv: &[&str], ctx: &RunContext) -> Result<BakeSettings, Error> {
        let Command::Bake(a) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not bake")
        };
        BakeSettings::for_bake(&a, ctx)
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
        assert!(bake(&["gears", "bake", "--endpoint-url", "ftp://x"], &ctx).is_err());
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
        assert_eq!(duration("--ttl", "1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(duration("--ttl", "90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            duration("--ttl", "3600").unwrap(),
            Duration::from_secs(3600)
        );
        for bad in ["", "0", "1w", "h", "-1h", "9999d"] {
            assert!(duration("--ttl", bad).is_err(), "{bad}");
        }
        let ctx = RunContext::from_vars(Vec::<(String, String)>::new());
        let parse = |argv: &[&str]| {
            let cli = Cli::try_parse_from(argv).unwrap();
            match cli.command {
                crate::cli::Command::Test(a) => TestSettings::resolve(&a, &ctx),
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
}
