//! An in-memory [`Cloud`] with injectable faults, for tests of what moto cannot produce
//! (throttling, an error at a given call, slow answers). Latency sleeps on tokio's clock, so
//! tests run it with the clock paused. Used beside the moto tests, never instead of them.

use super::{
    has_tags, BaseAmiQuery, Cloud, CloudError, ErrorKind, Fleet, Group, Image, Images, Instance,
    Instances, LaunchSpec, Member, MemberInfo, SecurityGroup, TemplateRef,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Faults to inject. Calls are numbered from 1 across the whole fake cloud.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Every k-th call is throttled (after the SDK's retries, as AWS would leave it).
    pub throttle_one_in: Option<u32>,
    /// This share (in percent) of calls is throttled, spread over the call numbers as AWS
    /// would (a fixed scramble of them, so runs are repeatable): a call retried is a new call.
    pub throttle_percent: Option<u32>,
    /// Call N fails with this kind of error.
    pub fail_at: Option<(u32, ErrorKind)>,
    /// Every call takes this long.
    pub latency: Duration,
    /// These operations (e.g. `TerminateInstances`) are throttled every time, until the faults
    /// change.
    pub throttle_ops: Vec<&'static str>,
    /// How long a launched instance stays `pending` before it is `running`.
    pub boot: Duration,
    /// How long after launch EC2's status checks say ok (None: EC2 reports no checks).
    pub checks: Option<Duration>,
}

/// An instance of the fake, with its clock.
#[derive(Debug, Clone)]
struct FakeInstance {
    instance: Instance,
    launched: tokio::time::Instant,
    spec: LaunchSpec,
}

#[derive(Default)]
struct State {
    images: Mutex<BTreeMap<String, Vec<Image>>>,
    instances: Mutex<BTreeMap<String, Vec<FakeInstance>>>,
    key_pairs: Mutex<Vec<String>>,
    fleet: Mutex<FleetState>,
    /// Lock table items: key → (run, holder, until).
    locks: Mutex<BTreeMap<String, (String, String, i64)>>,
    groups: Mutex<Vec<SecurityGroup>>,
    console: Mutex<String>,
    calls: AtomicU32,
    log: Mutex<Vec<String>>,
    faults: Mutex<Faults>,
    amis: Mutex<AmisState>,
}

/// The fake AWS: images per region, the faults, and a log of the calls made.
#[derive(Clone, Default)]
pub struct FakeCloud {
    state: Arc<State>,
}

impl FakeCloud {
    /// An empty cloud without faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the faults from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.state.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
    }

    /// Adds an image to `region`.
    pub fn add_image(&self, region: &str, image: Image) {
        self.state
            .images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(region.to_owned())
            .or_default()
            .push(image);
    }

    /// Adds a key pair (any region).
    pub fn add_key_pair(&self, name: &str) {
        self.state
            .key_pairs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_owned());
    }

    /// Adds a security group (any region).
    pub fn add_security_group(&self, group: SecurityGroup) {
        self.state
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(group);
    }

    /// Adds an instance as if launched `age` ago by someone else (a leftover).
    pub fn add_instance(&self, region: &str, instance: Instance) {
        self.state
            .instances
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(region.to_owned())
            .or_default()
            .push(FakeInstance {
                instance,
                launched: tokio::time::Instant::now(),
                spec: LaunchSpec::default(),
            });
    }

    /// Key pairs and security groups left.
    pub fn key_pair_names(&self) -> Vec<String> {
        self.state
            .key_pairs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Security groups left.
    pub fn security_group_ids(&self) -> Vec<String> {
        self.state
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|g| g.id.clone())
            .collect()
    }

    /// What `GetConsoleOutput` answers.
    pub fn set_console_output(&self, text: &str) {
        *self.state.console.lock().unwrap_or_else(|p| p.into_inner()) = text.to_owned();
    }

    /// Every instance launched, as it is now, with the spec it was launched with.
    pub fn launched(&self) -> Vec<(Instance, LaunchSpec)> {
        let boot = self.faults().boot;
        self.state
            .instances
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .flatten()
            .map(|f| (now(f, boot), f.spec.clone()))
            .collect()
    }

    fn faults(&self) -> Faults {
        self.state
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The calls made so far, as `Operation region`.
    pub fn calls(&self) -> Vec<String> {
        self.state
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One call: numbered, logged, delayed, and failed if a fault says so.
    async fn call(&self, operation: &'static str, region: &str) -> Result<(), CloudError> {
        let n = self.state.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.state
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{operation} {region}"));
        let faults = self.faults();
        if !faults.latency.is_zero() {
            tokio::time::sleep(faults.latency).await;
        }
        let code = match faults.fail_at {
            Some((at, kind)) if at == n => Some(match kind {
                ErrorKind::Throttled => "RequestLimitExceeded",
                ErrorKind::AccessDenied => "UnauthorizedOperation",
                ErrorKind::NotFound => "InvalidAMIID.NotFound",
                ErrorKind::Invalid => "ValidationError",
                ErrorKind::Transient => "InternalError",
                ErrorKind::Other => "SomethingGearsDoesNotKnow",
            }),
            _ if faults.throttle_ops.contains(&operation) => Some("RequestLimitExceeded"),
            _ if faults
                .throttle_percent
                .is_some_and(|p| scramble(n) % 100 < u64::from(p)) =>
            {
                Some("RequestLimitExceeded")
            }
            _ => match faults.throttle_one_in {
                Some(k) if k > 0 && n.is_multiple_of(k) => Some("RequestLimitExceeded"),
                _ => None,
            },
        };
        match code {
            Some(code) => Err(CloudError::api(
                operation,
                region,
                Some(code),
                format!("injected fault at call {n}"),
            )),
            None => Ok(()),
        }
    }
}

/// The fake's [`Images`] of one region.
pub struct FakeImages {
    cloud: FakeCloud,
    region: String,
}

impl FakeImages {
    fn images(&self) -> Vec<Image> {
        self.cloud
            .state
            .images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.region)
            .cloned()
            .unwrap_or_default()
    }
}

impl Images for FakeImages {
    fn region(&self) -> &str {
        &self.region
    }

    async fn find_base_ami(&self, q: &BaseAmiQuery) -> Result<Option<Image>, CloudError> {
        self.cloud.call("DescribeImages", &self.region).await?;
        let images = self.images();
        if let Some(id) = &q.id {
            return Ok(images.into_iter().find(|i| &i.id == id));
        }
        let mut found: Vec<Image> = images
            .into_iter()
            .filter(|i| i.state == "available" && has_tags(i, &q.tags))
            .filter(|i| q.name.as_ref().is_none_or(|n| glob(n, &i.name)))
            .collect();
        found.sort_by(|a, b| (&a.creation_date, &a.name).cmp(&(&b.creation_date, &b.name)));
        Ok(found.pop())
    }

    async fn find_by_tags(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Image>, CloudError> {
        self.cloud.call("DescribeImages", &self.region).await?;
        Ok(self
            .images()
            .into_iter()
            .filter(|i| has_tags(i, tags))
            .collect())
    }
}

/// An instance as it is now: `pending` until its boot time has passed, then `running`.
fn now(f: &FakeInstance, boot: Duration) -> Instance {
    let mut i = f.instance.clone();
    if i.state == "pending" && f.launched.elapsed() >= boot {
        i.state = "running".into();
    }
    i
}

/// The fake's [`Instances`] of one region.
#[derive(Clone)]
pub struct FakeInstances {
    cloud: FakeCloud,
    region: String,
}

impl FakeInstances {
    fn with<T>(&self, f: impl FnOnce(&mut Vec<FakeInstance>) -> T) -> T {
        let mut all = self
            .cloud
            .state
            .instances
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        f(all.entry(self.region.clone()).or_default())
    }
}

impl Instances for FakeInstances {
    fn region(&self) -> &str {
        &self.region
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<Instance, CloudError> {
        self.cloud.call("RunInstances", &self.region).await?;
        let n = self.with(|v| v.len()) + 1;
        let instance = Instance {
            id: format!("i-{n:017x}"),
            state: "pending".into(),
            private_ip: Some(format!("10.0.0.{n}")),
            public_ip: None,
            tags: spec.tags.clone(),
            launched_at: Some(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        };
        self.with(|v| {
            v.push(FakeInstance {
                instance: instance.clone(),
                launched: tokio::time::Instant::now(),
                spec: spec.clone(),
            })
        });
        Ok(instance)
    }

    async fn describe(&self, id: &str) -> Result<Option<Instance>, CloudError> {
        self.cloud.call("DescribeInstances", &self.region).await?;
        let boot = self.cloud.faults().boot;
        Ok(self.with(|v| v.iter().find(|f| f.instance.id == id).map(|f| now(f, boot))))
    }

    async fn status_checks(&self, id: &str) -> Result<Option<bool>, CloudError> {
        self.cloud
            .call("DescribeInstanceStatus", &self.region)
            .await?;
        let Some(after) = self.cloud.faults().checks else {
            return Ok(None);
        };
        Ok(self.with(|v| {
            v.iter()
                .find(|f| f.instance.id == id)
                .map(|f| f.launched.elapsed() >= after)
        }))
    }

    async fn terminate(&self, id: &str) -> Result<(), CloudError> {
        self.cloud.call("TerminateInstances", &self.region).await?;
        if self.cloud.protected(id) {
            return Err(CloudError::api(
                "TerminateInstances",
                &self.region,
                Some("OperationNotPermitted"),
                format!("The instance '{id}' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again."),
            ));
        }
        self.with(|v| {
            for f in v.iter_mut().filter(|f| f.instance.id == id) {
                f.instance.state = "shutting-down".into();
            }
        });
        Ok(())
    }

    async fn key_pairs(&self, prefix: &str) -> Result<Vec<String>, CloudError> {
        self.key_pairs_impl(prefix).await
    }

    async fn delete_key_pair(&self, name: &str) -> Result<(), CloudError> {
        self.cloud.call("DeleteKeyPair", &self.region).await?;
        self.cloud
            .state
            .key_pairs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|n| n != name);
        Ok(())
    }

    async fn security_groups(&self, prefix: &str) -> Result<Vec<SecurityGroup>, CloudError> {
        self.cloud
            .call("DescribeSecurityGroups", &self.region)
            .await?;
        Ok(self
            .cloud
            .state
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|g| g.name.starts_with(prefix))
            .cloned()
            .collect())
    }

    async fn delete_security_group(&self, id: &str) -> Result<(), CloudError> {
        self.cloud.call("DeleteSecurityGroup", &self.region).await?;
        self.cloud
            .state
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|g| g.id != id);
        Ok(())
    }

    async fn console_output(&self, _id: &str) -> Result<String, CloudError> {
        self.cloud.call("GetConsoleOutput", &self.region).await?;
        Ok(self
            .cloud
            .state
            .console
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone())
    }

    async fn find_by_tags(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Instance>, CloudError> {
        self.cloud.call("DescribeInstances", &self.region).await?;
        let boot = self.cloud.faults().boot;
        Ok(self.with(|v| {
            v.iter()
                .map(|f| now(f, boot))
                .filter(|i| !i.is_gone() && tags.iter().all(|(k, x)| i.tags.get(k) == Some(x)))
                .collect()
        }))
    }
}

impl FakeInstances {
    async fn key_pairs_impl(&self, prefix: &str) -> Result<Vec<String>, CloudError> {
        self.cloud.call("DescribeKeyPairs", &self.region).await?;
        let boot = self.cloud.faults().boot;
        let used: Vec<String> = self.with(|v| {
            v.iter()
                .filter(|f| !now(f, boot).is_gone())
                .filter_map(|f| f.spec.key_name.clone())
                .collect()
        });
        Ok(self
            .cloud
            .key_pair_names()
            .into_iter()
            .filter(|n| n.starts_with(prefix) && !used.contains(n))
            .collect())
    }
}

impl Cloud for FakeCloud {
    type Images = FakeImages;
    type Instances = FakeInstances;

    async fn images(&self, region: &str) -> Result<FakeImages, CloudError> {
        Ok(FakeImages {
            cloud: self.clone(),
            region: region.to_owned(),
        })
    }

    async fn instances(&self, region: &str) -> Result<FakeInstances, CloudError> {
        Ok(FakeInstances {
            cloud: self.clone(),
            region: region.to_owned(),
        })
    }

    type Fleet = FakeFleet;

    async fn fleet(&self, region: &str) -> Result<FakeFleet, CloudError> {
        Ok(FakeFleet {
            cloud: self.clone(),
            region: region.to_owned(),
        })
    }

    type Locks = FakeLocks;

    async fn locks(&self, region: &str, _table: &str) -> Result<FakeLocks, CloudError> {
        Ok(FakeLocks {
            cloud: self.clone(),
            region: region.to_owned(),
        })
    }
}

/// A call number scrambled (splitmix64's finaliser): a repeatable spread of throttled calls.
fn scramble(n: u32) -> u64 {
    let mut x = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// EC2's name patterns: `*` any run, `?` one character.
fn glob(pattern: &str, s: &str) -> bool {
    fn go(p: &[char], s: &[char]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    go(&p, &s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn img(id: &str, tags: &[(&str, &str)]) -> Image {
        Image {
            id: id.into(),
            name: format!("name-{id}"),
            state: "available".into(),
            creation_date: "2026-11-24T00:00:00.000Z".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn faults_are_injected_by_call_number_share_and_latency() {
        let cloud = FakeCloud::new();
        cloud.add_image("us-east-1", img("ami-1", &[("A", "1")]));
        cloud.set_faults(Faults {
            throttle_one_in: Some(3),
            fail_at: Some((5, ErrorKind::AccessDenied)),
            latency: Duration::from_secs(2),
            ..Default::default()
        });
        let images = cloud.images("us-east-1").await.unwrap();
        let want = BTreeMap::from([("A".to_owned(), "1".to_owned())]);
        let start = Instant::now();
        let mut kinds = Vec::new();
        for _ in 0..6 {
            kinds.push(
                images
                    .find_by_tags(&want)
                    .await
                    .map(|v| v.len())
                    .map_err(|e| e.kind()),
            );
        }
        assert_eq!(
            kinds,
            vec![
                Ok(1),
                Ok(1),
                Err(ErrorKind::Throttled),
                Ok(1),
                Err(ErrorKind::AccessDenied),
                Err(ErrorKind::Throttled),
            ]
        );
        // Six calls of 2 s each, on the paused clock.
        assert_eq!(start.elapsed(), Duration::from_secs(12));
        assert_eq!(cloud.calls().len(), 6);
    }

    #[tokio::test]
    async fn lookups_compare_exactly_and_take_the_newest_base() {
        let cloud = FakeCloud::new();
        cloud.add_image("r", img("ami-1", &[("V", "7.0.1")]));
        let mut newer = img("ami-2", &[("team", "x")]);
        newer.creation_date = "2026-11-25T00:00:00.000Z".into();
        cloud.add_image("r", newer);
        cloud.add_image("r", img("ami-3", &[("team", "x")]));
        let images = cloud.images("r").await.unwrap();
        let star = BTreeMap::from([("V".to_owned(), "7.0.*".to_owned())]);
        assert!(images.find_by_tags(&star).await.unwrap().is_empty());
        let q = BaseAmiQuery {
            name: Some("name-ami-*".into()),
            tags: BTreeMap::from([("team".to_owned(), "x".to_owned())]),
            ..Default::default()
        };
        assert_eq!(images.find_base_ami(&q).await.unwrap().unwrap().id, "ami-2");
        assert!(glob("a*c?e", "abbbcde") && !glob("a*c?e", "abce"));
    }
}

/// The fake's Auto Scaling: groups, launch template versions (template id → version → image),
/// target health by image, and a log of the healthy in-service count after every change.
#[derive(Default)]
struct FleetState {
    groups: BTreeMap<String, Group>,
    templates: BTreeMap<String, Vec<String>>,
    /// Launch configuration name → image.
    configurations: BTreeMap<String, String>,
    images: BTreeMap<String, String>,
    next: u32,
    /// Instances of these images fail their target-group health check.
    unhealthy_images: Vec<String>,
    /// These instances fail their target-group health checks.
    unhealthy_members: Vec<String>,
    /// Every instance launched after the first N fails its target-group health checks.
    unhealthy_after: Option<u32>,
    /// Instance refreshes: group → (id, status).
    refreshes: BTreeMap<String, (String, String)>,
    /// Healthy in-service members after each change, per group.
    floor_log: BTreeMap<String, Vec<usize>>,
    /// A template's default version, when not 1.
    default_versions: BTreeMap<String, usize>,
    /// CreateLaunchTemplateVersion client tokens (region/token) → the version they made and
    /// what was asked.
    client_tokens: BTreeMap<String, (String, String)>,
    /// Launch lifecycle hooks, per group.
    launch_hooks: BTreeMap<String, Vec<super::LaunchHook>>,
    /// Instances of these images stay in `Pending:Wait` (a launch hook nobody completes).
    held_images: Vec<String>,
}

impl FleetState {
    fn launch(&mut self, group: &str) -> Option<()> {
        let g = self.groups.get(group)?;
        let image = match (&g.template, &g.launch_configuration) {
            (Some(t), _) => {
                let versions = self.templates.get(&t.id)?;
                let idx: usize = match t.version.as_str() {
                    "$Latest" => versions.len(),
                    "$Default" => self.default_versions.get(&t.id).copied().unwrap_or(1),
                    v => v.parse().ok()?,
                };
                versions.get(idx.checked_sub(1)?)?.clone()
            }
            (None, Some(c)) => self.configurations.get(c)?.clone(),
            (None, None) => return None,
        };
        self.next += 1;
        let id = format!("i-f{:016x}", self.next);
        let held = self.held_images.contains(&image);
        self.images.insert(id.clone(), image);
        self.groups.get_mut(group)?.members.push(Member {
            id,
            lifecycle: if held { "Pending:Wait" } else { "InService" }.into(),
            health: "Healthy".into(),
        });
        Some(())
    }

    /// Launches or removes members until the group has its desired count (newest removed
    /// first), then records the healthy count.
    fn settle(&mut self, group: &str) {
        loop {
            let Some(g) = self.groups.get(group) else {
                return;
            };
            let n = g.members.iter().filter(|m| m.counts()).count() as i32;
            let want = g.desired;
            if n < want {
                if self.launch(group).is_none() {
                    break;
                }
            } else if n > want {
                if let Some(g) = self.groups.get_mut(group) {
                    // The newest member that counts goes.
                    if let Some(i) = g.members.iter().rposition(|m| m.counts()) {
                        g.members.remove(i);
                    }
                }
            } else {
                break;
            }
        }
        self.record(group);
    }

    fn healthy(&self, group: &str) -> usize {
        self.groups.get(group).map_or(0, |g| {
            g.members
                .iter()
                .filter(|m| {
                    m.in_service()
                        && !self.late(&m.id)
                        && !self.unhealthy_members.contains(&m.id)
                        && !self
                            .images
                            .get(&m.id)
                            .is_some_and(|i| self.unhealthy_images.contains(i))
                })
                .count()
        })
    }

    /// Launched after the first `unhealthy_after` instances.
    fn late(&self, id: &str) -> bool {
        let n = id
            .strip_prefix("i-f")
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        matches!((self.unhealthy_after, n), (Some(after), Some(n)) if n > after)
    }

    fn record(&mut self, group: &str) {
        let h = self.healthy(group);
        self.floor_log.entry(group.to_owned()).or_default().push(h);
    }
}

impl FakeCloud {
    fn fleet_state(&self) -> std::sync::MutexGuard<'_, FleetState> {
        self.state.fleet.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a group launching from template `template` (its versions' images), with `desired`
    /// members running the last version's image.
    pub fn add_group(&self, group: Group, template_images: &[&str]) {
        let mut f = self.fleet_state();
        if let Some(t) = &group.template {
            f.templates.insert(
                t.id.clone(),
                template_images.iter().map(|s| s.to_string()).collect(),
            );
        }
        let name = group.name.clone();
        f.groups.insert(name.clone(), group);
        f.settle(&name);
    }

    /// Adds a launch configuration.
    pub fn add_configuration(&self, name: &str, image: &str) {
        self.fleet_state()
            .configurations
            .insert(name.to_owned(), image.to_owned());
    }

    /// The launch configurations and their images.
    pub fn configurations(&self) -> BTreeMap<String, String> {
        self.fleet_state().configurations.clone()
    }

    /// Sets a tag on a group directly (as a human or another tool would).
    pub fn fake_fleet_tag(&self, group: &str, key: &str, value: &str) {
        if let Some(g) = self.fleet_state().groups.get_mut(group) {
            g.tags.insert(key.to_owned(), value.to_owned());
        }
    }

    /// Makes a group's launch template its mixed-instances policy's; `override_templates` are
    /// the instance types whose overrides name a template of their own.
    pub fn set_mixed(&self, group: &str, override_templates: &[&str]) {
        if let Some(g) = self.fleet_state().groups.get_mut(group) {
            g.mixed = true;
            g.override_templates = override_templates.iter().map(|s| s.to_string()).collect();
        }
    }

    /// Sets a launch template's default version (1 otherwise).
    pub fn set_default_version(&self, template: &str, n: usize) {
        self.fleet_state()
            .default_versions
            .insert(template.to_owned(), n);
    }

    /// A launch template's versions: their images, version 1 first.
    pub fn template_versions(&self, template: &str) -> Vec<String> {
        self.fleet_state()
            .templates
            .get(template)
            .cloned()
            .unwrap_or_default()
    }

    /// A launch lifecycle hook on `group` that holds instances of `images` in `Pending:Wait`.
    pub fn add_launch_hook(&self, group: &str, hook: super::LaunchHook, images: &[&str]) {
        let mut f = self.fleet_state();
        f.launch_hooks
            .entry(group.to_owned())
            .or_default()
            .push(hook);
        f.held_images.extend(images.iter().map(|s| s.to_string()));
    }

    /// Puts a member in a lifecycle state (`Standby`, `Terminating:Wait`, ...).
    pub fn set_lifecycle(&self, id: &str, state: &str) {
        let mut f = self.fleet_state();
        for g in f.groups.values_mut() {
            for m in g.members.iter_mut().filter(|m| m.id == id) {
                m.lifecycle = state.to_owned();
            }
        }
    }

    /// Lets the group launch or remove members until its desired count is met.
    pub fn settle(&self, group: &str) {
        self.fleet_state().settle(group);
    }

    /// Every instance launched after the first `n` fails its target-group health checks.
    pub fn set_unhealthy_after(&self, n: u32) {
        self.fleet_state().unhealthy_after = Some(n);
    }

    /// This instance fails its target-group health checks from now on.
    pub fn set_unhealthy_member(&self, id: &str) {
        self.fleet_state().unhealthy_members.push(id.to_owned());
    }

    /// Instances of these images fail their target-group health checks from now on.
    pub fn set_unhealthy_images(&self, images: &[&str]) {
        self.fleet_state().unhealthy_images = images.iter().map(|s| s.to_string()).collect();
    }

    /// The group as it is now.
    pub fn group(&self, name: &str) -> Option<Group> {
        self.fleet_state().groups.get(name).cloned()
    }

    /// The image of each member of the group.
    pub fn member_images(&self, name: &str) -> Vec<String> {
        let f = self.fleet_state();
        f.groups.get(name).map_or(Vec::new(), |g| {
            g.members
                .iter()
                .filter_map(|m| f.images.get(&m.id).cloned())
                .collect()
        })
    }

    /// The lowest healthy in-service count the group had after any change.
    pub fn healthy_floor(&self, name: &str) -> Option<usize> {
        self.fleet_state()
            .floor_log
            .get(name)
            .and_then(|v| v.iter().min().copied())
    }
}

/// The fake's [`Fleet`] of one region.
#[derive(Clone)]
pub struct FakeFleet {
    cloud: FakeCloud,
    region: String,
}

impl Fleet for FakeFleet {
    fn region(&self) -> &str {
        &self.region
    }

    async fn groups(
        &self,
        tags: &BTreeMap<String, String>,
        names: &[String],
    ) -> Result<Vec<Group>, CloudError> {
        self.cloud
            .call("DescribeAutoScalingGroups", &self.region)
            .await?;
        Ok(self
            .cloud
            .fleet_state()
            .groups
            .values()
            .filter(|g| names.is_empty() || names.contains(&g.name))
            .filter(|g| tags.iter().all(|(k, v)| g.tags.get(k) == Some(v)))
            .cloned()
            .collect())
    }

    async fn template_image(&self, t: &TemplateRef) -> Result<String, CloudError> {
        self.cloud
            .call("DescribeLaunchTemplateVersions", &self.region)
            .await?;
        let f = self.cloud.fleet_state();
        let versions = f.templates.get(&t.id).cloned().unwrap_or_default();
        let idx: usize = t.version.parse().unwrap_or(versions.len());
        Ok(versions
            .get(idx.saturating_sub(1))
            .cloned()
            .unwrap_or_default())
    }

    async fn resolve_version(&self, t: &TemplateRef) -> Result<String, CloudError> {
        self.cloud
            .call("DescribeLaunchTemplateVersions", &self.region)
            .await?;
        let f = self.cloud.fleet_state();
        let n = f.templates.get(&t.id).map_or(0, Vec::len);
        let v = match t.version.as_str() {
            "$Latest" => n,
            "$Default" => f.default_versions.get(&t.id).copied().unwrap_or(1),
            v => v.parse().unwrap_or(0),
        };
        if v == 0 || v > n {
            return Err(CloudError::api(
                "DescribeLaunchTemplateVersions",
                &self.region,
                Some("InvalidLaunchTemplateId.VersionNotFound"),
                format!("launch template {} has no version {}", t.id, t.version),
            ));
        }
        Ok(v.to_string())
    }

    async fn new_template_version(
        &self,
        source: &TemplateRef,
        image: &str,
        token: &str,
    ) -> Result<String, CloudError> {
        self.cloud
            .call("CreateLaunchTemplateVersion", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        // As on EC2: a token is scoped to the account and region; the same token with other
        // parameters is refused.
        let key = format!("{}/{token}", self.region);
        let asked = format!("{}/{}/{image}", source.id, source.version);
        if let Some((v, was)) = f.client_tokens.get(&key) {
            if *was != asked {
                return Err(CloudError::api(
                    "CreateLaunchTemplateVersion",
                    &self.region,
                    Some("IdempotentParameterMismatch"),
                    "the client token was used with other parameters",
                ));
            }
            return Ok(v.clone());
        }
        let v = f.templates.entry(source.id.clone()).or_default();
        v.push(image.to_owned());
        let n = v.len().to_string();
        f.client_tokens.insert(key, (n.clone(), asked));
        Ok(n)
    }

    async fn configuration_image(&self, name: &str) -> Result<String, CloudError> {
        self.cloud
            .call("DescribeLaunchConfigurations", &self.region)
            .await?;
        Ok(self
            .cloud
            .fleet_state()
            .configurations
            .get(name)
            .cloned()
            .unwrap_or_default())
    }

    async fn copy_configuration(
        &self,
        source: &str,
        name: &str,
        image: &str,
    ) -> Result<(), CloudError> {
        self.cloud
            .call("CreateLaunchConfiguration", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        if !f.configurations.contains_key(source) || f.configurations.contains_key(name) {
            return Err(CloudError::api(
                "CreateLaunchConfiguration",
                &self.region,
                Some("ValidationError"),
                format!("cannot copy {source} to {name}"),
            ));
        }
        f.configurations.insert(name.to_owned(), image.to_owned());
        Ok(())
    }

    async fn set_configuration(&self, group: &str, name: &str) -> Result<(), CloudError> {
        self.cloud
            .call("UpdateAutoScalingGroup", &self.region)
            .await?;
        if let Some(g) = self.cloud.fleet_state().groups.get_mut(group) {
            g.launch_configuration = Some(name.to_owned());
        }
        Ok(())
    }

    async fn set_template(
        &self,
        group: &str,
        t: &TemplateRef,
        mixed: bool,
    ) -> Result<(), CloudError> {
        self.cloud
            .call("UpdateAutoScalingGroup", &self.region)
            .await?;
        if let Some(g) = self.cloud.fleet_state().groups.get_mut(group) {
            if mixed && !g.mixed {
                return Err(CloudError::api(
                    "UpdateAutoScalingGroup",
                    &self.region,
                    Some("ValidationError"),
                    "the group has no mixed instances policy",
                ));
            }
            // As on AWS: a plain LaunchTemplate replaces a mixed-instances policy (its instance
            // types and Spot settings are lost), so a deploy must not send one to a mixed group.
            if !mixed {
                g.mixed = false;
                g.override_templates.clear();
            }
            g.template = Some(t.clone());
        }
        Ok(())
    }

    async fn set_capacity(
        &self,
        group: &str,
        min: i32,
        max: i32,
        desired: i32,
    ) -> Result<(), CloudError> {
        self.cloud
            .call("UpdateAutoScalingGroup", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        if let Some(g) = f.groups.get_mut(group) {
            if !(min <= desired && desired <= max) {
                return Err(CloudError::api(
                    "UpdateAutoScalingGroup",
                    &self.region,
                    Some("ValidationError"),
                    format!("desired {desired} outside [{min}, {max}]"),
                ));
            }
            (g.min, g.max, g.desired) = (min, max, desired);
        }
        f.settle(group);
        Ok(())
    }

    async fn terminate_member(&self, id: &str, decrement: bool) -> Result<(), CloudError> {
        self.cloud
            .call("TerminateInstanceInAutoScalingGroup", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        let Some(name) = f
            .groups
            .values()
            .find(|g| g.members.iter().any(|m| m.id == id))
            .map(|g| g.name.clone())
        else {
            return Err(CloudError::api(
                "TerminateInstanceInAutoScalingGroup",
                &self.region,
                Some("ValidationError"),
                format!("{id} is not in a group"),
            ));
        };
        if let Some(g) = f.groups.get_mut(&name) {
            g.members.retain(|m| m.id != id);
            if decrement {
                g.desired -= 1;
            }
        }
        f.record(&name);
        f.settle(&name);
        Ok(())
    }

    async fn set_processes(
        &self,
        group: &str,
        processes: &[String],
        suspend: bool,
    ) -> Result<(), CloudError> {
        self.cloud
            .call(
                if suspend {
                    "SuspendProcesses"
                } else {
                    "ResumeProcesses"
                },
                &self.region,
            )
            .await?;
        if let Some(g) = self.cloud.fleet_state().groups.get_mut(group) {
            for p in processes {
                g.suspended.retain(|x| x != p);
                if suspend {
                    g.suspended.push(p.clone());
                }
            }
        }
        Ok(())
    }

    async fn put_tags(
        &self,
        group: &str,
        tags: &BTreeMap<String, String>,
        _propagate: bool,
    ) -> Result<(), CloudError> {
        self.cloud.call("CreateOrUpdateTags", &self.region).await?;
        if let Some(g) = self.cloud.fleet_state().groups.get_mut(group) {
            g.tags.extend(tags.clone());
        }
        Ok(())
    }

    async fn delete_tags(&self, group: &str, keys: &[String]) -> Result<(), CloudError> {
        self.cloud.call("DeleteTags", &self.region).await?;
        if let Some(g) = self.cloud.fleet_state().groups.get_mut(group) {
            for k in keys {
                g.tags.remove(k);
            }
        }
        Ok(())
    }

    async fn start_refresh(
        &self,
        group: &str,
        _min_healthy: i32,
        _max_healthy: i32,
    ) -> Result<String, CloudError> {
        self.cloud
            .call("StartInstanceRefresh", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        let id = format!("refresh-{}", f.refreshes.len() + 1);
        f.refreshes
            .insert(group.to_owned(), (id.clone(), "InProgress".into()));
        Ok(id)
    }

    /// Each look at a refresh in progress replaces one member (launch first, then retire),
    /// as AWS does over time; a replacement that fails its health checks fails the refresh.
    async fn refresh_status(
        &self,
        group: &str,
        id: &str,
    ) -> Result<(String, i32, String), CloudError> {
        self.cloud
            .call("DescribeInstanceRefreshes", &self.region)
            .await?;
        let mut f = self.cloud.fleet_state();
        let Some((rid, status)) = f.refreshes.get(group).cloned() else {
            return Ok((String::new(), 0, "no refresh".into()));
        };
        if rid != id || status != "InProgress" {
            return Ok((status, 100, String::new()));
        }
        let Some(g) = f.groups.get(group).cloned() else {
            return Ok(("Failed".into(), 0, "group gone".into()));
        };
        // The image the group launches now.
        let target = match (&g.template, &g.launch_configuration) {
            (Some(t), _) => f.templates.get(&t.id).and_then(|v| {
                let i = t.version.parse::<usize>().unwrap_or(v.len());
                v.get(i.saturating_sub(1)).cloned()
            }),
            (None, Some(c)) => f.configurations.get(c).cloned(),
            _ => None,
        }
        .unwrap_or_default();
        let total = g.members.iter().filter(|m| m.counts()).count().max(1);
        let outdated: Vec<String> = g
            .members
            .iter()
            .filter(|m| m.counts() && f.images.get(&m.id) != Some(&target))
            .map(|m| m.id.clone())
            .collect();
        let Some(victim) = outdated.first().cloned() else {
            f.refreshes
                .insert(group.to_owned(), (rid, "Successful".into()));
            return Ok(("Successful".into(), 100, String::new()));
        };
        // Launch one, check it, then retire one.
        if let Some(g) = f.groups.get_mut(group) {
            g.desired += 1;
        }
        f.settle(group);
        let newest = f
            .groups
            .get(group)
            .and_then(|g| g.members.last().map(|m| m.id.clone()))
            .unwrap_or_default();
        let bad = f.late(&newest)
            || f.unhealthy_members.contains(&newest)
            || f.images
                .get(&newest)
                .is_some_and(|i| f.unhealthy_images.contains(i));
        if bad {
            if let Some(g) = f.groups.get_mut(group) {
                g.members.retain(|m| m.id != newest);
                g.desired -= 1;
            }
            f.record(group);
            f.refreshes.insert(group.to_owned(), (rid, "Failed".into()));
            return Ok((
                "Failed".into(),
                0,
                format!("{newest} failed its health checks"),
            ));
        }
        if let Some(g) = f.groups.get_mut(group) {
            g.members.retain(|m| m.id != victim);
            g.desired -= 1;
        }
        f.record(group);
        let done = total - (outdated.len() - 1);
        Ok((
            "InProgress".into(),
            (done * 100 / total) as i32,
            String::new(),
        ))
    }

    async fn cancel_refresh(&self, group: &str) -> Result<(), CloudError> {
        self.cloud
            .call("CancelInstanceRefresh", &self.region)
            .await?;
        if let Some(r) = self.cloud.fleet_state().refreshes.get_mut(group) {
            r.1 = "Cancelled".into();
        }
        Ok(())
    }

    async fn launch_hooks(&self, group: &str) -> Result<Vec<super::LaunchHook>, CloudError> {
        self.cloud
            .call("DescribeLifecycleHooks", &self.region)
            .await?;
        Ok(self
            .cloud
            .fleet_state()
            .launch_hooks
            .get(group)
            .cloned()
            .unwrap_or_default())
    }

    async fn target_health(
        &self,
        target_group: &str,
    ) -> Result<BTreeMap<String, String>, CloudError> {
        self.cloud
            .call("DescribeTargetHealth", &self.region)
            .await?;
        let f = self.cloud.fleet_state();
        Ok(f.groups
            .values()
            .filter(|g| g.target_groups.iter().any(|t| t == target_group))
            .flat_map(|g| g.members.iter())
            .map(|m| {
                let bad = f.late(&m.id)
                    || f.unhealthy_members.contains(&m.id)
                    || f.images
                        .get(&m.id)
                        .is_some_and(|i| f.unhealthy_images.contains(i));
                (
                    m.id.clone(),
                    if bad { "unhealthy" } else { "healthy" }.to_owned(),
                )
            })
            .collect())
    }

    async fn describe_members(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, MemberInfo>, CloudError> {
        self.cloud.call("DescribeInstances", &self.region).await?;
        let f = self.cloud.fleet_state();
        Ok(ids
            .iter()
            .filter_map(|id| {
                f.images.get(id).map(|img| {
                    (
                        id.clone(),
                        MemberInfo {
                            image: img.clone(),
                            // Addresses nobody can reach: tests send smoke tests elsewhere.
                            private_ip: Some("192.0.2.1".into()),
                            public_ip: None,
                        },
                    )
                })
            })
            .collect())
    }
}

/// The fake's AMI housekeeping: snapshots per image and region, and uses of AMIs per region.
#[derive(Default)]
struct AmisState {
    /// image id → its snapshots.
    image_snapshots: BTreeMap<String, Vec<String>>,
    /// region → snapshots that exist.
    snapshots: BTreeMap<String, Vec<String>>,
    /// region → uses.
    uses: BTreeMap<String, Vec<super::AmiUse>>,
    /// image id → who else may launch it (`account 1234...`, `group all`).
    launch_permissions: BTreeMap<String, Vec<String>>,
    /// snapshot id → its tags.
    snapshot_tags: BTreeMap<String, BTreeMap<String, String>>,
    /// Instances that are members of an Auto Scaling group.
    group_members: std::collections::BTreeSet<String>,
    /// Key names launch templates and configurations use.
    launch_keys: std::collections::BTreeSet<String>,
    /// Instances with termination protection.
    protected: std::collections::BTreeSet<String>,
    /// After each deregister, this many DeleteSnapshot calls answer `InvalidSnapshot.InUse`
    /// (EC2 lags behind its own deregister), and how many are left.
    in_use_lag: (u32, u32),
    /// DeregisterImage deletes the snapshots only that AMI uses (AWS's
    /// `DeleteAssociatedSnapshots`); off, as moto 5.2 ignores the flag.
    deletes_associated: bool,
}

impl FakeCloud {
    fn amis_state(&self) -> std::sync::MutexGuard<'_, AmisState> {
        self.state.amis.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds snapshots behind an image of `region` (the image itself: [`FakeCloud::add_image`]).
    pub fn add_snapshots(&self, region: &str, image_id: &str, snapshots: &[&str]) {
        let mut a = self.amis_state();
        a.image_snapshots
            .entry(image_id.to_owned())
            .or_default()
            .extend(snapshots.iter().map(|s| s.to_string()));
        a.snapshots
            .entry(region.to_owned())
            .or_default()
            .extend(snapshots.iter().map(|s| s.to_string()));
    }

    /// Records a use of an AMI (a launch template version, launch configuration or instance).
    pub fn add_ami_use(&self, region: &str, use_: super::AmiUse) {
        self.amis_state()
            .uses
            .entry(region.to_owned())
            .or_default()
            .push(use_);
    }

    /// The AMIs of `region` now.
    pub fn ami_ids(&self, region: &str) -> Vec<String> {
        self.state
            .images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(region)
            .map(|v| v.iter().map(|i| i.id.clone()).collect())
            .unwrap_or_default()
    }

    /// The snapshots of `region` now.
    pub fn snapshot_ids(&self, region: &str) -> Vec<String> {
        self.amis_state()
            .snapshots
            .get(region)
            .cloned()
            .unwrap_or_default()
    }
}

impl FakeCloud {
    /// Lets others launch an AMI (`account 123456789012`, `group all` for public).
    pub fn add_launch_permission(&self, image_id: &str, who: &str) {
        self.amis_state()
            .launch_permissions
            .entry(image_id.to_owned())
            .or_default()
            .push(who.to_owned());
    }

    /// Tags a snapshot (as packer's `snapshot_tags` do).
    pub fn tag_snapshot(&self, snapshot_id: &str, tags: &[(&str, &str)]) {
        self.amis_state()
            .snapshot_tags
            .entry(snapshot_id.to_owned())
            .or_default()
            .extend(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    }

    /// Makes an instance a member of an Auto Scaling group.
    pub fn add_group_member(&self, instance_id: &str) {
        self.amis_state()
            .group_members
            .insert(instance_id.to_owned());
    }

    /// A launch template or configuration names this key pair.
    pub fn add_launch_key(&self, name: &str) {
        self.amis_state().launch_keys.insert(name.to_owned());
    }

    /// Turns termination protection on for an instance: TerminateInstances answers
    /// `OperationNotPermitted`.
    pub fn protect_instance(&self, instance_id: &str) {
        self.amis_state().protected.insert(instance_id.to_owned());
    }

    /// After each deregister, `n` DeleteSnapshot calls answer `InvalidSnapshot.InUse`.
    pub fn set_snapshot_in_use_lag(&self, n: u32) {
        self.amis_state().in_use_lag = (n, 0);
    }

    /// DeregisterImage deletes the snapshots only that AMI uses, as AWS does with
    /// `DeleteAssociatedSnapshots`.
    pub fn set_deletes_associated(&self, on: bool) {
        self.amis_state().deletes_associated = on;
    }

    /// Whether TerminateInstances refuses this instance.
    fn protected(&self, instance_id: &str) -> bool {
        self.amis_state().protected.contains(instance_id)
    }
}

impl FakeAmis {
    fn after_deregister(&self, image_id: &str, registered: &[String]) {
        let mut a = self.cloud.amis_state();
        a.in_use_lag.1 = a.in_use_lag.0;
        if !a.deletes_associated {
            return;
        }
        let mine = a.image_snapshots.get(image_id).cloned().unwrap_or_default();
        let shared: Vec<String> = a
            .image_snapshots
            .iter()
            .filter(|(i, _)| registered.contains(i))
            .flat_map(|(_, s)| s.clone())
            .collect();
        if let Some(v) = a.snapshots.get_mut(&self.region) {
            v.retain(|s| !mine.contains(s) || shared.contains(s));
        }
    }

    fn lagging(&self) -> bool {
        let mut a = self.cloud.amis_state();
        if a.in_use_lag.1 == 0 {
            return false;
        }
        a.in_use_lag.1 -= 1;
        true
    }
}

/// The fake's [`super::AmiHousekeeping`] of one region.
#[derive(Clone)]
pub struct FakeAmis {
    cloud: FakeCloud,
    region: String,
}

impl super::AmiCloud for FakeCloud {
    type Amis = FakeAmis;

    async fn amis(&self, region: &str) -> Result<FakeAmis, CloudError> {
        Ok(FakeAmis {
            cloud: self.clone(),
            region: region.to_owned(),
        })
    }
}

impl super::AmiHousekeeping for FakeAmis {
    fn region(&self) -> &str {
        &self.region
    }

    async fn owned_images(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<super::OwnedImage>, CloudError> {
        self.cloud.call("DescribeImages", &self.region).await?;
        let images: Vec<Image> = self
            .cloud
            .state
            .images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.region)
            .cloned()
            .unwrap_or_default();
        let a = self.cloud.amis_state();
        Ok(images
            .into_iter()
            .filter(|i| has_tags(i, tags))
            .map(|image| super::OwnedImage {
                snapshots: a
                    .image_snapshots
                    .get(&image.id)
                    .cloned()
                    .unwrap_or_default(),
                public: a
                    .launch_permissions
                    .get(&image.id)
                    .is_some_and(|p| p.iter().any(|p| p == "group all")),
                image,
            })
            .collect())
    }

    async fn uses(&self) -> Result<Vec<super::AmiUse>, CloudError> {
        self.cloud
            .call("DescribeLaunchTemplateVersions", &self.region)
            .await?;
        self.cloud
            .call("DescribeAutoScalingGroups", &self.region)
            .await?;
        self.cloud
            .call("DescribeLaunchConfigurations", &self.region)
            .await?;
        self.cloud.call("DescribeInstances", &self.region).await?;
        Ok(self
            .cloud
            .amis_state()
            .uses
            .get(&self.region)
            .cloned()
            .unwrap_or_default())
    }

    async fn launch_permissions(&self, image_id: &str) -> Result<Vec<String>, CloudError> {
        self.cloud
            .call("DescribeImageAttribute", &self.region)
            .await?;
        let a = self.cloud.amis_state();
        Ok(a.launch_permissions
            .get(image_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn registered_snapshots(&self) -> Result<BTreeMap<String, Vec<String>>, CloudError> {
        self.cloud.call("DescribeImages", &self.region).await?;
        let registered = self.cloud.ami_ids(&self.region);
        let a = self.cloud.amis_state();
        let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (image, snaps) in a
            .image_snapshots
            .iter()
            .filter(|(i, _)| registered.contains(i))
        {
            for s in snaps {
                by.entry(s.clone()).or_default().push(image.clone());
            }
        }
        Ok(by)
    }

    async fn tagged_snapshots(
        &self,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<super::Snapshot>, CloudError> {
        self.cloud.call("DescribeSnapshots", &self.region).await?;
        let a = self.cloud.amis_state();
        Ok(a.snapshots
            .get(&self.region)
            .into_iter()
            .flatten()
            .map(|id| super::Snapshot {
                id: id.clone(),
                state: "completed".into(),
                tags: a.snapshot_tags.get(id).cloned().unwrap_or_default(),
            })
            .filter(|s| tags.iter().all(|(k, v)| s.tags.get(k) == Some(v)))
            .collect())
    }

    async fn group_members(
        &self,
        ids: &[String],
    ) -> Result<std::collections::BTreeSet<String>, CloudError> {
        self.cloud
            .call("DescribeAutoScalingInstances", &self.region)
            .await?;
        if ids.len() > 50 {
            return Err(CloudError::api(
                "DescribeAutoScalingInstances",
                &self.region,
                Some("ValidationError"),
                "at most 50 instance ids",
            ));
        }
        let a = self.cloud.amis_state();
        Ok(ids
            .iter()
            .filter(|i| a.group_members.contains(*i))
            .cloned()
            .collect())
    }

    async fn launch_key_names(&self) -> Result<std::collections::BTreeSet<String>, CloudError> {
        self.cloud
            .call("DescribeLaunchTemplateVersions", &self.region)
            .await?;
        self.cloud
            .call("DescribeLaunchConfigurations", &self.region)
            .await?;
        Ok(self.cloud.amis_state().launch_keys.clone())
    }

    async fn deregister(&self, image_id: &str) -> Result<(), CloudError> {
        self.cloud.call("DeregisterImage", &self.region).await?;
        let mut all = self
            .cloud
            .state
            .images
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let v = all.entry(self.region.clone()).or_default();
        if !v.iter().any(|i| i.id == image_id) {
            return Err(CloudError::api(
                "DeregisterImage",
                &self.region,
                Some("InvalidAMIID.NotFound"),
                format!("no image {image_id}"),
            ));
        }
        v.retain(|i| i.id != image_id);
        let registered: Vec<String> = v.iter().map(|i| i.id.clone()).collect();
        drop(all);
        self.after_deregister(image_id, &registered);
        Ok(())
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), CloudError> {
        self.cloud.call("DeleteSnapshot", &self.region).await?;
        if self.lagging() {
            return Err(CloudError::api(
                "DeleteSnapshot",
                &self.region,
                Some("InvalidSnapshot.InUse"),
                format!("snapshot {snapshot_id} is in use (EC2 has not caught up)"),
            ));
        }
        // As on EC2: a snapshot behind a registered image cannot go.
        let registered = self.cloud.ami_ids(&self.region);
        let mut a = self.cloud.amis_state();
        if let Some((image, _)) = a
            .image_snapshots
            .iter()
            .find(|(i, s)| registered.contains(i) && s.iter().any(|s| s == snapshot_id))
        {
            return Err(CloudError::api(
                "DeleteSnapshot",
                &self.region,
                Some("InvalidSnapshot.InUse"),
                format!("snapshot {snapshot_id} is in use by {image}"),
            ));
        }
        let v = a.snapshots.entry(self.region.clone()).or_default();
        if !v.iter().any(|s| s == snapshot_id) {
            return Err(CloudError::api(
                "DeleteSnapshot",
                &self.region,
                Some("InvalidSnapshot.NotFound"),
                format!("no snapshot {snapshot_id}"),
            ));
        }
        v.retain(|s| s != snapshot_id);
        Ok(())
    }
}

/// The fake's lock table: a compare-and-swap under one mutex.
#[derive(Clone)]
pub struct FakeLocks {
    cloud: FakeCloud,
    region: String,
}

impl FakeCloud {
    /// The lock table's items: key → (run, holder, last renewal in Unix milliseconds).
    pub fn lock_items(&self) -> BTreeMap<String, (String, String, i64)> {
        self.state
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl super::LockTable for FakeLocks {
    async fn acquire(
        &self,
        key: &str,
        run: &str,
        holder: &str,
        at: i64,
        stale_before: i64,
    ) -> Result<Option<super::locks::TableHolder>, CloudError> {
        self.cloud.call("PutItem", &self.region).await?;
        let mut items = self
            .cloud
            .state
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match items.get(key) {
            Some((r, h, a)) if r != run && *a > stale_before => {
                Ok(Some(super::locks::TableHolder {
                    run: r.clone(),
                    holder: h.clone(),
                    at: Some(*a),
                    seen_at: at,
                }))
            }
            _ => {
                items.insert(key.to_owned(), (run.to_owned(), holder.to_owned(), at));
                Ok(None)
            }
        }
    }

    async fn renew(&self, key: &str, run: &str, holder: &str, at: i64) -> Result<bool, CloudError> {
        self.cloud.call("UpdateItem", &self.region).await?;
        let mut items = self
            .cloud
            .state
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match items.get_mut(key) {
            Some(item) if item.0 == run => {
                item.1 = holder.to_owned();
                item.2 = at;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, key: &str, run: &str) -> Result<(), CloudError> {
        self.cloud.call("DeleteItem", &self.region).await?;
        let mut items = self
            .cloud
            .state
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if items.get(key).is_some_and(|(r, _, _)| r == run) {
            items.remove(key);
        }
        Ok(())
    }

    async fn force_release(&self, key: &str) -> Result<(), CloudError> {
        self.cloud.call("DeleteItem", &self.region).await?;
        self.cloud
            .state
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        Ok(())
    }
}
