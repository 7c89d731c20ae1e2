//! A look as people read it (a table, then what is in flight or needs a human, with the
//! commands), and as scripts read it (JSON, the same data).
use super::*;

/// The look as pretty JSON, with its newline.
pub fn json(status: &Status) -> String {
    serde_json::to_string_pretty(status).unwrap_or_default() + "\n"
}

/// An AMI as a cell: `ami-… VERSION/AMI_VERSION` (what its tags say).
fn ami_cell(a: &Ami) -> String {
    match (&a.version, &a.ami_version) {
        (None, None) => match &a.shared_from {
            Some(owner) => format!("{} (shared from {owner})", a.ami),
            None => a.ami.clone(),
        },
        (v, av) => format!(
            "{} {}/{}",
            a.ami,
            v.as_deref().unwrap_or("?"),
            av.as_deref().unwrap_or("?")
        ),
    }
}

fn running_cell(g: &GroupStatus) -> String {
    let mut cells: Vec<String> = g
        .running
        .iter()
        .map(|r| format!("{} ×{}", ami_cell(&r.ami), r.members))
        .collect();
    if g.unknown > 0 {
        cells.push(format!("? ×{}", g.unknown));
    }
    if cells.is_empty() {
        "-".into()
    } else {
        cells.join(", ")
    }
}

fn launch_cell(g: &GroupStatus) -> String {
    let ami = g
        .launch
        .ami
        .as_ref()
        .map(ami_cell)
        .unwrap_or_else(|| "?".into());
    let spec = if g.launch.spec.is_empty() {
        "no launch spec".to_owned()
    } else {
        g.launch.spec.clone()
    };
    format!("{ami} ({spec}){}", if g.drift { " DRIFT" } else { "" })
}

/// A lock as a cell.
pub fn lock_cell(lock: &Option<Lock>) -> String {
    match lock {
        None => "-".into(),
        Some(Lock::Stop { run, reason }) => format!("STOP run {run}: {reason}"),
        Some(Lock::Held {
            run,
            host,
            ci_job,
            age_secs,
            live,
            ..
        }) => format!(
            "{}run {run} on {host}{}, {} ago",
            if *live { "" } else { "stale: " },
            ci_job
                .as_ref()
                .map(|j| format!(" ({j})"))
                .unwrap_or_default(),
            crate::text::human_duration(Duration::from_secs(*age_secs))
        ),
    }
}

/// What is going on with the group, in a few words.
fn state_cell(g: &GroupStatus) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !g.attention.is_empty() {
        parts.push("NEEDS A HUMAN".into());
    }
    if let Some(d) = &g.deploy {
        parts.push(format!(
            "deploy of {} by run {}: {}/{} on it{}",
            ami_cell(&d.target),
            d.run,
            d.on_target,
            d.of,
            if d.running {
                ", running"
            } else {
                ", its run is gone"
            }
        ));
    }
    if let Some(s) = &g.bluegreen {
        parts.push(format!(
            "blue/green switch to {}{}",
            s.new.as_deref().unwrap_or("?"),
            s.run
                .as_ref()
                .map(|r| format!(" by run {r}"))
                .unwrap_or_default()
        ));
    }
    if let Some(r) = &g.retired {
        parts.push(format!(
            "retired, kept until {}{}",
            r.until.as_deref().unwrap_or("?"),
            if r.overdue { " (past)" } else { "" }
        ));
    }
    if !g.suspended.is_empty() {
        parts.push(format!("suspended: {}", g.suspended.join(", ")));
    }
    if parts.is_empty() {
        "ok".into()
    } else {
        parts.join("; ")
    }
}

/// The table's rows, header first.
pub fn rows(status: &Status) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "ENV",
        "REGION",
        "CLUSTER",
        "GROUP",
        "RUNNING",
        "IN SERVICE",
        "HEALTHY",
        "LAUNCHES",
        "LOCK",
        "STATE",
    ]
    .map(str::to_owned)
    .to_vec()];
    for g in &status.groups {
        let env = match (&g.environment, &g.country) {
            (e, _) if e.is_empty() => "-".to_owned(),
            (e, Some(c)) => format!("{e}/{c}"),
            (e, None) => e.clone(),
        };
        rows.push(
            [
                env,
                g.region.clone(),
                g.cluster.clone().unwrap_or_else(|| "-".into()),
                g.group.clone(),
                running_cell(g),
                format!("{}/{}", g.in_service, g.desired),
                format!("{}/{}", g.healthy, g.desired),
                launch_cell(g),
                lock_cell(&g.lock),
                state_cell(g),
            ]
            .iter()
            .map(|c| crate::ui::field(c))
            .collect(),
        );
    }
    rows
}

/// What a group has in flight or needs a human for, with the commands: lines under the table.
fn details(g: &GroupStatus) -> String {
    if g.attention.is_empty() && g.deploy.is_none() {
        return String::new();
    }
    let mut out = format!("{} ({}, {}):\n", g.group, or_dash(&g.environment), g.region);
    for a in &g.attention {
        out += &format!("  needs a human: {}\n", crate::ui::field(a));
    }
    if let Some(d) = &g.deploy {
        out += &format!(
            "  deploy: run {} to {}, {} of {} members on it{}\n  continue: {}\n  abort:    {}\n",
            d.run,
            ami_cell(&d.target),
            d.on_target,
            d.of,
            if d.running {
                " (running now: let it finish)"
            } else {
                ""
            },
            d.continue_with,
            d.abort_with
        );
    }
    out
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// The look for people: the table, the details, region errors and a summary line.
pub fn text(status: &Status, settings: &StatusSettings) -> String {
    let mut out = String::new();
    if status.groups.is_empty() {
        out += &format!(
            "no Auto Scaling group in {} is tagged {}={}{}\n",
            status.regions.join(", "),
            crate::tags::COMPONENT,
            status.component,
            if settings.environments.is_empty() {
                String::new()
            } else {
                format!(" in {}", settings.environments.join(", "))
            }
        );
    } else {
        out += &crate::ui::table(&rows(status));
    }
    for g in &status.groups {
        out += &details(g);
    }
    for e in &status.errors {
        out += &format!("error: {} could not be read: {}\n", e.region, e.error);
    }
    let human = status
        .groups
        .iter()
        .filter(|g| !g.attention.is_empty())
        .count();
    out += &format!(
        "status at {}: {} group(s) in {} region(s){}\n",
        status.at,
        status.groups.len(),
        status.regions.len(),
        match human {
            0 => String::new(),
            n => format!(", {n} need(s) a human (exit 7)"),
        }
    );
    out
}
