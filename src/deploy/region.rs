//! The groups of one region, `--parallel` at a time, sharing one look at the region per
//! poll ([`RegionLooks`]).
use crate::aws::{Fleet, Group, LockTable};
use crate::cancel::Cancel;
use crate::deploy::group::deploy_group;
use crate::deploy::lease::Leases;
use crate::deploy::start::TemplateReads;
use crate::deploy::{DeploySettings, GroupOutcome, GroupResult, SmokeGate};
use crate::error::Error;
use std::collections::BTreeMap;
use tokio::time::Instant;

/// What every region's deploy shares.
pub(super) struct RegionCtx<'a> {
    pub(super) cleanup: &'a crate::cancel::Cleanup,
    pub(super) ui: &'a dyn crate::ui::Reporter,
    pub(super) smoke: Option<&'a SmokeGate>,
    pub(super) settings: &'a DeploySettings,
    pub(super) cancel: &'a Cancel,
    pub(super) want: &'a BTreeMap<String, String>,
    pub(super) instance_tags: &'a BTreeMap<String, String>,
    pub(super) run: &'a str,
    /// The first group that rolled back or failed, anywhere: groups not started yet are skipped.
    pub(super) failed: std::sync::Mutex<Option<String>>,
    /// Who holds the locks: host and CI job.
    pub(super) who: String,
    /// What this run read of launch templates, once each ([`TemplateReads`]).
    pub(super) versions: TemplateReads,
}

/// What a look saw, and when it began.
type Seen<T> = (Instant, T);

/// The region's last look at the groups it rolls: one DescribeAutoScalingGroups (in chunks of
/// the API's 50 names) serves every group whose next look may be that recent, so calls per
/// poll stay flat as groups are added. Concurrent askers wait for one answer.
pub struct RegionLooks {
    names: std::sync::Mutex<Vec<String>>,
    last: tokio::sync::Mutex<Option<(Instant, Vec<Group>)>>,
    /// A copy of the last finished look, read without waiting for one being taken (the lease
    /// renewal reads it).
    pub(super) seen: std::sync::Mutex<Option<(Instant, Vec<Group>)>>,
    /// Target group ARN → its last DescribeTargetHealth, shared the same way.
    targets: tokio::sync::Mutex<BTreeMap<String, Seen<BTreeMap<String, String>>>>,
    /// The region's tag locks, renewed together.
    pub(super) leases: Leases,
}

impl RegionLooks {
    pub fn new(names: Vec<String>) -> Self {
        RegionLooks {
            names: std::sync::Mutex::new(names),
            last: Default::default(),
            seen: Default::default(),
            targets: Default::default(),
            leases: Default::default(),
        }
    }

    /// The groups the region rolls.
    pub fn names(&self) -> Vec<String> {
        self.names.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A group the region's looks see from now on (a blue/green deploy's new group): the next
    /// look is a new one.
    pub async fn add(&self, name: &str) {
        {
            let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
            if names.iter().any(|n| n == name) {
                return;
            }
            names.push(name.to_owned());
        }
        *self.last.lock().await = None;
    }

    /// The groups as a look begun after `since` saw them: the last look when it is that
    /// recent, else a new one from `fetch`.
    pub async fn groups<Fut>(
        &self,
        since: Instant,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<Vec<Group>, Error>
    where
        Fut: std::future::Future<Output = Result<Vec<Group>, Error>>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, groups)) = &*last {
            if *at > since {
                return Ok(groups.clone());
            }
        }
        let at = Instant::now();
        let groups = fetch().await?;
        *last = Some((at, groups.clone()));
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((at, groups.clone()));
        Ok(groups)
    }
}

impl RegionLooks {
    /// A traffic source's health (instance id → state) as a look begun after `since` saw it:
    /// the region's last when it is that recent (groups sharing a target group or a Classic
    /// load balancer share the call), else a new one from `fetch`. `arn` is a target group's
    /// ARN, or `classic:` and a load balancer's name.
    pub async fn target_health<Fut>(
        &self,
        arn: &str,
        since: Instant,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<BTreeMap<String, String>, Error>
    where
        Fut: std::future::Future<Output = Result<BTreeMap<String, String>, Error>>,
    {
        let mut targets = self.targets.lock().await;
        if let Some((at, health)) = targets.get(arn) {
            if *at > since {
                return Ok(health.clone());
            }
        }
        let at = Instant::now();
        let health = fetch().await?;
        targets.insert(arn.to_owned(), (at, health.clone()));
        Ok(health)
    }
}

/// The groups of one region, `--parallel` at a time: what each did, and the errors of those
/// that stopped with one.
pub(super) async fn roll_region<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    fleet: &F,
    table: Option<&L>,
    region: &str,
    ami: &str,
    groups: Vec<Group>,
) -> (Vec<GroupOutcome>, Vec<Error>) {
    let (settings, cancel) = (ctx.settings, ctx.cancel);
    let looks = RegionLooks::new(groups.iter().map(|g| g.name.clone()).collect());
    let looks = &looks;
    let deploying = !(settings.plan_only || settings.unlock || settings.abort);
    // Once one group fails its gate (or errs), the groups not started yet are skipped: one
    // AMI, one verdict. Unordered, so a slow group does not hold the others' places.
    use futures::StreamExt;
    let groups = futures::stream::iter(groups.into_iter().enumerate().map(|(i, g)| async move {
        if let Some(sig) = cancel.signal() {
            return (i, Err(Error::Interrupted(sig)));
        }
        let failed = ctx.failed.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let (true, Some(why)) = (deploying, failed) {
            let o = GroupOutcome::new(region, &g.name, String::new(), ami)
                .with(GroupResult::Skipped, format!("not started: {why}"));
            return (i, Ok(o));
        }
        let name = g.name.clone();
        let r = deploy_group(ctx, fleet, table, looks, region, ami, g).await;
        let failed = match &r {
            Ok(o) if o.result.failed() => Some(format!("{name} in {region}: {}", o.result)),
            Ok(_) => None,
            Err(_) => Some(format!("{name} in {region} failed")),
        };
        if let (true, Some(f)) = (deploying, failed) {
            ctx.failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(f);
        }
        (i, r)
    }))
    .buffer_unordered(settings.parallel.max(1))
    .collect::<Vec<(usize, Result<GroupOutcome, Error>)>>();
    // Every lock the region's groups hold, renewed together beside them.
    let renewals = looks
        .leases
        .keep(fleet, &looks.seen, (ctx.run, &ctx.who), settings.lock_stale);
    let mut results = tokio::select! {
        r = groups => r,
        never = renewals => match never {},
    };
    results.sort_by_key(|(i, _)| *i);
    let mut outcomes = Vec::new();
    let mut errors = Vec::new();
    for (_, r) in results {
        match r {
            Ok(o) => outcomes.push(o),
            Err(e) => errors.push(e),
        }
    }
    (outcomes, errors)
}
