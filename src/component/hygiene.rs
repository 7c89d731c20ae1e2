//! The component file's AMI hygiene after a bake: `deprecate_after` (EC2's
//! EnableImageDeprecation) and `deregistration_protection` (EnableImageDeregistrationProtection),
//! both made by gears on every AMI of the manifest, in every region.

use serde::de::{Deserialize, Deserializer};
use std::str::FromStr;

/// A number of days, written `90`, `90d` or `12w`: from one day to EC2's limit for a
/// deprecation time (ten years from now, 3650 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Days(pub u32);

/// The most days EC2 accepts between now and a deprecation time.
pub const MAX_DAYS: u32 = 3650;

impl FromStr for Days {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (num, per) = match t.strip_suffix('d') {
            Some(n) => (n, 1),
            None => match t.strip_suffix('w') {
                Some(n) => (n, 7),
                None => (t, 1),
            },
        };
        match num.parse::<u32>() {
            Ok(n) if n > 0 && n.saturating_mul(per) <= MAX_DAYS => Ok(Days(n * per)),
            _ => Err(format!(
                "expected days like 90, 90d or 12w, from 1 day to {MAX_DAYS} (EC2's limit: ten years)"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Days {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::units::parsed(d, str::parse)
    }
}

/// `deregistration_protection:`: on, or on with EC2's 24-hour cooldown after it is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protection {
    Enabled,
    WithCooldown,
}

impl Protection {
    /// As the manifest and the messages say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protection::Enabled => "enabled",
            Protection::WithCooldown => "with-cooldown",
        }
    }
}

/// When an AMI created at `created` (the bake's minute) is deprecated after `days`, as EC2
/// takes it (`YYYY-MM-DDTHH:MM:00Z`, whole minutes). A reused bake gets the same time again.
pub fn deprecation_time(
    created: chrono::DateTime<chrono::Utc>,
    days: Days,
) -> chrono::DateTime<chrono::Utc> {
    use chrono::Timelike;
    let at = created + chrono::Duration::days(i64::from(days.0));
    at.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_one_to_ten_years_and_placed_when_wrong() {
        assert_eq!("90".parse::<Days>(), Ok(Days(90)));
        assert_eq!("90d".parse::<Days>(), Ok(Days(90)));
        assert_eq!("12w".parse::<Days>(), Ok(Days(84)));
        for bad in ["0", "0d", "3651d", "522w", "1y", "-1", "", "d"] {
            assert!(bad.parse::<Days>().is_err(), "{bad}");
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct F {
            deprecate_after: Days,
            deregistration_protection: Protection,
        }
        let f: F = serde_yaml::from_str(
            "deprecate_after: 30d\nderegistration_protection: with-cooldown\n",
        )
        .unwrap();
        assert_eq!(f.deprecate_after, Days(30));
        assert_eq!(f.deregistration_protection, Protection::WithCooldown);
        let e =
            serde_yaml::from_str::<F>("deprecate_after: 11y\nderegistration_protection: enabled\n")
                .unwrap_err();
        assert_eq!(e.location().map(|l| (l.line(), l.column())), Some((1, 18)));
        assert!(
            serde_yaml::from_str::<F>("deprecate_after: 1\nderegistration_protection: yes\n")
                .is_err()
        );
    }

    #[test]
    fn the_deprecation_time_is_whole_minutes_after_the_bake() {
        let created = chrono::DateTime::parse_from_rfc3339("2026-12-07T18:39:42Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            deprecation_time(created, Days(30)).to_rfc3339(),
            "2027-01-06T18:39:00+00:00"
        );
    }
}
