//! The command line, clap derive only: no I/O, no tokio, no AWS. [`crate::settings`] turns these
//! into typed settings.

mod ask;
mod shared;

pub use shared::{
    AmiArgs, BuildArgs, ComponentArg, EndpointArg, OutputArg, RegionArg, RegionsArg, RoleArgs,
};

use crate::units::{Batch, Delay, Percent, Seconds, Ttl};
use clap::{Args, Parser, Subcommand};
use shared::strategy_parser;
use std::path::PathBuf;

/// The exit-code table of `gears --help` (checked against exit.rs by a test).
pub const EXIT_CODES: &str = "\
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

/// What `gears --help` says gears is; the words of `--profile` and of `smoke`, shared with
/// [`smoke_only_command`].
const ABOUT: &str = "gears: bake, test and deploy machine images of a component on AWS";
const PROFILE_HELP: &str =
    "The AWS profile for gears and the tools it runs (packer), as AWS_PROFILE";
const SMOKE_ABOUT: &str = "Run Smolder-format smoke tests against a host";

/// The whole command line of gears; its help is [`ABOUT`].
#[derive(Debug, Parser)]
#[command(name = "gears", version, about = ABOUT, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// [`PROFILE_HELP`].
    #[arg(long, global = true, value_name = "NAME", help = PROFILE_HELP)]
    pub profile: Option<String>,
}

impl Cli {
    /// Parses a command line (`args[0]` is the program). `gears smoke …`, the subcommand first,
    /// is parsed by a command of gears that has only its `smoke` subcommand: building every
    /// subcommand's arguments is a fifth of a one-test run (issue 21). Tests check that both
    /// commands parse, refuse and describe `gears smoke` alike.
    pub fn parse_from_args(args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
        use clap::FromArgMatches;
        if args.get(1).is_some_and(|a| a == "smoke") {
            let mut cmd = smoke_only_command();
            let matches = cmd.try_get_matches_from_mut(args)?;
            return Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd));
        }
        <Cli as Parser>::try_parse_from(args)
    }
}

/// The command `gears` with only `smoke`: what `Cli::command()` builds for it, the global
/// `--profile` included.
pub fn smoke_only_command() -> clap::Command {
    let smoke = SmokeArgs::augment_args(clap::Command::new("smoke"))
        .about(SMOKE_ABOUT)
        .long_about(None)
        .after_help(SMOKE_EXAMPLES);
    clap::Command::new("gears")
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .long_about(None)
        .after_help(EXIT_CODES)
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(smoke)
        .arg(
            clap::Arg::new("profile")
                .long("profile")
                .global(true)
                .value_name("NAME")
                .value_parser(clap::value_parser!(String))
                .action(clap::ArgAction::Set)
                // After smoke's own options, as in the whole command (where it comes after
                // the subcommands in the order of addition).
                .display_order(10)
                .help(PROFILE_HELP),
        )
}

/// The stages.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// [`SMOKE_ABOUT`].
    #[command(about = SMOKE_ABOUT, long_about = None, after_help = SMOKE_EXAMPLES)]
    Smoke(SmokeArgs),
    /// Bake an AMI of the component with Packer and write a manifest of the AMI ids.
    #[command(after_help = BAKE_EXAMPLES)]
    Bake(BakeArgs),
    /// Check the component file and render its template, without touching AWS.
    #[command(after_help = VALIDATE_EXAMPLES)]
    Validate(ValidateArgs),
    /// Launch an instance of the new AMI, smoke-test it, and always terminate it.
    #[command(after_help = TEST_EXAMPLES)]
    Test(TestArgs),
    /// Roll the component's Auto Scaling groups onto the new AMI, batch by batch, with rollback.
    #[command(after_help = DEPLOY_EXAMPLES)]
    Deploy(DeployArgs),
    /// What runs where and what is in flight: the component's groups in every region.
    #[command(after_help = STATUS_EXAMPLES)]
    Status(StatusArgs),
    /// Run a pipeline file: bake, test, then deploy to each environment in order.
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// List (and with --yes remove) test instances past their expiry and bake leftovers.
    #[command(after_help = REAP_EXAMPLES)]
    Reap(ReapArgs),
    /// List the component's AMIs and where they are in use; prune old ones.
    #[command(subcommand)]
    Amis(AmisCommand),
    /// Print a shell completion script for gears on stdout.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsArgs),
    /// Print gears' man page (roff) on stdout: `gears man > gears.1`, or `gears man | man -l -`.
    Man,
}

const DEPLOY_EXAMPLES: &str = "\
Examples:
  gears deploy --environment live --plan           # what would change, changing nothing
  gears deploy --environment live --batch 25%      # the manifest's AMI, every region in it
  gears deploy --environment stage --group hello-stage --ami ami-0123456789abcdef0 --region eu-west-1
  gears deploy --environment live --abort          # undo an interrupted deploy
  gears deploy --environment live --unlock         # after a failed rollback, once a human looked

Groups are found by the tags gears:component, gears:environment (and gears:country with
--country), or named with --group. Exit 6: a batch failed its health gate and the group rolled
back cleanly; 7: the rollback failed too, the group keeps a STOP lock until --unlock.

Environment: GEARS_AWS_TIMEOUT (seconds per AWS call attempt, default 30), GEARS_LOCK_STALE
(seconds without renewal after which a lock's run counts as gone, default 60).";

const REAP_EXAMPLES: &str = "\
Examples:
  gears reap --region us-east-1                      # list what would go
  gears reap --region us-east-1 --region eu-west-1 --yes
  gears reap --region us-east-1 --ttl 6h --output json

Removes: gears test instances past gears:expires-at; bake build instances (gears:purpose=bake)
older than their gears:ttl; packer_<uuid> key pairs no instance, launch template or launch
configuration uses, and packer_<uuid> security groups no interface uses, older than --ttl.
Never: Auto Scaling group members, protected instances, unreadable expiries (listed). stdout: one line per item,
region<TAB>kind<TAB>id<TAB>action<TAB>reason (or JSON).";

/// `gears pipeline ...`.
#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Run the stages of a pipeline file in order, stopping at the first that fails.
    #[command(after_help = PIPELINE_EXAMPLES)]
    Run(PipelineRunArgs),
}

const PIPELINE_EXAMPLES: &str = "\
Examples:
  gears pipeline run pipelines/hello-service.yaml
  gears pipeline run pipelines/hello-service.yaml --from deploy:live   # resume from the manifest on disk
  gears pipeline run pipelines/hello-service.yaml --only test

A pipeline file names the component file, and the stages: bake, test, deploy (a list of
environments, deployed in order). The manifest is handed from bake to the next stages and kept on
disk (`manifest:`, default gears-manifest.json beside the pipeline file). The exit code is the
failing stage's; a summary of every stage goes to stdout (--output json: as JSON).";

/// `gears pipeline run`.
#[derive(Debug, Args)]
pub struct PipelineRunArgs {
    /// The pipeline file (YAML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Start at this stage (bake, test, deploy:ENV); the earlier ones are skipped.
    #[arg(long, value_name = "STAGE", conflicts_with = "only")]
    pub from: Option<String>,
    /// Run only this stage.
    #[arg(long, value_name = "STAGE")]
    pub only: Option<String>,
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub endpoint: EndpointArg,
    /// Keep the manifest here instead of where the pipeline file says.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Send the test stage's smoke tests here (tunnels, bastions, emulators).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub target_host: Option<String>,
    #[command(flatten)]
    pub output: OutputArg,
}

/// `gears deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The environment to deploy to (the groups' gears:environment tag).
    #[arg(long, short = 'e', value_name = "ENV")]
    pub environment: String,
    #[command(flatten)]
    pub component: ComponentArg,
    #[command(flatten)]
    pub ami: AmiArgs,
    /// The groups' gears:country tag; also tagged on the instances.
    #[arg(long, value_name = "COUNTRY")]
    pub country: Option<String>,
    /// Deploy these groups (repeat) instead of finding them by tags.
    #[arg(long = "group", value_name = "NAME")]
    pub groups: Vec<String>,
    /// Send the health gate's smoke tests here instead of each new instance (tunnels, emulators).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub smoke_target: Option<String>,
    /// Leave the component's smoke tests out of the health gate.
    #[arg(long, conflicts_with = "smoke_target")]
    pub no_smoke: bool,
    /// How to roll: gears' own batches (`rolling`, the default), AWS's instance refresh
    /// (`instance-refresh`: waited on; its failure rolls back), or a new group grown beside the
    /// one in traffic and switched to (`blue-green`).
    #[arg(long, value_name = "STRATEGY", value_parser = strategy_parser())]
    pub strategy: Option<crate::deploy::Strategy>,
    /// Instances replaced per batch: a count or a share of the group (N or P%; default 25%).
    #[arg(long, value_name = "N|P%")]
    pub batch: Option<Batch>,
    /// How long a batch may take to become healthy before the group rolls back (default 600).
    #[arg(long, value_name = "SECS")]
    pub gate_timeout: Option<Seconds>,
    /// Seconds between polls at most (default 5): gears looks sooner right after a change.
    #[arg(long, value_name = "SECS")]
    pub poll: Option<Seconds>,
    /// Also lock each group in this DynamoDB table (partition key `key`, a string): a true
    /// compare-and-swap, as Terraform's state lock.
    #[arg(long, value_name = "TABLE")]
    pub lock_table: Option<String>,
    /// A CloudWatch alarm that must not go to ALARM while a batch is gated and until the deploy
    /// ends (repeat; beside the component file's `deploy.alarms`). One that does fails the
    /// gate and rolls back (exit 6); INSUFFICIENT_DATA is not a failure.
    #[arg(long = "alarm", value_name = "NAME")]
    pub alarms: Vec<String>,
    /// After a batch is healthy, keep gating it this long (seconds) before retiring old
    /// instances or starting the next batch (default 0, or the component file's
    /// `deploy.bake_time`).
    #[arg(long, value_name = "SECS")]
    pub bake_time: Option<Seconds>,
    /// The share of each group's desired capacity kept healthy and in service during the roll
    /// (P% or P). 100% launches each batch before retiring; less replaces part of a batch in
    /// place, without raising the group above its desired capacity (default 100%).
    #[arg(long, value_name = "P%")]
    pub min_healthy: Option<Percent>,
    /// How many groups of one region roll at once (regions always roll at once). Once a group
    /// rolls back, groups not started yet are skipped.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=100))]
    pub parallel: Option<u16>,
    /// Blue/green: seconds the old group keeps its size out of traffic (default 3600); a later
    /// deploy of the cluster scales it to 0 after that.
    #[arg(long, value_name = "SECS")]
    pub keep_old: Option<Seconds>,
    /// Blue/green: scale the old group to N right after the switch (0 saves money at once;
    /// a `--rollback` then grows it again first).
    #[arg(long, value_name = "N")]
    pub scale_old_to: Option<u32>,
    /// Blue/green: how many old groups a cluster keeps (default 2); older ones are scaled to 0
    /// and deleted once empty (never one with a lock).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub keep_groups: Option<u32>,
    /// Blue/green: put the cluster's newest old group back in traffic, wait until it is healthy
    /// in every traffic source, then take the current group out.
    #[arg(long, conflicts_with_all = ["abort", "unlock"])]
    pub rollback: bool,
    /// Print what would change, change nothing.
    #[arg(long)]
    pub plan: bool,
    /// Undo an interrupted deploy of this AMI.
    #[arg(long, conflicts_with_all = ["plan", "unlock"])]
    pub abort: bool,
    /// Remove the groups' deploy lock (after a failed rollback, once a human looked).
    #[arg(long, conflicts_with = "plan")]
    pub unlock: bool,
    #[command(flatten)]
    pub output: OutputArg,
    #[command(flatten)]
    pub endpoint: EndpointArg,
    #[command(flatten)]
    pub role: RoleArgs,
}

const STATUS_EXAMPLES: &str = "\
Examples:
  gears status                                     # every environment, the regions of gears.yaml
  gears status -e live -e stage --region eu-west-1
  gears status --output json                       # the same, for scripts and dashboards
  gears status -e live --watch --poll 2            # redrawn in place while a deploy runs

One row per group tagged gears:component (grouped by gears:cluster): the AMIs its members run
with their COMPONENT_VERSION/AMI_VERSION tags, in service and healthy against desired, the
launch spec's AMI (DRIFT when members run another), the lock, a deploy recorded and not finished
(with the commands that continue or abort it), suspended processes, blue/green state. Reads only.

Exit 0: nothing needs a human. Exit 7: something does: a STOP lock, a deploy recorded whose run
is gone (no lock, or one not renewed within GEARS_LOCK_STALE, default 60 s), drift with no deploy
recorded, a blue/green switch with no live lock in its cluster, a gears tag that cannot be read.
Exit 5: a region could not be read (after retries); the others are still shown. --watch redraws
only on a terminal outside CI (otherwise it prints once); Ctrl-C ends it with exit 130.";

/// `gears status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub component: ComponentArg,
    /// Only this environment (repeat; default: every environment the groups are tagged with).
    #[arg(long, short = 'e', value_name = "ENV")]
    pub environment: Vec<String>,
    #[command(flatten)]
    pub regions: RegionsArg,
    /// Refresh in place on a terminal, every --poll seconds, until Ctrl-C (in CI: print once).
    #[arg(long)]
    pub watch: bool,
    /// Seconds between looks with --watch (default 5).
    #[arg(long, value_name = "SECS", requires = "watch")]
    pub poll: Option<Seconds>,
    #[command(flatten)]
    pub output: OutputArg,
    #[command(flatten)]
    pub endpoint: EndpointArg,
    #[command(flatten)]
    pub role: RoleArgs,
}

/// `gears reap`.
#[derive(Debug, Args)]
pub struct ReapArgs {
    #[command(flatten)]
    pub regions: RegionsArg,
    /// Remove what is listed.
    #[arg(long)]
    pub yes: bool,
    /// How old packer's key pairs and security groups must be, e.g. 3h.
    #[arg(long, value_name = "DURATION", default_value = "3h")]
    pub ttl: Ttl,
    #[command(flatten)]
    pub output: OutputArg,
    #[command(flatten)]
    pub endpoint: EndpointArg,
    #[command(flatten)]
    pub role: RoleArgs,
}

const TEST_EXAMPLES: &str = "\
Examples:
  gears test                                  # the AMI of gears-manifest.json, smoke.yaml of gears.yaml
  gears test --manifest out/manifest.json --builder web --junit smoke.xml
  gears test --ami ami-0123456789abcdef0 --region eu-west-1
  gears test --target-host localhost:8080     # through a tunnel or bastion
  gears test --keep-on-failure                # keep a failing instance for debugging (until --ttl)

The instance is tagged gears:purpose=test and gears:expires-at; it is terminated on success,
failure, AWS errors, SIGINT and SIGTERM. stdout: the smoke report (or JSON with --output json).";

/// `gears test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    #[command(flatten)]
    pub component: ComponentArg,
    #[command(flatten)]
    pub ami: AmiArgs,
    /// Send the smoke tests here instead of the instance's address (tunnels, bastions, emulators).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub target_host: Option<String>,
    /// How long the instance has to boot and pass the smoke tests.
    #[arg(long, value_name = "SECS", default_value = "600")]
    pub ready_timeout: Delay,
    /// When a kept or leftover instance expires (gears:expires-at), e.g. 3600, 90m, 1h.
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub ttl: Ttl,
    /// Keep a failing instance for debugging (until its expiry); print its id and address.
    #[arg(long)]
    pub keep_on_failure: bool,
    /// Also write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArg,
    /// Print a "still running" line on stderr every SECS while waiting.
    #[arg(long, value_name = "SECS", default_value = "30")]
    pub heartbeat: Seconds,
    /// Smoke tests in flight at once.
    #[arg(long, short, default_value_t = 8, value_name = "N")]
    pub jobs: usize,
    #[command(flatten)]
    pub endpoint: EndpointArg,
    #[command(flatten)]
    pub role: RoleArgs,
    /// The version under test, written on the instance (`gears:version`): for an `--ami`
    /// shared from another account, whose tags AWS does not show here.
    #[arg(long, value_name = "VERSION")]
    pub version: Option<String>,
    /// Where the instance's console output and other run files are kept.
    #[arg(long, value_name = "DIR", default_value = crate::test_stage::settings::defaults::WORK_DIR)]
    pub work_dir: PathBuf,
}

const VALIDATE_EXAMPLES: &str = "\
Examples:
  gears validate                              # gears.yaml here: file, template, playbook
  gears validate -c service/gears.yaml

Checks the component file, renders the Packer template (and runs packer validate when packer is
installed) and runs ansible-playbook --syntax-check on the playbook. Never calls AWS: a version or
revision that cannot be found is replaced by a placeholder.";

const BAKE_EXAMPLES: &str = "\
Examples:
  gears bake                                  # gears.yaml here; version from GoCD/Jenkins or git
  gears bake -c service/gears.yaml --version 1.4.0 --manifest out/manifest.json
  gears bake --explain                        # where version, sha and repo come from
  gears bake --dry-run > template.json        # the rendered Packer template, checked by packer

Version: --version, then GO_PIPELINE_LABEL (GoCD), BUILD_NUMBER (Jenkins), GITHUB_RUN_NUMBER
(GitHub), CI_PIPELINE_IID (GitLab), then git describe (a bare commit id from a shallow clone warns).
Revision: --git-sha, then GO_REVISION_* (GoCD), GIT_COMMIT (Jenkins), GITHUB_SHA (GitHub),
CI_COMMIT_SHA (GitLab), then git rev-parse HEAD.
stdout: one line per AMI, region<TAB>builder<TAB>ami-id (or the manifest with --output json).";

/// Where the component is, how to bake it and how to reach AWS: shared by bake and validate.
#[derive(Debug, Args)]
pub struct ComponentArgs {
    #[command(flatten)]
    pub file: ComponentArg,
    #[command(flatten)]
    pub build: BuildArgs,
    #[command(flatten)]
    pub endpoint: EndpointArg,
}

/// `gears bake`.
#[derive(Debug, Args)]
pub struct BakeArgs {
    #[command(flatten)]
    pub component: ComponentArgs,
    /// Where to write the manifest (JSON; an env file is written beside it with `.env`).
    #[arg(long, value_name = "FILE", default_value = crate::manifest::DEFAULT_FILE)]
    pub manifest: PathBuf,
    /// Print the rendered template (checked with packer validate when packer is installed); bake nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print where the version, revision and repo come from; bake nothing.
    #[arg(long)]
    pub explain: bool,
    /// Bake even if an AMI of this component, version and revision exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub output: OutputArg,
    /// Without a live view, print a "still running" line after SECS of silence from packer.
    #[arg(long, value_name = "SECS", default_value = "30")]
    pub heartbeat: Seconds,
}

/// `gears validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub component: ComponentArgs,
    #[command(flatten)]
    pub output: OutputArg,
}

const SMOKE_EXAMPLES: &str = "\
Examples:
  gears smoke 10.0.0.12:8080 smoke-tests/example.yaml
  gears smoke https://app.example.com tests.json --junit smoke.xml
  TEST_HOST=localhost gears smoke < smoke.yaml
  gears smoke 10.0.0.12 smoke.yaml --wait 300 --jobs 16   # a just-booted instance

Environment: TEST_HOST and TEST_FILE stand in for HOST and FILE, as in Smolder.";

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
    pub wait: Option<Delay>,
    /// Wait SECS before the first test (Smolder's --sleep).
    #[arg(long, value_name = "SECS")]
    pub sleep: Option<Delay>,
    /// Also write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArg,
    /// Print a "still running" line on stderr every SECS while tests run or wait.
    #[arg(long, value_name = "SECS", default_value = "30")]
    pub heartbeat: Seconds,
}

/// `gears amis`.
#[derive(Debug, Subcommand)]
pub enum AmisCommand {
    /// The component's AMIs per region: version, git sha, age, who else may launch each, and
    /// where each is in use (here and in every account of accounts:).
    #[command(after_help = AMIS_LIST_EXAMPLES)]
    List(AmisArgs),
    /// Deregister AMIs older than the newest N (never one in use here or in any account of
    /// accounts:) and delete their snapshots.
    #[command(after_help = AMIS_PRUNE_EXAMPLES)]
    Prune(AmisPruneArgs),
}

const AMIS_LIST_EXAMPLES: &str = "\
Examples:
  gears amis list                                  # the regions of gears.yaml (ami_regions)
  gears amis list --region us-east-1 --region eu-west-1 --output json

AMIs are the component's own (owner self) with the tags gears:component and COMPONENT_NAME.
SHARED WITH: who else may launch each (accounts, organizations, OUs, everyone). In use: any
launch template version (with the groups that launch from it), launch configurations, and
pending, running, stopping or stopped instances, in the same region: in this account and in
every account of the component file's accounts:, read through each environment's role. An
account that cannot be read is an error on stderr and exit 5.";

const AMIS_PRUNE_EXAMPLES: &str = "\
Examples:
  gears amis prune --keep 3                        # what would go; changes nothing
  gears amis prune --keep 3 --yes                  # deregister, then delete their snapshots
  gears amis prune --keep 3 --yes --include-shared # and shares no account of accounts: uses

Only AMIs gears made (gears:managed-by=gears) go. Kept: every AMI in use in this account or in
any account of accounts: (any launch template version, launch configurations, instances not
terminated); AMIs others may launch (public or shared), unless --include-shared: with it, one
shared only with accounts of accounts:, none of which uses it, goes; the newest N available AMIs
of each builder in each region (by CREATED_AT, then creation date); AMIs not available yet.
Snapshots of ours that no AMI uses any more (a killed run's) are swept too. A failed deregister
or snapshot deletion is reported on its line and makes the exit code 5; the others still go.
An account of accounts: that cannot be read keeps every AMI shared with it and makes the exit
code 5.";

/// Which component, where, and how to print (`gears amis list`, and `prune`).
#[derive(Debug, Args)]
pub struct AmisArgs {
    #[command(flatten)]
    pub component: ComponentArg,
    #[command(flatten)]
    pub regions: RegionsArg,
    #[command(flatten)]
    pub output: OutputArg,
    #[command(flatten)]
    pub endpoint: EndpointArg,
    #[command(flatten)]
    pub role: RoleArgs,
}

/// `gears amis prune`.
#[derive(Debug, Args)]
pub struct AmisPruneArgs {
    #[command(flatten)]
    pub amis: AmisArgs,
    /// Keep the newest N available AMIs of each builder in each region (at least 1).
    #[arg(
        long,
        value_name = "N",
        required = true,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub keep: usize,
    /// Deregister and delete; without it, only list what would go.
    #[arg(long)]
    pub yes: bool,
    /// Also prune AMIs that other accounts may launch, when they are shared only with accounts
    /// of the component file's accounts: and none of them uses them; public ones, and ones
    /// shared with any other account, an organization or an OU, are kept. Without it every
    /// shared AMI is kept.
    #[arg(long)]
    pub include_shared: bool,
}

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  gears completions bash > /etc/bash_completion.d/gears
  gears completions zsh > \"${fpath[1]}/_gears\"
  gears completions fish > ~/.config/fish/completions/gears.fish";

/// The completion script of `shell` for gears. Made in memory first: clap_complete panics
/// when its writer fails (a closed stdout).
pub fn completions(shell: clap_complete::Shell) -> String {
    use clap::CommandFactory;
    let mut out: Vec<u8> = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "gears", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `gears completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::{smoke_only_command, Cli};
    use clap::{CommandFactory, Parser};

    fn argv(a: &[&str]) -> Vec<std::ffi::OsString> {
        a.iter().map(Into::into).collect()
    }

    /// What a command line comes to: the parse, or the error's kind and words.
    fn outcome(r: Result<Cli, clap::Error>) -> String {
        match r {
            Ok(cli) => format!("{cli:?}"),
            Err(e) => format!("{:?}: {}", e.kind(), e.render()),
        }
    }

    #[test]
    fn smoke_is_parsed_and_refused_by_the_short_path_as_by_the_whole_command() {
        let lines: &[&[&str]] = &[
            &["gears", "smoke"],
            &["gears", "smoke", "host:8080", "tests.yaml"],
            &[
                "gears",
                "smoke",
                "https://h",
                "f.json",
                "-j",
                "3",
                "--profile",
                "p",
            ],
            &[
                "gears", "smoke", "h", "--output", "json", "--wait", "2.5", "--sleep", "1",
            ],
            &[
                "gears",
                "smoke",
                "h",
                "--junit",
                "j.xml",
                "--heartbeat",
                "5",
                "--jobs=4",
            ],
            &["gears", "smoke", "--jobs", "x"],
            &["gears", "smoke", "--jobs"],
            &["gears", "smoke", "--nope"],
            &["gears", "smoke", "--jbos", "2"],
            &["gears", "smoke", "--output", "xml"],
            &["gears", "smoke", "a", "b", "c"],
            &["gears", "smoke", "--help"],
            &["gears", "smoke", "-h"],
            &["gears", "smoke", "--version"],
            &["gears", "smoke", "--heartbeat", "-1"],
            &["gears", "smoke", "--", "--odd-host"],
        ];
        for l in lines {
            let short = outcome(Cli::parse_from_args(argv(l)));
            let whole = outcome(Cli::try_parse_from(argv(l)));
            assert_eq!(short, whole, "{l:?}");
        }
        // The others take the whole command.
        let l = argv(&["gears", "--profile", "p", "smoke", "h"]);
        assert_eq!(
            outcome(Cli::parse_from_args(l.clone())),
            outcome(Cli::try_parse_from(l))
        );
        assert!(outcome(Cli::parse_from_args(argv(&["gears", "smoke", "h"]))).contains("Smoke("));
    }

    #[test]
    fn smoke_help_is_the_same_on_both_paths() {
        let mut whole = Cli::command();
        whole.build();
        let mut short = smoke_only_command();
        short.build();
        let sub = |c: &mut clap::Command| {
            let s = c.find_subcommand_mut("smoke").expect("smoke");
            (
                s.render_long_help().to_string(),
                s.render_help().to_string(),
                s.render_usage().to_string(),
            )
        };
        assert_eq!(sub(&mut short), sub(&mut whole));
        let profile = |c: &clap::Command| {
            let a = c
                .get_arguments()
                .find(|a| a.get_id() == "profile")
                .expect("--profile");
            format!(
                "{:?} {:?} {:?} {}",
                a.get_long(),
                a.get_value_names(),
                a.get_help().map(|h| h.to_string()),
                a.is_global_set()
            )
        };
        assert_eq!(profile(&short), profile(&whole));
        assert_eq!(short.get_version(), whole.get_version());
    }
}
