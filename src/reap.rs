//! `gears reap`: what gears and packer left behind (test instances past `gears:expires-at`,
//! bake build instances older than their `gears:ttl`, and packer's `packer_*` key pairs and
//! unused security groups older than the TTL), listed, and with `--yes` removed.
//!
//! Packer 1.6 does not tag its key pairs and security groups, but names them
//! `packer_<time-ordered UUID>`, whose first 8 hex digits are the Unix time it made them: that
//! is their age.

use crate::aws::{Cloud, Instance, Instances};
use crate::cancel::Cancel;
use crate::error::Error;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

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
}

/// One thing left behind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Leftover {
    pub region: String,
    /// `test-instance`, `bake-instance`, `key-pair`, `security-group`.
    pub kind: &'static str,
    pub id: String,
    pub reason: String,
    /// `listed`, `removed`, or `failed: <why>`.
    pub action: String,
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Why `i` is a leftover at `now`, if it is: a test instance past its expiry, or a bake build
/// instance older than its `gears:ttl`.
pub fn instance_reason(i: &Instance, now: DateTime<Utc>) -> Option<(&'static str, String)> {
    match i.tags.get("gears:purpose").map(String::as_str) {
        Some("test") => {
            let at = i.tags.get("gears:expires-at")?;
            let expires = parse_time(at)?;
            (expires <= now).then(|| ("test-instance", format!("expired at {at}")))
        }
        Some("bake") => {
            let ttl = i.tags.get("gears:ttl")?;
            let ttl = crate::settings::duration("gears:ttl", ttl).ok()?;
            let launched = parse_time(i.launched_at.as_deref()?)?;
            let age = now.signed_duration_since(launched).to_std().ok()?;
            (age >= ttl).then(|| {
                (
                    "bake-instance",
                    format!(
                        "bake build instance launched {}, older than its ttl",
                        i.launched_at.as_deref().unwrap_or_default()
                    ),
                )
            })
        }
        _ => None,
    }
}

/// The age of a `packer_<time-ordered UUID>` name at `now` (None for other names).
pub fn packer_age(name: &str, now: DateTime<Utc>) -> Option<Duration> {
    let hex = name.strip_prefix("packer_")?.get(..8)?;
    let secs = i64::from_str_radix(hex, 16).ok()?;
    let made = DateTime::<Utc>::from_timestamp(secs, 0)?;
    now.signed_duration_since(made).to_std().ok()
}

/// Lists (and with `--yes` removes) the leftovers in every region.
pub async fn reap<C: Cloud>(
    settings: &ReapSettings,
    cancel: &Cancel,
    cloud: &C,
) -> Result<Vec<Leftover>, Error> {
    let now = Utc::now();
    let mut found = Vec::new();
    for region in &settings.regions {
        let port = cloud.instances(region).await?;
        let mine = BTreeMap::from([("gears:managed-by".to_owned(), "gears".to_owned())]);
        let mut here: Vec<Leftover> = Vec::new();
        for i in port.find_by_tags(&mine).await? {
            if let Some((kind, reason)) = instance_reason(&i, now) {
                here.push(Leftover {
                    region: region.clone(),
                    kind,
                    id: i.id.clone(),
                    reason,
                    action: "listed".into(),
                });
            }
        }
        for name in port.key_pairs("packer_").await? {
            if let Some(age) = packer_age(&name, now).filter(|a| *a >= settings.ttl) {
                here.push(Leftover {
                    region: region.clone(),
                    kind: "key-pair",
                    id: name,
                    reason: format!(
                        "packer key pair made {} ago",
                        crate::ui::human_duration(age)
                    ),
                    action: "listed".into(),
                });
            }
        }
        for g in port.security_groups("packer_").await? {
            match packer_age(&g.name, now) {
                Some(age) if age >= settings.ttl && !g.in_use => here.push(Leftover {
                    region: region.clone(),
                    kind: "security-group",
                    id: g.id,
                    reason: format!(
                        "unused packer security group {} made {} ago",
                        g.name,
                        crate::ui::human_duration(age)
                    ),
                    action: "listed".into(),
                }),
                _ => {}
            }
        }
        if settings.yes {
            // Instances first: a security group cannot go while an instance uses it.
            for l in &mut here {
                if let Some(sig) = cancel.signal() {
                    return Err(Error::Interrupted(sig));
                }
                let r = match l.kind {
                    "test-instance" | "bake-instance" => {
                        let deadline =
                            tokio::time::Instant::now() + crate::test_stage::TERMINATE_DEADLINE;
                        crate::test_stage::terminate_until_gone(&port, &l.id, cancel, deadline)
                            .await
                    }
                    "key-pair" => port.delete_key_pair(&l.id).await.map_err(|e| e.to_string()),
                    _ => port
                        .delete_security_group(&l.id)
                        .await
                        .map_err(|e| e.to_string()),
                };
                l.action = match r {
                    Ok(()) => "removed".into(),
                    Err(why) => format!("failed: {why}"),
                };
            }
        }
        found.extend(here);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::fake::FakeCloud;
    use crate::aws::{Cloud, Instances, SecurityGroup};

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

    fn packer_name(secs_ago: i64) -> String {
        format!(
            "packer_{:08x}-0000-0000-0000-000000000000",
            Utc::now().timestamp() - secs_ago
        )
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
        assert!(instance_reason(&test("2026-11-24T11:59:59Z"), now).is_some());
        assert!(instance_reason(&test("2026-11-24T12:00:01Z"), now).is_none());
        assert!(instance_reason(&test("not a time"), now).is_none());
        let bake = |launched: &str| {
            inst(
                "i-2",
                &[("gears:purpose", "bake"), ("gears:ttl", "3h")],
                launched,
            )
        };
        assert!(instance_reason(&bake("2026-11-24T08:59:00Z"), now).is_some());
        assert!(instance_reason(&bake("2026-11-24T09:01:00Z"), now).is_none());
        assert!(instance_reason(&inst("i-3", &[], "2020-01-01T00:00:00Z"), now).is_none());
        // 0x6b000000 = 1795162112 s.
        let t = DateTime::<Utc>::from_timestamp(0x6b00_0000 + 7200, 0).unwrap();
        assert_eq!(
            packer_age("packer_6b000000-1111", t),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(packer_age("packer_zz", t), None);
        assert_eq!(packer_age("mine_6b000000", t), None);
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
            regions: vec!["us-east-1".into()],
            yes: false,
            ttl: Duration::from_secs(3 * 3600),
            json: false,
            endpoint_flag: None,
        };
        let listed = reap(&s, &Cancel::new(), &cloud).await.unwrap();
        let ids: Vec<&str> = listed.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["i-old", old_key.as_str(), "sg-old"]);
        assert!(listed.iter().all(|l| l.action == "listed"));
        assert_eq!(cloud.key_pair_names().len(), 4, "listing removes nothing");
        s.yes = true;
        let removed = reap(&s, &Cancel::new(), &cloud).await.unwrap();
        assert!(removed.iter().all(|l| l.action == "removed"), "{removed:?}");
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
}
