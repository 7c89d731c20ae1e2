//! The command line, clap derive only: no I/O, no tokio, no AWS. [`crate::settings`] turns these
//! into typed settings.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const EXIT_CODES: &str = "\
Exit codes:
  0    success
  1    a smoke test ran and failed (the AMI or release is bad)
  2    bad command line
  3    invalid config, smoke file or template
  4    packer failed or produced no AMI
  5    AWS error after retries (denied, throttled, waiter timeout): safe to retry
  6    deploy failed its health gate and rolled back cleanly
  7    rollback failed or state unknown: a human must look
  130  interrupted by SIGINT, after cleanup
  143  terminated by SIGTERM, after cleanup";

/// gears: bake, test and deploy machine images of a component on AWS.
#[derive(Debug, Parser)]
#[command(name = "gears", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The stages.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run Smolder-format smoke tests against a host.
    #[command(after_help = SMOKE_EXAMPLES)]
    Smoke(SmokeArgs),
}

const SMOKE_EXAMPLES: &str = "\
Examples:
  gears smoke 10.0.0.12:8080 smoke-tests/example.yaml
  gears smoke https://app.example.com tests.json --junit smoke.xml
  TEST_HOST=localhost gears smoke < smoke.yaml
  gears smoke 10.0.0.12 smoke.yaml --wait 300 --jobs 16   # a just-booted instance

Environment: TEST_HOST and TEST_FILE stand in for HOST and FILE, as in Smolder.";

/// Output format of data on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Smolder's report on stdout.
    Human,
    /// A JSON report on stdout; the Smolder report goes to stderr.
    Json,
}

/// `gears smoke`.
#[derive(Debug, Args)]
pub struct SmokeArgs {
    /// HOST, HOST:PORT, [IPv6]:PORT or http(s)://HOST[:PORT] (default: $TEST_HOST).
    pub host: Option<String>,
    /// The smoke file, YAML or JSON (default: $TEST_FILE, else standard input).
    pub file: Option<PathBuf>,
    /// Tests in flight at once; the report still reads in file order.
    #[arg(long, short, default_value_t = 8, value_name = "N")]
    pub jobs: usize,
    /// Retry each failing test until it passes or SECS have passed since the start.
    #[arg(long, value_name = "SECS")]
    pub wait: Option<f64>,
    /// Wait SECS before the first test (Smolder's --sleep).
    #[arg(long, value_name = "SECS")]
    pub sleep: Option<f64>,
    /// Also write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// What stdout carries.
    #[arg(long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
}
