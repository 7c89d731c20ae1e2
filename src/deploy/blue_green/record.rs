//! What blue/green writes on a cluster's groups, each one type with one parser and one writer:
//! the switch in flight ([`Switch`], `gears:bluegreen` on the group in traffic) and an old group
//! kept out of traffic ([`Retired`], `gears:retired`); and the names of a cluster's groups.
use crate::aws::Group;
use serde::{Deserialize, Serialize};

/// A blue/green deploy in flight, recorded on the cluster's group in traffic before anything
/// is made, so a killed run is continued by the same command or undone by `--abort`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switch {
    pub run: String,
    pub ami: String,
    /// The new group's name.
    pub new: String,
    /// The phase reached: `grow` (the new group made and grown beside the old, which serves
    /// untouched) or `switch` (the old one is leaving traffic).
    pub phase: String,
    /// The processes gears suspends on the old group when it leaves traffic (those not
    /// suspended before), resumed by a rollback.
    pub susp: Vec<String>,
}

/// The phases of a [`Switch`].
pub const GROW: &str = "grow";
pub const SWITCH: &str = "switch";
/// A `--rollback` in flight from the group in traffic back to `new`, the old group kept (the
/// run's `ami` is the one the rollback was asked with). Continued by `--rollback` again, undone
/// by `--abort`.
pub const BACK: &str = "back";

/// An old group kept out of traffic after a blue/green switch: when it left, until when it
/// keeps its size, the capacity it had (a rollback restores it) and the processes gears
/// suspended on it (a rollback resumes them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retired {
    pub run: String,
    /// When it left traffic (UTC, `%Y-%m-%dT%H:%M:%S%.3fZ`).
    pub at: String,
    /// Until when it keeps its size (same form); after that a later run scales it to 0.
    pub until: String,
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    pub susp: Vec<String>,
}

/// The one parser of each record: what the tag says, or why it cannot be read.
pub fn parse_switch(value: &str) -> Result<Switch, String> {
    let s: Switch = serde_json::from_str(value).map_err(|e| e.to_string())?;
    if s.run.is_empty() || !crate::aws::is_ami_id(&s.ami) || s.new.is_empty() {
        return Err("it lacks the run, the AMI or the new group".into());
    }
    if s.phase != GROW && s.phase != SWITCH && s.phase != BACK {
        return Err(format!(
            "its phase `{}` is neither grow, switch nor back",
            s.phase
        ));
    }
    Ok(s)
}

pub fn parse_retired(value: &str) -> Result<Retired, String> {
    let r: Retired = serde_json::from_str(value).map_err(|e| e.to_string())?;
    if r.min < 0 || r.max < r.min || r.desired < r.min || r.desired > r.max {
        return Err(format!(
            "its capacity {}/{}/{} is not min ≤ desired ≤ max",
            r.min, r.desired, r.max
        ));
    }
    if parse_utc(&r.at).is_none() || parse_utc(&r.until).is_none() {
        return Err("its times are not UTC like 2026-12-02T18:00:00Z".into());
    }
    Ok(r)
}

/// The one writer of both: JSON, refused when over a tag's 256 characters.
pub fn write<T: Serialize>(record: &T) -> Result<String, String> {
    let v = serde_json::to_string(record).unwrap_or_default();
    if v.chars().count() > 256 {
        return Err(format!(
            "the record does not fit a 256-character tag ({} characters)",
            v.chars().count()
        ));
    }
    Ok(v)
}

/// `t` as the records write times.
pub fn utc(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `t` to the millisecond, so old groups retired within one second still sort by age.
pub fn utc_ms(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub fn parse_utc(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%.3fZ"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
        .map(|t| t.and_utc())
}

/// The cluster a group belongs to: its `gears:cluster` tag, else its name less a `-vNNN`
/// suffix.
pub fn cluster_of(g: &Group) -> String {
    match g.tags.get(crate::tags::CLUSTER) {
        Some(c) if !c.is_empty() => c.clone(),
        _ => split_version(&g.name).0.to_owned(),
    }
}

/// `web-v012` → (`web`, Some(12)); `web` → (`web`, None). Three digits or more.
pub fn split_version(name: &str) -> (&str, Option<u32>) {
    if let Some((base, n)) = name.rsplit_once("-v") {
        if n.len() >= 3 && n.chars().all(|c| c.is_ascii_digit()) && !base.is_empty() {
            return (base, n.parse().ok());
        }
    }
    (name, None)
}

/// The next group's name in `cluster`, past every number `taken` shows (`-v001` first).
pub fn next_name(cluster: &str, taken: &[String]) -> String {
    let n = taken
        .iter()
        .filter_map(|t| match split_version(t) {
            (base, Some(n)) if base == cluster => Some(n),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    format!("{cluster}-v{:03}", n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_count_up_from_the_highest_taken() {
        assert_eq!(split_version("web-v012"), ("web", Some(12)));
        assert_eq!(split_version("web-v12"), ("web-v12", None));
        assert_eq!(split_version("web"), ("web", None));
        assert_eq!(split_version("-v001"), ("-v001", None));
        assert_eq!(next_name("web", &["web".into()]), "web-v001");
        let taken = ["web-v001".into(), "web-v007".into(), "webby-v009".into()];
        assert_eq!(next_name("web", &taken), "web-v008");
        assert_eq!(next_name("web", &["web-v999".into()]), "web-v1000");
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_refused() {
        let s = Switch {
            run: "r".into(),
            ami: "ami-0123456789abcdef0".into(),
            new: "web-v002".into(),
            phase: GROW.into(),
            susp: vec!["AZRebalance".into()],
        };
        assert_eq!(parse_switch(&write(&s).unwrap()).unwrap(), s);
        assert!(parse_switch(
            &write(&Switch {
                phase: "x".into(),
                ..s.clone()
            })
            .unwrap()
        )
        .is_err());
        assert!(parse_switch("{\"run\":\"r\"}").is_err());
        // An AMI not of an AMI id's form is as unreadable as any other malformed value.
        for ami in [
            "ami-1",
            "ami-0123456789ABCDEF0",
            "ami-0123456789abcdefg",
            "ami-",
        ] {
            let bad = write(&Switch {
                ami: ami.into(),
                ..s.clone()
            })
            .unwrap();
            assert!(parse_switch(&bad).is_err(), "{bad}");
        }
        let r = Retired {
            run: "r".into(),
            at: "2026-12-02T18:00:00Z".into(),
            until: "2026-12-02T19:00:00Z".into(),
            min: 1,
            max: 4,
            desired: 2,
            susp: vec!["AlarmNotification".into()],
        };
        assert_eq!(parse_retired(&write(&r).unwrap()).unwrap(), r);
        let bad = Retired {
            desired: 9,
            ..r.clone()
        };
        assert!(parse_retired(&write(&bad).unwrap())
            .unwrap_err()
            .contains("capacity"));
        let bad = Retired {
            until: "tomorrow".into(),
            ..r
        };
        assert!(parse_retired(&write(&bad).unwrap()).is_err());
        let long = Switch {
            new: "x".repeat(300),
            ..s
        };
        assert!(write(&long).unwrap_err().contains("256"));
    }
}
