//! One group's deploy: what it holds while it runs, and the calls every step shares.
use crate::aws::{CloudError, Fleet, Group, LockTable};
use crate::cancel::Cancel;
use crate::deploy::region::{RegionCtx, RegionLooks};
use crate::deploy::{DeploySettings, SmokeGate};
use crate::error::Error;
use crate::wait::patiently;
use std::collections::BTreeMap;
use tokio::time::Instant;

/// Why a rollback did not finish.
pub(super) enum Undone {
    /// It failed: the state it left, in words.
    Failed(String),
    /// Another run took the lock over (this one was presumed dead): that run owns the group.
    Lost(Error),
}

/// How a roll of one group ended.
pub(super) enum Rolled {
    Done(u32),
    /// The gate failed: why.
    GateFailed(String, u32),
}

/// One group's deploy.
pub(super) struct Roll<'a, F: Fleet, L: LockTable> {
    pub(super) fleet: &'a F,
    /// The lock table (`--lock-table`) and this group's key in it.
    pub(super) table: Option<&'a L>,
    pub(super) lock_key: String,
    pub(super) name: String,
    pub(super) ami: String,
    pub(super) run: String,
    pub(super) settings: &'a DeploySettings,
    pub(super) cancel: &'a Cancel,
    /// Tags the group puts on instances it launches.
    pub(super) instance_tags: &'a BTreeMap<String, String>,
    /// The component's smoke tests, run at each new instance before it counts as healthy.
    pub(super) smoke: Option<&'a SmokeGate>,
    /// Progress: a line per step, per region.
    pub(super) ui: &'a dyn crate::ui::Reporter,
    /// The region's shared looks at its groups and target groups.
    pub(super) looks: &'a RegionLooks,
    /// What EC2 said of members already (their AMI and addresses do not change).
    pub(super) known: std::sync::Mutex<BTreeMap<String, crate::aws::MemberInfo>>,
    /// The run's resolved template versions ([`RegionCtx::versions`]).
    pub(super) versions: &'a crate::deploy::start::TemplateReads,
    /// The instance refresh this run started, if any.
    pub(super) refresh_id: std::sync::Mutex<Option<String>>,
    /// Who holds the lock: host and CI job.
    pub(super) who: &'a str,
    /// The group's lock tag is this run's (read back after writing it): only then does the
    /// heartbeat write it. Shared with the run's undo of the group, so a
    /// rollback keeps the lock it took renewed.
    pub(super) tag_ours: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<'a, F: Fleet, L: LockTable> Roll<'a, F, L> {
    /// Group `name`'s deploy of `ami` in this run, on `cancel`.
    pub(super) fn new(
        ctx: &'a RegionCtx<'a>,
        fleet: &'a F,
        table: Option<&'a L>,
        looks: &'a RegionLooks,
        name: &str,
        ami: &str,
        cancel: &'a Cancel,
    ) -> Self {
        Roll {
            fleet,
            table,
            lock_key: format!("{}/{name}", fleet.region()),
            name: name.to_owned(),
            ami: ami.to_owned(),
            run: ctx.run.to_owned(),
            settings: ctx.settings,
            cancel,
            instance_tags: ctx.instance_tags,
            smoke: ctx.smoke,
            ui: ctx.ui,
            looks,
            known: Default::default(),
            versions: &ctx.versions,
            refresh_id: Default::default(),
            who: &ctx.who,
            tag_ours: Default::default(),
        }
    }

    /// A progress line for this group.
    pub(super) fn say(&self, text: &str) {
        self.ui
            .progress(Some(self.fleet.region()), &format!("{}: {text}", self.name));
    }

    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.settings.gate_timeout
    }

    /// The group as it is now (a look begun after this call).
    pub(super) async fn group(&self) -> Result<Group, Error> {
        self.group_seen_since(Instant::now()).await
    }

    /// The group as a look begun at or after `since` saw it: the region's last look serves
    /// when it is that recent (one DescribeAutoScalingGroups for every group the region rolls).
    pub(super) async fn group_seen_since(&self, since: Instant) -> Result<Group, Error> {
        let d = self.deadline();
        let none = BTreeMap::new();
        let names = self.looks.names();
        let groups = self
            .looks
            .groups(since, || {
                patiently(self.cancel, d, || self.fleet.groups(&none, &names))
            })
            .await?;
        groups
            .into_iter()
            .find(|g| g.name == self.name)
            .ok_or_else(|| {
                Error::from(CloudError::api(
                    "DescribeAutoScalingGroups",
                    self.fleet.region(),
                    Some("ValidationError"),
                    format!("group {} disappeared", self.name),
                ))
            })
    }

    /// What a deployed group says: every member in service on the AMI, and the members gears
    /// left alone (Standby, detaching, ...), which may still run the old one.
    pub(super) async fn deployed_detail(&self) -> String {
        let ami = &self.ami;
        let aside: Vec<String> = match self.group().await {
            Ok(now) => now
                .members
                .iter()
                .filter(|m| !m.counts())
                .map(|m| format!("{} ({})", m.id, m.lifecycle))
                .collect(),
            Err(_) => Vec::new(),
        };
        if aside.is_empty() {
            format!("every instance runs {ami}")
        } else {
            format!(
                "every instance in service runs {ami}; left alone, maybe on the old AMI: {}",
                aside.join(", ")
            )
        }
    }
}

/// The group with only the members that count toward its capacity.
pub(super) fn counting(g: Group) -> Group {
    Group {
        members: g.members.into_iter().filter(|m| m.counts()).collect(),
        ..g
    }
}
