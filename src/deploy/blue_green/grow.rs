//! The new group: recorded, made (a launch template version with the new AMI, a clone of the
//! group in traffic, its scaling policies and scheduled actions copied, suspended until it takes
//! over) and grown to the old group's desired capacity, in steps of `--batch` when asked, each
//! step gated as a rolling batch is (Auto Scaling health, every traffic source, the smoke tests
//! at each instance, the alarms) and baked.
use crate::aws::{CloneAsk, Fleet, Group, LockTable, TemplateRef};
use crate::deploy::blue_green::record::{cluster_of, next_name, write, Switch, GROW};
use crate::deploy::blue_green::{switch, NOT_CLONED, RETIRE};
use crate::deploy::gate::GateMemory;
use crate::deploy::lock::refused;
use crate::deploy::region::RegionCtx;
use crate::deploy::roll::{counting, Roll};
use crate::deploy::state::OnGroup;
use crate::deploy::SUSPEND;
use crate::error::{Error, InputError};
use crate::wait::patiently;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// Refused before any change: what a clone cannot be made of.
pub(super) fn refuse_unclonable(g: &Group) -> Result<(), Error> {
    let why = if g.template.is_none() {
        Some("it launches from a launch configuration: blue/green clones groups on launch templates only".to_owned())
    } else if !g.override_templates.is_empty() {
        Some(format!(
            "the mixed-instances policy gives {} a launch template of its own: gears deploys one AMI per group",
            g.override_templates.join(", ")
        ))
    } else {
        None
    };
    match why {
        Some(why) => Err(InputError::whole_file(format!("group {}", g.name), why)
            .with_hint("move the group to a launch template, or deploy it with --strategy rolling")
            .into()),
        None => Ok(()),
    }
}

/// The lock taken and the switch recorded on the old group (or a recorded one of this AMI
/// continued), then the new group made: what the deploy goes on from.
pub(super) async fn start<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    g: &Group,
    on: &OnGroup,
) -> Result<Switch, Error> {
    roll.take_tag_lock(on).await?;
    let sw = match on.switch.clone() {
        Some(sw) if sw.ami == roll.ami => {
            roll.say(&format!(
                "continuing the blue/green deploy of {} to {} recorded by run {}",
                sw.ami, sw.new, sw.run
            ));
            sw
        }
        Some(sw) => {
            return Err(refused(
                &g.name,
                format!(
                    "a blue/green deploy of {} to {} is recorded on the group",
                    sw.ami, sw.new
                ),
                "`gears deploy --abort` (with that AMI) undoes it first",
            ))
        }
        None => {
            let new = new_name(roll, g).await?;
            let sw = Switch {
                run: roll.run.clone(),
                ami: roll.ami.clone(),
                new,
                phase: GROW.into(),
                susp: RETIRE
                    .iter()
                    .filter(|p| !g.suspended.iter().any(|s| s == *p))
                    .map(|p| p.to_string())
                    .collect(),
            };
            record_switch(roll, &sw).await?;
            sw
        }
    };
    make_new(ctx, roll, g, &sw).await?;
    Ok(sw)
}

/// The cluster's next group name, one no group in the region has.
pub(super) async fn new_name<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    g: &Group,
) -> Result<String, Error> {
    let cluster = cluster_of(g);
    let d = roll.deadline();
    let none = BTreeMap::new();
    let mut taken: Vec<String> = vec![g.name.clone()];
    loop {
        let name = next_name(&cluster, &taken);
        let found = patiently(roll.cancel, d, || {
            roll.fleet.groups(&none, std::slice::from_ref(&name))
        })
        .await?;
        if found.is_empty() {
            return Ok(name);
        }
        taken.push(name);
    }
}

/// Writes the switch on the old group.
pub(super) async fn record_switch<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    sw: &Switch,
) -> Result<(), Error> {
    let value = write(sw)
        .map_err(|why| Error::from(InputError::whole_file(format!("group {}", roll.name), why)))?;
    let tag = BTreeMap::from([(crate::tags::BLUEGREEN.to_owned(), value)]);
    let d = roll.deadline();
    patiently(roll.cancel, d, || {
        roll.fleet.put_tags(&roll.name, &tag, false)
    })
    .await
}

/// The number of the version the old group launched from ([`Roll::launched_from`]: `$Latest`
/// moved to the new AMI by gears' versions of it is stepped back past, a version that launches
/// it otherwise refused), the group pinned to it when it is on `$Latest` (so the new version
/// does not move it).
async fn pin<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    g: &Group,
    t: &TemplateRef,
) -> Result<String, Error> {
    let (fleet, d) = (roll.fleet, roll.deadline());
    let (fromn, _) = roll.launched_from(g, t).await?;
    if t.version == "$Latest" {
        let pinned = TemplateRef {
            id: t.id.clone(),
            version: fromn.clone(),
        };
        patiently(roll.cancel, d, || {
            fleet.set_template(&g.name, &pinned, g.mixed)
        })
        .await?;
    }
    Ok(fromn)
}

/// The new group made, idempotently (a continued run finds what the killed one made): the old
/// group pinned to the number `$Latest` means (so the new version does not move it), the new
/// version (by client token: a retry gets the same one), the clone, its processes suspended,
/// its scaling policies and scheduled actions copied.
async fn make_new<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    g: &Group,
    sw: &Switch,
) -> Result<(), Error> {
    let (fleet, d) = (roll.fleet, roll.deadline());
    let t = g.template.clone().unwrap_or(TemplateRef {
        id: String::new(),
        version: String::new(),
    });
    let fromn = pin(roll, g, &t).await?;
    let base = TemplateRef {
        id: t.id.clone(),
        version: fromn.clone(),
    };
    let token = token(&sw.run, &t.id, &fromn);
    let version = patiently(roll.cancel, d, || {
        fleet.new_template_version(&base, &roll.ami, &token)
    })
    .await?;
    let cluster = cluster_of(g);
    let none = BTreeMap::new();
    let exists = !patiently(roll.cancel, d, || {
        fleet.groups(&none, std::slice::from_ref(&sw.new))
    })
    .await?
    .is_empty();
    if !exists {
        let mut tags = ctx.instance_tags.clone();
        tags.insert(crate::tags::CLUSTER.into(), cluster.clone());
        let ask = CloneAsk {
            name: sw.new.clone(),
            template: TemplateRef {
                id: t.id.clone(),
                version: version.clone(),
            },
            tags,
            drop_tags: NOT_CLONED.iter().map(|s| s.to_string()).collect(),
        };
        patiently(roll.cancel, d, || fleet.clone_group(&g.name, &ask)).await?;
    }
    let cluster_tag = BTreeMap::from([(crate::tags::CLUSTER.to_owned(), cluster)]);
    patiently(roll.cancel, d, || {
        fleet.put_tags(&g.name, &cluster_tag, false)
    })
    .await?;
    let mut susp: Vec<String> = SUSPEND.iter().map(|s| s.to_string()).collect();
    susp.extend(
        g.suspended
            .iter()
            // Not those the switch suspended on it (a continued switch's old group).
            .filter(|s| !SUSPEND.contains(&s.as_str()) && !sw.susp.contains(s))
            .cloned(),
    );
    patiently(roll.cancel, d, || fleet.set_processes(&sw.new, &susp, true)).await?;
    let (policies, actions) =
        patiently(roll.cancel, d, || fleet.copy_scaling(&g.name, &sw.new)).await?;
    roll.looks.add(&sw.new).await;
    roll.say(&format!(
        "{} {} on launch template {} version {version} ({}); {policies} scaling policies and {actions} scheduled actions copied, suspended until it takes over",
        if exists { "continuing with" } else { "made" },
        sw.new,
        t.id,
        roll.ami
    ));
    Ok(())
}

/// The client token of the new version: the run, the template and its base (at most 64).
fn token(run: &str, lt: &str, fromn: &str) -> String {
    format!(
        "gearsbg{}{}v{fromn}",
        run.replace('-', ""),
        lt.trim_start_matches("lt-")
    )
    .chars()
    .take(64)
    .collect()
}

/// The new group grown and gated, then switched to: `Ok(Ok(detail))` when deployed,
/// `Ok(Err(why))` when the gate failed (nothing switched yet, or the switch undone).
pub(super) async fn grow_and_switch<F: Fleet, L: LockTable>(
    ctx: &RegionCtx<'_>,
    roll: &Roll<'_, F, L>,
    g: &Group,
    sw: &Switch,
) -> Result<Result<String, String>, Error> {
    let newr = Roll::new(
        ctx,
        roll.fleet,
        roll.table,
        roll.looks,
        &sw.new,
        &roll.ami,
        roll.cancel,
    );
    if sw.phase == GROW {
        if let Some(why) = grow(roll, &newr, g).await? {
            return Ok(Err(why));
        }
    }
    switch::switch_over(ctx, roll, &newr, g, sw).await.map(Ok)
}

/// Grows the new group to the old one's desired capacity, step by step, each step gated and
/// baked: `Some(why)` when a gate fails.
async fn grow<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    newr: &Roll<'_, F, L>,
    g: &Group,
) -> Result<Option<String>, Error> {
    let s = roll.settings;
    let target = g.desired;
    let step = s.batch.map_or(target, |b| b.size(target)).max(1);
    let mut gate = GateMemory::default();
    let mut want = 0;
    while want < target {
        want = (want + step).min(target);
        let d = roll.deadline();
        patiently(roll.cancel, d, || {
            roll.fleet
                .set_capacity(&newr.name, 0, g.max.max(target), want)
        })
        .await?;
        roll.say(&format!(
            "growing {} to {want} of {target} on {} beside {} (in service: {} old + new)",
            newr.name, roll.ami, g.name, g.desired
        ));
        if let Some(why) = gate_step(roll, newr, want, &mut gate).await? {
            return Ok(Some(why));
        }
    }
    Ok(None)
}

/// Waits until the new group has `want` members, each healthy in every traffic source and past
/// the smoke tests, then bakes them (`--bake-time`), the alarms watched throughout: `Some(why)`
/// when that fails or does not happen within `--gate-timeout`.
async fn gate_step<F: Fleet, L: LockTable>(
    roll: &Roll<'_, F, L>,
    newr: &Roll<'_, F, L>,
    want: i32,
    gate: &mut GateMemory,
) -> Result<Option<String>, Error> {
    let s = roll.settings;
    let deadline = Instant::now() + s.gate_timeout;
    let pace = newr.pace();
    let mut healthy_since: Option<Instant> = None;
    let mut last_say = Instant::now();
    loop {
        let since = pace.fresh_since();
        roll.still_ours(&roll.group_seen_since(since).await?)?;
        let ng = counting(newr.group_seen_since(since).await?);
        let look = newr.look(&ng, since, Some(gate)).await?;
        if let Some(why) = roll.alarm_fired(since).await? {
            return Ok(Some(why));
        }
        let healthy = look
            .members
            .iter()
            .filter(|m| m.new == Some(true) && m.healthy)
            .count() as i32;
        if ng.members.len() as i32 == want && healthy == want {
            let first = healthy_since.is_none();
            let at = *healthy_since.get_or_insert_with(Instant::now);
            let left = s.bake_time.saturating_sub(at.elapsed());
            if left.is_zero() {
                return Ok(None);
            }
            if first || last_say.elapsed() >= Duration::from_secs(30) {
                roll.say(&format!(
                    "{} healthy at {want}: baking, {} left",
                    newr.name,
                    crate::text::human_duration(left)
                ));
                last_say = Instant::now();
            }
        } else {
            if healthy_since.is_some() && healthy < want {
                let why = format!(
                    "{} fell out of health while baking: {healthy} of {want} healthy",
                    newr.name
                );
                return Ok(Some(why + &smoke_words(gate)));
            }
            if Instant::now() >= deadline {
                return Ok(Some(
                    format!(
                        "{} not healthy after {}: {healthy} of {want} healthy, {} running",
                        newr.name,
                        crate::text::human_duration(s.gate_timeout),
                        ng.members.len()
                    ) + &smoke_words(gate),
                ));
            }
            if last_say.elapsed() >= Duration::from_secs(30) {
                roll.say(&format!(
                    "waiting: {} has {healthy} of {want} healthy",
                    newr.name
                ));
                last_say = Instant::now();
            }
        }
        pace.sleep(roll).await?;
    }
}

fn smoke_words(gate: &GateMemory) -> String {
    gate.smoke_failure
        .as_ref()
        .map(|f| format!(" ({f})"))
        .unwrap_or_default()
}
