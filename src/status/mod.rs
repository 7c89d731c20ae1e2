//! `gears status`: what runs where, and what is in flight, across environments and regions.
//!
//! It reads only. Per region, one DescribeAutoScalingGroups (paged) finds every group tagged
//! `gears:component=<name>`, whatever its environment; then one DescribeInstances per 200
//! members, one DescribeImages per 200 AMIs (the members', the launch specs' and recorded
//! deploys' targets, for their `COMPONENT_VERSION` and `AMI_VERSION` tags), and one look per
//! distinct launch spec at its AMI (a numbered template version once per `--watch`: EC2 never
//! changes it). Calls are retried while AWS throttles.
//!
//! The outline, file by file:
//! - here: the settings, the [`Status`] and its rows, the exit, and [`run`] (once, or
//!   `--watch`);
//! - [`collect`]: a region's groups read into typed rows ([`GroupStatus`]), with what gears
//!   wrote on each read by the deploy's own parsers ([`crate::deploy::state::OnGroup`]);
//! - [`judge`]: what on a row needs a human (pure), and the commands that finish or undo a
//!   deploy;
//! - [`render`]: the table and the JSON.

pub mod collect;
pub mod judge;
pub mod render;
#[cfg(test)]
mod tests;

use crate::aws::Cloud;
use crate::cancel::Cancel;
use crate::error::Error;
use crate::exit::Exit;
use serde::Serialize;
use std::time::Duration;

/// What `gears status` is asked.
#[derive(Debug, Clone)]
pub struct StatusSettings {
    pub component_file: std::path::PathBuf,
    /// Only these environments (`-e`, repeatable); empty: every one the groups are tagged with.
    pub environments: Vec<String>,
    /// These regions (`--region`); empty: the component file's `ami_regions`.
    pub regions: Vec<String>,
    /// Refresh every `poll` on a terminal (`--watch`).
    pub watch: bool,
    pub poll: Duration,
    /// A lock not renewed for this long belongs to a deploy that is gone.
    pub lock_stale: Duration,
    /// How long one AWS call is retried while AWS throttles.
    pub patience: Duration,
    pub json: bool,
    pub endpoint_flag: Option<String>,
    /// The account looked at, through its role (none: the credentials' own).
    pub account: Option<crate::accounts::RoleSession>,
}

/// The default `--poll` of `--watch`.
pub const POLL: crate::units::Seconds = crate::units::Seconds::of(5);

/// One `gears status` as asked.
#[derive(Debug, Clone)]
pub struct StatusAsk {
    pub component_file: std::path::PathBuf,
    pub environments: Vec<String>,
    pub regions: Vec<String>,
    pub watch: bool,
    pub poll: Option<crate::units::Seconds>,
    pub output: crate::settings::OutputFormat,
    pub endpoint_url: Option<String>,
    /// The role to act through (`--role-arn`); else, with one `-e`, its entry in `accounts:`.
    pub role: Option<crate::accounts::Role>,
}

impl StatusSettings {
    /// Resolves a look: the ask, then the lock's stale limit as a deploy reads it
    /// (`GEARS_LOCK_STALE`), then the defaults.
    pub fn resolve(ask: StatusAsk, ctx: &crate::context::RunContext) -> Self {
        let component = crate::component::load(&ask.component_file).ok();
        let environment = match ask.environments.as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
        };
        let account = crate::accounts::session(
            "status",
            component.as_ref().map_or("", |c| c.name.as_str()),
            ask.role,
            environment,
            component
                .as_ref()
                .map_or(&crate::accounts::Accounts::new(), |c| &c.accounts),
        );
        StatusSettings {
            account,
            component_file: ask.component_file,
            environments: ask.environments,
            regions: ask.regions,
            watch: ask.watch,
            poll: ask.poll.unwrap_or(POLL).into(),
            lock_stale: crate::deploy::lock_stale(ctx),
            patience: PATIENCE,
            json: ask.output == crate::settings::OutputFormat::Json,
            endpoint_flag: ask.endpoint_url,
        }
    }
}
/// How long one AWS call of a look is retried while AWS throttles or errs transiently.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// One look at the component's fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub component: String,
    /// When the look began (RFC 3339, UTC).
    pub at: String,
    pub regions: Vec<String>,
    /// One per group, by environment, region, cluster and name.
    pub groups: Vec<GroupStatus>,
    /// Regions that could not be read (after retries), with why.
    pub errors: Vec<RegionError>,
    /// Something needs a human (the exit is 7).
    pub needs_human: bool,
    /// The exit code `gears status` returns for this look.
    pub exit: u8,
}

/// A region that could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionError {
    pub region: String,
    pub error: String,
}

/// One Auto Scaling group of the component.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStatus {
    pub environment: String,
    pub country: Option<String>,
    pub region: String,
    pub group: String,
    /// The blue/green cluster (`gears:cluster`), when it belongs to one.
    pub cluster: Option<String>,
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    /// Members in service (any health).
    pub in_service: usize,
    /// Members in service and healthy.
    pub healthy: usize,
    /// The AMIs the members run, most members first.
    pub running: Vec<Running>,
    /// Members EC2 does not show yet (just launched): their AMI is not known.
    pub unknown: usize,
    pub launch: Launch,
    /// Members run an AMI other than the launch spec's.
    pub drift: bool,
    pub lock: Option<Lock>,
    /// A deploy recorded on the group (`gears:deploy`) and not finished.
    pub deploy: Option<Unfinished>,
    pub suspended: Vec<String>,
    /// An old blue/green group kept out of traffic.
    pub retired: Option<Retired>,
    /// A blue/green switch in flight.
    pub bluegreen: Option<Switch>,
    /// Why a human must look (empty: nothing).
    pub attention: Vec<String>,
}

/// An AMI and what its tags say.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Ami {
    pub ami: String,
    /// `COMPONENT_VERSION` (None: no such tag, or EC2 does not show the AMI).
    pub version: Option<String>,
    /// `AMI_VERSION`.
    pub ami_version: Option<String>,
    /// The account that shared it, when nothing here says its version (an AMI's tags stay
    /// in the account that owns it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_from: Option<String>,
}

/// Members running one AMI.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Running {
    #[serde(flatten)]
    pub ami: Ami,
    pub members: usize,
}

/// The group's launch spec and its AMI.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Launch {
    /// `lt-…:VERSION` (`(mixed)` for a mixed-instances policy's), `lc:NAME`, or empty.
    pub spec: String,
    /// None when it could not be read.
    pub ami: Option<Ami>,
}

/// The group's lock (`gears:deploy-lock`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Lock {
    /// Held by a run, renewed `age_secs` ago; `live` while within the stale limit.
    Held {
        run: String,
        host: String,
        ci_job: Option<String>,
        renewed: String,
        age_secs: u64,
        live: bool,
    },
    /// The line is stopped after a failed rollback, until a human unlocks it.
    Stop { run: String, reason: String },
}

/// A deploy recorded on the group that has not finished.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unfinished {
    pub run: String,
    pub target: Ami,
    /// Members on the target AMI, of the desired capacity it had.
    pub on_target: usize,
    pub of: i32,
    /// Its run's lock is alive: the deploy is running now.
    pub running: bool,
    /// The command that continues it, and the one that undoes it.
    pub continue_with: String,
    pub abort_with: String,
}

/// An old group kept out of traffic (`gears:retired`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retired {
    pub at: Option<String>,
    pub until: Option<String>,
    /// Past its `until`.
    pub overdue: bool,
}

/// A blue/green switch in flight (`gears:bluegreen`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Switch {
    pub run: Option<String>,
    pub ami: Option<String>,
    /// The group that takes the traffic.
    pub new: Option<String>,
}

impl Status {
    /// 7 when something needs a human; else 5 when a region could not be read; else 0.
    pub fn decide(&mut self) {
        self.needs_human = self.groups.iter().any(|g| !g.attention.is_empty());
        let mut exit = Exit::Success;
        if !self.errors.is_empty() {
            exit = Exit::Cloud;
        }
        if self.needs_human {
            exit = exit.most_severe(Exit::NeedsHuman);
        }
        self.exit = exit.code();
    }

    /// The exit code of this look.
    pub fn exit_code(&self) -> Exit {
        Exit::ALL
            .into_iter()
            .find(|e| e.code() == self.exit)
            .unwrap_or(Exit::NeedsHuman)
    }
}

/// `gears status`: one look, shown; with `--watch` on a live screen, a look every `poll` until
/// interrupted (the last look's exit is then the signal's, 130/143).
pub async fn run<C: Cloud>(
    settings: &StatusSettings,
    cancel: &Cancel,
    cloud: &C,
    screen: &dyn crate::ui::Screen,
) -> Result<Status, Error> {
    let component = crate::component::load(&settings.component_file)?;
    let regions = if settings.regions.is_empty() {
        component.regions.iter().map(|r| r.0.clone()).collect()
    } else {
        settings.regions.clone()
    };
    let known = collect::Known::default();
    loop {
        let look =
            collect::look(settings, &component.name, &regions, cancel, cloud, &known).await?;
        let text = if settings.json {
            render::json(&look)
        } else {
            render::text(&look, settings)
        };
        screen.show(&text);
        if !(settings.watch && screen.live()) {
            return Ok(look);
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.poll) => {}
            _ = cancel.cancelled() => {}
        }
        if let Some(sig) = cancel.signal() {
            return Err(Error::Interrupted(sig));
        }
    }
}
