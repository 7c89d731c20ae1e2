//! An in-memory [`Cloud`] with injectable faults, for tests of what moto cannot produce
//! (throttling, an error at a given call, slow answers). Latency sleeps on tokio's clock, so
//! tests run it with the clock paused. Used beside the moto tests, never instead of them.
//!
//! A file a port: `images`, `instances` (EC2 instances, key pairs, security groups, console),
//! `fleet` over `fleet_state` (Auto Scaling, launch templates, target health), `amis` (AMI
//! housekeeping) and `locks` (the DynamoDB lock table); here the shared state, the numbering,
//! faults and log of calls, and the [`Cloud`] and [`super::AmiCloud`] that hand the ports out.

use super::{Cloud, CloudError, ErrorKind, Image, SecurityGroup};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod amis;
mod clone;
mod fleet;
mod fleet_state;
mod images;
mod instances;
mod launches;
mod locks;
mod refresh;
mod traffic;

pub use amis::FakeAmis;
pub use fleet::FakeFleet;
pub use fleet_state::TagCall;
pub use images::FakeImages;
pub use instances::FakeInstances;
pub use locks::FakeLocks;

use amis::AmisState;
use fleet_state::FleetState;
use instances::FakeInstance;

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
    /// Every write (a mutating call) takes this much longer (and lands at its end).
    pub write_latency: Duration,
    /// These operations (e.g. `TerminateInstances`) are throttled every time, until the faults
    /// change.
    pub throttle_ops: Vec<&'static str>,
    /// These operations fail with this AWS error code every time, until the faults change
    /// (as a permanent error would).
    pub fail_ops: Vec<(&'static str, &'static str)>,
    /// How long a launched instance stays `pending` before it is `running`.
    pub boot: Duration,
    /// How long after launch EC2's status checks say ok (None: EC2 reports no checks).
    pub checks: Option<Duration>,
}

/// An image's deprecation time and deregistration protection, as EC2 holds them.
type Hygiene = (Option<String>, Option<String>);

#[derive(Default)]
struct State {
    images: Mutex<BTreeMap<String, Vec<Image>>>,
    /// Image id → its owner (`self`, `amazon`, an account id), for those a test named one.
    image_owners: Mutex<BTreeMap<String, String>>,
    instances: Mutex<BTreeMap<String, Vec<FakeInstance>>>,
    key_pairs: Mutex<Vec<String>>,
    fleet: Mutex<FleetState>,
    /// Lock table items: key → (run, holder, until).
    locks: Mutex<BTreeMap<String, (String, String, i64)>>,
    groups: Mutex<Vec<SecurityGroup>>,
    /// Launch templates of no group (packer's Spot templates), any region.
    named_templates: Mutex<Vec<crate::aws::NamedTemplate>>,
    console: Mutex<String>,
    calls: AtomicU32,
    /// Writes (mutating calls) since the last [`FakeCloud::die_at_write`].
    writes: AtomicU32,
    /// Where the process "dies": at write k, that write landing or not.
    death: Mutex<Option<(u32, bool)>>,
    /// Dead: every call from now on hangs, as a killed process makes none.
    dead: std::sync::atomic::AtomicBool,
    died: tokio::sync::Notify,
    log: Mutex<Vec<String>>,
    faults: Mutex<Faults>,
    amis: Mutex<AmisState>,
    /// Image id → who may launch it (and create volumes from its snapshots).
    image_shares: Mutex<BTreeMap<String, crate::aws::ImageShares>>,
    /// Image id → (its deprecation time, its deregistration protection: `enabled`,
    /// `enabled-with-cooldown`), as EC2 holds them.
    hygiene: Mutex<BTreeMap<String, Hygiene>>,
    /// Parameter Store: (region, name) → the parameter.
    parameters: Mutex<BTreeMap<(String, String), crate::aws::Parameter>>,
    /// A share call answers 200 and stores nothing (as moto does with one form).
    shares_ignored: std::sync::atomic::AtomicBool,
}

/// The fake AWS: images per region, the faults, and a log of the calls made.
#[derive(Clone, Default)]
pub struct FakeCloud {
    state: Arc<State>,
    /// The account this view acts as, when a test names one ([`FakeCloud::as_account`]).
    viewer: Option<String>,
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

    /// `kill -9` at write `k` (mutating calls counted from 1 from now): the k-th write does
    /// not happen (`lands` false) or happens (`lands` true), and from then on every call hangs,
    /// so the run's future, dropped once [`FakeCloud::died`] returns, leaves AWS as a killed
    /// process would: no cleanup, no further write.
    pub fn die_at_write(&self, k: u32, lands: bool) {
        self.state.writes.store(0, Ordering::SeqCst);
        self.state.dead.store(false, Ordering::SeqCst);
        *self.state.death.lock().unwrap_or_else(|p| p.into_inner()) = Some((k, lands));
    }

    /// Alive again, with no death planned (the next process).
    pub fn revive(&self) {
        *self.state.death.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.state.dead.store(false, Ordering::SeqCst);
        self.state.writes.store(0, Ordering::SeqCst);
    }

    /// Returns once the planned death happened.
    pub async fn died(&self) {
        self.state.died.notified().await
    }

    /// The writes (mutating calls) made since the last [`FakeCloud::die_at_write`] or
    /// [`FakeCloud::revive`].
    pub fn writes(&self) -> u32 {
        self.state.writes.load(Ordering::SeqCst)
    }

    /// Dead, or dies at this call: a call of a dead process never returns.
    async fn mortal(&self, operation: &str) {
        use std::sync::atomic::Ordering::SeqCst;
        if self.state.dead.load(SeqCst) {
            std::future::pending::<()>().await;
        }
        let read = ["Describe", "Get", "List"]
            .iter()
            .any(|p| operation.starts_with(p));
        if read {
            return;
        }
        let k = self.state.writes.fetch_add(1, SeqCst) + 1;
        let death = *self.state.death.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, lands)) = death {
            if at == k {
                self.state.dead.store(true, SeqCst);
                self.state.died.notify_one();
                if !lands {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// One call: numbered, logged, delayed, and failed if a fault says so.
    async fn call(&self, operation: &'static str, region: &str) -> Result<(), CloudError> {
        self.mortal(operation).await;
        let n = self.state.calls.fetch_add(1, Ordering::SeqCst) + 1;
        self.state
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{operation} {region}"));
        let faults = self.faults();
        let read = ["Describe", "Get", "List"]
            .iter()
            .any(|p| operation.starts_with(p));
        let latency = faults.latency
            + if read {
                Duration::ZERO
            } else {
                faults.write_latency
            };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
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
            _ if faults.fail_ops.iter().any(|(op, _)| *op == operation) => faults
                .fail_ops
                .iter()
                .find(|(op, _)| *op == operation)
                .map(|(_, code)| *code),
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

impl Cloud for FakeCloud {
    /// The fake keeps one account: every role's view is the same state.
    fn in_account(&self, _account: Option<crate::accounts::RoleSession>) -> Self {
        self.clone()
    }

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

    use crate::aws::{BaseAmiQuery, Images};
    fn img(id: &str, tags: &[(&str, &str)]) -> Image {
        Image {
            id: id.into(),
            name: format!("name-{id}"),
            state: "available".into(),
            owner: String::new(),
            public: false,
            creation_date: "2026-11-24T00:00:00.000Z".into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
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
