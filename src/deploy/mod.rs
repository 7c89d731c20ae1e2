//! `gears deploy`: roll a component's Auto Scaling groups onto a new AMI, batch by batch, never
//! below the healthy capacity the group had, gated by group and target-group health, with
//! rollback when a gate fails.
//!
//! Each group's progress lives in tags on the group itself (`gears:deploy`: the run, the AMI,
//! the original capacity, template version and suspended processes; `gears:deploy-lock`: who
//! holds it, refreshed every poll), so a deploy killed with `kill -9` continues when the same
//! command runs again, and `--abort` undoes it. A poll costs the same whatever the group's size:
//! one DescribeAutoScalingGroups, at most one DescribeInstances (for members not seen yet), one
//! DescribeTargetHealth per target group (plus the lock refresh).

use crate::aws::{Cloud, CloudError, Fleet, Group, LockTable, TemplateRef};
use crate::cancel::Cancel;
use crate::error::{Error, InputError};
use crate::settings::AmiChoice;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// The tag that holds a group's deploy state.
pub const STATE_TAG: &str = "gears:deploy";
/// The tag that holds the instance tags a group had before the deploy (for rollback).
pub const TAGS_TAG: &str = "gears:deploy-tags";
/// The tag that holds a group's lock.
pub const LOCK_TAG: &str = "gears:deploy-lock";
/// Processes suspended while a deploy runs (what was suspended before stays suspended).
pub const SUSPEND: [&str; 3] = ["AZRebalance", "AlarmNotification", "ScheduledActions"];
/// How long after writing its lock tag a deploy looks again before it counts the lock as its
/// own (a racing writer's tag lands within it).
pub const LOCK_SETTLE: Duration = Duration::from_secs(2);
/// A lock not refreshed for this long belongs to a deploy that is gone.
pub const LOCK_STALE: Duration = Duration::from_secs(60);

/// How long a lock may go without renewal before its run counts as gone: `GEARS_LOCK_STALE`
/// seconds (at least 1), else [`LOCK_STALE`]. Shorter only for tests and emulators: the
/// heartbeat renews every quarter of it, and hosts' clocks must agree within the rest.
pub fn lock_stale() -> Duration {
    std::env::var("GEARS_LOCK_STALE")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| (1..=86_400).contains(s))
        .map(Duration::from_secs)
        .unwrap_or(LOCK_STALE)
}

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

/// What happened to one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupOutcome {
    pub region: String,
    pub group: String,
    pub from_ami: String,
    pub to_ami: String,
    /// `planned`, `deployed`, `rolled back`, `rollback failed`, `unlocked`, `nothing to do`.
    pub result: String,
    pub detail: String,
    pub batches: u32,
}

/// What `gears deploy` did, group by group.
#[derive(Debug, Clone, Serialize)]
pub struct Deployed {
    pub groups: Vec<GroupOutcome>,
}

impl Deployed {
    /// 0 all deployed (or planned); 6 a group rolled back cleanly; 7 a rollback failed.
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        self.groups.iter().fold(Exit::Success, |e, g| {
            e.most_severe(match g.result.as_str() {
                "rolled back" => Exit::RolledBack,
                "rollback failed" => Exit::NeedsHuman,
                _ => Exit::Success,
            })
        })
    }
}

/// A group's deploy state, kept in its `gears:deploy` tag (at most 256 characters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub run: String,
    pub ami: String,
    /// The template id.
    pub lt: String,
    /// The version the group launched from before.
    pub from: String,
    /// The version with the new AMI.
    pub to: String,
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    /// The processes gears suspended (and will resume).
    pub susp: Vec<String>,
    /// `from` and `to` are launch configuration names, not template versions.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lc: bool,
    /// The template is a mixed-instances policy's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mx: bool,
    /// The version number `from` meant when the deploy started (the new version's base).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fromn: String,
}

/// The wall clock, advanced by tokio's clock from the first reading: the same as
/// `chrono::Utc::now()` in a real run (and immune to a wall-clock step during it), and on a
/// paused test clock it moves with the virtual time, so lock ages can be tested.
fn wall_now() -> chrono::DateTime<chrono::Utc> {
    static ANCHOR: std::sync::OnceLock<(chrono::DateTime<chrono::Utc>, std::time::Instant)> =
        std::sync::OnceLock::new();
    let (wall, at) = ANCHOR.get_or_init(|| (chrono::Utc::now(), Instant::now().into_std()));
    let since = Instant::now().into_std().saturating_duration_since(*at);
    *wall + chrono::Duration::from_std(since).unwrap_or_default()
}

/// Who holds a lock: the host, and the CI job when there is one (each without spaces, so the
/// value splits into run, who and time).
fn holder(ctx: &crate::context::RunContext) -> String {
    let word = |s: &str| -> String {
        s.trim()
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .take(80)
            .collect()
    };
    let host = ctx
        .var("HOSTNAME")
        .map(str::to_owned)
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| word(&h))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    match ctx.ci_job() {
        Some(job) => format!("{host} {}", word(&job)),
        None => host,
    }
}

fn lock_value(run: &str, who: &str) -> String {
    format!("{run} {who} {}", wall_now().format("%Y-%m-%dT%H:%M:%SZ"))
}

/// The holder's run id and how long ago it refreshed the lock.
fn lock_age(value: &str) -> Option<(String, Duration)> {
    let mut parts = value.split(' ');
    let run = parts.next()?.to_owned();
    let since = parts.next_back()?;
    let t = chrono::DateTime::parse_from_rfc3339(since).ok()?;
    let age = wall_now()
        .signed_duration_since(t.with_timezone(&chrono::Utc))
        .to_std()
        .unwrap_or_default();
    Some((run, age))
}

/// Why a rollback did not finish.
enum Undone {
    /// It failed: the state it left, in words.
    Failed(String),
    /// Another run took the lock over (this one was presumed dead): that run owns the group.
    Lost(Error),
}

/// How a roll of one group ended.
enum Rolled {
    Done(u32),
    /// The gate failed: why.
    GateFailed(String, u32),
}

/// Retries `f` while AWS throttles (or errs transiently), with backoff and jitter, until
/// `deadline`; gives the last error otherwise.
async fn patiently<T, F, Fut>(cancel: &Cancel, deadline: Instant, mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CloudError>>,
{
    let mut pause = Duration::from_millis(500);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && Instant::now() + pause < deadline => {
                let jitter = pause.mul_f64(0.5 * crate::random::unit());
                tokio::select! {
                    _ = tokio::time::sleep(pause - jitter) => {}
                    _ = cancel.cancelled() => return Err(Error::Interrupted(cancel.signal().unwrap_or(crate::cancel::Signal::Int))),
                }
                pause = (pause * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// One group's deploy.
struct Roll<'a, F: Fleet, L: LockTable> {
    fleet: &'a F,
    /// The lock table (`--lock-table`) and this group's key in it, renewed every poll.
    table: Option<&'a L>,
    lock_key: String,
    name: String,
    ami: String,
    run: String,
    settings: &'a DeploySettings,
    cancel: &'a Cancel,
    /// Tags the group puts on instances it launches.
    instance_tags: BTreeMap<String, String>,
    /// The component's smoke tests, run at each new instance before it counts as healthy.
    smoke: Option<&'a SmokeGate>,
    /// Progress: a line per step, per region.
    ui: &'a std::sync::Mutex<crate::ui::StageProgress>,
    /// What EC2 said of members already (their AMI and addresses do not change).
    known: std::sync::Mutex<BTreeMap<String, crate::aws::MemberInfo>>,
    /// The run's resolved template versions ([`RegionCtx::versions`]).
    versions: &'a std::sync::Mutex<BTreeMap<String, String>>,
    /// The instance refresh this run started, if any.
    refresh_id: std::sync::Mutex<Option<String>>,
    /// Who holds the lock: host and CI job.
    who: &'a str,
    /// The group's lock tag is this run's (read back after writing it): only then does the
    /// heartbeat write it.
    tag_ours: std::sync::atomic::AtomicBool,
}

/// The smoke tests of the health gate.
#[derive(Debug, Clone)]
pub struct SmokeGate {
    pub file: crate::smoke::spec::SmokeFile,
    pub port: Option<u16>,
    pub address: crate::component::file::TestAddress,
    /// Where the tests go instead of each instance's address (emulators, tunnels).
    pub target: Option<crate::smoke::target::Target>,
}

impl<F: Fleet, L: LockTable> Roll<'_, F, L> {
    /// A progress line for this group.
    fn say(&self, text: &str) {
        let region = self.fleet.region().to_owned();
        self.ui
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .line(Some(&region), &format!("{}: {text}", self.name));
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

    fn deadline(&self) -> Instant {
        Instant::now() + self.settings.gate_timeout
    }

    async fn group(&self) -> Result<Group, Error> {
        let names = [self.name.clone()];
        let none = BTreeMap::new();
        let d = self.deadline();
        let mut g = patiently(self.cancel, d, || self.fleet.groups(&none, &names)).await?;
        g.pop().ok_or_else(|| {
            Error::from(CloudError::api(
                "DescribeAutoScalingGroups",
                self.fleet.region(),
                Some("ValidationError"),
                format!("group {} disappeared", self.name),
            ))
        })
    }

    /// Takes the lock (or takes over a stale one of the same AMI) and writes the state, or
    /// reads the state of an interrupted deploy of this AMI.
    async fn start(&self, g: &Group) -> Result<State, Error> {
        let d = self.deadline();
        // Refused before the lock is written: nothing changes.
        if !g.override_templates.is_empty() && !g.tags.contains_key(STATE_TAG) {
            return Err(InputError::whole_file(
                format!("group {}", self.name),
                format!(
                    "the mixed-instances policy gives {} a launch template of its own (an AMI of its own): gears deploys one AMI per group",
                    g.override_templates.join(", ")
                ),
            )
            .with_hint("give the overrides the group's launch template, or deploy each template's AMI separately")
            .into());
        }
        let held = g.tags.get(LOCK_TAG).cloned();
        let state: Option<State> = g
            .tags
            .get(STATE_TAG)
            .and_then(|t| serde_json::from_str(t).ok());
        if let Some(lock) = &held {
            let (holder, age) = lock_age(lock).unwrap_or((lock.clone(), Duration::ZERO));
            let same_ami = state.as_ref().is_some_and(|s| s.ami == self.ami);
            if lock.starts_with("STOP") {
                return Err(refused(
                    &self.name,
                    format!("the line is stopped: {lock}"),
                    "a rollback failed here: look at the group, then `gears deploy --unlock`",
                ));
            }
            // A stale lock is taken over when it is of this AMI's deploy, or when no deploy is
            // recorded at all (its run was killed before it changed anything).
            let nothing_recorded = state.is_none();
            if !((same_ami || nothing_recorded) && age >= self.settings.lock_stale)
                && holder != self.run
            {
                return Err(refused(
                    &self.name,
                    format!(
                        "another deploy holds the lock: run {holder} ({lock}), refreshed {} ago",
                        crate::ui::human_duration(age)
                    ),
                    if same_ami {
                        "it is deploying the same AMI; if it was killed, run this again in a minute to continue it"
                    } else {
                        "wait for it, or if it was killed, `gears deploy --abort` with its AMI undoes it"
                    },
                ));
            }
        }
        let mine = lock_value(&self.run, self.who);
        let lock = BTreeMap::from([(LOCK_TAG.to_owned(), mine.clone())]);
        patiently(self.cancel, d, || {
            self.fleet.put_tags(&self.name, &lock, false)
        })
        .await?;
        // Read back, twice: a racing writer's value wins over ours, and then we step back. A
        // tag is no compare-and-swap: a writer that read the group before ours landed writes
        // over it after our first look, so the second look, a moment later, is the one that
        // counts (`--lock-table` is the true compare-and-swap).
        for settle in [Duration::ZERO, LOCK_SETTLE] {
            if !settle.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(settle) => {}
                    _ = self.cancel.cancelled() => return Err(Error::Interrupted(self.cancel.signal().unwrap_or(crate::cancel::Signal::Int))),
                }
            }
            let back = self.group().await?;
            if back.tags.get(LOCK_TAG) != Some(&mine) {
                return Err(refused(
                    &self.name,
                    format!(
                        "another deploy took the lock at the same time: {}",
                        back.tags.get(LOCK_TAG).cloned().unwrap_or_default()
                    ),
                    "run again when it is done",
                ));
            }
        }
        self.tag_ours
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(s) = state {
            if s.ami == self.ami {
                self.say(&format!(
                    "continuing the deploy of {} recorded by run {}",
                    s.ami, s.run
                ));
                // Whatever the interrupted run had reached (even a rollback under way): the new
                // launch spec (made now, if the killed run had not yet), and the processes
                // suspended again.
                let mut s = s;
                if s.to.is_empty() && !s.lc {
                    s.to = self.create_version(&s).await?;
                    self.record(&s).await?;
                }
                // An interrupted rollback may have put the old instance tags back.
                patiently(self.cancel, d, || {
                    self.fleet.put_tags(&self.name, &self.instance_tags, true)
                })
                .await?;
                patiently(self.cancel, d, || {
                    self.fleet.set_processes(&self.name, &s.susp, true)
                })
                .await?;
                self.point_at(&s, &s.to).await?;
                return Ok(s);
            }
            return Err(refused(
                &self.name,
                format!(
                    "an interrupted deploy of {} is recorded on the group",
                    s.ami
                ),
                "`gears deploy --abort` (with that AMI) undoes it first",
            ));
        }
        // The new launch spec: a template version with the new AMI, or for a group on a legacy
        // launch configuration, a copy of it with the new AMI.
        let (lt, from, fromn, to, lc) = match (&g.template, &g.launch_configuration) {
            (Some(t), _) => {
                // The number `$Latest`/`$Default` means now, read before ours exists: ours is
                // based on it, and a rollback returns to it. `$Default` stays `$Default` on
                // rollback (gears never changes a template's default version); `$Latest` does
                // not (ours is the latest now), so it becomes the number it meant. Groups of
                // this run on the same template share the first reading (taken before that
                // group made its version, so a later reading cannot see ours).
                let key = format!("{}/{}/{}", self.fleet.region(), t.id, t.version);
                let cached = self
                    .versions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&key)
                    .cloned();
                let source = match cached {
                    Some(v) => v,
                    None => {
                        let v =
                            patiently(self.cancel, d, || self.fleet.resolve_version(t)).await?;
                        self.versions
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .entry(key)
                            .or_insert(v)
                            .clone()
                    }
                };
                // A version that already launches the new AMI has nothing to roll back to
                // (another group on this template was deployed by an earlier run, and the
                // template's `$Latest` moved with it).
                let base = TemplateRef {
                    id: t.id.clone(),
                    version: source.clone(),
                };
                let image = patiently(self.cancel, d, || self.fleet.template_image(&base)).await?;
                let images = self.images(g).await?;
                if image == self.ami && images.values().any(|i| *i != self.ami) {
                    return Err(InputError::whole_file(
                        format!("group {}", self.name),
                        format!(
                            "its launch template {} {} (version {source}) already launches {}, but some of its instances run another AMI: a rollback would have no version to return to",
                            t.id, t.version, self.ami
                        ),
                    )
                    .with_hint("point the group at the template version its instances were launched from (a number), then deploy again")
                    .into());
                }
                let from = match t.version.as_str() {
                    "$Default" => "$Default".to_owned(),
                    _ => source.clone(),
                };
                // The new version is made once the deploy is recorded (below).
                (t.id.clone(), from, source, None, false)
            }
            (None, Some(c)) => {
                let suffix: String = self.run.chars().filter(char::is_ascii_hexdigit).collect();
                let keep = 255 - 7 - 8;
                let base: String = c.chars().take(keep).collect();
                let name = format!("{base}-gears-{}", &suffix[suffix.len().saturating_sub(8)..]);
                patiently(self.cancel, d, || {
                    self.fleet.copy_configuration(c, &name, &self.ami)
                })
                .await?;
                (String::new(), c.clone(), String::new(), Some(name), true)
            }
            (None, None) => {
                return Err(InputError::whole_file(
                    format!("group {}", self.name),
                    "the group has no launch template, mixed-instances policy or launch configuration: gears cannot deploy it",
                )
                .into())
            }
        };
        let susp: Vec<String> = SUSPEND
            .iter()
            .filter(|p| !g.suspended.iter().any(|s| s == *p))
            .map(|p| p.to_string())
            .collect();
        let mut state = State {
            run: self.run.clone(),
            ami: self.ami.clone(),
            lt: lt.clone(),
            from,
            fromn,
            to: to.clone().unwrap_or_default(),
            min: g.min,
            max: g.max,
            desired: g.desired,
            susp: susp.clone(),
            lc,
            mx: g.mixed,
        };
        // Checked with room for the version number still to come.
        let json = serde_json::to_string(&state).unwrap_or_default();
        if json.chars().count() + if to.is_none() { 10 } else { 0 } > 256 {
            return Err(InputError::whole_file(
                format!("group {}", self.name),
                format!(
                    "the deploy state does not fit in a 256-character tag ({} characters): the launch configuration name `{}` is too long",
                    json.chars().count(),
                    state.from
                ),
            )
            .into());
        }
        // Recorded before the new template version exists: a run killed in between is
        // continued by the same command, whose request carries the recorded run's client
        // token and so gets the same version back (never a second one left behind).
        self.record(&state).await?;
        if state.to.is_empty() {
            state.to = self.create_version(&state).await?;
            self.record(&state).await?;
        }
        patiently(self.cancel, d, || {
            self.fleet.set_processes(&self.name, &susp, true)
        })
        .await?;
        // The instance tags the group had, so a rollback puts them back (when they fit a tag).
        let before: BTreeMap<&String, Option<&String>> = self
            .instance_tags
            .keys()
            .map(|k| (k, g.tags.get(k)))
            .collect();
        let before = serde_json::to_string(&before).unwrap_or_default();
        if before.chars().count() <= 256 {
            let tag = BTreeMap::from([(TAGS_TAG.to_owned(), before)]);
            patiently(self.cancel, d, || {
                self.fleet.put_tags(&self.name, &tag, false)
            })
            .await?;
        }
        patiently(self.cancel, d, || {
            self.fleet.put_tags(&self.name, &self.instance_tags, true)
        })
        .await?;
        self.point_at(&state, &state.to).await?;
        self.say(&format!(
            "locked; {} {} (was {}) with {}; suspended {}",
            if lc {
                "launch configuration"
            } else {
                "launch template version"
            },
            state.to,
            state.from,
            self.ami,
            if susp.is_empty() {
                "nothing".into()
            } else {
                susp.join(", ")
            }
        ));
        Ok(state)
    }

    /// Writes the deploy state to the group's tag.
    async fn record(&self, st: &State) -> Result<(), Error> {
        let tag = BTreeMap::from([(
            STATE_TAG.to_owned(),
            serde_json::to_string(st).unwrap_or_default(),
        )]);
        let d = self.deadline();
        patiently(self.cancel, d, || {
            self.fleet.put_tags(&self.name, &tag, false)
        })
        .await
    }

    /// The recorded deploy's new template version, from the version it recorded as its base,
    /// with the recorded run's client token (EC2 scopes a token to the account and region, so
    /// it names the template too; at most 64 characters: 5 + 32 + 17 + 1 + the version): the
    /// same request again returns the same version.
    async fn create_version(&self, st: &State) -> Result<String, Error> {
        let base = TemplateRef {
            id: st.lt.clone(),
            version: st.fromn.clone(),
        };
        let token = version_token(st);
        let d = self.deadline();
        patiently(self.cancel, d, || {
            self.fleet.new_template_version(&base, &self.ami, &token)
        })
        .await
    }

    /// Points the group at launch spec `which` (a template version, or a configuration name).
    async fn point_at(&self, st: &State, which: &str) -> Result<(), Error> {
        let d = self.deadline();
        if st.lc {
            patiently(self.cancel, d, || {
                self.fleet.set_configuration(&self.name, which)
            })
            .await
        } else {
            let t = TemplateRef {
                id: st.lt.clone(),
                version: which.to_owned(),
            };
            patiently(self.cancel, d, || {
                self.fleet.set_template(&self.name, &t, st.mx)
            })
            .await
        }
    }

    /// Which members are healthy: in service in the group and healthy in every target group.
    async fn health(&self, g: &Group) -> Result<BTreeMap<String, bool>, Error> {
        let d = self.deadline();
        let mut tg = Vec::new();
        for arn in &g.target_groups {
            tg.push(patiently(self.cancel, d, || self.fleet.target_health(arn)).await?);
        }
        Ok(g.members
            .iter()
            .map(|m| {
                let ok = m.in_service()
                    && tg
                        .iter()
                        .all(|t| t.get(&m.id).map(String::as_str) == Some("healthy"));
                (m.id.clone(), ok)
            })
            .collect())
    }

    /// What EC2 says of the group's members. An instance's AMI never changes, and its addresses
    /// are fixed once it has them: only members not described yet (or still without the address
    /// the smoke tests need) are asked about, so a poll of a settled group describes nothing and
    /// a poll during a batch describes only the batch.
    async fn members(&self, g: &Group) -> Result<BTreeMap<String, crate::aws::MemberInfo>, Error> {
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

    async fn images(&self, g: &Group) -> Result<BTreeMap<String, String>, Error> {
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
    async fn launch_hooks(&self) -> Result<Vec<crate::aws::LaunchHook>, Error> {
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
                    crate::ui::human_duration(Duration::from_secs(h.heartbeat.into())),
                    h.default_result,
                    crate::ui::human_duration(self.settings.gate_timeout)
                ));
            }
        }
        Ok(hooks)
    }

    /// Renews the lock: the lock table's first (only while this run still holds it; a lost
    /// lock stops this run before it writes anything), then the group's tag.
    async fn refresh_lock(&self) -> Result<(), Error> {
        let d = self.deadline();
        let value = lock_value(&self.run, self.who);
        if let Some(t) = self.table {
            let (now, _) = lease_times(self.settings);
            let ours = patiently(self.cancel, d, || {
                t.renew(&self.lock_key, &self.run, &value, now)
            })
            .await?;
            if !ours {
                return Err(self.lost());
            }
        }
        let lock = BTreeMap::from([(LOCK_TAG.to_owned(), value)]);
        patiently(self.cancel, d, || {
            self.fleet.put_tags(&self.name, &lock, false)
        })
        .await?;
        self.tag_ours
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn lost(&self) -> Error {
        refused(
            &self.name,
            "another run took the lock over in the lock table (or it was unlocked); stopping here"
                .into(),
            "that run finishes the deploy; look at the group if none does",
        )
    }

    /// Renews the lock every few seconds for as long as it runs, whatever the poll loop waits
    /// on (smoke tests, throttled calls, a long `--poll`), so a live deploy's lock never looks
    /// stale; ends only when the lock is lost. A slow or failing renewal is tried again at the
    /// next beat.
    async fn heartbeat(&self) -> Error {
        let every =
            (self.settings.lock_stale / 4).clamp(Duration::from_secs(1), Duration::from_secs(15));
        loop {
            tokio::time::sleep(every).await;
            let beat = async {
                let value = lock_value(&self.run, self.who);
                if let Some(t) = self.table {
                    let (now, _) = lease_times(self.settings);
                    if !t.renew(&self.lock_key, &self.run, &value, now).await? {
                        return Err(self.lost());
                    }
                }
                if self.tag_ours.load(std::sync::atomic::Ordering::SeqCst) {
                    let lock = BTreeMap::from([(LOCK_TAG.to_owned(), value)]);
                    self.fleet.put_tags(&self.name, &lock, false).await?;
                }
                Ok::<(), Error>(())
            };
            if let Ok(Err(e @ Error::Locked { .. })) = tokio::time::timeout(every, beat).await {
                return e;
            }
        }
    }

    async fn sleep(&self) -> Result<(), Error> {
        tokio::select! {
            _ = tokio::time::sleep(self.settings.poll) => Ok(()),
            _ = self.cancel.cancelled() => Err(Error::Interrupted(self.cancel.signal().unwrap_or(crate::cancel::Signal::Int))),
        }
    }

    /// Batch by batch: surge `k` new instances, wait until they are healthy, retire `k` old.
    async fn roll(&self, st: &State) -> Result<Rolled, Error> {
        let k = self.settings.batch.size(st.desired);
        let mut batches = 0;
        let mut batch_deadline = self.deadline();
        // New instances that passed the smoke tests, and the last smoke failure.
        let mut smoked = std::collections::BTreeSet::new();
        let mut smoke_failure: Option<String> = None;
        let mut last_say = Instant::now();
        // A group that keeps launching instances on another AMI (someone changed its launch
        // spec) would be churned forever: a bound on the batches stops that.
        let mut batch_limit: Option<u32> = None;
        let hooks = self.launch_hooks().await?;
        loop {
            // Only members that count toward capacity: one in Standby or terminating is left
            // alone (and does not hold the deploy up).
            let g = counting(self.group().await?);
            let infos = self.members(&g).await?;
            let images: BTreeMap<String, String> = infos
                .iter()
                .map(|(id, m)| (id.clone(), m.image.clone()))
                .collect();
            let mut health = self.health(&g).await?;
            if let Some(gate) = self.smoke {
                for m in &g.members {
                    let fresh = images.get(&m.id) == Some(&self.ami);
                    if fresh && health.get(&m.id) == Some(&true) && !smoked.contains(&m.id) {
                        match self.smoke_at(gate, &m.id, infos.get(&m.id)).await? {
                            None => {
                                smoked.insert(m.id.clone());
                            }
                            Some(why) => {
                                smoke_failure = Some(why);
                                health.insert(m.id.clone(), false);
                            }
                        }
                    }
                }
            }
            let is_new = |id: &String| images.get(id) == Some(&self.ami);
            let old: Vec<&crate::aws::Member> = g
                .members
                .iter()
                .filter(|m| images.contains_key(&m.id) && !is_new(&m.id))
                .collect();
            let new_ok = g
                .members
                .iter()
                .filter(|m| is_new(&m.id))
                .all(|m| health.get(&m.id) == Some(&true));
            // Settled: as many members as desired, and EC2 knows every one of them (a member it
            // does not know yet is neither old nor new: wait for it).
            let settled = g.members.len() as i32 == g.desired
                && g.members.iter().all(|m| images.contains_key(&m.id));
            if old.is_empty() && g.desired == st.desired && settled && new_ok {
                return Ok(Rolled::Done(batches));
            }
            // Batch `number` did not become healthy in time: what is unhealthy, and why.
            let not_healthy = |number: u32, done: u32| {
                let bad: Vec<&str> = g
                    .members
                    .iter()
                    .filter(|m| is_new(&m.id) && health.get(&m.id) != Some(&true))
                    .map(|m| m.id.as_str())
                    .collect();
                Rolled::GateFailed(
                    format!(
                        "batch {number} not healthy after {}: {} of {} instances running, unhealthy new: {}",
                        crate::ui::human_duration(self.settings.gate_timeout),
                        g.members.len(),
                        g.desired,
                        if bad.is_empty() { "none (still launching)".into() } else { bad.join(", ") }
                    ) + &held_by_hooks(&g, &hooks)
                        + &smoke_failure.as_ref().map(|f| format!(" ({f})")).unwrap_or_default(),
                    done,
                )
            };
            let limit =
                *batch_limit.get_or_insert((old.len() as u32).div_ceil(k.max(1) as u32) + 2);
            if batches > limit {
                return Ok(Rolled::GateFailed(
                    format!(
                        "{batches} batches and still {} instances not on {}: the group launches something else (was its launch spec changed?)",
                        old.len(),
                        self.ami
                    ),
                    batches,
                ));
            }
            if g.desired > st.desired {
                // A batch is in flight: retire as many old ones once every new one is healthy.
                if settled && new_ok {
                    let surplus = (g.desired - st.desired) as usize;
                    let mut victims = old.clone();
                    // Unhealthy old ones go first.
                    victims.sort_by_key(|m| health.get(&m.id) == Some(&true));
                    let mut retired = Vec::new();
                    for m in victims.into_iter().take(surplus) {
                        let d = self.deadline();
                        patiently(self.cancel, d, || self.fleet.terminate_member(&m.id, true))
                            .await?;
                        retired.push(m.id.as_str());
                    }
                    batches += 1;
                    self.say(&format!(
                        "batch {batches}: new instances healthy; retired {}",
                        retired.join(", ")
                    ));
                    last_say = Instant::now();
                    if old.len() <= surplus {
                        // The last batch: the group may now be all new.
                        continue;
                    }
                } else if Instant::now() >= batch_deadline {
                    return Ok(not_healthy(batches + 1, batches));
                }
            } else if !old.is_empty() && self.settings.min_healthy < 100 && !(settled && new_ok) {
                // Replacements of a batch replaced in place are on their way.
                if Instant::now() >= batch_deadline {
                    return Ok(not_healthy(batches, batches));
                }
            } else if !old.is_empty() {
                let n = k.min(old.len() as i32);
                // Below 100% --min-healthy, part of the batch is replaced in place (terminated
                // without lowering desired, so the group launches the new AMI in its place):
                // unhealthy old ones first, then healthy ones down to the floor. The rest
                // surges (launch first, retire after).
                let mut in_place: Vec<&crate::aws::Member> = Vec::new();
                if self.settings.min_healthy < 100 {
                    let floor = (st.desired * self.settings.min_healthy as i32 + 99) / 100;
                    let healthy_now = g
                        .members
                        .iter()
                        .filter(|m| health.get(&m.id) == Some(&true))
                        .count() as i32;
                    let mut spare = (healthy_now - floor).max(0);
                    let mut victims = old.clone();
                    victims.sort_by_key(|m| health.get(&m.id) == Some(&true));
                    for m in victims.into_iter().take(n as usize) {
                        let healthy = health.get(&m.id) == Some(&true);
                        if healthy && spare == 0 {
                            break;
                        }
                        if healthy {
                            spare -= 1;
                        }
                        in_place.push(m);
                    }
                }
                let surge = n - in_place.len() as i32;
                let max = st.max.max(st.desired + surge);
                let d = self.deadline();
                if surge > 0 {
                    patiently(self.cancel, d, || {
                        self.fleet
                            .set_capacity(&self.name, st.min, max, st.desired + surge)
                    })
                    .await?;
                }
                for m in &in_place {
                    patiently(self.cancel, d, || self.fleet.terminate_member(&m.id, false)).await?;
                }
                if surge == 0 {
                    // Nothing to retire later: the batch is this replacement.
                    batches += 1;
                }
                let ids: Vec<&str> = in_place.iter().map(|m| m.id.as_str()).collect();
                self.say(&format!(
                    "batch {}: {}{}; {} old left",
                    if surge == 0 { batches } else { batches + 1 },
                    if surge > 0 {
                        format!(
                            "launching {surge} on the new AMI (desired {}, max {max})",
                            st.desired + surge
                        )
                    } else {
                        String::new()
                    },
                    if in_place.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "{}replacing {} in place (--min-healthy {}%)",
                            if surge > 0 { ", " } else { "" },
                            ids.join(", "),
                            self.settings.min_healthy
                        )
                    },
                    old.len()
                ));
                last_say = Instant::now();
                batch_deadline = self.deadline();
                continue;
            } else if Instant::now() >= batch_deadline {
                return Ok(Rolled::GateFailed(
                    format!(
                        "the group did not settle: {} of {} instances (the deploy started at {}), new ones healthy: {new_ok}",
                        g.members.len(),
                        g.desired,
                        st.desired
                    ),
                    batches,
                ));
            }
            if last_say.elapsed() >= Duration::from_secs(30) {
                let healthy_new = g
                    .members
                    .iter()
                    .filter(|m| is_new(&m.id) && health.get(&m.id) == Some(&true))
                    .count();
                self.say(&format!(
                    "waiting: {healthy_new} new healthy, {} of {} instances running{}{}",
                    g.members.len(),
                    g.desired,
                    held_by_hooks(&g, &hooks),
                    smoke_failure
                        .as_ref()
                        .map(|f| format!("; last: {f}"))
                        .unwrap_or_default()
                ));
                last_say = Instant::now();
            }
            // Still ours? A run that took over a stale lock owns the group now; a lock removed
            // by `--unlock` means a human took the group in hand.
            match g.tags.get(LOCK_TAG) {
                Some(l) if !l.starts_with(&self.run) => {
                    return Err(refused(
                        &self.name,
                        format!("another run took the lock over ({l}); stopping here"),
                        "that run finishes the deploy",
                    ));
                }
                None => {
                    return Err(refused(
                        &self.name,
                        "the group's lock was removed (`--unlock`) while this deploy ran; stopping here".into(),
                        "look at the group: run the same command to continue the deploy, or `--abort` to undo it",
                    ));
                }
                _ => {}
            }
            self.refresh_lock().await?;
            self.sleep().await?;
        }
    }

    /// AWS's instance refresh, launch before terminate, waited on with progress; a refresh that
    /// fails, is cancelled or does not finish in time is a failed gate.
    async fn refresh(&self, st: &State) -> Result<Rolled, Error> {
        let k = self.settings.batch.size(st.desired);
        let max_healthy = (100 + k * 100 / st.desired.max(1)).clamp(110, 200);
        let d = self.deadline();
        let id = patiently(self.cancel, d, || {
            self.fleet
                .start_refresh(&self.name, self.settings.min_healthy as i32, max_healthy)
        })
        .await?;
        *self.refresh_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
        self.say(&format!(
            "instance refresh {id} started: healthy capacity between 100% and {max_healthy}%"
        ));
        let batches = (st.desired.max(1) as u32).div_ceil(k.max(1) as u32) + 1;
        let deadline = Instant::now() + self.settings.gate_timeout * batches;
        let mut last = -1;
        loop {
            let d = self.deadline();
            let (status, pct, reason) = patiently(self.cancel, d, || {
                self.fleet.refresh_status(&self.name, &id)
            })
            .await?;
            match status.as_str() {
                "Successful" => {
                    self.say(&format!("instance refresh {id}: successful"));
                    return Ok(Rolled::Done(1));
                }
                "Failed" | "Cancelled" | "Cancelling" | "RollbackInProgress" | "RollbackFailed"
                | "RollbackSuccessful" => {
                    return Ok(Rolled::GateFailed(
                        format!("instance refresh {id} {status}: {reason}"),
                        0,
                    ));
                }
                _ => {}
            }
            if pct != last {
                self.say(&format!("instance refresh {id}: {status}, {pct}% done"));
                last = pct;
            }
            if Instant::now() >= deadline {
                let _ = self.fleet.cancel_refresh(&self.name).await;
                return Ok(Rolled::GateFailed(
                    format!(
                        "instance refresh {id} not finished after {} ({pct}% done); cancelled",
                        crate::ui::human_duration(self.settings.gate_timeout * batches)
                    ),
                    0,
                ));
            }
            self.refresh_lock().await?;
            self.sleep().await?;
        }
    }

    /// Stops the line after a failed rollback: a STOP lock on the group (and in the lock
    /// table) until a human runs `--unlock`. Retried like any call, for up to a minute; what
    /// could not be written is said (returned as `; ...`, empty when all was written).
    async fn stop_the_line(&self) -> String {
        let stop: String = format!("STOP {}: rollback failed", self.run)
            .chars()
            .take(256)
            .collect();
        let d = Instant::now() + Duration::from_secs(60);
        let tag = BTreeMap::from([(LOCK_TAG.to_owned(), stop.clone())]);
        let mut missing = Vec::new();
        if patiently(self.cancel, d, || {
            self.fleet.put_tags(&self.name, &tag, false)
        })
        .await
        .is_err()
        {
            missing.push("the group's tag");
        }
        if let Some(t) = self.table {
            let kept = patiently(self.cancel, d, || {
                t.acquire(&self.lock_key, &self.run, &stop, KEPT, i64::MIN)
            })
            .await;
            if !matches!(kept, Ok(None)) {
                missing.push("the lock table");
            }
        }
        if missing.is_empty() {
            String::new()
        } else {
            format!(
                "; the STOP lock could not be written to {}: look at the group before any deploy",
                missing.join(" or ")
            )
        }
    }

    /// The group as it is now, in words, for a human after a failed rollback (best effort).
    async fn state_now(&self) -> String {
        let Ok(g) = self.group().await else {
            return "the group's state could not be read: look at it in the console".into();
        };
        let images = self.images(&counting(g.clone())).await.unwrap_or_default();
        let new = images.values().filter(|i| **i == self.ami).count();
        format!(
            "the group now: min {} max {} desired {}, {} in service ({new} on {}, {} on other AMIs), suspended: {}; launch spec {} (look at it, then `gears deploy --unlock`)",
            g.min,
            g.max,
            g.desired,
            images.len(),
            self.ami,
            images.len() - new,
            if g.suspended.is_empty() { "nothing".into() } else { g.suspended.join(", ") },
            match (&g.template, &g.launch_configuration) {
                (Some(t), _) => format!("template {} version {}", t.id, t.version),
                (None, Some(c)) => format!("launch configuration {c}"),
                _ => "none".into(),
            }
        )
    }

    /// Cancels instance refresh `id` and waits (until the gate deadline) until it stopped.
    /// The group's refresh is cancelled whether or not this run knows its id (its start may
    /// have been lost, or a killed run's may still be running); with an id, waited on.
    async fn stop_refresh(&self, id: Option<&str>) {
        let d = self.deadline();
        let _ = patiently(self.cancel, d, || self.fleet.cancel_refresh(&self.name)).await;
        let Some(id) = id else {
            let _ = self.sleep().await;
            return;
        };
        loop {
            match patiently(self.cancel, d, || self.fleet.refresh_status(&self.name, id)).await {
                Ok((status, _, _))
                    if matches!(
                        status.as_str(),
                        "Pending" | "InProgress" | "Cancelling" | "RollbackInProgress"
                    ) =>
                {
                    if Instant::now() >= d {
                        self.say(&format!(
                            "instance refresh {id} still {status} after {}: rolling back beside it",
                            crate::ui::human_duration(self.settings.gate_timeout)
                        ));
                        return;
                    }
                }
                _ => return,
            }
            if self.sleep().await.is_err() {
                return;
            }
        }
    }

    /// `fut` with the lock renewed beside it; a lost lock ends it.
    async fn with_heartbeat<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        tokio::select! {
            r = fut => r,
            e = self.heartbeat() => Err(e),
        }
    }

    /// [`Roll::rollback`] with the lock renewed beside it.
    /// Its steps with the lock renewed beside them; the restore after (a renewal must not put
    /// the lock back once it was removed).
    async fn rollback_held(&self, st: &State) -> Result<(), Undone> {
        tokio::select! {
            r = self.rollback_steps(st) => r?,
            e = self.heartbeat() => return Err(Undone::Lost(e)),
        }
        self.finish(st)
            .await
            .map_err(|e| Undone::Failed(e.to_string()))
    }

    /// Back to the old template and old-AMI instances, capacity as it was (all but the
    /// restore of [`Roll::finish`]).
    async fn rollback_steps(&self, st: &State) -> Result<(), Undone> {
        let e = |e: Error| match e {
            e @ Error::Locked { .. } => Undone::Lost(e),
            e => Undone::Failed(e.to_string()),
        };
        self.say(&format!(
            "rolling back to launch template version {} and {} instances",
            st.from, st.desired
        ));
        // `$Default`, unless someone moved the template's default version during the deploy:
        // then the version it meant when the deploy started (the one the old instances came
        // from), and the group stays pinned to it.
        let mut back = st.from.clone();
        if st.from == "$Default" && !st.fromn.is_empty() && !st.lc {
            let t = TemplateRef {
                id: st.lt.clone(),
                version: st.from.clone(),
            };
            let d = self.deadline();
            if let Ok(now) = patiently(self.cancel, d, || self.fleet.resolve_version(&t)).await {
                if now != st.fromn {
                    self.say(&format!(
                        "the template's default version moved during the deploy ({} → {now}): rolling back to version {}, and the group stays on it",
                        st.fromn, st.fromn
                    ));
                    back = st.fromn.clone();
                }
            }
        }
        self.point_at(st, &back).await.map_err(e)?;
        let deadline = self.deadline();
        // The lock as the rollback found it (a killed run's, for --abort): another value that
        // is not ours means another run took the group over.
        let mut found_lock: Option<Option<String>> = None;
        // Old-AMI members that were already there, and whether they were healthy: an old one
        // that was unhealthy before the rollback is not the rollback's to fix, and must not
        // keep it from finishing.
        let mut before: Option<BTreeMap<String, bool>> = None;
        let mut surge: Option<i32> = None;
        loop {
            let g = counting(self.group().await.map_err(e)?);
            let lock = g.tags.get(LOCK_TAG).cloned();
            let found = found_lock.get_or_insert_with(|| lock.clone());
            if let Some(l) = &lock {
                if !l.starts_with(&self.run) && Some(l) != found.as_ref() && !l.starts_with("STOP")
                {
                    return Err(Undone::Lost(refused(
                        &self.name,
                        format!("another run took the lock over during the rollback ({l}); stopping here"),
                        "that run owns the group now",
                    )));
                }
            }
            let images = self.images(&g).await.map_err(e)?;
            let health = self.health(&g).await.map_err(e)?;
            let before = before.get_or_insert_with(|| {
                g.members
                    .iter()
                    .filter(|m| images.get(&m.id).is_some_and(|i| *i != self.ami))
                    .map(|m| (m.id.clone(), health.get(&m.id) == Some(&true)))
                    .collect()
            });
            // Unhealthy-before old members do not count against the rollback.
            let broken_before = before.values().filter(|ok| !**ok).count() as i32;
            let needed = (st.desired - broken_before).max(0);
            let new: Vec<&str> = g
                .members
                .iter()
                .filter(|m| images.get(&m.id) == Some(&self.ami))
                .map(|m| m.id.as_str())
                .collect();
            let settled = g.members.len() as i32 == g.desired
                && g.members.iter().all(|m| images.contains_key(&m.id));
            let all_ok = g
                .members
                .iter()
                .all(|m| health.get(&m.id) == Some(&true) || before.get(&m.id) == Some(&false));
            if new.is_empty() && g.desired == st.desired && settled && all_ok {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Undone::Failed(format!(
                    "group {}: {} members ({} on the new AMI: {}), desired {} (was {}), not all healthy; template set back to version {}",
                    self.name,
                    g.members.len(),
                    new.len(),
                    new.join(", "),
                    g.desired,
                    st.desired,
                    st.from
                )));
            }
            let old_healthy = g
                .members
                .iter()
                .filter(|m| {
                    images.get(&m.id) != Some(&self.ami) && health.get(&m.id) == Some(&true)
                })
                .count() as i32;
            if settled && !new.is_empty() {
                if old_healthy >= needed {
                    // A full healthy set on the old AMI: the new ones go, and capacity with them.
                    for id in &new {
                        let d = self.deadline();
                        patiently(self.cancel, d, || self.fleet.terminate_member(id, true))
                            .await
                            .map_err(e)?;
                    }
                    continue;
                }
                // First launch old-AMI ones beside the new ones, so the floor holds; never
                // more than the first look asked for (a previous spec that launches the new AMI
                // too would otherwise raise the capacity round after round).
                let k = self.settings.batch.size(st.desired);
                let cap = *surge.get_or_insert((new.len() as i32).max(k));
                let want = st.desired + (new.len() as i32).min(cap);
                if g.desired < want {
                    let d = self.deadline();
                    patiently(self.cancel, d, || {
                        self.fleet
                            .set_capacity(&self.name, st.min, st.max.max(want), want)
                    })
                    .await
                    .map_err(e)?;
                    continue;
                }
            }
            if settled && new.is_empty() && g.desired > st.desired {
                let d = self.deadline();
                patiently(self.cancel, d, || {
                    self.fleet
                        .set_capacity(&self.name, st.min, st.max, st.desired)
                })
                .await
                .map_err(e)?;
                continue;
            }
            // Still ours: a rollback outlasting the stale limit is not taken for a dead run.
            self.refresh_lock().await.map_err(e)?;
            self.sleep().await.map_err(e)?;
        }
        // The instance tags as they were before the deploy.
        let g = self.group().await.map_err(e)?;
        if let Some(before) = g
            .tags
            .get(TAGS_TAG)
            .and_then(|t| serde_json::from_str::<BTreeMap<String, Option<String>>>(t).ok())
        {
            let put: BTreeMap<String, String> = before
                .iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                .collect();
            let gone: Vec<String> = before
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| k.clone())
                .collect();
            let d = self.deadline();
            if !put.is_empty() {
                patiently(self.cancel, d, || {
                    self.fleet.put_tags(&self.name, &put, true)
                })
                .await
                .map_err(e)?;
            }
            patiently(self.cancel, d, || self.fleet.delete_tags(&self.name, &gone))
                .await
                .map_err(e)?;
        }
        Ok(())
    }

    /// Capacity as it was, processes resumed, state and lock removed.
    async fn finish(&self, st: &State) -> Result<(), Error> {
        self.say(&format!(
            "restoring capacity {}/{}/{}, resuming processes, unlocking",
            st.min, st.max, st.desired
        ));
        let d = self.deadline();
        patiently(self.cancel, d, || {
            self.fleet
                .set_capacity(&self.name, st.min, st.max, st.desired)
        })
        .await?;
        patiently(self.cancel, d, || {
            self.fleet.set_processes(&self.name, &st.susp, false)
        })
        .await?;
        let keys = [
            STATE_TAG.to_owned(),
            TAGS_TAG.to_owned(),
            LOCK_TAG.to_owned(),
        ];
        patiently(self.cancel, d, || self.fleet.delete_tags(&self.name, &keys)).await
    }
}

/// Now, and the last renewal before which a lock table's lock is stale (Unix milliseconds).
fn lease_times(settings: &DeploySettings) -> (i64, i64) {
    let now = wall_now().timestamp_millis();
    (
        now,
        now - settings.lock_stale.as_millis().min(i64::MAX as u128) as i64,
    )
}

/// A lock table renewal time that never goes stale: a STOP lock, kept until `--unlock`.
const KEPT: i64 = i64::MAX / 2;

/// `; i-a, i-b held in Pending:Wait by launch lifecycle hook NAME`, or nothing when no member
/// waits on a hook.
fn held_by_hooks(g: &Group, hooks: &[crate::aws::LaunchHook]) -> String {
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

/// The client token of a recorded deploy's new template version.
fn version_token(st: &State) -> String {
    format!(
        "gears{}{}v{}",
        st.run.replace('-', ""),
        st.lt.trim_start_matches("lt-"),
        st.fromn
    )
    .chars()
    .take(64)
    .collect()
}

/// The AMI of the launch spec a recorded deploy came from (`None` if AWS does not say).
async fn recorded_from_ami<F: Fleet>(fleet: &F, st: &State) -> Option<String> {
    let was = if st.lc {
        fleet.configuration_image(&st.from).await
    } else {
        let t = TemplateRef {
            id: st.lt.clone(),
            version: st.from.clone(),
        };
        fleet.template_image(&t).await
    };
    was.ok().filter(|w| !w.is_empty())
}

/// The group with only the members that count toward its capacity.
fn counting(g: Group) -> Group {
    Group {
        members: g.members.into_iter().filter(|m| m.counts()).collect(),
        ..g
    }
}

fn refused(group: &str, why: String, hint: &str) -> Error {
    Error::Locked {
        message: format!("group {group}: {why}"),
        hint: hint.to_owned(),
        stopped: why.starts_with("the line is stopped"),
    }
}

/// Runs `gears deploy` against `cloud`.
pub async fn deploy<C: Cloud>(
    settings: &DeploySettings,
    ctx: &crate::context::RunContext,
    cancel: &Cancel,
    cleanup: &crate::cancel::Cleanup,
    cloud: &C,
) -> Result<Deployed, Error> {
    deploy_reporting(settings, ctx, cancel, cleanup, cloud)
        .await
        .map_err(|f| {
            // What the groups did is not lost.
            for o in &f.groups {
                eprintln!("{}: {}: {} ({})", o.region, o.group, o.result, o.detail);
            }
            f.error
        })
}

/// A deploy that ends with an error (a signal, an AWS error, a refusal), with what each group
/// that got that far did: the report is printed whatever the exit.
#[derive(Debug)]
pub struct Failed {
    pub error: Error,
    pub groups: Vec<GroupOutcome>,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Failed {
            error,
            groups: Vec::new(),
        }
    }
}

impl From<InputError> for Failed {
    fn from(e: InputError) -> Self {
        Error::from(e).into()
    }
}

/// [`deploy`], with the groups' outcomes kept when an error decides the exit.
pub async fn deploy_reporting<C: Cloud>(
    settings: &DeploySettings,
    ctx: &crate::context::RunContext,
    cancel: &Cancel,
    cleanup: &crate::cancel::Cleanup,
    cloud: &C,
) -> Result<Deployed, Failed> {
    let component = crate::component::load(&settings.component_file)?;
    let (targets, version, ami_version) = match &settings.ami {
        AmiChoice::Explicit { ami, region } => (
            vec![(region.clone(), ami.clone())],
            String::new(),
            String::new(),
        ),
        AmiChoice::Manifest {
            path,
            builder,
            region,
        } => {
            let m = crate::manifest::read(path)?;
            let name = path.display().to_string();
            if m.component != component.name {
                return Err(InputError::whole_file(
                    &name,
                    format!(
                        "the manifest is of component `{}`, the component file of `{}`",
                        m.component, component.name
                    ),
                )
                .with_hint("pass the manifest bake wrote for this component (--manifest)")
                .into());
            }
            let b = builder
                .clone()
                .or_else(|| m.amis.keys().next().map(str::to_owned))
                .unwrap_or_default();
            let Some(regions) = m.amis.get(&b) else {
                return Err(InputError::whole_file(
                    &name,
                    if m.amis.is_empty() {
                        "the manifest has no AMIs (did the bake finish?)".to_owned()
                    } else {
                        format!(
                            "the manifest has no builder `{b}` (it has {})",
                            m.amis.keys().collect::<Vec<_>>().join(", ")
                        )
                    },
                )
                .into());
            };
            let targets: Vec<(String, String)> = regions
                .iter()
                .filter(|(r, _)| region.as_ref().is_none_or(|x| x == *r))
                .map(|(r, a)| (r.clone(), a.clone()))
                .collect();
            if targets.is_empty() {
                return Err(InputError::whole_file(
                    &name,
                    match region {
                        Some(r) => format!("the manifest has no AMI of builder `{b}` in {r}"),
                        None => format!("the manifest has no AMI of builder `{b}` in any region"),
                    },
                )
                .into());
            }
            // Regions the component deploys to that the manifest lacks: said, since the fleet
            // would be left on two AMIs across regions.
            if region.is_none() {
                let missing: Vec<&String> = component
                    .regions
                    .iter()
                    .map(|r| &r.0)
                    .filter(|r| !targets.iter().any(|(t, _)| t == *r))
                    .collect();
                if !missing.is_empty() {
                    eprintln!(
                        "warning: {name} has no AMI for {} (in the component's ami_regions): not deployed there",
                        missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    );
                }
            }
            (targets, m.version, m.ami_version)
        }
    };
    let mut want = BTreeMap::from([
        ("gears:component".to_owned(), component.name.clone()),
        ("gears:environment".to_owned(), settings.environment.clone()),
    ]);
    if let Some(c) = &settings.country {
        want.insert("gears:country".into(), c.clone());
    }
    let mut instance_tags = BTreeMap::from([
        ("COMPONENT_NAME".to_owned(), component.name.clone()),
        ("ENVIRONMENT".to_owned(), settings.environment.clone()),
    ]);
    if !version.is_empty() {
        instance_tags.insert("COMPONENT_VERSION".into(), version);
        instance_tags.insert("AMI_VERSION".into(), ami_version);
    }
    if let Some(c) = &settings.country {
        instance_tags.insert("COUNTRY".into(), c.clone());
    }
    // The smoke tests of the gate: read and checked before anything changes.
    let gate = match (&component.test.smoke_file, settings.no_smoke) {
        (Some(f), false) => {
            let file =
                crate::smoke::load(&crate::settings::Source::File(f.clone()), cancel).await?;
            let placeholder = crate::smoke::target::Target {
                host: "127.0.0.1".into(),
                port: component.test.port,
                scheme: None,
            };
            crate::smoke::runner::prepare(&file, &placeholder)?;
            Some(SmokeGate {
                file,
                port: component.test.port,
                address: component.test.address,
                target: settings.smoke_target.clone(),
            })
        }
        _ => None,
    };
    let run = crate::random::uuid_v7();
    let regions: Vec<String> = targets.iter().map(|(r, _)| r.clone()).collect();
    let ui = std::sync::Mutex::new(crate::ui::StageProgress::new(ctx, "deploy", &regions));
    let ctx = RegionCtx {
        cleanup,
        ui: &ui,
        smoke: gate.as_ref(),
        settings,
        cancel,
        want: &want,
        instance_tags: &instance_tags,
        run: &run,
        failed: Default::default(),
        versions: Default::default(),
        who: holder(ctx),
    };
    // Every region's groups found and checked before any region changes.
    let found = futures::future::join_all(
        targets
            .iter()
            .map(|(region, ami)| find_region(&ctx, cloud, region, ami)),
    )
    .await;
    let mut ready = Vec::new();
    let mut errors: Vec<Error> = Vec::new();
    for (f, (region, ami)) in found.into_iter().zip(targets) {
        match f {
            Ok(f) => ready.push((region, ami, f)),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| std::cmp::Reverse(e.exit().severity()));
        for other in &errors[1..] {
            eprint!("{}", other.render());
        }
        return Err(errors.remove(0).into());
    }
    // Regions in parallel, the groups of a region `--parallel` at a time.
    let results =
        futures::future::join_all(ready.iter().map(|(region, ami, (fleet, table, groups))| {
            roll_region(&ctx, fleet, table.as_ref(), region, ami, groups.clone())
        }))
        .await;
    let mut outcomes = Vec::new();
    for (o, e) in results {
        outcomes.extend(o);
        errors.extend(e);
    }
    // The most severe wins: a signal, then an error more severe than what the groups did.
    let groups_exit = Deployed {
        groups: outcomes.clone(),
    }
    .exit();
    // A signal is the exit (the groups it stopped are rolled back and say so), unless a
    // rollback failed: 7, a human must look.
    if let Some(sig) = cancel.signal() {
        if groups_exit != crate::exit::Exit::NeedsHuman {
            errors.retain(|e| !matches!(e, Error::Interrupted(_)));
            for e in &errors {
                eprint!("{}", e.render());
            }
            return Err(Failed {
                error: Error::Interrupted(sig),
                groups: outcomes,
            });
        }
    }
    errors.sort_by_key(|e| std::cmp::Reverse(e.exit().severity()));
    if let Some(e) = errors.first() {
        let signal = matches!(e, Error::Interrupted(_));
        for other in &errors[1..] {
            eprint!("{}", other.render());
        }
        // A signal is the exit, unless a rollback failed (7: a human must look).
        let error_wins = if signal {
            groups_exit != crate::exit::Exit::NeedsHuman
        } else {
            e.exit().most_severe(groups_exit) == e.exit()
        };
        if error_wins {
            return Err(Failed {
                error: errors.remove(0),
                groups: outcomes,
            });
        }
        for e in &errors {
            eprint!("{}", e.render());
        }
    }
    Ok(Deployed { groups: outcomes })
}

/// What every region's deploy shares.
struct RegionCtx<'a> {
    cleanup: &'a crate::cancel::Cleanup,
    ui: &'a std::sync::Mutex<crate::ui::StageProgress>,
    smoke: Option<&'a SmokeGate>,
    settings: &'a DeploySettings,
    cancel: &'a Cancel,
    want: &'a BTreeMap<String, String>,
    instance_tags: &'a BTreeMap<String, String>,
    run: &'a str,
    /// The first group that rolled back or failed, anywhere: groups not started yet are skipped.
    failed: std::sync::Mutex<Option<String>>,
    /// Who holds the locks: host and CI job.
    who: String,
    /// `region/template/$Latest` → the number it meant when this run first read it: groups
    /// sharing a template all return to that version on rollback (and share one new version).
    versions: std::sync::Mutex<BTreeMap<String, String>>,
}

/// The groups of one region, `--parallel` at a time: what each did, and the errors of those
/// that stopped with one.
/// The groups of one region (checked: every region's are found before any region changes).
#[allow(clippy::type_complexity)]
async fn find_region<C: Cloud>(
    ctx: &RegionCtx<'_>,
    cloud: &C,
    region: &str,
    ami: &str,
) -> Result<(C::Fleet, Option<C::Locks>, Vec<Group>), Error> {
    use crate::aws::Images;
    let (settings, want) = (ctx.settings, ctx.want);
    // The AMI exists here and is available, before anything is locked or made (a typo would
    // otherwise roll every group through a gate that can only time out). `--unlock` needs none.
    if !settings.unlock {
        let images = cloud.images(region).await?;
        let query = crate::aws::BaseAmiQuery {
            id: Some(ami.to_owned()),
            ..Default::default()
        };
        let what = format!("AMI {ami}");
        match images.find_base_ami(&query).await {
            Ok(Some(img)) if img.state == "available" => {}
            Ok(Some(img)) => {
                return Err(InputError::whole_file(
                    what,
                    format!("in {region} it is {}, not available", img.state),
                )
                .into())
            }
            Ok(None) => {
                return Err(
                    InputError::whole_file(what, format!("it does not exist in {region}"))
                        .with_hint("check the manifest or --ami: an AMI belongs to one region")
                        .into(),
                )
            }
            Err(e)
                if e.kind() == crate::aws::ErrorKind::Invalid
                    || e.kind() == crate::aws::ErrorKind::NotFound =>
            {
                return Err(
                    InputError::whole_file(what, format!("not an AMI in {region}: {e}")).into(),
                )
            }
            Err(e) => return Err(e.into()),
        }
    }
    let fleet = cloud.fleet(region).await?;
    let table = match &settings.lock_table {
        Some(t) => Some(cloud.locks(region, t).await?),
        None => None,
    };
    let groups = if settings.groups.is_empty() {
        fleet.groups(want, &[]).await?
    } else {
        let found = fleet.groups(&BTreeMap::new(), &settings.groups).await?;
        let missing: Vec<&String> = settings
            .groups
            .iter()
            .filter(|n| !found.iter().any(|g| &g.name == *n))
            .collect();
        if !missing.is_empty() {
            return Err(Error::usage(
                format!(
                    "--group: no Auto Scaling group named {} in {region}",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None,
            ));
        }
        // A named group must belong to this component (when it says which)...
        let component = want.get("gears:component").cloned().unwrap_or_default();
        if let Some(g) = found.iter().find(|g| {
            g.tags
                .get("gears:component")
                .is_some_and(|c| *c != component)
        }) {
            return Err(Error::usage(
                format!(
                    "--group {}: the group is tagged gears:component={}, not {component}",
                    g.name, g.tags["gears:component"]
                ),
                None,
            ));
        }
        // ...and to this environment (when it says which).
        if let Some(g) = found.iter().find(|g| {
            g.tags
                .get("gears:environment")
                .is_some_and(|e| *e != settings.environment)
        }) {
            return Err(Error::usage(
                format!(
                    "--group {}: the group is tagged gears:environment={}, not {}",
                    g.name, g.tags["gears:environment"], settings.environment
                ),
                None,
            ));
        }
        found
    };
    if groups.is_empty() {
        return Err(InputError::whole_file(
            settings.component_file.display().to_string(),
            format!(
                "no Auto Scaling group in {region} is tagged {}",
                want.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_hint("tag the component's groups, or name them with --group")
        .into());
    }
    // A template on `$Latest` shared with groups outside this deploy: the new version would
    // change what they launch, ungated (and stay their `$Latest` after a rollback).
    let deploying = !(settings.plan_only || settings.unlock || settings.abort);
    let latest: Vec<&str> = groups
        .iter()
        .filter(|g| !g.tags.contains_key(STATE_TAG))
        .filter_map(|g| g.template.as_ref())
        .filter(|t| t.version == "$Latest")
        .map(|t| t.id.as_str())
        .collect();
    if !latest.is_empty() {
        let all = fleet.groups(&BTreeMap::new(), &[]).await?;
        let others: Vec<String> = all
            .iter()
            .filter(|o| !groups.iter().any(|g| g.name == o.name))
            .filter(|o| {
                o.template
                    .as_ref()
                    .is_some_and(|t| t.version == "$Latest" && latest.contains(&t.id.as_str()))
            })
            .map(|o| {
                format!(
                    "{} ({})",
                    o.name,
                    o.template
                        .as_ref()
                        .map(|t| t.id.as_str())
                        .unwrap_or_default()
                )
            })
            .collect();
        if !others.is_empty() {
            let e = InputError::whole_file(
                settings.component_file.display().to_string(),
                format!(
                    "in {region}, {} launch from the same template's $Latest: the new version would change what they launch, outside this deploy's gate",
                    others.join(", ")
                ),
            )
            .with_hint("deploy them together (--group), or point them at a version number of their own");
            if deploying {
                return Err(e.into());
            }
            ctx.ui.lock().unwrap_or_else(|p| p.into_inner()).line(
                Some(region),
                &format!(
                    "warning: {}",
                    Error::from(e).render().trim().trim_start_matches("error: ")
                ),
            );
        }
    }
    Ok((fleet, table, groups))
}

/// The groups of one region, `--parallel` at a time: what each did, and the errors of those
/// that stopped with one.
async fn roll_region<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    fleet: &F,
    table: Option<&L>,
    region: &str,
    ami: &str,
    groups: Vec<Group>,
) -> (Vec<GroupOutcome>, Vec<Error>) {
    let (settings, cancel) = (ctx.settings, ctx.cancel);
    // Once one group fails its gate (or errs), the groups not started yet are skipped: one
    // AMI, one verdict. Unordered, so a slow group does not hold the others' places.
    use futures::StreamExt;
    let mut results: Vec<(usize, Result<GroupOutcome, Error>)> =
        futures::stream::iter(groups.into_iter().enumerate().map(|(i, g)| async move {
            let r = async {
                if let Some(sig) = cancel.signal() {
                    return Err(Error::Interrupted(sig));
                }
                let deploying = !(settings.plan_only || settings.unlock || settings.abort);
                if deploying {
                    let failed = ctx.failed.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    if let Some(why) = failed {
                        return Ok(GroupOutcome {
                            region: region.to_owned(),
                            group: g.name.clone(),
                            from_ami: String::new(),
                            to_ami: ami.to_owned(),
                            result: "skipped".into(),
                            detail: format!("not started: {why}"),
                            batches: 0,
                        });
                    }
                }
                let name = g.name.clone();
                let r = deploy_group(ctx, fleet, table, region, ami, g).await;
                if deploying {
                    let failed = match &r {
                        Ok(o) if o.result == "rolled back" || o.result == "rollback failed" => {
                            Some(format!("{name} in {region}: {}", o.result))
                        }
                        Ok(_) => None,
                        Err(_) => Some(format!("{name} in {region} failed")),
                    };
                    if let Some(f) = failed {
                        ctx.failed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(f);
                    }
                }
                r
            }
            .await;
            (i, r)
        }))
        .buffer_unordered(settings.parallel.max(1))
        .collect()
        .await;
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

/// One group: lock, roll, gate, then finish or roll back.
async fn deploy_group<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    fleet: &F,
    table: Option<&L>,
    region: &str,
    ami: &str,
    g: Group,
) -> Result<GroupOutcome, Error> {
    let (settings, cancel, run) = (ctx.settings, ctx.cancel, ctx.run);
    let instance_tags = ctx.instance_tags;
    let (region, ami) = (region.to_owned(), ami.to_owned());
    if let Some(sig) = cancel.signal() {
        return Err(Error::Interrupted(sig));
    }
    let lock_key = format!("{region}/{}", g.name);
    let roll = Roll {
        fleet,
        table,
        lock_key: lock_key.clone(),
        name: g.name.clone(),
        ami: ami.clone(),
        run: run.to_owned(),
        settings,
        cancel,
        instance_tags: instance_tags.clone(),
        smoke: ctx.smoke,
        ui: ctx.ui,
        known: Default::default(),
        versions: &ctx.versions,
        refresh_id: Default::default(),
        who: &ctx.who,
        tag_ours: Default::default(),
    };
    let from_ami = match (&g.template, &g.launch_configuration) {
        (Some(t), _) => fleet.template_image(t).await.unwrap_or_default(),
        (None, Some(c)) => fleet.configuration_image(c).await.unwrap_or_default(),
        _ => String::new(),
    };
    let mut out = GroupOutcome {
        region: region.clone(),
        group: g.name.clone(),
        from_ami,
        to_ami: ami.clone(),
        result: String::new(),
        detail: String::new(),
        batches: 0,
    };
    if settings.unlock {
        // Never pull the lock from under a deploy that is running now.
        if let Some(l) = g.tags.get(LOCK_TAG).filter(|l| !l.starts_with("STOP")) {
            if let Some((holder, age)) = lock_age(l).filter(|(_, age)| *age < settings.lock_stale) {
                return Err(refused(
                    &g.name,
                    format!(
                        "a deploy is running now: run {holder}, lock renewed {} ago",
                        crate::ui::human_duration(age)
                    ),
                    "--unlock is for a lock left by a failed rollback or a dead run: stop that deploy (it rolls back on SIGTERM), or wait a minute if it was killed",
                ));
            }
        }
        let keys = [LOCK_TAG.to_owned()];
        fleet.delete_tags(&g.name, &keys).await?;
        if let Some(t) = &table {
            t.force_release(&lock_key).await?;
        }
        out.result = "unlocked".into();
        out.detail = g
            .tags
            .get(LOCK_TAG)
            .cloned()
            .unwrap_or_else(|| "no lock".into());
        return Ok(out);
    }
    if settings.plan_only {
        // What is on the group now decides what a deploy would do: a lock, a STOP, a deploy
        // recorded by a run that did not finish (then its original capacity is the baseline).
        let recorded = g
            .tags
            .get(STATE_TAG)
            .and_then(|t| serde_json::from_str::<State>(t).ok());
        let mut g = counting(g.clone());
        let mut note = String::new();
        if let Some(l) = g.tags.get(LOCK_TAG) {
            note = if l.starts_with("STOP") {
                format!("; the line is stopped ({l}): a deploy would be refused (exit 7) until `--unlock`")
            } else {
                match lock_age(l) {
                    Some((holder, age)) if age < settings.lock_stale => format!(
                        "; locked by run {holder}, renewed {} ago: a deploy would be refused now",
                        crate::ui::human_duration(age)
                    ),
                    _ => format!("; a stale lock ({l})"),
                }
            };
        }
        if let Some(st) = &recorded {
            note += &format!(
                "; run {} recorded a deploy of {} that did not finish (capacity was {}/{}/{}): {}",
                st.run,
                st.ami,
                st.min,
                st.max,
                st.desired,
                if st.ami == ami {
                    "the same command continues it"
                } else {
                    "`--abort` with that AMI undoes it first"
                }
            );
            (g.min, g.max, g.desired) = (st.min, st.max, st.desired);
            if let Some(was) = recorded_from_ami(fleet, st).await {
                out.from_ami = was;
            }
        }
        let images = roll.images(&g).await?;
        let old = g
            .members
            .iter()
            .filter(|m| images.get(&m.id) != Some(&ami))
            .count() as i32;
        let k = settings.batch.size(g.desired).min(old.max(1));
        out.result = "planned".into();
        out.batches = ((old + k - 1) / k.max(1)) as u32;
        // Below 100% --min-healthy, part of each batch is replaced in place (when the group is
        // healthy); the rest surges above desired.
        let floor = (g.desired * settings.min_healthy as i32 + 99) / 100;
        let batch = k.min(old.max(1));
        let in_place = if settings.min_healthy < 100 {
            batch.min(g.desired - floor)
        } else {
            0
        };
        let surge = batch - in_place;
        out.detail = format!(
            "{old} of {} instances to replace, {} batch(es) of {k}{}: capacity {}..{} (max {} → {} during the deploy), healthy never below {floor}",
            g.members.len(),
            out.batches,
            if in_place > 0 {
                format!(" ({in_place} replaced in place, {surge} launched first)")
            } else {
                String::new()
            },
            g.desired,
            g.desired + surge,
            g.max,
            g.max.max(g.desired + surge),
        ) + &note;
        return Ok(out);
    }
    if settings.abort {
        let Some(st) = g
            .tags
            .get(STATE_TAG)
            .and_then(|t| serde_json::from_str::<State>(t).ok())
        else {
            out.result = "nothing to do".into();
            out.detail = match g.tags.get(LOCK_TAG) {
                Some(l) => format!("no deploy recorded on the group, but it is locked ({l}): `--unlock` removes the lock"),
                None => "no deploy recorded on the group".into(),
            };
            return Ok(out);
        };
        // The deploy named: undoing another AMI's by mistake is refused.
        if st.ami != ami {
            return Err(Error::usage(
                format!(
                    "--abort: the deploy recorded on {} in {region} is of {} (run {}), not {ami}",
                    g.name, st.ami, st.run
                ),
                Some(format!(
                    "`gears deploy --abort --ami {} --region {region}` undoes it",
                    st.ami
                )),
            ));
        }
        // Never fight a deploy that is running now.
        if let Some((holder, age)) = g.tags.get(LOCK_TAG).and_then(|l| lock_age(l)) {
            if age < settings.lock_stale && !g.tags[LOCK_TAG].starts_with("STOP") {
                return Err(refused(
                    &g.name,
                    format!(
                        "a deploy is running now: run {holder}, lock refreshed {} ago",
                        crate::ui::human_duration(age)
                    ),
                    "stop that deploy first (it rolls back on SIGTERM), or wait a minute if it was killed",
                ));
            }
        }
        // The lock table too: a live holder is refused; a killed one's lock, or a STOP
        // lock (a human decided to undo), is taken over.
        if let Some(t) = &table {
            let (now, stale) = lease_times(settings);
            let mine = lock_value(run, &ctx.who);
            let mut held = t.acquire(&lock_key, run, &mine, now, stale).await?;
            if held
                .as_ref()
                .is_some_and(|h| h.ends_with(crate::aws::locks::KEPT_SUFFIX))
            {
                held = t.acquire(&lock_key, run, &mine, now, KEPT).await?;
            }
            if let Some(holder) = held {
                return Err(refused(
                    &g.name,
                    format!("the lock table holds {lock_key} for {holder}: a deploy is running now"),
                    "stop that deploy first (it rolls back on SIGTERM), or wait a minute if it was killed",
                ));
            }
        }
        // The undo runs to its end on cleanup's own token: a first signal does not leave it
        // half done (a second one stops it; the deploy stays recorded on the group).
        let abort_cancel = cancel.for_cleanup();
        if let Some(was) = recorded_from_ami(fleet, &st).await {
            out.from_ami = was;
        }
        let roll = Roll {
            ami: st.ami.clone(),
            cancel: &abort_cancel,
            ..roll
        };
        match roll.rollback_held(&st).await {
            Ok(()) => {
                if let Some(t) = &table {
                    let _ = t.release(&lock_key, run).await;
                }
                // What was asked for: exit 0.
                out.result = "aborted".into();
                out.detail = "undone: back on the old AMI, as it was".into();
            }
            Err(Undone::Lost(e)) => return Err(e),
            Err(Undone::Failed(why)) => {
                // Stop the line, as after any failed rollback.
                let note = roll.stop_the_line().await;
                out.result = "rollback failed".into();
                out.detail = format!("{why}{note}; {}", roll.state_now().await);
            }
        }
        return Ok(out);
    }
    // Already there: the launch spec launches the AMI and every member in service runs it, with
    // no deploy recorded. Nothing is locked, suspended or made.
    if out.from_ami == ami && !g.tags.contains_key(STATE_TAG) {
        let serving = counting(g.clone());
        let images = roll.images(&serving).await?;
        if images.len() == serving.members.len() && images.values().all(|i| *i == ami) {
            out.result = "nothing to do".into();
            out.detail = format!(
                "the group already launches {ami}, and its {} instance(s) in service run it",
                images.len()
            );
            return Ok(out);
        }
    }
    // The lock table first: a compare-and-swap no racing writer can slip past.
    if let Some(t) = &table {
        // A lock renewed within `lock_stale` belongs to a live deploy; an older one to a
        // killed deploy, which the same command continues (the group's tags say what it
        // had reached, and refuse another AMI).
        let (now, stale) = lease_times(settings);
        if let Some(holder) = t
            .acquire(&lock_key, run, &lock_value(run, &ctx.who), now, stale)
            .await?
        {
            let stopped = holder.ends_with(crate::aws::locks::KEPT_SUFFIX);
            return Err(refused(
                &g.name,
                if stopped {
                    format!("the line is stopped: the lock table holds {lock_key} for {holder}")
                } else {
                    format!("the lock table holds {lock_key} for {holder}")
                },
                if stopped {
                    "a rollback failed here: look at the group, then `gears deploy --unlock --lock-table ...`"
                } else {
                    "wait for that deploy; if it was killed, run this again a minute after its last renewal to continue it"
                },
            ));
        }
    }
    let give_back = |done: bool| {
        let (t, key) = (&table, lock_key.clone());
        async move {
            if let (true, Some(t)) = (done, t) {
                let _ = t.release(&key, run).await;
            }
        }
    };
    // Until this group is deployed or rolled back, a second signal (which stops gears at
    // once) says so, and an unexpected way out is a failed cleanup (exit 7).
    let what = format!(
        "the deploy of {} in {region} (run {run}): run the same command to finish it, or `gears deploy --abort` to undo it",
        g.name
    );
    let unfinished = what.clone();
    let step = ctx.cleanup.register(what, move || async move {
        Err(format!("not finished: {unfinished}"))
    });
    let cleanup_cancel = cancel.for_cleanup();
    let undo = Roll {
        cancel: &cleanup_cancel,
        fleet,
        table,
        lock_key: lock_key.clone(),
        name: g.name.clone(),
        ami: ami.clone(),
        run: run.to_owned(),
        settings,
        instance_tags: instance_tags.clone(),
        smoke: ctx.smoke,
        ui: ctx.ui,
        known: Default::default(),
        versions: &ctx.versions,
        refresh_id: Default::default(),
        who: &ctx.who,
        tag_ours: Default::default(),
    };
    let st = match roll.with_heartbeat(roll.start(&g)).await {
        Ok(st) => {
            // A continued run: the group already points at the new spec, so what it came from
            // is the recorded one.
            if let Some(was) = recorded_from_ami(fleet, &st).await {
                out.from_ami = was;
            }
            st
        }
        Err(e) => {
            // Give the lock back if nothing was recorded; undo what was, if anything.
            let now = roll.group().await.ok();
            let tags = now.map(|g| g.tags).unwrap_or_default();
            let ours = tags.get(LOCK_TAG).is_some_and(|l| l.starts_with(run));
            // This run's deploy, or the one of this AMI it was continuing.
            let recorded = tags
                .get(STATE_TAG)
                .and_then(|t| serde_json::from_str::<State>(t).ok())
                .filter(|st| st.run == run || (ours && st.ami == ami));
            match recorded {
                None => {
                    if ours {
                        let _ = fleet.delete_tags(&g.name, &[LOCK_TAG.to_owned()]).await;
                    }
                    ctx.cleanup.done(step);
                    give_back(true).await;
                }
                // Recorded, and still ours: undo it. Not ours any more: the run that took the
                // lock over owns the group.
                Some(st) if ours => match undo.rollback_held(&st).await {
                    Ok(()) => {
                        ctx.cleanup.done(step);
                        give_back(true).await;
                    }
                    Err(Undone::Lost(_)) => ctx.cleanup.done(step),
                    Err(Undone::Failed(why)) => {
                        // Stop the line: a human must look (exit 7).
                        ctx.cleanup.done(step);
                        let note = undo.stop_the_line().await;
                        out.result = "rollback failed".into();
                        out.detail = format!(
                            "{}; rollback failed: {why}{note}; {}",
                            e.render().trim().trim_start_matches("error: "),
                            undo.state_now().await
                        );
                        return Ok(out);
                    }
                },
                Some(_) => ctx.cleanup.done(step),
            }
            return Err(e);
        }
    };
    let rolled = match settings.strategy {
        Strategy::Rolling => roll.with_heartbeat(roll.roll(&st)).await,
        Strategy::InstanceRefresh => roll.with_heartbeat(roll.refresh(&st)).await,
    };
    let (why, batches, interrupted) = match rolled {
        Ok(Rolled::Done(n)) => {
            roll.finish(&st).await?;
            ctx.cleanup.done(step);
            give_back(true).await;
            out.result = "deployed".into();
            out.batches = n;
            out.detail = format!("every instance runs {ami}");
            // Members gears left alone (Standby, detaching, ...) may still run the old AMI.
            if let Ok(now) = roll.group().await {
                let aside: Vec<String> = now
                    .members
                    .iter()
                    .filter(|m| !m.counts())
                    .map(|m| format!("{} ({})", m.id, m.lifecycle))
                    .collect();
                if !aside.is_empty() {
                    out.detail = format!(
                        "every instance in service runs {ami}; left alone, maybe on the old AMI: {}",
                        aside.join(", ")
                    );
                }
            }
            return Ok(out);
        }
        Ok(Rolled::GateFailed(why, n)) => (why, n, None),
        // Another run took the lock over (this one was presumed dead): it owns the group now.
        Err(e @ Error::Locked { .. }) => {
            ctx.cleanup.done(step);
            return Err(e);
        }
        // A signal (a CI cancel) never leaves a half-rolled group: roll back first, on
        // cleanup's own token (a second signal stops that too; the deploy stays recorded on
        // the group for `--abort`).
        Err(Error::Interrupted(sig)) => (format!("{sig} received"), 0, Some(sig)),
        Err(e) => (format!("AWS error: {}", e.render().trim()), 0, None),
    };
    out.batches = batches;
    // An instance refresh still running would fight the rollback (it replaces what the
    // rollback launches): cancelled first, and waited on until it stopped.
    let refresh = roll
        .refresh_id
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if settings.strategy == Strategy::InstanceRefresh {
        let stopped = undo
            .with_heartbeat(async {
                undo.stop_refresh(refresh.as_deref()).await;
                Ok(())
            })
            .await;
        if let Err(e) = stopped {
            ctx.cleanup.done(step);
            return Err(e);
        }
    }
    if interrupted.is_some() {
        eprintln!(
            "{why}: rolling {} in {region} back to {} before exiting",
            g.name, out.from_ami
        );
    }
    match undo.rollback_held(&st).await {
        Ok(()) => {
            ctx.cleanup.done(step);
            give_back(true).await;
            out.result = "rolled back".into();
            out.detail = format!("{why}; rolled back to {}", out.from_ami);
        }
        Err(Undone::Lost(e)) => {
            ctx.cleanup.done(step);
            return Err(e);
        }
        Err(Undone::Failed(state)) => {
            // Stop the line: the lock stays until a human unlocks it.
            ctx.cleanup.done(step);
            let note = undo.stop_the_line().await;
            out.result = "rollback failed".into();
            out.detail = format!(
                "{why}; rollback failed: {state}{note}; {}",
                undo.state_now().await
            );
        }
    }
    // A signal's exit (130/143) is decided for the whole run, with this outcome in its report.
    let _ = interrupted;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::fake::{FakeCloud, Faults};
    use crate::aws::{Cloud, Member};
    use crate::cancel::Cleanup;
    use crate::exit::Exit;

    const OLD: &str = "ami-0000000000000001a";

    fn rc() -> crate::context::RunContext {
        crate::context::RunContext::from_vars(Vec::<(String, String)>::new())
    }
    const NEW: &str = "ami-0000000000000002b";

    fn setup(dir: &std::path::Path, desired: i32) -> (DeploySettings, FakeCloud) {
        std::fs::write(
            dir.join("gears.yaml"),
            "component: hello\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-0123456789abcdef0}\n",
        )
        .unwrap();
        let cloud = FakeCloud::new();
        // The AMIs deploys go to exist (deploy checks before it changes anything).
        for id in [NEW, "ami-0000000000000003c"] {
            cloud.add_image(
                "us-east-1",
                crate::aws::Image {
                    id: id.into(),
                    name: id.into(),
                    state: "available".into(),
                    creation_date: "2026-11-24T00:00:00.000Z".into(),
                    tags: BTreeMap::new(),
                },
            );
        }
        cloud.add_group(
            Group {
                name: "hello-live".into(),
                min: desired,
                max: desired,
                desired,
                template: Some(TemplateRef {
                    id: "lt-1".into(),
                    version: "1".into(),
                }),
                launch_configuration: None,
                mixed: false,
                override_templates: vec![],
                members: Vec::<Member>::new(),
                target_groups: vec!["tg-1".into()],
                suspended: vec!["AlarmNotification".into()],
                tags: BTreeMap::from([
                    ("gears:component".to_owned(), "hello".to_owned()),
                    ("gears:environment".to_owned(), "live".to_owned()),
                ]),
            },
            &[OLD],
        );
        let settings = DeploySettings {
            component_file: dir.join("gears.yaml"),
            ami: AmiChoice::Explicit {
                ami: NEW.into(),
                region: "us-east-1".into(),
            },
            environment: "live".into(),
            country: None,
            groups: vec![],
            batch: Batch::Count(2),
            strategy: Strategy::Rolling,
            gate_timeout: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            smoke_target: None,
            no_smoke: false,
            lock_stale: LOCK_STALE,
            lock_table: None,
            parallel: 1,
            min_healthy: 100,
            plan_only: false,
            abort: false,
            unlock: false,
            endpoint_flag: None,
        };
        (settings, cloud)
    }

    fn all(cloud: &FakeCloud, ami: &str) -> bool {
        let imgs = cloud.member_images("hello-live");
        !imgs.is_empty() && imgs.iter().all(|i| i == ami)
    }

    fn as_before(cloud: &FakeCloud, n: i32) {
        let g = cloud.group("hello-live").unwrap();
        assert_eq!(
            (g.min, g.max, g.desired, g.members.len() as i32),
            (n, n, n, n)
        );
        assert_eq!(
            g.suspended,
            ["AlarmNotification"],
            "what was suspended before stays"
        );
        assert!(
            !g.tags.contains_key(STATE_TAG)
                && !g.tags.contains_key(LOCK_TAG)
                && !g.tags.contains_key(TAGS_TAG),
            "{:?}",
            g.tags
        );
    }

    #[test]
    fn the_lock_names_the_host_and_the_ci_job() {
        let ctx = crate::context::RunContext::from_vars([
            ("HOSTNAME", "agent 3"),
            ("BUILD_TAG", "jenkins-hello-7"),
        ]);
        let who = holder(&ctx);
        assert_eq!(who, "agent_3 jenkins:jenkins-hello-7");
        let value = lock_value("run-1", &who);
        let (run, _) = lock_age(&value).unwrap();
        assert_eq!(run, "run-1");
        assert!(
            value.starts_with("run-1 agent_3 jenkins:jenkins-hello-7 "),
            "{value}"
        );
    }

    #[test]
    fn batches_parse_and_size() {
        assert_eq!(Batch::parse("2"), Ok(Batch::Count(2)));
        assert_eq!(Batch::parse("25%"), Ok(Batch::Percent(25)));
        for bad in ["0", "0%", "101%", "x", "-1", "4294967295"] {
            assert!(Batch::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Batch::Percent(25).size(10), 3);
        assert_eq!(Batch::Percent(1).size(3), 1);
        assert_eq!(Batch::Count(5).size(2), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn rolls_every_instance_in_batches_never_below_the_healthy_floor() {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 5);
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.exit(), Exit::Success, "{d:?}");
        let g = &d.groups[0];
        assert_eq!(
            (g.result.as_str(), g.batches, g.from_ami.as_str()),
            ("deployed", 3, OLD)
        );
        assert!(all(&cloud, NEW));
        as_before(&cloud, 5);
        assert_eq!(cloud.healthy_floor("hello-live"), Some(5));
        let tags = cloud.group("hello-live").unwrap().tags;
        assert_eq!(tags["COMPONENT_NAME"], "hello");
        assert_eq!(tags["ENVIRONMENT"], "live");
        // Members are described once: polls while nothing new appeared describe nothing.
        let calls = cloud.calls();
        let count = |op: &str| calls.iter().filter(|c| c.starts_with(op)).count();
        let (polls, described) = (
            count("DescribeAutoScalingGroups "),
            count("DescribeInstances "),
        );
        assert!(
            described <= 1 + 3,
            "{polls} polls, {described} DescribeInstances"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_mixed_instances_group_keeps_its_policy_through_a_deploy_and_a_rollback() {
        for unhealthy in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (s, cloud) = setup(dir.path(), 4);
            cloud.set_mixed("hello-live", &[]);
            if unhealthy {
                cloud.set_unhealthy_images(&[NEW]);
            }
            let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap();
            let g = cloud.group("hello-live").unwrap();
            // The fake drops the policy when a plain LaunchTemplate is sent, as AWS does.
            assert!(g.mixed, "the mixed-instances policy was replaced");
            if unhealthy {
                assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
                assert!(all(&cloud, OLD));
                assert_eq!(g.template.unwrap().version, "1");
            } else {
                assert_eq!(d.groups[0].result, "deployed", "{d:?}");
                assert!(all(&cloud, NEW));
                assert_eq!(g.template.unwrap().version, "2");
            }
            as_before(&cloud, 4);
            assert_eq!(cloud.healthy_floor("hello-live"), Some(4));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn overrides_with_launch_templates_of_their_own_are_refused_before_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 2);
        cloud.set_mixed("hello-live", &["m6g.large"]);
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::InvalidInput, "{}", e.render());
        assert!(
            e.render()
                .contains("gives m6g.large a launch template of its own"),
            "{}",
            e.render()
        );
        assert!(all(&cloud, OLD));
        let g = cloud.group("hello-live").unwrap();
        assert!(
            !g.tags.contains_key(LOCK_TAG) && !g.tags.contains_key(STATE_TAG),
            "{:?}",
            g.tags
        );
        assert_eq!(g.template.unwrap().version, "1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_held_by_a_launch_hook_rolls_back_naming_the_hook() {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 3);
        cloud.add_launch_hook(
            "hello-live",
            crate::aws::LaunchHook {
                name: "warm-cache".into(),
                heartbeat: 3600,
                default_result: "ABANDON".into(),
            },
            &[NEW],
        );
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
        let detail = &d.groups[0].detail;
        assert!(detail.contains("not healthy after 1m00s"), "{detail}");
        assert!(
            detail.contains("held in Pending:Wait by launch lifecycle hook warm-cache"),
            "{detail}"
        );
        assert!(all(&cloud, OLD));
        as_before(&cloud, 3);
        assert_eq!(cloud.healthy_floor("hello-live"), Some(3));
    }

    /// A second group of the component in the same region, on a template of its own.
    fn add_second_group(cloud: &FakeCloud, name: &str, n: i32) {
        add_group_on(cloud, name, n, "lt-2", "1", &[OLD]);
    }

    #[tokio::test(start_paused = true)]
    async fn groups_of_a_region_roll_at_once_with_parallel() {
        let mut took = Vec::new();
        for parallel in [1, 2] {
            let dir = tempfile::tempdir().unwrap();
            let (mut s, cloud) = setup(dir.path(), 4);
            add_second_group(&cloud, "hello-live-b", 4);
            s.parallel = parallel;
            let start = Instant::now();
            let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap();
            took.push(start.elapsed());
            assert_eq!(d.exit(), Exit::Success, "{d:?}");
            assert_eq!(d.groups.len(), 2);
            assert!(d.groups.iter().all(|g| g.result == "deployed"), "{d:?}");
            for name in ["hello-live", "hello-live-b"] {
                assert!(cloud.member_images(name).iter().all(|i| i == NEW), "{name}");
                assert_eq!(cloud.healthy_floor(name), Some(4), "{name}");
            }
            as_before(&cloud, 4);
        }
        // On the paused clock: two groups at once take the time of one (the polls overlap),
        // one after another twice that.
        assert!(took[1] * 3 / 2 < took[0], "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn once_a_group_rolls_back_the_groups_not_started_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 2);
        add_second_group(&cloud, "hello-live-b", 2);
        cloud.set_unhealthy_images(&[NEW]);
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
        assert_eq!(d.groups[0].result, "rolled back", "{d:?}");
        assert_eq!(d.groups[1].result, "skipped", "{d:?}");
        assert!(
            d.groups[1]
                .detail
                .contains("not started: hello-live in us-east-1: rolled back"),
            "{d:?}"
        );
        assert!(cloud.member_images("hello-live-b").iter().all(|i| i == OLD));
        let b = cloud.group("hello-live-b").unwrap();
        assert_eq!(b.template.unwrap().version, "1");
        assert!(!b.tags.contains_key(LOCK_TAG), "untouched: {:?}", b.tags);
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_deploy_with_long_passes_keeps_its_lock() {
        for table in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (mut s, cloud) = setup(dir.path(), 4);
            if table {
                s.lock_table = Some("gears-locks".into());
            }
            // A poll pass of ten minutes, far longer than the lock's stale limit (a minute).
            s.poll = Duration::from_secs(600);
            s.gate_timeout = Duration::from_secs(3600);
            let (ctx, cancel, cleanup) = (rc(), Cancel::new(), Cleanup::default());
            let first = deploy(&s, &ctx, &cancel, &cleanup, &cloud);
            // The same command, three minutes later, while the first sleeps between polls.
            let second = async {
                tokio::time::sleep(Duration::from_secs(180)).await;
                deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud).await
            };
            let (first, second) = tokio::join!(first, second);
            let e = second.unwrap_err();
            assert_eq!(e.exit(), Exit::Cloud, "{}", e.render());
            assert!(
                e.render().contains("refreshed") || e.render().contains("renewed"),
                "{}",
                e.render()
            );
            let d = first.unwrap();
            assert_eq!(d.groups[0].result, "deployed", "table {table}: {d:?}");
            assert!(all(&cloud, NEW));
            as_before(&cloud, 4);
            assert!(cloud.lock_items().is_empty());
        }
    }

    /// A group on launch template `lt` at `version`, whose versions launch `images`.
    fn add_group_on(
        cloud: &FakeCloud,
        name: &str,
        n: i32,
        lt: &str,
        version: &str,
        images: &[&str],
    ) {
        let g = cloud.group("hello-live").unwrap();
        cloud.add_group(
            Group {
                name: name.into(),
                min: n,
                max: n,
                desired: n,
                template: Some(TemplateRef {
                    id: lt.into(),
                    version: version.into(),
                }),
                members: vec![],
                ..g
            },
            images,
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_on_default_rolls_back_to_default_not_to_the_latest_version() {
        const UNREVIEWED: &str = "ami-0000000000000009d";
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 2);
        // Version 1 (the default) launches OLD; version 2, newer but not the default, an AMI
        // nobody reviewed.
        add_group_on(
            &cloud,
            "hello-default",
            3,
            "lt-d",
            "$Default",
            &[OLD, UNREVIEWED],
        );
        cloud.set_default_version("lt-d", 1);
        assert!(cloud
            .member_images("hello-default")
            .iter()
            .all(|i| i == OLD));
        s.groups = vec!["hello-default".into()];
        cloud.set_unhealthy_images(&[NEW]);
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
        let g = cloud.group("hello-default").unwrap();
        assert_eq!(g.template.unwrap().version, "$Default");
        assert!(cloud
            .member_images("hello-default")
            .iter()
            .all(|i| i == OLD));
        assert_eq!((g.min, g.max, g.desired), (3, 3, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn groups_sharing_a_latest_template_share_one_new_version_and_one_way_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 2);
        add_group_on(&cloud, "hello-a", 2, "lt-s", "$Latest", &[OLD]);
        add_group_on(&cloud, "hello-b", 2, "lt-s", "$Latest", &[OLD]);
        s.groups = vec!["hello-a".into(), "hello-b".into()];
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.exit(), Exit::Success, "{d:?}");
        // Both on the one new version (the second group's request had the same client token).
        assert_eq!(cloud.template_versions("lt-s"), [OLD, NEW]);
        for n in ["hello-a", "hello-b"] {
            assert_eq!(
                cloud.group(n).unwrap().template.unwrap().version,
                "2",
                "{n}"
            );
            assert!(cloud.member_images(n).iter().all(|i| i == NEW), "{n}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_latest_template_shared_or_already_on_the_new_ami_is_refused_before_any_change() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 2);
        add_group_on(&cloud, "hello-a", 2, "lt-s", "$Latest", &[OLD]);
        add_group_on(&cloud, "other-b", 2, "lt-s", "$Latest", &[OLD]);
        cloud.fake_fleet_tag("other-b", "gears:component", "other");
        // Another component's group launches from the same $Latest: refused, naming it.
        s.groups = vec!["hello-a".into()];
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::InvalidInput, "{}", e.render());
        assert!(
            e.render()
                .contains("other-b (lt-s) launch from the same template's $Latest"),
            "{}",
            e.render()
        );
        assert_eq!(cloud.template_versions("lt-s"), [OLD]);
        // Someone else already made the new AMI the template's $Latest (an earlier run of a
        // sibling group, by hand): nothing to roll back to, refused.
        add_group_on(&cloud, "hello-b", 2, "lt-t", "$Latest", &[OLD]);
        let fleet = cloud.fleet("us-east-1").await.unwrap();
        let base = TemplateRef {
            id: "lt-t".into(),
            version: "1".into(),
        };
        fleet
            .new_template_version(&base, NEW, "by-hand")
            .await
            .unwrap();
        s.groups = vec!["hello-b".into()];
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::InvalidInput, "{}", e.render());
        assert!(
            e.render()
                .contains("a rollback would have no version to return to"),
            "{}",
            e.render()
        );
        let b = cloud.group("hello-b").unwrap();
        assert_eq!(b.template.unwrap().version, "$Latest");
        assert!(
            !b.tags.contains_key(LOCK_TAG) && !b.tags.contains_key(STATE_TAG),
            "{:?}",
            b.tags
        );
        assert!(cloud.member_images("hello-b").iter().all(|i| i == OLD));
    }

    #[tokio::test(start_paused = true)]
    async fn below_100_percent_min_healthy_batches_are_replaced_in_place_above_the_floor() {
        // (share, batch, surge per batch expected: none at 50%, one at 75%)
        for (share, raised) in [(50, false), (75, true)] {
            let dir = tempfile::tempdir().unwrap();
            let (mut s, cloud) = setup(dir.path(), 4);
            s.min_healthy = share;
            let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap();
            assert_eq!(d.groups[0].result, "deployed", "{share}%: {d:?}");
            assert_eq!(d.groups[0].batches, 2, "{share}%: {d:?}");
            assert!(all(&cloud, NEW));
            as_before(&cloud, 4);
            let floor = (4 * share as usize).div_ceil(100);
            let low = cloud.healthy_floor("hello-live").unwrap();
            assert!(low >= floor, "{share}%: {low} healthy at the lowest");
            if !raised {
                assert!(low < 4, "{share}%: replaced in place");
            }
            // Capacity changes: the template pointed at, the restore, and one per surging batch.
            let updates = cloud
                .calls()
                .iter()
                .filter(|c| c.starts_with("UpdateAutoScalingGroup "))
                .count();
            assert_eq!(updates, if raised { 4 } else { 2 }, "{share}%");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn below_100_percent_a_failing_gate_still_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        s.min_healthy = 50;
        cloud.set_unhealthy_images(&[NEW]);
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
        assert!(d.groups[0].detail.contains("batch 1 not healthy"), "{d:?}");
        assert!(all(&cloud, OLD));
        as_before(&cloud, 4);
        assert!(cloud.healthy_floor("hello-live").unwrap() >= 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lock_lost_during_the_rollback_stops_it_without_stopping_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        s.lock_table = Some("gears-locks".into());
        s.gate_timeout = Duration::from_secs(30);
        cloud.set_unhealthy_images(&[NEW]);
        // Slow calls: the rollback (from about 35 s on) takes longer than a heartbeat.
        cloud.set_faults(Faults {
            latency: Duration::from_secs(2),
            ..Default::default()
        });
        let taker = cloud.clone();
        tokio::spawn(async move {
            // Once the rollback pointed the group back at version 1 (after version 2)...
            let mut saw_new = false;
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let v = taker.group("hello-live").unwrap().template.unwrap().version;
                saw_new |= v == "2";
                if saw_new && v == "1" {
                    break;
                }
            }
            // ...another run takes the lock over (as if this one had looked dead).
            let locks = taker.locks("us-east-1", "gears-locks").await.unwrap();
            let now = chrono::Utc::now().timestamp_millis();
            locks
                .acquire("us-east-1/hello-live", "other-run", "ci-9", now, i64::MAX)
                .await
                .unwrap();
        });
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Cloud, "{}", e.render());
        assert!(e.render().contains("took the lock over"), "{}", e.render());
        // No STOP written over the new holder's lock.
        let g = cloud.group("hello-live").unwrap();
        assert!(
            !g.tags.get(LOCK_TAG).is_some_and(|l| l.starts_with("STOP")),
            "{:?}",
            g.tags
        );
        assert_eq!(cloud.lock_items()["us-east-1/hello-live"].0, "other-run");
    }

    #[tokio::test(start_paused = true)]
    async fn a_default_version_moved_during_the_deploy_is_not_where_the_rollback_goes() {
        const UNREVIEWED: &str = "ami-0000000000000009d";
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 2);
        add_group_on(
            &cloud,
            "hello-default",
            3,
            "lt-d",
            "$Default",
            &[OLD, UNREVIEWED],
        );
        s.groups = vec!["hello-default".into()];
        cloud.set_unhealthy_images(&[NEW]);
        let mover = cloud.clone();
        tokio::spawn(async move {
            // Once the deploy made its version (3), someone makes version 2 the default.
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let v = mover
                    .group("hello-default")
                    .unwrap()
                    .template
                    .unwrap()
                    .version;
                if v == "3" {
                    mover.set_default_version("lt-d", 2);
                    break;
                }
            }
        });
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
        assert_eq!(
            cloud
                .group("hello-default")
                .unwrap()
                .template
                .unwrap()
                .version,
            "1"
        );
        assert!(cloud
            .member_images("hello-default")
            .iter()
            .all(|i| i == OLD));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deploy_killed_before_its_new_version_is_continued_without_a_second_version() {
        for made in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (mut s, cloud) = setup(dir.path(), 4);
            // What a run killed right after recording the deploy leaves: the state with no new
            // version yet (and, just after the request, maybe the version itself).
            let st = State {
                run: "0190b7a2-0000-7000-8000-000000000001".into(),
                ami: NEW.into(),
                lt: "lt-1".into(),
                from: "1".into(),
                fromn: "1".into(),
                to: String::new(),
                min: 4,
                max: 4,
                desired: 4,
                susp: vec!["AZRebalance".into(), "ScheduledActions".into()],
                lc: false,
                mx: false,
            };
            cloud.fake_fleet_tag(
                "hello-live",
                STATE_TAG,
                &serde_json::to_string(&st).unwrap(),
            );
            cloud.fake_fleet_tag(
                "hello-live",
                LOCK_TAG,
                &format!("{} host 2020-01-01T00:00:00Z", st.run),
            );
            if made {
                let fleet = cloud.fleet("us-east-1").await.unwrap();
                let base = TemplateRef {
                    id: "lt-1".into(),
                    version: "1".into(),
                };
                fleet
                    .new_template_version(&base, NEW, &version_token(&st))
                    .await
                    .unwrap();
            }
            s.lock_stale = Duration::ZERO;
            let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap();
            assert_eq!(d.groups[0].result, "deployed", "{d:?}");
            assert_eq!(cloud.template_versions("lt-1"), [OLD, NEW], "made {made}");
            assert!(all(&cloud, NEW));
            let g = cloud.group("hello-live").unwrap();
            assert_eq!((g.min, g.max, g.desired), (4, 4, 4));
            assert!(!g.tags.contains_key(STATE_TAG) && !g.tags.contains_key(LOCK_TAG));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_ami_that_does_not_exist_is_refused_before_any_change() {
        for plan in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (mut s, cloud) = setup(dir.path(), 2);
            s.plan_only = plan;
            s.ami = AmiChoice::Explicit {
                ami: "ami-deadbeef00000000".into(),
                region: "us-east-1".into(),
            };
            let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap_err();
            assert_eq!(e.exit(), Exit::InvalidInput, "{}", e.render());
            assert!(
                e.render()
                    .contains("AMI ami-deadbeef00000000: it does not exist in us-east-1"),
                "{}",
                e.render()
            );
            assert!(all(&cloud, OLD));
            as_before(&cloud, 2);
            assert!(!cloud
                .calls()
                .iter()
                .any(|c| c.starts_with("CreateLaunchTemplateVersion")));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_named_group_of_another_component_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 2);
        add_group_on(&cloud, "other-live", 2, "lt-o", "1", &[OLD]);
        cloud.fake_fleet_tag("other-live", "gears:component", "other");
        s.groups = vec!["other-live".into()];
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Usage, "{}", e.render());
        assert!(
            e.render().contains(
                "--group other-live: the group is tagged gears:component=other, not hello"
            ),
            "{}",
            e.render()
        );
        assert!(cloud.member_images("other-live").iter().all(|i| i == OLD));
    }

    #[tokio::test(start_paused = true)]
    async fn unlock_refuses_the_lock_of_a_deploy_that_is_running() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 2);
        let live = lock_value("0190b7a2-0000-7000-8000-000000000009", "ci-host");
        cloud.fake_fleet_tag("hello-live", LOCK_TAG, &live);
        s.unlock = true;
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert!(
            e.render().contains("a deploy is running now"),
            "{}",
            e.render()
        );
        assert_eq!(cloud.group("hello-live").unwrap().tags[LOCK_TAG], live);
        // A minute later (here: a stale limit of zero) it is a dead run's lock: removed.
        s.lock_stale = Duration::ZERO;
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.groups[0].result, "unlocked");
        assert!(!cloud
            .group("hello-live")
            .unwrap()
            .tags
            .contains_key(LOCK_TAG));
    }

    #[tokio::test(start_paused = true)]
    async fn a_continued_deploy_whose_start_fails_rolls_the_group_back() {
        // A killed run's deploy, half way: recorded, its lock stale, one batch launched.
        let killed = |cloud: &FakeCloud, s: &DeploySettings| {
            let s = s.clone();
            let cloud = cloud.clone();
            async move {
                let slow = Faults {
                    latency: Duration::from_millis(100),
                    ..Default::default()
                };
                cloud.set_faults(slow);
                let (ctx, cancel, cleanup) = (rc(), Cancel::new(), Cleanup::default());
                let _ = tokio::time::timeout(
                    LOCK_SETTLE + Duration::from_secs(3),
                    deploy(&s, &ctx, &cancel, &cleanup, &cloud),
                )
                .await;
                cloud.set_faults(Faults::default());
            }
        };
        let twin_dir = tempfile::tempdir().unwrap();
        let (s0, twin) = setup(twin_dir.path(), 4);
        killed(&twin, &s0).await;
        let mut s = s0.clone();
        s.lock_stale = Duration::ZERO;
        let before = twin.calls().len();
        deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &twin)
            .await
            .unwrap();
        let calls = twin.calls();
        let nth = before as u32
            + 1
            + calls[before..]
                .iter()
                .position(|c| c.starts_with("SuspendProcesses "))
                .unwrap() as u32;
        let dir = tempfile::tempdir().unwrap();
        let (_, cloud) = setup(dir.path(), 4);
        killed(&cloud, &s0).await;
        let imgs = cloud.member_images("hello-live");
        assert!(imgs.contains(&NEW.to_owned()), "half rolled: {imgs:?}");
        cloud.set_faults(Faults {
            fail_at: Some((nth, crate::aws::ErrorKind::AccessDenied)),
            ..Default::default()
        });
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Cloud, "{}", e.render());
        assert!(e.render().contains("SuspendProcesses"), "{}", e.render());
        cloud.set_faults(Faults::default());
        // Not left half rolled: back on the old AMI, as it was.
        assert!(all(&cloud, OLD), "{:?}", cloud.member_images("hello-live"));
        as_before(&cloud, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_plan_says_what_is_on_the_group_and_abort_names_the_recorded_ami() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        cloud.set_unhealthy_images(&[NEW]);
        cloud.set_faults(Faults {
            throttle_ops: vec!["TerminateInstanceInAutoScalingGroup"],
            ..Default::default()
        });
        // A failed rollback: STOP, a recorded deploy, the group half rolled.
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.exit(), Exit::NeedsHuman);
        assert!(d.groups[0].detail.contains("the group now: min 4"), "{d:?}");
        cloud.set_faults(Faults::default());
        s.plan_only = true;
        let p = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        let detail = &p.groups[0].detail;
        assert!(detail.contains("the line is stopped"), "{detail}");
        assert!(detail.contains("recorded a deploy of"), "{detail}");
        assert!(detail.contains("capacity was 4/4/4"), "{detail}");
        assert_eq!(p.groups[0].from_ami, OLD, "{p:?}");
        // --abort of another AMI than the recorded one: refused, naming it.
        s.plan_only = false;
        s.abort = true;
        s.ami = AmiChoice::Explicit {
            ami: "ami-0000000000000003c".into(),
            region: "us-east-1".into(),
        };
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Usage, "{}", e.render());
        assert!(
            e.render().contains(&format!("is of {NEW}")),
            "{}",
            e.render()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_already_on_the_ami_is_left_alone_and_a_lock_without_a_record_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 3);
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.groups[0].result, "deployed");
        let versions = cloud.template_versions("lt-1").len();
        let calls = cloud.calls().len();
        // Again: nothing to do, nothing written, no new version.
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.groups[0].result, "nothing to do", "{d:?}");
        assert_eq!(cloud.template_versions("lt-1").len(), versions);
        let writes: Vec<String> = cloud.calls()[calls..]
            .iter()
            .filter(|c| !c.starts_with("Describe"))
            .cloned()
            .collect();
        assert!(writes.is_empty(), "{writes:?}");
        // A run killed between its lock and its record left only a lock: once stale, the
        // same command takes it over (nothing had changed).
        let dir = tempfile::tempdir().unwrap();
        let (_, cloud) = setup(dir.path(), 3);
        let orphan = lock_value("0190b7a2-0000-7000-8000-00000000000a", "ci-host");
        cloud.fake_fleet_tag("hello-live", LOCK_TAG, &orphan);
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert!(
            e.render().contains("another deploy holds the lock"),
            "{}",
            e.render()
        );
        s.lock_stale = Duration::ZERO;
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.groups[0].result, "deployed", "{d:?}");
        as_before(&cloud, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn two_deploys_racing_for_the_tag_lock_leave_one_to_deploy() {
        // The second starts a little after the first, at several offsets (calls take 100 ms
        // each): whatever the interleaving, one deploys and the other is refused. (The fake
        // does not reproduce the late overwrite seen on moto that the second look after
        // LOCK_SETTLE is for; --lock-table is the true compare-and-swap.)
        for offset in [50u64, 150, 250, 350, 450, 650, 850] {
            let dir = tempfile::tempdir().unwrap();
            let (s, cloud) = setup(dir.path(), 3);
            let mut other = s.clone();
            other.ami = AmiChoice::Explicit {
                ami: "ami-0000000000000003c".into(),
                region: "us-east-1".into(),
            };
            cloud.set_faults(Faults {
                latency: Duration::from_millis(100),
                ..Default::default()
            });
            let (c1, k1, l1) = (rc(), Cancel::new(), Cleanup::default());
            let (c2, k2, l2) = (rc(), Cancel::new(), Cleanup::default());
            let a = deploy(&s, &c1, &k1, &l1, &cloud);
            let b = async {
                tokio::time::sleep(Duration::from_millis(offset)).await;
                deploy(&other, &c2, &k2, &l2, &cloud).await
            };
            let (a, b) = tokio::join!(a, b);
            cloud.set_faults(Faults::default());
            let ok = [a.is_ok(), b.is_ok()];
            assert_eq!(
                ok.iter().filter(|x| **x).count(),
                1,
                "+{offset} ms: exactly one deploys: {a:?} {b:?}"
            );
            let (won, lost) = if a.is_ok() { (a, b) } else { (b, a) };
            assert_eq!(won.unwrap().groups[0].result, "deployed", "+{offset} ms");
            let e = lost.unwrap_err();
            assert_eq!(e.exit(), Exit::Cloud, "+{offset} ms: {}", e.render());
            // The group is on one AMI, template and instances alike.
            let imgs = cloud.member_images("hello-live");
            assert!(imgs.iter().all(|i| *i == imgs[0]), "+{offset} ms: {imgs:?}");
            as_before(&cloud, 3);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_third_of_calls_throttled_still_completes() {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 4);
        cloud.set_faults(Faults {
            throttle_one_in: Some(3),
            ..Default::default()
        });
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.groups[0].result, "deployed", "{d:?}");
        assert!(all(&cloud, NEW));
        cloud.set_faults(Faults::default());
        as_before(&cloud, 4);
        assert_eq!(cloud.healthy_floor("hello-live"), Some(4));
    }

    #[tokio::test(start_paused = true)]
    async fn unhealthy_new_instances_roll_back_to_the_old_ami_with_exit_6() {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 4);
        cloud.fake_fleet_tag("hello-live", "ENVIRONMENT", "was-live");
        cloud.set_unhealthy_images(&[NEW]);
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
        assert!(
            d.groups[0].detail.contains("not healthy after 1m00s"),
            "{d:?}"
        );
        assert!(all(&cloud, OLD));
        as_before(&cloud, 4);
        let g = cloud.group("hello-live").unwrap();
        assert_eq!(g.template.unwrap().version, "1");
        // The instance tags are back as they were: ENVIRONMENT was there, COMPONENT_NAME not.
        assert_eq!(g.tags["ENVIRONMENT"], "was-live");
        assert!(!g.tags.contains_key("COMPONENT_NAME"), "{:?}", g.tags);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_rollback_is_exit_7_and_stops_the_line() {
        for table in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (mut s, cloud) = setup(dir.path(), 4);
            if table {
                s.lock_table = Some("gears-locks".into());
            }
            // The new AMI fails its health checks, and AWS will not terminate anything (throttled
            // past every deadline): the rollback cannot finish.
            cloud.set_unhealthy_images(&[NEW]);
            cloud.set_faults(Faults {
                throttle_ops: vec!["TerminateInstanceInAutoScalingGroup"],
                ..Default::default()
            });
            let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap();
            assert_eq!(d.exit(), Exit::NeedsHuman, "{d:?}");
            assert!(
                d.groups[0]
                    .detail
                    .contains("rollback failed: AWS TerminateInstanceInAutoScalingGroup failed"),
                "{d:?}"
            );
            let lock = cloud.group("hello-live").unwrap().tags[LOCK_TAG].clone();
            assert!(lock.starts_with("STOP "), "{lock}");
            if table {
                // Kept in the lock table too, however long it waits.
                let items = cloud.lock_items();
                assert!(
                    items["us-east-1/hello-live"].1.starts_with("STOP "),
                    "{items:?}"
                );
                let mut later = s.clone();
                later.lock_stale = Duration::ZERO;
                let e = deploy(&later, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                    .await
                    .unwrap_err();
                assert_eq!(e.exit(), Exit::NeedsHuman, "{}", e.render());
                assert!(
                    e.render().contains("kept until a human unlocks it"),
                    "{}",
                    e.render()
                );
            }
            // The next deploy is refused until a human unlocks.
            cloud.set_unhealthy_images(&[]);
            cloud.set_faults(Faults::default());
            let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap_err();
            assert_eq!(e.exit(), Exit::NeedsHuman);
            assert!(e.render().contains("the line is stopped"), "{}", e.render());
            let mut unlock = s.clone();
            unlock.unlock = true;
            assert_eq!(
                deploy(&unlock, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                    .await
                    .unwrap()
                    .groups[0]
                    .result,
                "unlocked"
            );
            assert!(!cloud
                .group("hello-live")
                .unwrap()
                .tags
                .contains_key(LOCK_TAG));
            assert!(cloud.lock_items().is_empty(), "{:?}", cloud.lock_items());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_killed_deploy_continues_when_run_again_or_is_aborted() {
        for (abort, table) in [(false, false), (true, false), (false, true), (true, true)] {
            let dir = tempfile::tempdir().unwrap();
            let (mut s, cloud) = setup(dir.path(), 6);
            if table {
                s.lock_table = Some("gears-locks".into());
            }
            let slow = Faults {
                latency: Duration::from_millis(100),
                ..Default::default()
            };
            // How long a whole deploy takes, on a twin.
            let twin_dir = tempfile::tempdir().unwrap();
            let (_, twin) = setup(twin_dir.path(), 6);
            twin.set_faults(slow.clone());
            let start = Instant::now();
            deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &twin)
                .await
                .unwrap();
            let whole = start.elapsed();
            // kill -9 half way: the future is dropped, nothing of it runs again.
            cloud.set_faults(slow);
            let killed = tokio::time::timeout(
                whole / 2,
                deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud),
            )
            .await;
            cloud.set_faults(Faults::default());
            assert!(killed.is_err(), "still running when killed");
            let imgs = cloud.member_images("hello-live");
            assert!(
                imgs.contains(&NEW.to_owned()) && imgs.contains(&OLD.to_owned()),
                "{imgs:?}"
            );
            // At once, the lock is fresh: refused, naming the holder (the lock table's, or
            // the group's tag without one).
            let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap_err();
            let want = if table {
                "the lock table holds us-east-1/hello-live for run "
            } else {
                "another deploy holds the lock: run "
            };
            assert!(e.render().contains(want), "{}", e.render());
            if table {
                assert_eq!(cloud.lock_items().len(), 1);
            }
            // A minute later (here: a stale limit of zero), the same command takes over.
            s.lock_stale = Duration::ZERO;
            s.abort = abort;
            let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap();
            let want = if abort { "aborted" } else { "deployed" };
            assert_eq!(d.groups[0].result, want, "{d:?}");
            assert_eq!(d.groups[0].from_ami, OLD, "what it came from: {d:?}");
            assert!(all(&cloud, if abort { OLD } else { NEW }));
            // The killed run's lease was taken over, then given back.
            assert!(cloud.lock_items().is_empty(), "{:?}", cloud.lock_items());
            as_before(&cloud, 6);
            assert_eq!(cloud.healthy_floor("hello-live"), Some(6));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_deploy_of_another_ami_is_refused_while_one_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 4);
        let slow = Faults {
            latency: Duration::from_millis(100),
            ..Default::default()
        };
        let twin_dir = tempfile::tempdir().unwrap();
        let (_, twin) = setup(twin_dir.path(), 4);
        twin.set_faults(slow.clone());
        let start = Instant::now();
        deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &twin)
            .await
            .unwrap();
        let whole = start.elapsed();
        cloud.set_faults(slow);
        let killed = tokio::time::timeout(
            whole / 2,
            deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud),
        )
        .await;
        assert!(killed.is_err());
        cloud.set_faults(Faults::default());
        let mut other = s.clone();
        other.ami = AmiChoice::Explicit {
            ami: "ami-0000000000000003c".into(),
            region: "us-east-1".into(),
        };
        other.lock_stale = Duration::ZERO;
        let e = deploy(&other, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Cloud);
        let text = e.render();
        assert!(
            text.contains("group hello-live: another deploy holds the lock: run "),
            "{text}"
        );
        assert!(text.contains("--abort"), "{text}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_mid_deploy_rolls_the_group_back_before_exiting() {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 6);
        // New instances stay unhealthy, so the deploy waits at its first gate.
        cloud.set_unhealthy_images(&[NEW]);
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            c2.cancel(crate::cancel::Signal::Term);
        });
        let e = deploy(&s, &rc(), &cancel, &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Terminated);
        assert!(all(&cloud, OLD));
        as_before(&cloud, 6);
        assert_eq!(cloud.healthy_floor("hello-live"), Some(6));
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_whose_rollback_fails_is_exit_7_not_143() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        s.gate_timeout = Duration::from_secs(30);
        cloud.set_unhealthy_images(&[NEW]);
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        let faulty = cloud.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            // From here on AWS will not terminate anything: the rollback cannot finish.
            faulty.set_faults(Faults {
                throttle_ops: vec!["TerminateInstanceInAutoScalingGroup"],
                ..Default::default()
            });
            c2.cancel(crate::cancel::Signal::Term);
        });
        let d = deploy(&s, &rc(), &cancel, &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.exit(), Exit::NeedsHuman, "{d:?}");
        assert_eq!(d.groups[0].result, "rollback failed", "{d:?}");
        assert!(d.groups[0].detail.starts_with("SIGTERM received"), "{d:?}");
        let lock = cloud.group("hello-live").unwrap().tags[LOCK_TAG].clone();
        assert!(lock.starts_with("STOP "), "{lock}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_aws_error_mid_deploy_rolls_back_and_a_failed_start_gives_the_lock_back() {
        // Which call is which, from a deploy of a twin without faults.
        let twin_dir = tempfile::tempdir().unwrap();
        let (s, twin) = setup(twin_dir.path(), 4);
        deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &twin)
            .await
            .unwrap();
        let calls = twin.calls();
        let nth = |op: &str| 1 + calls.iter().position(|c| c.starts_with(op)).unwrap() as u32;
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 4);
        // The first retirement: half way through the roll.
        cloud.set_faults(Faults {
            fail_at: Some((
                nth("TerminateInstanceInAutoScalingGroup "),
                crate::aws::ErrorKind::AccessDenied,
            )),
            ..Default::default()
        });
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
        assert!(d.groups[0].detail.starts_with("AWS error"), "{d:?}");
        assert!(all(&cloud, OLD));
        as_before(&cloud, 4);
        // Denied at the new template version: nothing changed, no lock left.
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 4);
        cloud.set_faults(Faults {
            fail_at: Some((
                nth("CreateLaunchTemplateVersion "),
                crate::aws::ErrorKind::AccessDenied,
            )),
            ..Default::default()
        });
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Cloud, "{}", e.render());
        assert!(
            e.render().contains("CreateLaunchTemplateVersion"),
            "{}",
            e.render()
        );
        as_before(&cloud, 4);
    }

    /// A local HTTP server answering 200 to anything, and its port.
    async fn http_ok() -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn the_gate_runs_the_components_smoke_tests_at_each_new_instance() {
        for pass in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let (mut s, cloud) = setup(dir.path(), 4);
            std::fs::write(
                dir.path().join("gears.yaml"),
                "component: hello\nrepo: r\nami_regions: [us-east-1]\nbase_ami: {id: ami-0123456789abcdef0}\ntest: {smoke_file: smoke.yaml}\n",
            )
            .unwrap();
            std::fs::write(
                dir.path().join("smoke.yaml"),
                "tests:\n  - name: up\n    uri: /health\n",
            )
            .unwrap();
            let port = if pass {
                http_ok().await
            } else {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            };
            s.smoke_target =
                Some(crate::smoke::target::Target::parse(&format!("127.0.0.1:{port}")).unwrap());
            s.gate_timeout = Duration::from_secs(2);
            s.poll = Duration::from_millis(100);
            let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap();
            if pass {
                assert_eq!(d.groups[0].result, "deployed", "{d:?}");
                assert!(all(&cloud, NEW));
            } else {
                assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
                assert!(
                    d.groups[0].detail.contains("smoke test `up` failed at i-"),
                    "{d:?}"
                );
                assert!(all(&cloud, OLD));
            }
            as_before(&cloud, 4);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_on_a_launch_configuration_gets_a_copy_with_the_new_ami() {
        for healthy in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let (s, cloud) = setup(dir.path(), 0);
            cloud.add_configuration("web-lc", OLD);
            cloud.add_group(
                Group {
                    name: "hello-lc".into(),
                    min: 3,
                    max: 3,
                    desired: 3,
                    template: None,
                    launch_configuration: Some("web-lc".into()),
                    mixed: false,
                    override_templates: vec![],
                    members: vec![],
                    target_groups: vec!["tg-2".into()],
                    suspended: vec![],
                    tags: BTreeMap::from([
                        ("gears:component".to_owned(), "hello".to_owned()),
                        ("gears:environment".to_owned(), "live".to_owned()),
                    ]),
                },
                &[],
            );
            if !healthy {
                cloud.set_unhealthy_images(&[NEW]);
            }
            let mut s = s;
            s.groups = vec!["hello-lc".into()];
            let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap();
            let g = cloud.group("hello-lc").unwrap();
            let images = cloud.member_images("hello-lc");
            assert_eq!(d.groups[0].from_ami, OLD);
            if healthy {
                assert_eq!(d.groups[0].result, "deployed", "{d:?}");
                let lc = g.launch_configuration.unwrap();
                assert!(lc.starts_with("web-lc-gears-"), "{lc}");
                assert_eq!(cloud.configurations()[&lc], NEW);
                assert!(images.iter().all(|i| i == NEW), "{images:?}");
            } else {
                assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
                assert_eq!(g.launch_configuration.as_deref(), Some("web-lc"));
                assert!(images.iter().all(|i| i == OLD), "{images:?}");
            }
            assert_eq!((g.min, g.max, g.desired, images.len()), (3, 3, 3, 3));
            assert!(
                cloud.configurations().contains_key("web-lc"),
                "the old one stays"
            );
            assert_eq!(cloud.healthy_floor("hello-lc"), Some(3));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_deploy_killed_during_its_rollback_is_finished_by_the_same_command() {
        let mut during_rollback = 0;
        for after in [500u64, 1000, 1500, 2000, 2500, 3000, 3500, 4000] {
            let dir = tempfile::tempdir().unwrap();
            let (mut s, cloud) = setup(dir.path(), 4);
            cloud.set_unhealthy_images(&[NEW]);
            cloud.set_faults(Faults {
                latency: Duration::from_millis(100),
                ..Default::default()
            });
            // Killed a little after the gate failed.
            let killed = tokio::time::timeout(
                s.gate_timeout + LOCK_SETTLE + Duration::from_millis(after),
                deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud),
            )
            .await;
            if killed.is_ok() {
                break;
            }
            let g = cloud.group("hello-live").unwrap();
            if g.template.unwrap().version == "1" && g.tags.contains_key(STATE_TAG) {
                during_rollback += 1;
            }
            // The new AMI is fine after all; the same command again finishes the deploy.
            cloud.set_unhealthy_images(&[]);
            cloud.set_faults(Faults::default());
            s.lock_stale = Duration::ZERO;
            let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap();
            assert_eq!(
                d.groups[0].result, "deployed",
                "killed at +{after} ms: {d:?}"
            );
            assert!(all(&cloud, NEW), "killed at +{after} ms");
            as_before(&cloud, 4);
            assert_eq!(
                cloud.group("hello-live").unwrap().template.unwrap().version,
                "2"
            );
        }
        assert!(during_rollback > 0, "some kill landed during the rollback");
    }

    #[tokio::test(start_paused = true)]
    async fn another_components_manifest_and_unknown_groups_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 2);
        let m = dir.path().join("m.json");
        std::fs::write(
            &m,
            format!(r#"{{"format_version":1,"component":"other","version":"1","git_sha":"a","repo":"r","created_at":"c","ami_version":"v","base_ami":"b","run_id":"x","packer_run_uuid":null,"reused":false,"amis":{{"web":{{"us-east-1":"{NEW}"}}}}}}"#),
        )
        .unwrap();
        s.ami = AmiChoice::Manifest {
            path: m,
            builder: None,
            region: None,
        };
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::InvalidInput);
        assert!(
            e.render().contains("the manifest is of component `other`"),
            "{}",
            e.render()
        );
        let (mut s, _) = setup(dir.path(), 2);
        s.groups = vec!["nope".into()];
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Usage);
        assert!(
            e.render().contains("no Auto Scaling group named nope"),
            "{}",
            e.render()
        );
        s.groups = vec!["hello-live".into()];
        s.environment = "stage".into();
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert!(
            e.render()
                .contains("tagged gears:environment=live, not stage"),
            "{}",
            e.render()
        );
        assert!(all(&cloud, OLD));
    }

    #[tokio::test(start_paused = true)]
    async fn an_old_instance_unhealthy_before_the_deploy_does_not_block_the_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 4);
        // One old instance already fails its health check, and the new AMI fails too.
        cloud.set_unhealthy_member("i-f0000000000000001");
        cloud.set_unhealthy_images(&[NEW]);
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
        assert!(all(&cloud, OLD));
        as_before(&cloud, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_member_in_standby_is_left_alone_and_does_not_hold_the_deploy() {
        let dir = tempfile::tempdir().unwrap();
        let (s, cloud) = setup(dir.path(), 4);
        cloud.set_lifecycle("i-f0000000000000002", "Standby");
        // The group launched a replacement for it, as AWS does.
        cloud.settle("hello-live");
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.groups[0].result, "deployed", "{d:?}");
        // Said, since it may still run the old AMI.
        assert!(
            d.groups[0]
                .detail
                .ends_with("left alone, maybe on the old AMI: i-f0000000000000002 (Standby)"),
            "{d:?}"
        );
        let g = cloud.group("hello-live").unwrap();
        let standby: Vec<&crate::aws::Member> = g
            .members
            .iter()
            .filter(|m| m.lifecycle == "Standby")
            .collect();
        assert_eq!(standby.len(), 1);
        assert_eq!(standby[0].id, "i-f0000000000000002", "left alone");
        let counted: Vec<&crate::aws::Member> = g.members.iter().filter(|m| m.counts()).collect();
        assert_eq!(counted.len(), 4);
        assert_eq!((g.min, g.max, g.desired), (4, 4, 4));
    }

    #[tokio::test(start_paused = true)]
    async fn instance_refresh_is_waited_on_and_its_failure_rolls_back() {
        for healthy in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let (mut s, cloud) = setup(dir.path(), 4);
            s.strategy = Strategy::InstanceRefresh;
            if !healthy {
                cloud.set_unhealthy_images(&[NEW]);
            }
            let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
                .await
                .unwrap();
            if healthy {
                assert_eq!(d.groups[0].result, "deployed", "{d:?}");
                assert!(all(&cloud, NEW));
                assert!(cloud
                    .calls()
                    .iter()
                    .any(|c| c.starts_with("StartInstanceRefresh")));
            } else {
                assert_eq!(d.exit(), Exit::RolledBack, "{d:?}");
                assert!(
                    d.groups[0]
                        .detail
                        .contains("instance refresh refresh-1 Failed"),
                    "{d:?}"
                );
                assert!(all(&cloud, OLD));
            }
            as_before(&cloud, 4);
            assert_eq!(cloud.healthy_floor("hello-live"), Some(4));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_mid_refresh_cancels_the_refresh_before_rolling_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        s.strategy = Strategy::InstanceRefresh;
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            c2.cancel(crate::cancel::Signal::Term);
        });
        let e = deploy(&s, &rc(), &cancel, &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Terminated, "{}", e.render());
        let calls = cloud.calls();
        let at = |op: &str| calls.iter().position(|c| c.starts_with(op));
        let cancelled = at("CancelInstanceRefresh ").expect("the refresh was cancelled");
        // Cancelled before the rollback's first change (the template set back).
        let back = calls
            .iter()
            .enumerate()
            .skip(at("StartInstanceRefresh ").unwrap())
            .find(|(_, c)| c.starts_with("UpdateAutoScalingGroup "))
            .map(|(i, _)| i)
            .unwrap();
        assert!(cancelled < back, "{calls:?}");
        assert!(all(&cloud, OLD));
        as_before(&cloud, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_lock_table_refuses_a_second_deploy_and_is_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 4);
        s.lock_table = Some("gears-locks".into());
        let now = chrono::Utc::now().timestamp_millis();
        let locks = cloud.locks("us-east-1", "gears-locks").await.unwrap();
        assert_eq!(
            locks
                .acquire("us-east-1/hello-live", "other-run", "ci-42", now, 0)
                .await
                .unwrap(),
            None
        );
        let e = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::Cloud);
        assert!(
            e.render().contains(
                "the lock table holds us-east-1/hello-live for run other-run (ci-42), renewed "
            ),
            "{}",
            e.render()
        );
        assert!(all(&cloud, OLD), "nothing changed");
        // --unlock removes it (after a human looked); then the deploy runs and gives it back.
        let mut unlock = s.clone();
        unlock.unlock = true;
        deploy(&unlock, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        assert_eq!(d.groups[0].result, "deployed", "{d:?}");
        assert!(cloud.lock_items().is_empty(), "{:?}", cloud.lock_items());
        as_before(&cloud, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn plan_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, cloud) = setup(dir.path(), 10);
        s.batch = Batch::Percent(30);
        s.plan_only = true;
        let d = deploy(&s, &rc(), &Cancel::new(), &Cleanup::default(), &cloud)
            .await
            .unwrap();
        let g = &d.groups[0];
        assert_eq!((g.result.as_str(), g.batches), ("planned", 4));
        assert!(
            g.detail.contains(
                "10 of 10 instances to replace, 4 batch(es) of 3: capacity 10..13 (max 10 → 13"
            ),
            "{}",
            g.detail
        );
        let changes: Vec<String> = cloud
            .calls()
            .into_iter()
            .filter(|c| !c.starts_with("Describe"))
            .collect();
        assert!(changes.is_empty(), "{changes:?}");
        assert!(all(&cloud, OLD));
    }
}
