//! The group's lock: who holds it, since when, and a STOP after a failed rollback. One type,
//! [`LockValue`], with one parser and one writer, for the `gears:deploy-lock` tag; the lock
//! table's holder comes from the port as data ([`crate::aws::TableHolder`]).
use crate::deploy::DeploySettings;
use crate::error::Error;
use std::time::Duration;
use tokio::time::Instant;

/// How long after writing its lock tag a deploy (without `--lock-table`) looks again before it
/// counts the lock as its own, when AWS answers fast: [`LOCK_WINDOW`] + 2 × [`LOCK_LAG`], 1 s.
///
/// Why that catches a racing writer. A tag is no compare-and-swap: runs A and B that both
/// found the group free both write, and the later write wins. B found it free, so B's look
/// began before A's write was visible, which is at most [`LOCK_LAG`] after A's write answered.
/// B's write follows its look at once (each attempt is a fresh look and one write; a failed
/// write is made again only after a fresh look, never retried blind), so it lands within B's
/// window (its look and its write) of that look, and is visible a lag later. A's look
/// `window + 2 × lag` after its write answered therefore sees B's value, and A steps back; B's
/// own look finds its value and B goes on: exactly one wins. The window A allows for is
/// [`LOCK_WINDOW`], or twice A's own attempt when AWS answered A slower than that
/// ([`settle`]): racers call the same regional endpoint. The 2 s settle before this bounded
/// nothing (a writer could take any time between its look and its write); the lock table
/// (`--lock-table`), a true compare-and-swap, needs no settle.
pub const LOCK_SETTLE: Duration = Duration::from_secs(1);
/// The window a racing writer is allowed, from the start of the look that found the lock free
/// to its write landing: a look and a write, each about 50 to 150 ms on AWS from within its
/// region, with room for a slow one.
pub const LOCK_WINDOW: Duration = Duration::from_millis(500);
/// How long after a write's answer a look may still not see it (Auto Scaling's reads are
/// eventually consistent; tags read back at once in practice).
pub const LOCK_LAG: Duration = Duration::from_millis(250);

/// The settle after a lock attempt that took `took` (its look and write): [`LOCK_SETTLE`], or
/// when AWS answered slowly, twice the attempt's time in place of [`LOCK_WINDOW`].
pub fn settle(took: Duration) -> Duration {
    LOCK_LAG * 2 + LOCK_WINDOW.max(took * 2)
}

/// A lock not renewed for this long belongs to a deploy that is gone.
pub const LOCK_STALE: Duration = Duration::from_secs(60);

/// How long a lock may go without renewal before its run counts as gone: `GEARS_LOCK_STALE`
/// seconds (1 to 86400) from the run's environment, else [`LOCK_STALE`]. Shorter only for
/// tests and emulators: the heartbeat renews every quarter of it, and hosts' clocks must agree
/// within the rest.
pub fn lock_stale(ctx: &crate::context::RunContext) -> Duration {
    ctx.var("GEARS_LOCK_STALE")
        .and_then(|v| v.parse::<crate::units::Seconds>().ok())
        .map_or(LOCK_STALE, Duration::from)
}

/// The wall clock, advanced by tokio's clock from the first reading: the same as
/// `chrono::Utc::now()` in a real run (and immune to a wall-clock step during it), and on a
/// paused test clock it moves with the virtual time, so lock ages can be tested.
pub(crate) fn wall_now() -> chrono::DateTime<chrono::Utc> {
    static ANCHOR: std::sync::OnceLock<(chrono::DateTime<chrono::Utc>, std::time::Instant)> =
        std::sync::OnceLock::new();
    let (wall, at) = ANCHOR.get_or_init(|| (chrono::Utc::now(), Instant::now().into_std()));
    let since = Instant::now().into_std().saturating_duration_since(*at);
    *wall + chrono::Duration::from_std(since).unwrap_or_default()
}

/// Who holds a lock: the host, and the CI job when there is one (each without spaces, so the
/// value splits into run, who and time).
pub(super) fn holder(ctx: &crate::context::RunContext) -> String {
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

/// What a group's `gears:deploy-lock` tag says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockValue {
    /// Held by run `run` on `who` (host and CI job), last renewed at `at`: `RUN WHO TIME`.
    Held {
        run: String,
        who: String,
        at: chrono::DateTime<chrono::Utc>,
    },
    /// The line is stopped after a failed rollback, until a human unlocks it:
    /// `STOP RUN: REASON`.
    Stop { run: String, reason: String },
}

/// The STOP value's reason, as gears writes it.
pub const STOP_REASON: &str = "rollback failed";

impl LockValue {
    /// This run's lock, renewed now (to the second, as it is written).
    pub fn held_now(run: &str, who: &str) -> LockValue {
        use chrono::SubsecRound;
        LockValue::Held {
            run: run.to_owned(),
            who: who.to_owned(),
            at: wall_now().trunc_subsecs(0),
        }
    }

    /// The one parser. A value gears did not write (any other shape) is an error saying why.
    pub fn parse(value: &str) -> Result<LockValue, String> {
        if let Some(rest) = value.strip_prefix("STOP ") {
            let (run, reason) = rest
                .split_once(": ")
                .ok_or_else(|| "a STOP value without `: REASON`".to_owned())?;
            if run.is_empty() || run.contains(' ') {
                return Err("a STOP value without a run id".into());
            }
            return Ok(LockValue::Stop {
                run: run.to_owned(),
                reason: reason.to_owned(),
            });
        }
        let (run, rest) = value
            .split_once(' ')
            .ok_or_else(|| "not `RUN HOLDER TIME`".to_owned())?;
        let (who, time) = rest
            .rsplit_once(' ')
            .ok_or_else(|| "not `RUN HOLDER TIME`".to_owned())?;
        if run.is_empty() || who.trim().is_empty() {
            return Err("not `RUN HOLDER TIME`".into());
        }
        let at = chrono::DateTime::parse_from_rfc3339(time)
            .map_err(|_| format!("`{time}` is not a UTC time"))?
            .with_timezone(&chrono::Utc);
        Ok(LockValue::Held {
            run: run.to_owned(),
            who: who.to_owned(),
            at,
        })
    }

    /// The one writer (at most 256 characters, a tag value's limit).
    pub fn write(&self) -> String {
        match self {
            LockValue::Held { run, who, at } => {
                format!("{run} {who} {}", at.format("%Y-%m-%dT%H:%M:%SZ"))
            }
            LockValue::Stop { run, reason } => format!("STOP {run}: {reason}"),
        }
        .chars()
        .take(256)
        .collect()
    }

    /// The run that holds (or stopped) the lock.
    pub fn run(&self) -> &str {
        match self {
            LockValue::Held { run, .. } | LockValue::Stop { run, .. } => run,
        }
    }

    pub fn is_stop(&self) -> bool {
        matches!(self, LockValue::Stop { .. })
    }

    /// How long ago a held lock was renewed (`None` for a STOP, which never goes stale).
    pub fn age(&self) -> Option<Duration> {
        match self {
            LockValue::Held { at, .. } => Some(
                wall_now()
                    .signed_duration_since(*at)
                    .to_std()
                    .unwrap_or_default(),
            ),
            LockValue::Stop { .. } => None,
        }
    }

    /// A held lock renewed within `stale`: its run is alive.
    pub fn is_live(&self, stale: Duration) -> bool {
        self.age().is_some_and(|a| a < stale)
    }
}

impl std::fmt::Display for LockValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.write())
    }
}

/// Now, and the last renewal before which a lock table's lock is stale (Unix milliseconds).
pub(super) fn lease_times(settings: &DeploySettings) -> (i64, i64) {
    let now = wall_now().timestamp_millis();
    (
        now,
        now - settings.lock_stale.as_millis().min(i64::MAX as u128) as i64,
    )
}

/// A lock table renewal time that never goes stale: a STOP lock, kept until `--unlock`.
pub(super) const KEPT: i64 = i64::MAX / 2;

/// A group gears will not touch now (another deploy holds it; wait or retry): exit 5.
pub(super) fn refused(group: &str, why: String, hint: &str) -> Error {
    Error::Locked {
        message: format!("group {group}: {why}"),
        hint: hint.to_owned(),
        stopped: false,
    }
}

/// A group a human must look at before any deploy (a STOP, state gears cannot read): exit 7.
pub(super) fn stopped(group: &str, why: String, hint: &str) -> Error {
    Error::Locked {
        message: format!("group {group}: {why}"),
        hint: hint.to_owned(),
        stopped: true,
    }
}

/// Who holds a lock another run renewed within the stale limit: its run, its host (and CI
/// job), and its last renewal, from the group's tag or the lock table's item.
#[derive(Debug, Clone)]
pub(super) struct Holder {
    /// The lock table's key, when it is the table's lock.
    pub(super) key: Option<String>,
    pub(super) run: String,
    pub(super) who: String,
    pub(super) at: chrono::DateTime<chrono::Utc>,
}

impl Holder {
    /// A held tag lock's holder (`None` for a STOP, which is no deploy's).
    pub(super) fn of_tag(l: &LockValue) -> Option<Holder> {
        match l {
            LockValue::Held { run, who, at } => Some(Holder {
                key: None,
                run: run.clone(),
                who: who.clone(),
                at: *at,
            }),
            LockValue::Stop { .. } => None,
        }
    }

    /// Lock `key`'s holder in the lock table (an item of an older gears, without a renewal time, counts
    /// from when it was read).
    pub(super) fn of_table(h: &crate::aws::TableHolder, key: &str) -> Holder {
        let ms = h.at.unwrap_or(h.seen_at);
        // gears writes the tag's value as the holder: its host (and CI job) is the `who`.
        let who = match LockValue::parse(&h.holder) {
            Ok(LockValue::Held { who, .. }) => who,
            _ => h.holder.clone(),
        };
        Holder {
            key: Some(key.to_owned()),
            run: h.run.clone(),
            who,
            at: chrono::DateTime::from_timestamp_millis(ms).unwrap_or_else(wall_now),
        }
    }
}

/// The one refusal of a lock another deploy holds, for every strategy (rolling, instance
/// refresh, blue/green, `--rollback`) and either lock (the group's tag, the lock table):
/// who holds it and since when (its last renewal), when it goes stale, and what to do then:
/// the same command takes the lock over and continues the deploy the dead run recorded
/// (`other_ami`: a deploy of another AMI is recorded, which `--abort` with that AMI undoes
/// first), `gears deploy --abort` undoes it. Exit 5: retrying later is the way on.
pub(super) fn held_by_another(
    group: &str,
    h: &Holder,
    stale: Duration,
    other_ami: Option<&str>,
) -> Error {
    let now = wall_now();
    let ago = now.signed_duration_since(h.at).to_std().unwrap_or_default();
    let stale_at = h.at + chrono::Duration::from_std(stale).unwrap_or_default();
    let left = stale_at
        .signed_duration_since(now)
        .to_std()
        .unwrap_or_default();
    let stamp = stale_at.format("%Y-%m-%dT%H:%M:%SZ");
    let (goes, when) = if left.is_zero() {
        (format!("went stale at {stamp}"), "now".to_owned())
    } else {
        let w = format!("{stamp} (in {})", crate::text::human_duration(left));
        (format!("goes stale at {w}"), format!("from {w}"))
    };
    let then = match other_ami {
        Some(ami) => format!(
            "{when}, `gears deploy --abort` with {ami} undoes its deploy of {ami}, and then this same command deploys"
        ),
        None => format!(
            "{when}, this same command takes the lock over and continues its deploy, or `gears deploy --abort` (with the AMI it deployed) undoes it"
        ),
    };
    refused(
        group,
        format!(
            "another deploy holds the lock{}: run {} on {}, renewed at {} ({} ago); the lock {goes}",
            h.key
                .as_ref()
                .map(|k| format!(" {k} in the lock table"))
                .unwrap_or_default(),
            h.run,
            h.who,
            h.at.format("%Y-%m-%dT%H:%M:%SZ"),
            crate::text::human_duration(ago),
        ),
        &format!("if that deploy is alive, wait for it to end; if it was killed, {then}"),
    )
}
