//! What `gears deploy` is asked to do: batch sizes, strategies, the settings.
use super::*;

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

/// `P%` or `P`, 0 to 100.
pub fn parse_percent(s: &str) -> Result<u32, String> {
    match s.strip_suffix('%').unwrap_or(s).trim().parse::<u32>() {
        Ok(p @ 0..=100) => Ok(p),
        _ => Err(format!("`{s}`: expected a share from 0% to 100%")),
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
    /// How many groups of one region roll at once.
    pub parallel: usize,
    /// The share of the group's desired capacity that stays healthy and in service during
    /// the roll (percent; 100: every batch launches before it retires).
    pub min_healthy: u32,
    pub plan_only: bool,
    pub abort: bool,
    pub unlock: bool,
    pub endpoint_flag: Option<String>,
}
