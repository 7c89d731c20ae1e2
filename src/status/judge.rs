//! What on a group needs a human, decided from one look (pure): a STOP lock, a deploy recorded
//! whose run is gone (no lock, or one not renewed within the stale limit), drift (members on an
//! AMI other than the launch spec's with no deploy or switch recorded to explain it), a
//! blue/green switch recorded with no live lock, and a gears tag that cannot be read. With the
//! commands that continue or undo a recorded deploy, as `gears deploy` words them.
use super::collect::{ami, Seen};
use super::*;
use crate::aws::Group;
use crate::deploy::lock::LockValue;
use crate::deploy::state::OnGroup;
use crate::text::shell_word;

/// What every row of a region is judged with.
pub(super) struct Facts {
    pub(super) region: String,
    /// `-c FILE`, when it is not the default `gears.yaml`.
    component_flag: String,
    lock_stale: Duration,
    pub(super) now: chrono::DateTime<chrono::Utc>,
}

impl Facts {
    pub(super) fn new(settings: &StatusSettings, region: &str) -> Facts {
        let file = settings.component_file.display().to_string();
        Facts {
            region: region.to_owned(),
            component_flag: if file == "gears.yaml" {
                String::new()
            } else {
                format!(" -c {}", shell_word(&file))
            },
            lock_stale: settings.lock_stale,
            now: chrono::Utc::now(),
        }
    }
}

/// The `gears deploy` command for this group alone, with `ami`.
fn deploy_command(row: &GroupStatus, facts: &Facts, ami: &str) -> String {
    let env = if row.environment.is_empty() {
        "ENV"
    } else {
        &row.environment
    };
    let country = row
        .country
        .as_ref()
        .map(|c| format!(" --country {}", shell_word(c)))
        .unwrap_or_default();
    format!(
        "gears deploy{} -e {}{country} --group {} --ami {} --region {}",
        facts.component_flag,
        shell_word(env),
        shell_word(&row.group),
        shell_word(ami),
        shell_word(&row.region)
    )
}

/// `gears:retired`, read leniently: its `at` and `until`, and whether `until` has passed.
pub(super) fn retired(value: &str, now: chrono::DateTime<chrono::Utc>) -> Retired {
    let v: serde_json::Value = serde_json::from_str(value).unwrap_or_default();
    let text = |k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_owned);
    let until = text("until");
    let overdue = until
        .as_deref()
        .and_then(|u| chrono::DateTime::parse_from_rfc3339(u).ok())
        .is_some_and(|u| u < now);
    Retired {
        at: text("at"),
        until,
        overdue,
    }
}

/// `gears:bluegreen`, read leniently: its `run`, `ami` and `new` group.
pub(super) fn switch(value: &str) -> Switch {
    let v: serde_json::Value = serde_json::from_str(value).unwrap_or_default();
    let text = |k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_owned);
    Switch {
        run: text("run"),
        ami: text("ami"),
        new: text("new"),
    }
}

/// How long ago a held lock was renewed, by the look's clock (`None` for a STOP). The same
/// rule as a deploy's ([`LockValue::is_live`]): live while younger than the stale limit.
fn age(l: &LockValue, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    match l {
        LockValue::Held { at, .. } => {
            Some(now.signed_duration_since(*at).to_std().unwrap_or_default())
        }
        LockValue::Stop { .. } => None,
    }
}

/// The lock as a row shows it.
fn lock_view(l: &LockValue, facts: &Facts) -> Lock {
    match l {
        LockValue::Held { run, who, at } => {
            let (host, job) = match who.split_once(' ') {
                Some((h, j)) => (h.to_owned(), Some(j.to_owned())),
                None => (who.clone(), None),
            };
            let age = age(l, facts.now).unwrap_or_default();
            Lock::Held {
                run: run.clone(),
                host,
                ci_job: job,
                renewed: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                age_secs: age.as_secs(),
                live: age < facts.lock_stale,
            }
        }
        LockValue::Stop { run, reason } => Lock::Stop {
            run: run.clone(),
            reason: reason.clone(),
        },
    }
}

/// What gears wrote on the group (its lock, its recorded deploy), read by the deploy's own
/// parsers, and what of the row needs a human.
pub(super) fn gears_state(row: &mut GroupStatus, g: &Group, seen: &Seen, facts: &Facts) {
    let on = match OnGroup::read(g) {
        Ok(on) => on,
        Err(e) => {
            let why = e.render();
            let first = why.lines().next().unwrap_or_default();
            row.attention.push(format!(
                "a gears tag on it cannot be read: {}",
                first.trim_start_matches("error: ")
            ));
            return;
        }
    };
    row.lock = on.lock.as_ref().map(|l| lock_view(l, facts));
    let live = matches!(row.lock, Some(Lock::Held { live: true, .. }));
    if let Some(st) = &on.recorded {
        let on_target = g
            .members
            .iter()
            .filter(|m| seen.member_images.get(&m.id) == Some(&st.ami))
            .count();
        let cmd = deploy_command(row, facts, &st.ami);
        row.deploy = Some(Unfinished {
            run: st.run.clone(),
            target: ami(&st.ami, seen, g),
            on_target,
            of: st.desired,
            running: live,
            abort_with: format!("{cmd} --abort"),
            continue_with: cmd,
        });
    }
    attention(row, &on, live, facts);
}

/// The rules: what a human must look at.
fn attention(row: &mut GroupStatus, on: &OnGroup, live: bool, facts: &Facts) {
    if let Some(LockValue::Stop { run, reason }) = &on.lock {
        let ami = on
            .recorded
            .as_ref()
            .map(|s| s.ami.clone())
            .or_else(|| row.launch.ami.as_ref().map(|a| a.ami.clone()))
            .unwrap_or_else(|| "AMI".into());
        let unlock = deploy_command(row, facts, &ami);
        row.attention.push(format!(
            "the line is stopped (run {run}: {reason}): look at the group, then `{unlock} --unlock`"
        ));
    }
    if let (Some(st), false) = (&on.recorded, live) {
        let lock = match &on.lock {
            Some(l @ LockValue::Held { .. }) => format!(
                "its lock was last renewed {} ago",
                crate::text::human_duration(Duration::from_secs(
                    age(l, facts.now).unwrap_or_default().as_secs()
                ))
            ),
            Some(LockValue::Stop { .. }) => "the line is stopped".to_owned(),
            None => "no lock holds the group".to_owned(),
        };
        row.attention.push(format!(
            "the deploy of {} by run {} did not finish and its run is gone ({lock})",
            st.ami, st.run
        ));
    }
    if row.drift && on.recorded.is_none() && row.bluegreen.is_none() {
        let launch = row
            .launch
            .ami
            .as_ref()
            .map(|a| a.ami.as_str())
            .unwrap_or("?");
        let other: Vec<&str> = row
            .running
            .iter()
            .filter(|r| r.ami.ami != launch)
            .map(|r| r.ami.ami.as_str())
            .collect();
        let why = format!(
            "drift: members run {} but the launch spec {} launches {launch}, and no deploy is recorded",
            other.join(", "),
            row.launch.spec
        );
        row.attention.push(why);
    }
}

/// A blue/green switch recorded on a group needs a human when no group of its cluster (in its
/// region) has a live lock: the run that switches may hold the lock on another of them.
pub(super) fn switches(rows: &mut [GroupStatus]) {
    let held = |r: &GroupStatus| matches!(r.lock, Some(Lock::Held { live: true, .. }));
    let alive: Vec<(String, Option<String>)> = rows
        .iter()
        .filter(|r| held(r))
        .map(|r| (r.region.clone(), r.cluster.clone()))
        .collect();
    for r in rows.iter_mut() {
        let Some(s) = &r.bluegreen else { continue };
        let covered = held(r)
            || (r.cluster.is_some()
                && alive
                    .iter()
                    .any(|(reg, c)| *reg == r.region && *c == r.cluster));
        if !covered {
            let why = format!(
                "a blue/green switch{} to {} is recorded and no live lock holds its cluster",
                s.run
                    .as_ref()
                    .map(|r| format!(" by run {r}"))
                    .unwrap_or_default(),
                s.new.as_deref().unwrap_or("?")
            );
            r.attention.push(why);
        }
    }
}
