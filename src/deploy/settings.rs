//! What `gears deploy` is asked ([`DeployAsk`], by the command line or a pipeline's `deploy:`
//! entry) and the settings it runs with, resolved by [`DeploySettings::resolve`] with the
//! component file's `deploy:` section, in this precedence: the ask, then the run's environment
//! (`GEARS_LOCK_TABLE`, `GEARS_LOCK_STALE`), then the component file, then the defaults.

use super::lock::lock_stale;
use crate::component::file::DeploySection;
use crate::component::Component;
use crate::settings::AmiChoice;
use crate::units::{Percent, Seconds};
use serde::de::{Deserialize, Deserializer};
use std::time::Duration;

pub use crate::units::Batch;

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

impl Strategy {
    /// The names `--strategy` and a pipeline's `strategy:` take.
    pub const NAMES: [&'static str; 3] = ["rolling", "instance-refresh", "blue-green"];
}

impl<'de> Deserialize<'de> for Strategy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::units::parsed(d, str::parse)
    }
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
    use crate::units::{Percent, Seconds};
    /// Instances replaced per batch.
    pub const BATCH: Batch = Batch::Percent(25);
    /// How long a batch may take to become healthy.
    pub const GATE_TIMEOUT: Seconds = Seconds::of(600);
    /// The longest wait between two looks.
    pub const POLL: Seconds = Seconds::of(5);
    /// The share of desired capacity kept healthy.
    pub const MIN_HEALTHY: Percent = Percent(100);
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
    pub gate_timeout: Option<Seconds>,
    pub poll: Option<Seconds>,
    /// Where the gate's smoke tests go instead of each new instance, as written.
    pub smoke_target: Option<String>,
    pub no_smoke: bool,
    pub lock_table: Option<String>,
    /// CloudWatch alarms that gate the deploy (`--alarm`, a pipeline's `alarms:`).
    pub alarms: Vec<String>,
    /// How long a healthy batch keeps being gated before gears acts on it (`--bake-time`).
    pub bake_time: Option<Seconds>,
    pub parallel: Option<u16>,
    pub min_healthy: Option<Percent>,
    pub plan_only: bool,
    pub abort: bool,
    pub unlock: bool,
    pub endpoint_flag: Option<String>,
    /// Blue/green: how long the old group keeps its size out of traffic (`--keep-old`).
    pub keep_old: Option<Seconds>,
    /// Blue/green: the old group's size right after the switch (`--scale-old-to`).
    pub scale_old_to: Option<u32>,
    /// Blue/green: how many old groups a cluster keeps (`--keep-groups`).
    pub keep_groups: Option<u32>,
    /// Blue/green: put the previous group back in traffic (`--rollback`).
    pub rollback: bool,
    /// The role to act through (`--role-arn`); else the environment's in `accounts:`.
    pub role: Option<crate::accounts::Role>,
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
            role: None,
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
    /// pipeline share, what the run's environment sets (`GEARS_LOCK_STALE`, and
    /// `GEARS_LOCK_TABLE` when no lock table is asked for), and what the component file's
    /// `deploy:` section adds (its lock table after those two, its alarms beside the asked
    /// ones, its bake time when none is asked for).
    pub fn resolve(
        ask: DeployAsk,
        ctx: &crate::context::RunContext,
        component: Option<&Component>,
    ) -> Result<DeploySettings, Refused> {
        let none = DeploySection::default();
        let no_accounts = crate::accounts::Accounts::new();
        let (file, accounts, name) = match component {
            Some(c) => (&c.deploy, &c.accounts, c.name.as_str()),
            None => (&none, &no_accounts, ""),
        };
        let checked = Checked::of(&ask)?;
        let mut alarms = ask.alarms;
        for a in &file.alarms {
            if !alarms.contains(a) {
                alarms.push(a.clone());
            }
        }
        let account =
            crate::accounts::session("deploy", name, ask.role, Some(&ask.environment), accounts);
        Ok(DeploySettings {
            account,
            keep_old: ask.keep_old.map_or(defaults::KEEP_OLD, Duration::from),
            scale_old_to: ask.scale_old_to,
            keep_groups: ask.keep_groups.unwrap_or(defaults::KEEP_GROUPS),
            rollback: ask.rollback,
            component_file: ask.component_file,
            ami: ask.ami,
            environment: ask.environment,
            country: ask.country,
            groups: ask.groups,
            batch: ask.batch,
            strategy: ask.strategy.unwrap_or_default(),
            gate_timeout: checked.gate_timeout,
            poll: checked.poll,
            smoke_target: checked.smoke_target,
            no_smoke: ask.no_smoke,
            lock_stale: lock_stale(ctx),
            lock_table: ask
                .lock_table
                .or_else(|| ctx.var("GEARS_LOCK_TABLE").map(str::to_owned))
                .or_else(|| file.lock_table.clone()),
            alarms,
            bake_time: ask
                .bake_time
                .or(file.bake_time)
                .map_or(Duration::ZERO, Duration::from),
            parallel: ask.parallel.unwrap_or(defaults::PARALLEL).max(1).into(),
            min_healthy: ask.min_healthy.unwrap_or(defaults::MIN_HEALTHY).0,
            plan_only: ask.plan_only,
            abort: ask.abort,
            unlock: ask.unlock,
            endpoint_flag: ask.endpoint_flag,
        })
    }
}

/// What [`DeploySettings::resolve`] checks of an ask alone: names not blank, the smoke target a
/// host, a poll shorter than the gate timeout.
struct Checked {
    smoke_target: Option<crate::smoke::target::Target>,
    gate_timeout: Duration,
    poll: Duration,
}

impl Checked {
    fn of(ask: &DeployAsk) -> Result<Checked, Refused> {
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
        let smoke_target = match &ask.smoke_target {
            Some(h) => Some(
                crate::smoke::target::Target::parse(h)
                    .map_err(|e| refuse("smoke_target", &format!("{h}: {e}")))?,
            ),
            None => None,
        };
        let gate_timeout = Duration::from(ask.gate_timeout.unwrap_or(defaults::GATE_TIMEOUT));
        let poll = Duration::from(ask.poll.unwrap_or(defaults::POLL));
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
        Ok(Checked {
            smoke_target,
            gate_timeout,
            poll,
        })
    }
}

impl DeploySettings {
    /// The batch a rolling deploy or an instance refresh replaces at a time.
    pub fn batch(&self) -> Batch {
        self.batch.unwrap_or(defaults::BATCH)
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
    /// The batch asked for: a rolling deploy's batches ([`DeploySettings::batch`]), and
    /// blue/green's growth steps (a canary first) when asked, else it grows at once.
    pub batch: Option<Batch>,
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
    /// Blue/green: how long the old group keeps its size out of traffic before a later run
    /// scales it to 0.
    pub keep_old: Duration,
    /// Blue/green: the old group's size right after the switch (0 saves money at once).
    pub scale_old_to: Option<u32>,
    /// Blue/green: how many old groups a cluster keeps (older ones are deleted once empty).
    pub keep_groups: u32,
    /// Blue/green: put the previous group back in traffic, then take the current one out.
    pub rollback: bool,
    /// The environment's account: the role gears assumes to act there (none: the credentials'
    /// own account).
    pub account: Option<crate::accounts::RoleSession>,
}
