//! Command line ∪ environment ∪ files → validated settings for each stage. Stages take these,
//! never clap types.

use crate::cli::{Output, SmokeArgs};
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
}

fn seconds(flag: &str, v: Option<f64>) -> Result<Option<Duration>, Error> {
    match v {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(Error::usage(
            format!("{flag} {s}: expected a number of seconds, 0 or more"),
            None,
        )),
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
        if args.jobs == 0 {
            return Err(Error::usage(
                "--jobs 0: at least one test must run at a time",
                None,
            ));
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
        let crate::cli::Command::Smoke(a) = cli.command;
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
        let e = smoke(
            &["gears", "smoke", "h", "--wait=-1"],
            &RunContext::default(),
        )
        .unwrap_err();
        assert_eq!(e.exit(), crate::exit::Exit::Usage);
    }

    #[test]
    fn no_file_means_stdin() {
        let s = smoke(&["gears", "smoke", "h"], &RunContext::default()).unwrap();
        assert_eq!(s.source, Source::Stdin);
    }
}
