//! `gears reap`: what gears and packer left behind (test instances past `gears:expires-at`,
//! bake build instances older than their `gears:ttl`, and packer's `packer_*` key pairs and
//! unused security groups older than the TTL), listed, and with `--yes` removed.
//!
//! And the launch templates packer's Spot builds leave ([`spot`]), tagged as the bake's.
//!
//! Packer 1.6 does not tag its key pairs and security groups, but names them
//! `packer_<time-ordered UUID>`, whose first 8 hex digits are the Unix time it made them: that
//! is their age.

use crate::aws::{AmiCloud, AmiHousekeeping, Cloud, CloudError, Instance, Instances};
use crate::cancel::Cancel;
use crate::error::Error;
use crate::exit::Exit;
use crate::wait::patiently;
use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::time::Duration;

mod spot;

/// Everything `gears reap` needs.
#[derive(Debug, Clone)]
pub struct ReapSettings {
    pub regions: Vec<String>,
    /// Remove what is listed (otherwise only list it).
    pub yes: bool,
    /// How old a bake's leftovers (build instances without an expiry, packer key pairs and
    /// security groups) must be.
    pub ttl: Duration,
    pub json: bool,
    pub endpoint_flag: Option<String>,
    /// The account reaped, through its role (none: the credentials' own).
    pub account: Option<crate::accounts::RoleSession>,
}

/// One `gears reap` as asked.
#[derive(Debug, Clone)]
pub struct ReapAsk {
    pub regions: Vec<String>,
    pub yes: bool,
    pub ttl: crate::units::Ttl,
    pub output: crate::settings::OutputFormat,
    pub endpoint_url: Option<String>,
    /// The role to act through (`--role-arn`).
    pub role: Option<crate::accounts::Role>,
}

impl ReapSettings {
    /// Resolves a reap: at least one region, named (reap has no component file to take them
    /// from).
    pub fn resolve(ask: ReapAsk) -> Result<Self, crate::error::Error> {
        if ask.regions.is_empty() {
            return Err(crate::error::Error::usage(
                "gears reap needs --region (repeat it for several)",
                Some("gears reap --region us-east-1".into()),
            ));
        }
        let account = crate::accounts::session("reap", "", ask.role, None, &Default::default());
        Ok(ReapSettings {
            account,
            regions: ask.regions,
            yes: ask.yes,
            ttl: ask.ttl.into(),
            json: ask.output == crate::settings::OutputFormat::Json,
            endpoint_flag: ask.endpoint_url,
        })
    }
}

/// One thing left behind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leftover {
    pub region: String,
    /// `test-instance`, `bake-instance`, `key-pair`, `security-group`, `launch-template`.
    pub kind: &'static str,
    pub id: String,
    pub reason: String,
    /// Listed, removed, skipped (and why), or failed (and why).
    pub action: Action,
}

/// What happened to a leftover. Printed and serialized as `listed`, `removed`,
/// `skipped: <why>` or `failed: <why>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Found; removed only with `--yes`.
    Listed,
    Removed,
    /// Never removed, and why: [`Action::IN_A_GROUP`], [`Action::UNREADABLE`],
    /// [`Action::PROTECTED`], [`Action::INSTANCE_STAYS`].
    Skipped(&'static str),
    /// The removal failed after retries, and why (AWS's error, or what terminating the
    /// instance came to): exit 5.
    Failed(String),
}

impl Action {
    /// Why a member of an Auto Scaling group is never touched.
    pub const IN_A_GROUP: &'static str = "a member of an Auto Scaling group";
    /// Why an instance whose expiry cannot be read is never touched.
    pub const UNREADABLE: &'static str = "unreadable";
    /// Why an instance with termination protection stays.
    pub const PROTECTED: &'static str = "termination protection is on";
    /// Why a packer Spot template stays: a bake instance listed with it is still there.
    pub const INSTANCE_STAYS: &'static str = "a bake instance listed with it stays";

    /// Whether the removal failed.
    pub fn failed(&self) -> bool {
        matches!(self, Action::Failed(_))
    }

    /// The exit code this action asks for: 5 when the removal failed, else 0.
    pub fn exit(&self) -> Exit {
        if self.failed() {
            Exit::Cloud
        } else {
            Exit::Success
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Listed => f.write_str("listed"),
            Action::Removed => f.write_str("removed"),
            Action::Skipped(why) => write!(f, "skipped: {why}"),
            Action::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// Written in JSON as it is printed.
impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The exit code of a reap: 5 when a removal failed, else 0.
pub fn exit(found: &[Leftover]) -> Exit {
    found
        .iter()
        .map(|l| l.action.exit())
        .fold(Exit::Success, Exit::most_severe)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Why `i` is a leftover at `now`, if it is: a test instance past its expiry, or a bake build
/// instance older than its `gears:ttl` (or past a `gears:expires-at` a bake renewed). `Err`: it
/// looks like one but its expiry cannot be read (listed, never removed).
pub fn instance_reason(
    i: &Instance,
    now: DateTime<Utc>,
) -> Result<Option<(&'static str, String)>, String> {
    let tag = |k: &str| i.tags.get(k).map(String::as_str);
    let unreadable = |k: &str, v: &str| Err(format!("{k} {v:?} cannot be read: left alone"));
    let kind = match tag(crate::tags::PURPOSE) {
        Some("test") => "test-instance",
        Some("bake") => "bake-instance",
        _ => return Ok(None),
    };
    if let Some(at) = tag(crate::tags::EXPIRES_AT) {
        let Some(expires) = parse_time(at) else {
            return unreadable(crate::tags::EXPIRES_AT, at);
        };
        return Ok((expires <= now).then(|| (kind, format!("expired at {at}"))));
    }
    if kind == "test-instance" {
        return Err(format!(
            "a test instance without {}: left alone",
            crate::tags::EXPIRES_AT
        ));
    }
    let Some(ttl) = tag(crate::tags::TTL) else {
        return Err(format!(
            "a bake instance without {}: left alone",
            crate::tags::TTL
        ));
    };
    let Ok(ttl) = ttl.parse::<crate::units::Ttl>().map(Duration::from) else {
        return unreadable(crate::tags::TTL, ttl);
    };
    let Some(launched) = i.launched_at.as_deref().and_then(parse_time) else {
        return Err("its launch time is unknown: left alone".into());
    };
    let age = now
        .signed_duration_since(launched)
        .to_std()
        .unwrap_or_default();
    Ok((age >= ttl).then(|| {
        (
            kind,
            format!(
                "bake build instance launched {}, older than its ttl",
                i.launched_at.as_deref().unwrap_or_default()
            ),
        )
    }))
}

/// The age of a packer key pair or security group at `now`: packer names them `packer_` and a
/// time-ordered UUID (8-4-4-4-12 lowercase hex digits, the first 8 the Unix time it made
/// them). Any other name (`packer_20240101`, `packer_-1000000`) is not packer's: `None`.
pub fn packer_age(name: &str, now: DateTime<Utc>) -> Option<Duration> {
    let uuid = name.strip_prefix("packer_")?;
    let parts: Vec<&str> = uuid.split('-').collect();
    let shape = [8, 4, 4, 4, 12];
    let hex = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if parts.len() != shape.len()
        || parts
            .iter()
            .zip(shape)
            .any(|(p, n)| p.len() != n || !hex(p))
    {
        return None;
    }
    let secs = i64::from_str_radix(parts[0], 16).ok()?;
    let made = DateTime::<Utc>::from_timestamp(secs, 0)?;
    now.signed_duration_since(made).to_std().ok()
}

/// How long one AWS call is retried while AWS throttles.
const PATIENCE: Duration = Duration::from_secs(120);

/// The deadline of an AWS call made now: [`PATIENCE`] from now.
fn patience() -> tokio::time::Instant {
    tokio::time::Instant::now() + PATIENCE
}

fn age(d: Duration) -> String {
    crate::text::human_age(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Lists (and with `--yes` removes) the leftovers in every region. Never touched: a member of
/// an Auto Scaling group (whatever its tags), an instance with termination protection (listed
/// as skipped), one whose expiry cannot be read (listed), key pairs a launch template or
/// configuration names. Every call is retried while AWS throttles.
pub async fn reap<C: Cloud + AmiCloud>(
    settings: &ReapSettings,
    cancel: &Cancel,
    cloud: &C,
) -> Result<Vec<Leftover>, Error> {
    let now = Utc::now();
    let mut found = Vec::new();
    for region in &settings.regions {
        let mut here = find(settings, cancel, cloud, region, now).await?;
        if settings.yes {
            let port = cloud.instances(region).await?;
            remove(&port, &mut here, cancel).await?;
        }
        found.extend(here);
    }
    Ok(found)
}

fn leftover(region: &str, kind: &'static str, id: String, reason: String) -> Leftover {
    Leftover {
        region: region.to_owned(),
        kind,
        id,
        reason,
        action: Action::Listed,
    }
}

/// What is left behind in one region.
async fn find<C: Cloud + AmiCloud>(
    settings: &ReapSettings,
    cancel: &Cancel,
    cloud: &C,
    region: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Leftover>, Error> {
    let port = cloud.instances(region).await?;
    let house = cloud.amis(region).await?;
    let mine = BTreeMap::from([(crate::tags::MANAGED_BY.to_owned(), "gears".to_owned())]);
    let instances = patiently(cancel, patience(), || port.find_by_tags(&mine)).await?;
    let ids: Vec<String> = instances.iter().map(|i| i.id.clone()).collect();
    let members = patiently(cancel, patience(), || house.group_members(&ids)).await?;
    let mut here: Vec<Leftover> = Vec::new();
    for i in &instances {
        let in_group = members.contains(&i.id) || i.tags.contains_key("aws:autoscaling:groupName");
        match instance_reason(i, now) {
            Ok(Some((kind, reason))) if in_group => {
                let mut l = leftover(region, kind, i.id.clone(), reason);
                l.action = Action::Skipped(Action::IN_A_GROUP);
                here.push(l);
            }
            Ok(Some((kind, reason))) => here.push(leftover(region, kind, i.id.clone(), reason)),
            Ok(None) => {}
            Err(why) => {
                let mut l = leftover(region, "instance", i.id.clone(), why);
                l.action = Action::Skipped(Action::UNREADABLE);
                here.push(l);
            }
        }
    }
    let keys = patiently(cancel, patience(), || port.key_pairs("packer_")).await?;
    let named = patiently(cancel, patience(), || house.launch_key_names()).await?;
    for name in keys.into_iter().filter(|k| !named.contains(k)) {
        if let Some(a) = packer_age(&name, now).filter(|a| *a >= settings.ttl) {
            let reason = format!("packer key pair made {} ago", age(a));
            here.push(leftover(region, "key-pair", name, reason));
        }
    }
    for g in patiently(cancel, patience(), || port.security_groups("packer_")).await? {
        match packer_age(&g.name, now) {
            Some(a) if a >= settings.ttl && !g.in_use => {
                let reason = format!(
                    "unused packer security group {} made {} ago",
                    g.name,
                    age(a)
                );
                here.push(leftover(region, "security-group", g.id, reason));
            }
            _ => {}
        }
    }
    let tags = spot::bake_tags();
    let templates = patiently(cancel, patience(), || {
        port.launch_templates(spot::PREFIX, &tags)
    })
    .await?;
    let spot = spot::leftovers(region, templates, (&instances, &here), settings.ttl, now);
    here.extend(spot);
    Ok(here)
}

/// Removes what is listed (instances first: a security group cannot go while an instance uses
/// it). A signal ends it with [`Error::Interrupted`], never with a line that says "failed".
async fn remove<I: Instances>(
    port: &I,
    here: &mut [Leftover],
    cancel: &Cancel,
) -> Result<(), Error> {
    let interrupted = || Error::Interrupted(cancel.ended_by());
    for i in 0..here.len() {
        // A Spot template stays while a bake instance listed before it is still there (it
        // failed or was skipped): its run may not be over.
        let instance_stays = here[..i].iter().any(|o| {
            o.kind == "bake-instance" && matches!(o.action, Action::Failed(_) | Action::Skipped(_))
        });
        let l = &mut here[i];
        if l.action != Action::Listed {
            continue;
        }
        if cancel.is_cancelled() {
            return Err(interrupted());
        }
        if l.kind == "launch-template" && instance_stays {
            l.action = Action::Skipped(Action::INSTANCE_STAYS);
            continue;
        }
        let r = match l.kind {
            "test-instance" | "bake-instance" => {
                // Termination protection is a "no" that stays a no: skipped, not retried.
                match patiently(cancel, patience(), || port.terminate(&l.id)).await {
                    Err(Error::Cloud(CloudError::Api { code: Some(c), .. }))
                        if c == "OperationNotPermitted" =>
                    {
                        l.action = Action::Skipped(Action::PROTECTED);
                        continue;
                    }
                    Err(e @ Error::Interrupted(_)) => return Err(e),
                    _ => {}
                }
                let deadline = tokio::time::Instant::now() + crate::terminate::DEADLINE;
                crate::terminate::until_gone(port, &l.id, cancel, deadline).await
            }
            "key-pair" => patiently(cancel, patience(), || port.delete_key_pair(&l.id))
                .await
                .map_err(|e| e.to_string()),
            "launch-template" => {
                match patiently(cancel, patience(), || port.delete_launch_template(&l.id)).await {
                    // Deleted since the look (packer's own cleanup, another reap): gone.
                    Err(Error::Cloud(e)) if e.kind() == crate::aws::ErrorKind::NotFound => Ok(()),
                    r => r.map_err(|e| e.to_string()),
                }
            }
            _ => patiently(cancel, patience(), || port.delete_security_group(&l.id))
                .await
                .map_err(|e| e.to_string()),
        };
        l.action = match r {
            Ok(()) => Action::Removed,
            // Cut short by the signal (the run's token is the one terminating waits on).
            Err(_) if cancel.is_cancelled() => return Err(interrupted()),
            Err(why) => Action::Failed(why),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::{Cloud, Instances, SecurityGroup};
    use crate::testing::{packer_name, FakeCloud, Faults};

    fn inst(id: &str, tags: &[(&str, &str)], launched: &str) -> Instance {
        Instance {
            id: id.into(),
            state: "running".into(),
            private_ip: None,
            public_ip: None,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            launched_at: Some(launched.into()),
        }
    }

    #[test]
    fn reasons_and_ages() {
        let now = parse_time("2026-11-24T12:00:00Z").unwrap();
        let test = |at: &str| {
            inst(
                "i-1",
                &[("gears:purpose", "test"), ("gears:expires-at", at)],
                "",
            )
        };
        assert!(instance_reason(&test("2026-11-24T11:59:59Z"), now)
            .unwrap()
            .is_some());
        assert!(instance_reason(&test("2026-11-24T12:00:01Z"), now)
            .unwrap()
            .is_none());
        // Unreadable: said, not skipped in silence.
        assert!(instance_reason(&test("not a time"), now)
            .unwrap_err()
            .contains("cannot be read"));
        let bake = |launched: &str| {
            inst(
                "i-2",
                &[("gears:purpose", "bake"), ("gears:ttl", "3h")],
                launched,
            )
        };
        assert!(instance_reason(&bake("2026-11-24T08:59:00Z"), now)
            .unwrap()
            .is_some());
        assert!(instance_reason(&bake("2026-11-24T09:01:00Z"), now)
            .unwrap()
            .is_none());
        assert!(
            instance_reason(&inst("i-3", &[], "2020-01-01T00:00:00Z"), now)
                .unwrap()
                .is_none()
        );
        // 0x6b000000 = 1795162112 s.
        let t = DateTime::<Utc>::from_timestamp(0x6b00_0000 + 7200, 0).unwrap();
        assert_eq!(
            packer_age("packer_6b000000-1111-2222-3333-444455556666", t),
            Some(Duration::from_secs(7200))
        );
        // Not packer's names: a user's, signed or short "timestamps", upper case, extra parts.
        for name in [
            "packer_zz",
            "mine_6b000000",
            "packer_20240101",
            "packer_-1000000",
            "packer_+1234567",
            "packer_6b000000-1111",
            "packer_6B000000-1111-2222-3333-444455556666",
            "packer_6b000000-1111-2222-3333-444455556666-x",
            "packer_+b000000-1111-2222-3333-444455556666",
        ] {
            assert_eq!(packer_age(name, t), None, "{name}");
        }
    }

    /// A packer Spot template stays while a bake instance listed with it could not be
    /// terminated (its run may not be over); one deleted since the look counts as removed.
    #[tokio::test]
    async fn a_spot_template_stays_while_a_bake_instance_stays() {
        let cloud = FakeCloud::new();
        let bake = [
            ("gears:managed-by", "gears"),
            ("gears:purpose", "bake"),
            ("gears:ttl", "3h"),
            ("gears:run-id", "run-1"),
        ];
        cloud.add_instance("us-east-1", inst("i-bake", &bake, "2020-01-01T00:00:00Z"));
        let made = Utc::now() - chrono::Duration::hours(5);
        cloud.add_named_template(crate::aws::NamedTemplate {
            id: "lt-0123456789abcdef0".into(),
            name: "packer-fleet-launch-template-Ab3dE5g".into(),
            created_at: Some(made.to_rfc3339()),
            tags: crate::testing::tags(
                &bake[..2]
                    .iter()
                    .chain(&bake[3..])
                    .copied()
                    .collect::<Vec<_>>(),
            ),
        });
        cloud.set_faults(Faults {
            fail_ops: vec![("TerminateInstances", "OperationNotPermitted")],
            ..Default::default()
        });
        let s = ReapSettings {
            account: None,
            regions: vec!["us-east-1".into()],
            yes: true,
            ttl: Duration::from_secs(3 * 3600),
            json: false,
            endpoint_flag: None,
        };
        let done = reap(&s, &Cancel::new(), &cloud).await.unwrap();
        let actions: Vec<(&str, &Action)> = done.iter().map(|l| (l.kind, &l.action)).collect();
        assert_eq!(
            actions,
            [
                ("bake-instance", &Action::Skipped(Action::PROTECTED)),
                ("launch-template", &Action::Skipped(Action::INSTANCE_STAYS)),
            ]
        );
        // The instance goes; the template was deleted by someone else since the look.
        cloud.set_faults(Faults {
            fail_ops: vec![("DeleteLaunchTemplate", "InvalidLaunchTemplateId.NotFound")],
            ..Default::default()
        });
        let done = reap(&s, &Cancel::new(), &cloud).await.unwrap();
        assert!(done.iter().all(|l| l.action == Action::Removed), "{done:?}");
    }

    #[tokio::test]
    async fn lists_then_removes_only_what_is_expired_and_unused() {
        let cloud = FakeCloud::new();
        let mine = [("gears:managed-by", "gears")];
        let tags = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
            mine.iter().chain(extra).copied().collect()
        };
        cloud.add_instance(
            "us-east-1",
            inst(
                "i-old",
                &tags(&[
                    ("gears:purpose", "test"),
                    ("gears:expires-at", "2020-01-01T00:00:00Z"),
                ]),
                "2020-01-01T00:00:00Z",
            ),
        );
        cloud.add_instance(
            "us-east-1",
            inst(
                "i-new",
                &tags(&[
                    ("gears:purpose", "test"),
                    ("gears:expires-at", "2999-01-01T00:00:00Z"),
                ]),
                "2026-01-01T00:00:00Z",
            ),
        );
        let old_key = packer_name(5 * 3600);
        cloud.add_key_pair(&old_key);
        // An old key pair a live build instance still uses is left alone.
        let busy_key = packer_name(6 * 3600);
        cloud.add_key_pair(&busy_key);
        let builder = cloud.instances("us-east-1").await.unwrap();
        builder
            .launch(&crate::aws::LaunchSpec {
                image_id: "ami-1".into(),
                key_name: Some(busy_key.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        cloud.add_key_pair(&packer_name(60));
        cloud.add_key_pair("team-key");
        cloud.add_security_group(SecurityGroup {
            id: "sg-old".into(),
            name: packer_name(5 * 3600),
            in_use: false,
        });
        cloud.add_security_group(SecurityGroup {
            id: "sg-used".into(),
            name: packer_name(5 * 3600),
            in_use: true,
        });
        let mut s = ReapSettings {
            account: None,
            regions: vec!["us-east-1".into()],
            yes: false,
            ttl: Duration::from_secs(3 * 3600),
            json: false,
            endpoint_flag: None,
        };
        let listed = reap(&s, &Cancel::new(), &cloud).await.unwrap();
        let ids: Vec<&str> = listed.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["i-old", old_key.as_str(), "sg-old"]);
        assert!(listed.iter().all(|l| l.action == Action::Listed));
        assert_eq!(cloud.key_pair_names().len(), 4, "listing removes nothing");
        s.yes = true;
        let removed = reap(&s, &Cancel::new(), &cloud).await.unwrap();
        assert!(
            removed.iter().all(|l| l.action == Action::Removed),
            "{removed:?}"
        );
        assert_eq!(exit(&removed), Exit::Success);
        assert_eq!(cloud.key_pair_names().len(), 3);
        assert!(cloud.key_pair_names().contains(&busy_key));
        assert_eq!(cloud.security_group_ids(), ["sg-used"]);
        let states: Vec<(String, String)> = cloud
            .launched()
            .into_iter()
            .map(|(i, _)| (i.id, i.state))
            .collect();
        assert!(states.contains(&("i-old".into(), "shutting-down".into())));
        assert!(states.contains(&("i-new".into(), "running".into())));
    }

    #[tokio::test(start_paused = true)]
    async fn never_group_members_protected_or_named_keys_and_throttling_does_not_fail() {
        let cloud = FakeCloud::new();
        let expired = |id: &str| {
            inst(
                id,
                &[
                    ("gears:managed-by", "gears"),
                    ("gears:purpose", "test"),
                    ("gears:expires-at", "2020-01-01T00:00:00Z"),
                ],
                "2020-01-01T00:00:00Z",
            )
        };
        for id in ["i-member", "i-protected", "i-plain"] {
            cloud.add_instance("us-east-1", expired(id));
        }
        cloud.add_group_member("i-member");
        cloud.protect_instance("i-protected");
        let named = packer_name(5 * 3600);
        let free = packer_name(5 * 3600 + 1);
        cloud.add_key_pair(&named);
        cloud.add_key_pair(&free);
        cloud.add_key_pair("packer_20240101");
        cloud.add_launch_key(&named);
        cloud.set_faults(Faults {
            throttle_percent: Some(30),
            ..Default::default()
        });
        let s = ReapSettings {
            account: None,
            regions: vec!["us-east-1".into()],
            yes: true,
            ttl: Duration::from_secs(3 * 3600),
            json: false,
            endpoint_flag: None,
        };
        let done = reap(&s, &Cancel::new(), &cloud).await.unwrap();
        let by: BTreeMap<&str, String> = done
            .iter()
            .map(|l| (l.id.as_str(), l.action.to_string()))
            .collect();
        assert_eq!(by["i-member"], "skipped: a member of an Auto Scaling group");
        assert_eq!(by["i-protected"], "skipped: termination protection is on");
        assert_eq!(by["i-plain"], "removed", "{done:?}");
        assert_eq!(by[free.as_str()], "removed");
        assert!(!by.contains_key(named.as_str()) && !by.contains_key("packer_20240101"));
        let keys = cloud.key_pair_names();
        assert!(keys.contains(&named) && keys.contains(&"packer_20240101".to_owned()));
        assert!(!keys.contains(&free));
        assert!(done.iter().all(|l| !l.action.failed()));
        assert_eq!(exit(&done), Exit::Success);
        // Ages as people say them.
        let l = done.iter().find(|l| l.id == free).unwrap();
        assert!(l.reason.contains("made 5h00m ago"), "{}", l.reason);
    }

    fn key_pair_only() -> (FakeCloud, ReapSettings) {
        let cloud = FakeCloud::new();
        cloud.add_key_pair(&packer_name(5 * 3600));
        let s = ReapSettings {
            account: None,
            regions: vec!["us-east-1".into()],
            yes: true,
            ttl: Duration::from_secs(3 * 3600),
            json: true,
            endpoint_flag: None,
        };
        (cloud, s)
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_removal_is_a_typed_failure_that_exits_5_and_reads_as_before() {
        let (cloud, s) = key_pair_only();
        cloud.set_faults(Faults {
            fail_ops: vec![("DeleteKeyPair", "UnauthorizedOperation")],
            ..Default::default()
        });
        let done = reap(&s, &Cancel::new(), &cloud).await.unwrap();
        let Action::Failed(why) = &done[0].action else {
            panic!("{done:?}")
        };
        assert!(
            why.starts_with("AWS DeleteKeyPair failed in us-east-1"),
            "{why}"
        );
        assert_eq!(exit(&done), Exit::Cloud);
        // Printed and written in JSON as before: `failed: <why>`.
        let json = serde_json::to_value(&done[0]).unwrap();
        assert_eq!(json["action"], format!("failed: {why}"));
        assert_eq!(done[0].action.to_string(), format!("failed: {why}"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_while_a_removal_is_throttled_interrupts_the_reap() {
        let (cloud, s) = key_pair_only();
        cloud.set_faults(Faults {
            throttle_ops: vec!["DeleteKeyPair"],
            ..Default::default()
        });
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            c2.cancel(crate::cancel::Signal::Int);
        });
        // Not "failed: throttled" (exit 5): the run was interrupted (130).
        let e = reap(&s, &cancel, &cloud).await.unwrap_err();
        assert_eq!(e.exit(), Exit::Interrupted, "{e}");
        assert_eq!(cloud.key_pair_names().len(), 1);
    }
}
