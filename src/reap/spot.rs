//! Packer's Spot launch templates: a Spot build makes one (`packer-fleet-launch-template-` and
//! 7 letters or digits), tagged with the `spot_tags` gears gives it (the build instance's run
//! tags: `gears:managed-by`, `gears:purpose=bake`, `gears:run-id`), and deletes it in its
//! cleanup, which a bake killed twice never reaches. Only a template provably a bake's is a
//! leftover: packer's name, gears' bake tags, made at least the TTL ago, and no build instance
//! of its run left that stays (one being reaped with it does not count).

use super::{age, leftover, Action, Leftover};
use crate::aws::{Instance, NamedTemplate};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// The name packer gives a Spot build's launch template, before its 7 random characters.
pub const PREFIX: &str = "packer-fleet-launch-template-";

/// The tags gears has packer put on its Spot templates that the look asks EC2 for.
pub fn bake_tags() -> BTreeMap<String, String> {
    BTreeMap::from([
        (crate::tags::MANAGED_BY.to_owned(), "gears".to_owned()),
        (crate::tags::PURPOSE.to_owned(), "bake".to_owned()),
    ])
}

/// Whether `name` is one packer gives: [`PREFIX`] and 7 letters or digits.
fn packers(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .is_some_and(|r| r.len() == 7 && r.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The Spot templates of `found` that are leftovers at `now`, given the instances of gears
/// found in the region and what of them is already `listed` (to be removed).
pub fn leftovers(
    region: &str,
    found: Vec<NamedTemplate>,
    (instances, listed): (&[Instance], &[Leftover]),
    ttl: Duration,
    now: DateTime<Utc>,
) -> Vec<Leftover> {
    let stays = |i: &&Instance| {
        !listed
            .iter()
            .any(|l| l.id == i.id && l.action == Action::Listed)
    };
    let running: Vec<&str> = (instances.iter().filter(stays))
        .filter_map(|i| i.tags.get(crate::tags::RUN_ID).map(String::as_str))
        .collect();
    let mut out = Vec::new();
    for t in found {
        let run = t.tags.get(crate::tags::RUN_ID).map(String::as_str);
        let made = t.created_at.as_deref().and_then(|c| {
            DateTime::parse_from_rfc3339(c)
                .ok()
                .and_then(|m| now.signed_duration_since(m).to_std().ok())
        });
        let (Some(run), Some(made)) = (run.filter(|r| !r.is_empty()), made) else {
            continue;
        };
        if !packers(&t.name)
            || made < ttl
            || running.contains(&run)
            || bake_tags().iter().any(|(k, v)| t.tags.get(k) != Some(v))
        {
            continue;
        }
        let reason = format!(
            "packer Spot launch template {} of bake run {run}, made {} ago",
            t.name,
            age(made)
        );
        out.push(leftover(region, "launch-template", t.id, reason));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tags;

    fn template(id: &str, name: &str, hours_ago: i64, kv: &[(&str, &str)]) -> NamedTemplate {
        let made = Utc::now() - chrono::Duration::hours(hours_ago);
        NamedTemplate {
            id: id.into(),
            name: name.into(),
            created_at: Some(made.to_rfc3339()),
            tags: tags(kv),
        }
    }

    const BAKE: [(&str, &str); 3] = [
        ("gears:managed-by", "gears"),
        ("gears:purpose", "bake"),
        ("gears:run-id", "run-1"),
    ];

    /// Only a template provably a bake's leftover: packer's name, gears' bake tags with a run,
    /// older than the TTL, and no build instance of its run that stays.
    #[test]
    fn only_a_bakes_old_spot_template_is_a_leftover() {
        let ttl = Duration::from_secs(3 * 3600);
        let found = vec![
            template("lt-old", "packer-fleet-launch-template-abc1234", 5, &BAKE),
            template("lt-young", "packer-fleet-launch-template-abc1235", 1, &BAKE),
            template("lt-named", "packer-fleet-launch-template-mine", 5, &BAKE),
            template(
                "lt-other",
                "packer-fleet-launch-template-abc1236",
                5,
                &BAKE[..2],
            ),
            template(
                "lt-test",
                "packer-fleet-launch-template-abc1237",
                5,
                &[BAKE[0], ("gears:purpose", "test"), BAKE[2]],
            ),
        ];
        let found = leftovers("us-east-1", found, (&[], &[]), ttl, Utc::now());
        let ids: Vec<&str> = found.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["lt-old"]);
        assert_eq!(found[0].kind, "launch-template");
        assert!(found[0].reason.starts_with("packer Spot launch template packer-fleet-launch-template-abc1234 of bake run run-1, made 5"), "{}", found[0].reason);
        // Its run's build instance is still there: the bake may still run.
        let instance = Instance {
            id: "i-0123456789abcdef0".into(),
            state: "running".into(),
            private_ip: None,
            public_ip: None,
            tags: tags(&BAKE),
            launched_at: None,
        };
        let old = || {
            vec![template(
                "lt-old",
                "packer-fleet-launch-template-abc1234",
                5,
                &BAKE,
            )]
        };
        let running = std::slice::from_ref(&instance);
        assert!(leftovers("us-east-1", old(), (running, &[]), ttl, Utc::now()).is_empty());
        // Unless that instance is a leftover listed for removal too.
        let listed = leftover(
            "us-east-1",
            "bake-instance",
            instance.id.clone(),
            "old".into(),
        );
        let found = leftovers("us-east-1", old(), (running, &[listed]), ttl, Utc::now());
        assert_eq!(found.len(), 1);
    }
}
