//! The units gears' settings are given in, each a type with one bound, parsed one way wherever
//! it is written: by `FromStr` for a flag (clap takes it as its value parser) and by
//! `Deserialize` for a pipeline or component file, where serde_yaml then places a refused value
//! at its own line and column.
//!
//! | type | written as | bound |
//! |---|---|---|
//! | [`Seconds`] | `5`, `0.5` | more than 0, at most a day |
//! | [`Delay`] | `0`, `300` | 0 or more, at most a week |
//! | [`Ttl`] | `3600`, `90m`, `1h`, `2d` | a second to a week |
//! | [`Percent`] | `25%`, `25` | 0 to 100 |
//! | [`Batch`] | `2`, `25%` | a count from 1 to 10000, or a share from 1% to 100% |

use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A day, the longest [`Seconds`].
const DAY: f64 = 86_400.0;
/// A week, the longest [`Delay`] and [`Ttl`]: beyond it, deadlines would overflow the clock.
const WEEK: f64 = 604_800.0;

/// A value written as YAML's number or as a string (`poll: 5`, `batch: "25%"`), handed to
/// `parse` as text (a unit's `FromStr`, so a file and a flag are parsed by one function). The
/// refusal is raised
/// inside the visitor, while the deserializer reads the scalar, so serde_yaml places it at the
/// value's own line and column (raised after, it would take the enclosing mapping's place).
pub fn parsed<'de, D, T, F>(d: D, parse: F) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    F: FnOnce(&str) -> Result<T, String>,
{
    struct V<F>(F);
    impl<T, F: FnOnce(&str) -> Result<T, String>> V<F> {
        fn parse<E: de::Error>(self, text: &str) -> Result<T, E> {
            (self.0)(text).map_err(|e| E::custom(format!("`{text}`: {e}")))
        }
    }
    impl<T, F: FnOnce(&str) -> Result<T, String>> de::Visitor<'_> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number or a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            self.parse(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            self.parse(&v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            self.parse(&v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            self.parse(&v.to_string())
        }
    }
    d.deserialize_any(V(parse))
}

/// `Deserialize` through `FromStr` for each unit: the refusal is the flag's words.
macro_rules! deserialize_by_from_str {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                parsed(d, str::parse)
            }
        }
    )*};
}
deserialize_by_from_str!(Seconds, Delay, Ttl, Percent, Batch);

/// A number of seconds written as a plain number: finite, within `lo..=hi` (`lo` itself only
/// when `zero` is allowed).
fn seconds_within(s: &str, zero: bool, hi: f64, words: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (v > 0.0 || (zero && v == 0.0)) && v <= hi => {
            Ok(Duration::from_secs_f64(v))
        }
        _ => Err(words.to_owned()),
    }
}

/// Seconds, more than 0 and at most a day: a poll interval, a gate timeout, a bake time, a
/// heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub Duration);

impl FromStr for Seconds {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        seconds_within(
            s,
            false,
            DAY,
            "give seconds, more than 0 and at most 86400 (a day)",
        )
        .map(Seconds)
    }
}

impl Seconds {
    /// Whole seconds, for defaults written in code (`Seconds::of(600)`).
    pub const fn of(secs: u64) -> Seconds {
        Seconds(Duration::from_secs(secs))
    }
}

impl From<Seconds> for Duration {
    fn from(s: Seconds) -> Duration {
        s.0
    }
}

/// Seconds, 0 or more and at most a week: how long to wait for something (`--wait`,
/// `--sleep`, `--ready-timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Delay(pub Duration);

impl FromStr for Delay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        seconds_within(
            s,
            true,
            WEEK,
            "give seconds, 0 or more and at most 604800 (a week)",
        )
        .map(Delay)
    }
}

impl From<Delay> for Duration {
    fn from(s: Delay) -> Duration {
        s.0
    }
}

/// How long something may live: `3600` (seconds), `90s`, `90m`, `1h`, `2d`; a second to a week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ttl(pub Duration);

impl FromStr for Ttl {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => t.split_at(i),
            None => (t, "s"),
        };
        let per = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => 0,
        };
        match num.parse::<u64>() {
            Ok(n) if per > 0 && n > 0 && n.saturating_mul(per) as f64 <= WEEK => {
                Ok(Ttl(Duration::from_secs(n * per)))
            }
            _ => Err("expected a duration like 3600, 90m, 1h or 2d, up to a week".to_owned()),
        }
    }
}

impl From<Ttl> for Duration {
    fn from(t: Ttl) -> Duration {
        t.0
    }
}

/// A share from 0% to 100%, written `P%` or `P`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Percent(pub u32);

impl FromStr for Percent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.strip_suffix('%').unwrap_or(s).trim().parse::<u32>() {
            Ok(p @ 0..=100) => Ok(Percent(p)),
            _ => Err("expected a share from 0% to 100%".to_owned()),
        }
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// How many instances a batch replaces: a count (`N`) or a share of the group (`P%`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    Count(u32),
    Percent(u32),
}

impl FromStr for Batch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || "expected a count like 2 or a share like 25%".to_owned();
        match s.trim().strip_suffix('%') {
            Some(p) => match p.parse::<u32>() {
                Ok(p @ 1..=100) => Ok(Batch::Percent(p)),
                _ => Err(bad()),
            },
            None => match s.trim().parse::<u32>() {
                Ok(n @ 1..=10_000) => Ok(Batch::Count(n)),
                _ => Err(bad()),
            },
        }
    }
}

impl Batch {
    /// The batch size for a group of `desired` instances (at least 1).
    pub fn size(self, desired: i32) -> i32 {
        match self {
            Batch::Count(n) => n as i32,
            Batch::Percent(p) => (desired * p as i32 + 99) / 100,
        }
        .max(1)
    }
}

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Batch::Count(n) => write!(f, "{n}"),
            Batch::Percent(p) => write!(f, "{p}%"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_unit_keeps_its_one_bound() {
        assert_eq!(
            "0.5".parse::<Seconds>(),
            Ok(Seconds(Duration::from_millis(500)))
        );
        for bad in ["0", "-1", "86401", "NaN", "inf", "", "5s"] {
            assert!(bad.parse::<Seconds>().is_err(), "{bad}");
        }
        assert_eq!("0".parse::<Delay>(), Ok(Delay(Duration::ZERO)));
        assert!("604800".parse::<Delay>().is_ok());
        for bad in ["-1", "1e20", "604801", "x"] {
            assert!(bad.parse::<Delay>().is_err(), "{bad}");
        }
        assert_eq!("1h".parse::<Ttl>(), Ok(Ttl(Duration::from_secs(3600))));
        assert_eq!("90m".parse::<Ttl>(), Ok(Ttl(Duration::from_secs(5400))));
        assert_eq!("3600".parse::<Ttl>(), Ok(Ttl(Duration::from_secs(3600))));
        for bad in ["", "0", "1w", "h", "-1h", "9999d"] {
            assert!(bad.parse::<Ttl>().is_err(), "{bad}");
        }
        assert_eq!("25%".parse::<Percent>(), Ok(Percent(25)));
        assert_eq!("0".parse::<Percent>(), Ok(Percent(0)));
        assert!("101%".parse::<Percent>().is_err());
        assert_eq!("25%".parse::<Batch>(), Ok(Batch::Percent(25)));
        assert_eq!("3".parse::<Batch>(), Ok(Batch::Count(3)));
        for bad in ["0", "0%", "101%", "10001", "x"] {
            assert!(bad.parse::<Batch>().is_err(), "{bad}");
        }
        assert_eq!(Batch::Percent(25).size(10), 3);
        assert_eq!(Batch::Count(2).size(0), 2);
    }

    #[test]
    fn a_file_writes_them_as_numbers_or_strings_and_is_refused_in_the_flags_words() {
        #[derive(Deserialize, Debug)]
        struct F {
            poll: Seconds,
            batch: Batch,
            share: Percent,
        }
        let f: F = serde_yaml::from_str("poll: 2\nbatch: 25%\nshare: 50").unwrap();
        assert_eq!(
            (f.poll, f.batch, f.share),
            (Seconds::of(2), Batch::Percent(25), Percent(50))
        );
        let e = serde_yaml::from_str::<F>("batch: 1\nshare: 5\npoll: 0\n").unwrap_err();
        assert!(
            e.to_string()
                .contains("poll: `0`: give seconds, more than 0"),
            "{e}"
        );
        assert_eq!(e.location().map(|l| (l.line(), l.column())), Some((3, 7)));
    }
}
