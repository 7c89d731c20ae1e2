//! What `gears deploy` is asked to do: batch sizes, strategies, the settings.
use crate::deploy::lock_stale;
use crate::settings::AmiChoice;
use std::time::Duration;

/// How many instances a batch replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    Count(u32),
    Percent(u32),
}

impl Batch {
    /// `N` or `P%`.
    pub fn parse(s: &str) -> Result<Batch, String> {
        let bad = || format!("`{s}`: expected a count like 2 or a share like 25%");
        match s.strip_suffix('%') {
            Some(p) => match p.parse::<u32>() {
                Ok(p @ 1..=100) => Ok(Batch::Percent(p)),
                _ => Err(bad()),
            },
            None => match s.parse::<u32>() {
                Ok(n @ 1..=10_000) => Ok(Batch::Count(n)),
                _ => Err(bad()),
            },
        }
    }

    /// The batch size for a group of `desired` instances (at least 1).
    pub fn size(self, desired: i32) -> i32 {
        match self {
            Batch::Count(n) => n as i32,
            Batch::Percent(p) => (desired * p as i32 + 99) / 100,
        }
        .max(1)
    }
}

impl std::fmt::Display for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Batch::Count(n) => write!(f, "{n}"),
            Batch::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `P%` or `P`, 0 to 100.
pub fn parse_percent(s: &str) -> Result<u32, String> {
    match s.strip_suffix('%').unwrap_or(s).trim().parse::<u32>() {
        Ok(p @ 0..=100) => Ok(p),
        _ => Err(format!("`{s}`: expected a share from 0% to 100%")),
    }
}

/// Seconds as `--poll` and `--gate-timeout` (and a pipeline's `poll:` and `gate_timeout:`)
/// take them: more than 0, at most a day.
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<f64>()
        .map_err(|_| "give seconds, more than 0 and at most 86400 (a day)".to_owned())
        .and_then(seconds)
}

/// `v` seconds as a duration: more than 0, at most a day.
pub fn seconds(v: f64) -> Result<Duration, String> {
    if v.is_finite() && v > 0.0 && v <= 86_400.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err("give seconds, more than 0 and at most 86400 (a day)".to_owned())
    }
}

/// How a group is rolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// gears' own batches, gated by health (and smoke tests).
    #[default]
    Rolling,
    /// AWS's instance refresh (launch before terminate), waited on; its failure rolls back.
    InstanceRefresh,
    /// A new group cloned beside the one in traffic, grown and gated, then switched to; the old
    /// one is kept out of traffic for a rollback in seconds ([`super::blue_green`]).
    BlueGreen,
}

impl std::str::FromStr for Strategy {
    type Err = String;

    /// `rolling`, `instance-refresh` or `blue-green`.
    fn from_str(s: &str) -> Result<Strategy, String> {
        match s {
            "rolling" => Ok(Strategy::Rolling),
            "instance-refresh" => Ok(Strategy::InstanceRefresh),
            "blue-green" => Ok(Strategy::BlueGreen),
            _ => Err(format!(
                "`{s}`: expected rolling, instance-refresh or blue-green"
            )),
        }
    }
}

/// The defaults of what a deploy may leave out, for `gears deploy` and a pipeline alike.
pub mod defaults {
    use super::{Batch, Duration};
    /// Instances replaced per batch.
    pub const BATCH: Batch = Batch::Percent(25);
    /// How long a batch may take to become healthy.
    pub const GATE_TIMEOUT: Duration = Duration::from_secs(600);
    /// The longest wait between two looks.
    pub const POLL: Duration = Duration::from_secs(5);
    /// The share of desired capacity kept healthy.
    pub const MIN_HEALTHY: u32 = 100;
    /// Groups of one region rolled at once.
    pub const PARALLEL: u16 = 1;
    /// How long blue/green keeps the old group at its size, out of traffic.
    pub const KEEP_OLD: Duration = Duration::from_secs(3600);
    /// How many old groups of a blue/green cluster are kept.
    pub const KEEP_GROUPS: u32 = 2;
}

/// One deploy as asked, by `gears deploy`'s flags or by a pipeline's `deploy:` entry, each
/// value already parsed at its place (a flag, a file's line); what is left out is `None`.
/// [`DeploySettings::resolve`] turns it into settings, the one place both go through.
#[derive(Debug, Clone)]
pub struct DeployAsk {
    pub component_file: std::path::PathBuf,
    pub ami: AmiChoice,
    pub environment: String,
    pub country: Option<String>,
    pub groups: Vec<String>,
    pub batch: Option<Batch>,
    pub strategy: Option<Strategy>,
    pub gate_timeout: Option<Duration>,
    pub poll: Option<Duration>,
    pub smoke_target: Option<crate::smoke::target::Target>,
    pub no_smoke: bool,
    pub lock_table: Option<String>,
    /// CloudWatch alarms that gate the deploy (`--alarm`, a pipeline's `alarms:`).
    pub alarms: Vec<String>,
    /// How long a healthy batch keeps being gated before gears acts on it (`--bake-time`).
    pub bake_time: Option<Duration>,
    pub parallel: Option<u16>,
    pub min_healthy: Option<u32>,
    pub plan_only: bool,
    pub abort: bool,
    pub unlock: bool,
    pub endpoint_flag: Option<String>,
    /// Blue/green: how long the old group keeps its size out of traffic (`--keep-old`).
    pub keep_old: Option<Duration>,
    /// Blue/green: the old group's size right after the switch (`--scale-old-to`).
    pub scale_old_to: Option<u32>,
    /// Blue/green: how many old groups a cluster keeps (`--keep-groups`).
    pub keep_groups: Option<u32>,
    /// Blue/green: put the previous group back in traffic (`--rollback`).
    pub rollback: bool,
}

impl DeployAsk {
    /// A deploy of `environment` with every knob at its default.
    pub fn new(component_file: std::path::PathBuf, ami: AmiChoice, environment: &str) -> Self {
        DeployAsk {
            component_file,
            ami,
            environment: environment.to_owned(),
            country: None,
            groups: vec![],
            batch: None,
            strategy: None,
            gate_timeout: None,
            poll: None,
            smoke_target: None,
            no_smoke: false,
            lock_table: None,
            alarms: vec![],
            bake_time: None,
            parallel: None,
            min_healthy: None,
            plan_only: false,
            abort: false,
            unlock: false,
            endpoint_flag: None,
            keep_old: None,
            scale_old_to: None,
            keep_groups: None,
            rollback: false,
        }
    }
}

/// Why a deploy's settings were refused: the knob (`poll`, `environment`…) and the reason;
/// the caller names the knob as its user wrote it (`--poll`, `poll:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub knob: &'static str,
    pub why: String,
}

impl DeploySettings {
    /// The settings of `ask`: defaults for what it leaves out, the checks the flags and a
    /// pipeline share, and what the run's environment sets (`GEARS_LOCK_STALE`, and
    /// `GEARS_LOCK_TABLE` when no lock table is asked for).
    pub fn resolve(
        ask: DeployAsk,
        ctx: &crate::context::RunContext,
    ) -> Result<DeploySettings, Refused> {
        let refuse = |knob, why: &str| Refused {
            knob,
            why: why.to_owned(),
        };
        if ask.environment.trim().is_empty() {
            return Err(refuse(
                "environment",
                "empty; name the environment the groups are tagged with (gears:environment)",
            ));
        }
        if ask.country.as_ref().is_some_and(|c| c.trim().is_empty()) {
            return Err(refuse("country", "empty"));
        }
        let gate_timeout = ask.gate_timeout.unwrap_or(defaults::GATE_TIMEOUT);
        let poll = ask.poll.unwrap_or(defaults::POLL);
        if poll >= gate_timeout {
            return Err(refuse(
                "poll",
                &format!(
                    "{} s is not shorter than the gate timeout ({} s): a batch would time out between two looks",
                    poll.as_secs_f64(),
                    gate_timeout.as_secs_f64()
                ),
            ));
        }
        Ok(DeploySettings {
            grow_batch: ask.batch,
            keep_old: ask.keep_old.unwrap_or(defaults::KEEP_OLD),
            scale_old_to: ask.scale_old_to,
            keep_groups: ask.keep_groups.unwrap_or(defaults::KEEP_GROUPS),
            rollback: ask.rollback,
            component_file: ask.component_file,
            ami: ask.ami,
            environment: ask.environment,
            country: ask.country,
            groups: ask.groups,
            batch: ask.batch.unwrap_or(defaults::BATCH),
            strategy: ask.strategy.unwrap_or_default(),
            gate_timeout,
            poll,
            smoke_target: ask.smoke_target,
            no_smoke: ask.no_smoke,
            lock_stale: lock_stale(ctx),
            lock_table: ask
                .lock_table
                .or_else(|| ctx.var("GEARS_LOCK_TABLE").map(str::to_owned)),
            alarms: ask.alarms,
            bake_time: ask.bake_time.unwrap_or_default(),
            parallel: ask.parallel.unwrap_or(defaults::PARALLEL).max(1).into(),
            min_healthy: ask.min_healthy.unwrap_or(defaults::MIN_HEALTHY),
            plan_only: ask.plan_only,
            abort: ask.abort,
            unlock: ask.unlock,
            endpoint_flag: ask.endpoint_flag,
        })
    }
}

/// Everything `gears deploy` needs.
#[derive(Debug, Clone)]
pub struct DeploySettings {
    pub component_file: std::path::PathBuf,
    pub ami: AmiChoice,
    pub environment: String,
    pub country: Option<String>,
    /// Groups by name instead of by tags.
    pub groups: Vec<String>,
    pub batch: Batch,
    pub strategy: Strategy,
    /// How long a batch may take to become healthy.
    pub gate_timeout: Duration,
    /// Between polls.
    pub poll: Duration,
    /// Where the gate's smoke tests go instead of each new instance (emulators, tunnels).
    pub smoke_target: Option<crate::smoke::target::Target>,
    /// Leave the smoke tests out of the gate.
    pub no_smoke: bool,
    /// A lock of the same AMI not refreshed for this long is taken over (a killed deploy).
    pub lock_stale: Duration,
    /// A DynamoDB table for the locks (a true compare-and-swap), besides the group's tag.
    pub lock_table: Option<String>,
    /// CloudWatch alarms that must not be in ALARM while a batch is gated and until the deploy
    /// ends (the flags', the pipeline's and the component file's).
    pub alarms: Vec<String>,
    /// After a batch is healthy, gears keeps gating it (health, traffic sources, alarms, smoke)
    /// this long before it retires old instances or starts the next batch (0: none).
    pub bake_time: Duration,
    /// How many groups of one region roll at once.
    pub parallel: usize,
    /// The share of the group's desired capacity that stays healthy and in service during
    /// the roll (percent; 100: every batch launches before it retires).
    pub min_healthy: u32,
    pub plan_only: bool,
    pub abort: bool,
    pub unlock: bool,
    pub endpoint_flag: Option<String>,
    /// Blue/green: the new group grows in steps of this (a canary first) when asked, else at
    /// once.
    pub grow_batch: Option<Batch>,
    /// Blue/green: how long the old group keeps its size out of traffic before a later run
    /// scales it to 0.
    pub keep_old: Duration,
    /// Blue/green: the old group's size right after the switch (0 saves money at once).
    pub scale_old_to: Option<u32>,
    /// Blue/green: how many old groups a cluster keeps (older ones are deleted once empty).
    pub keep_groups: u32,
    /// Blue/green: put the previous group back in traffic, then take the current one out.
    pub rollback: bool,
}
