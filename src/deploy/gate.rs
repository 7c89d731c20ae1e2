//! The health gate: group health, target health, the smoke tests at each new instance, and
//! what holds a batch (launch lifecycle hooks).
use crate::aws::{Fleet, Group, LockTable};
use crate::cancel::Cancel;
use crate::deploy::roll::Roll;
use crate::deploy::{plan, DeploySettings};
use crate::error::Error;
use crate::wait::patiently;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// The smoke tests of the health gate.
#[derive(Debug, Clone)]
pub struct SmokeGate {
    pub file: crate::smoke::spec::SmokeFile,
    pub port: Option<u16>,
    pub address: crate::component::file::TestAddress,
    /// Where the tests go instead of each instance's address (emulators, tunnels).
    pub target: Option<crate::smoke::target::Target>,
}

impl SmokeGate {
    /// The component's smoke file, read and checked before anything changes.
    pub async fn load(
        file: &std::path::Path,
        component: &crate::component::Component,
        settings: &DeploySettings,
        cancel: &Cancel,
    ) -> Result<SmokeGate, Error> {
        let parsed = crate::smoke::load_for_instances(file, component.test.port, cancel).await?;
        Ok(SmokeGate {
            file: parsed,
            port: component.test.port,
            address: component.test.address,
            target: settings.smoke_target.clone(),
        })
    }
}

/// What the gate remembers between looks: new instances that passed the smoke tests, and the
/// last smoke failure.
#[derive(Debug, Default)]
pub(super) struct GateMemory {
    smoked: std::collections::BTreeSet<String>,
    pub(super) smoke_failure: Option<String>,
}

impl<F: Fleet, L: LockTable> Roll<'_, F, L> {
    /// One look at the group for the planner: each member counting toward capacity, whether it
    /// runs the new AMI (when EC2 knows it) and whether it passes the gate (in service, healthy
    /// in every traffic source, and past the smoke tests once: the deploy's gate, `None` for a
    /// rollback's look, which runs no smoke tests).
    /// Target health comes from a look begun after `since` (shared with the region's other
    /// groups when that recent).
    pub(super) async fn look(
        &self,
        g: &Group,
        since: Instant,
        gate: Option<&mut GateMemory>,
    ) -> Result<plan::Look, Error> {
        let infos = self.members(g).await?;
        let mut health = self.health(g, since).await?;
        let is_new = |id: &String| infos.get(id).map(|m| m.image == self.ami);
        if let (Some(smoke), Some(gate)) = (self.smoke, gate) {
            for m in &g.members {
                let due = is_new(&m.id) == Some(true)
                    && health.get(&m.id) == Some(&true)
                    && !gate.smoked.contains(&m.id);
                if due {
                    match self.smoke_at(smoke, &m.id, infos.get(&m.id)).await? {
                        None => {
                            gate.smoked.insert(m.id.clone());
                        }
                        Some(why) => {
                            gate.smoke_failure = Some(why);
                            health.insert(m.id.clone(), false);
                        }
                    }
                }
            }
        }
        Ok(plan::Look {
            desired: g.desired,
            members: g
                .members
                .iter()
                .map(|m| plan::Seen {
                    id: m.id.clone(),
                    new: is_new(&m.id),
                    healthy: health.get(&m.id) == Some(&true),
                })
                .collect(),
        })
    }

    /// Runs the smoke tests once at a new instance: `None` when they pass, else why not.
    async fn smoke_at(
        &self,
        gate: &SmokeGate,
        id: &str,
        info: Option<&crate::aws::MemberInfo>,
    ) -> Result<Option<String>, Error> {
        use crate::component::file::TestAddress;
        let ip = info.and_then(|i| match gate.address {
            TestAddress::PrivateIp => i.private_ip.clone(),
            TestAddress::PublicIp => i.public_ip.clone(),
        });
        let target = match (&gate.target, ip) {
            (Some(t), _) => t.clone(),
            (None, Some(ip)) => crate::smoke::target::Target {
                host: ip,
                port: gate.port,
                scheme: None,
            },
            (None, None) => return Ok(Some(format!("{id} has no address to test"))),
        };
        let opts = crate::smoke::runner::RunOptions {
            target,
            jobs: 4,
            wait: None,
            cancel: self.cancel.clone(),
        };
        let results = crate::smoke::runner::run(&gate.file, &opts, |_| {}).await?;

        Ok(results.iter().find(|r| !r.passed()).map(|r| {
            let why = r
                .error
                .clone()
                .or_else(|| {
                    r.checks
                        .iter()
                        .find(|c| !c.passed)
                        .map(|c| format!("{}: {}", c.check, c.message))
                })
                .unwrap_or_default();
            format!("smoke test `{}` failed at {id}: {why}", r.name)
        }))
    }
    pub(super) async fn health(
        &self,
        g: &Group,
        since: Instant,
    ) -> Result<BTreeMap<String, bool>, Error> {
        let d = self.deadline();
        // Every traffic source the group has: each target group's targets `healthy`, each
        // Classic load balancer's instances `InService` (during the health-check grace period
        // Auto Scaling calls new instances Healthy while the load balancer does not).
        let mut sources: Vec<(BTreeMap<String, String>, &str)> = Vec::new();
        for arn in &g.target_groups {
            let fetch = || patiently(self.cancel, d, || self.fleet.target_health(arn));
            sources.push((
                self.looks.target_health(arn, since, fetch).await?,
                "healthy",
            ));
        }
        for lb in &g.load_balancers {
            let fetch = || patiently(self.cancel, d, || self.fleet.classic_health(lb));
            let key = format!("classic:{lb}");
            sources.push((
                self.looks.target_health(&key, since, fetch).await?,
                "InService",
            ));
        }
        Ok(g.members
            .iter()
            .map(|m| {
                let ok = m.in_service()
                    && sources
                        .iter()
                        .all(|(t, good)| t.get(&m.id).map(String::as_str) == Some(*good));
                (m.id.clone(), ok)
            })
            .collect())
    }

    /// What EC2 says of the group's members. An instance's AMI never changes, and its addresses
    /// are fixed once it has them: only members not described yet (or still without the address
    /// the smoke tests need) are asked about, so a poll of a settled group describes nothing and
    /// a poll during a batch describes only the batch.
    pub(super) async fn members(
        &self,
        g: &Group,
    ) -> Result<BTreeMap<String, crate::aws::MemberInfo>, Error> {
        use crate::component::file::TestAddress;
        let public = self
            .smoke
            .is_some_and(|s| s.address == TestAddress::PublicIp && s.target.is_none());
        let ask: Vec<String> = {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            g.members
                .iter()
                .filter(|m| {
                    known
                        .get(&m.id)
                        .is_none_or(|i| i.private_ip.is_none() || (public && i.image == self.ami))
                })
                .map(|m| m.id.clone())
                .collect()
        };
        let got = if ask.is_empty() {
            BTreeMap::new()
        } else {
            let d = self.deadline();
            patiently(self.cancel, d, || self.fleet.describe_members(&ask)).await?
        };
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.extend(got);
        known.retain(|id, _| g.members.iter().any(|m| &m.id == id));
        Ok(known.clone())
    }

    pub(super) async fn images(&self, g: &Group) -> Result<BTreeMap<String, String>, Error> {
        Ok(self
            .members(g)
            .await?
            .into_iter()
            .map(|(id, m)| (id, m.image))
            .collect())
    }

    /// The group's launch lifecycle hooks, read once; one that may hold a new instance longer
    /// than the gate waits is said at the start. Not being allowed to read them is no reason to
    /// stop: the gate still waits for InService.
    pub(super) async fn launch_hooks(&self) -> Result<Vec<crate::aws::LaunchHook>, Error> {
        let d = self.deadline();
        let hooks = match patiently(self.cancel, d, || self.fleet.launch_hooks(&self.name)).await {
            Ok(h) => h,
            Err(e @ Error::Interrupted(_)) => return Err(e),
            Err(e) => {
                let e = e.render();
                self.say(&format!(
                    "lifecycle hooks not read ({}); going on",
                    e.lines()
                        .next()
                        .unwrap_or_default()
                        .trim_start_matches("error: ")
                ));
                Vec::new()
            }
        };
        for h in &hooks {
            if Duration::from_secs(h.heartbeat.into()) > self.settings.gate_timeout {
                self.say(&format!(
                    "launch lifecycle hook {} may hold each new instance in Pending:Wait for up to {} (then {}), longer than --gate-timeout {}: a batch it holds that long rolls back",
                    h.name,
                    crate::text::human_duration(Duration::from_secs(h.heartbeat.into())),
                    h.default_result,
                    crate::text::human_duration(self.settings.gate_timeout)
                ));
            }
        }
        Ok(hooks)
    }
}

/// `; i-a, i-b held in Pending:Wait by launch lifecycle hook NAME`, or nothing when no member
/// waits on a hook.
pub(super) fn held_by_hooks(g: &Group, hooks: &[crate::aws::LaunchHook]) -> String {
    let held: Vec<&str> = g
        .members
        .iter()
        .filter(|m| m.lifecycle == "Pending:Wait")
        .map(|m| m.id.as_str())
        .collect();
    if held.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = hooks.iter().map(|h| h.name.as_str()).collect();
    format!(
        "; {} held in Pending:Wait by {}",
        held.join(", "),
        match names.len() {
            0 => "a launch lifecycle hook".to_owned(),
            1 => format!("launch lifecycle hook {}", names[0]),
            _ => format!("launch lifecycle hooks {}", names.join(", ")),
        }
    )
}

impl<F: Fleet, L: LockTable> Roll<'_, F, L> {
    /// The first of the deploy's CloudWatch alarms in `ALARM` (from a look begun after
    /// `since`, one DescribeAlarms per region per poll for all of them, shared by the region's
    /// groups), in words with the alarm's reason. `INSUFFICIENT_DATA` is not a failure.
    pub(super) async fn alarm_fired(&self, since: Instant) -> Result<Option<String>, Error> {
        let names = &self.settings.alarms;
        if names.is_empty() {
            return Ok(None);
        }
        let d = self.deadline();
        let fetch = || async {
            let found = patiently(self.cancel, d, || self.fleet.alarms(names)).await?;
            Ok(found
                .into_iter()
                .map(|(n, (state, reason))| (n, format!("{state}\t{reason}")))
                .collect())
        };
        let states = self.looks.target_health("alarms:", since, fetch).await?;
        Ok(names.iter().find_map(|n| {
            let (state, reason) = states.get(n)?.split_once('\t')?;
            (state == "ALARM").then(|| format!("alarm {n} is in ALARM: {reason}"))
        }))
    }
}

/// What the gate of `g` looks at, in words: its traffic sources and smoke tests, or that it
/// has neither (then Auto Scaling's health alone decides, which a new instance passes during
/// its health-check grace period whatever it serves).
pub fn gated_on(g: &Group, smoke: bool, alarms: &[String]) -> String {
    let mut on = vec!["Auto Scaling health".to_owned()];
    if !g.target_groups.is_empty() {
        on.push(format!("{} target group(s)", g.target_groups.len()));
    }
    if !g.load_balancers.is_empty() {
        on.push(format!(
            "Classic load balancer(s) {}",
            g.load_balancers.join(", ")
        ));
    }
    if smoke {
        on.push("the smoke tests".to_owned());
    }
    if !alarms.is_empty() {
        on.push(format!("alarm(s) {}", alarms.join(", ")));
    }
    if on.len() == 1 {
        "gated on Auto Scaling health only: the group has no load balancer or target group and the component no smoke tests".to_owned()
    } else {
        format!("gated on {}", on.join(", "))
    }
}
