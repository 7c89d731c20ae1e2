//! What `gears smoke` is asked ([`SmokeAsk`]) and the settings it runs with, resolved by
//! [`SmokeSettings::resolve`]: the ask first, then Smolder's `TEST_HOST`/`TEST_FILE`.

use crate::context::RunContext;
use crate::error::Error;
use crate::settings::{report_path, OutputFormat};
use crate::smoke::target::Target;
use crate::units::{Delay, Seconds};
use std::path::PathBuf;
use std::time::Duration;

/// Where the smoke file comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    File(PathBuf),
    Stdin,
}

/// One `gears smoke` run as asked (by its command line); what is left out is `None`.
#[derive(Debug, Clone, Default)]
pub struct SmokeAsk {
    /// HOST as written (`TEST_HOST` when left out).
    pub host: Option<String>,
    /// The smoke file (`-`: standard input; `TEST_FILE` when left out).
    pub file: Option<PathBuf>,
    pub jobs: Option<usize>,
    pub wait: Option<Delay>,
    pub sleep: Option<Delay>,
    pub junit: Option<PathBuf>,
    pub output: OutputFormat,
    pub heartbeat: Option<Seconds>,
}

/// The defaults of what a smoke run may leave out, for `gears smoke`, `gears test` and a
/// deploy's gate alike.
pub mod defaults {
    use crate::units::Seconds;
    /// Tests in flight at once.
    pub const JOBS: usize = 8;
    /// The interval of the "still running" lines.
    pub const HEARTBEAT: Seconds = Seconds::of(30);
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

impl SmokeSettings {
    /// Resolves a smoke run: the ask, then `TEST_HOST`/`TEST_FILE` as fallbacks (as Smolder).
    pub fn resolve(ask: SmokeAsk, ctx: &RunContext) -> Result<Self, Error> {
        let host = match (ask.host, ctx.var("TEST_HOST")) {
            (Some(h), _) => h,
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
        let source = match (ask.file, ctx.var("TEST_FILE")) {
            (Some(f), _) if f.as_os_str() == "-" => Source::Stdin,
            (Some(f), _) => Source::File(f),
            (None, Some(f)) => Source::File(PathBuf::from(f)),
            (None, None) => Source::Stdin,
        };
        if source == Source::Stdin && ctx.stdin_tty {
            return Err(Error::usage(
                "no smoke file: give FILE, set TEST_FILE, or pipe a file in",
                Some("gears smoke HOST[:PORT] smoke.yaml".into()),
            ));
        }
        let jobs = ask.jobs.unwrap_or(defaults::JOBS);
        if jobs == 0 {
            return Err(Error::usage(
                "--jobs 0: at least one test must run at a time",
                None,
            ));
        }
        if let Some(j) = &ask.junit {
            report_path("--junit", j)?;
        }
        Ok(SmokeSettings {
            target,
            target_text: host,
            source,
            jobs,
            wait: ask.wait.map(Duration::from),
            sleep: ask.sleep.map(Duration::from),
            junit: ask.junit,
            output: ask.output,
            colour: ctx.stdout_color(),
            heartbeat: ask.heartbeat.unwrap_or(defaults::HEARTBEAT).into(),
        })
    }
}
