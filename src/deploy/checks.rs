//! The checks before any change: the AMI, the groups, templates shared outside the deploy.
use crate::aws::Groups;
use crate::aws::{Cloud, CloudError, Fleet, Group};
use crate::deploy::refresh::refresh_preferences;
use crate::deploy::region::RegionCtx;
use crate::deploy::{DeploySettings, Strategy, LOCK_TAG, STATE_TAG, TAGS_TAG};
use crate::error::{Error, InputError};
use crate::wait::patiently;
use std::collections::BTreeMap;
use tokio::time::Instant;

/// The groups of one region (checked: every region's are found before any region changes).
#[allow(clippy::type_complexity)]
pub(super) async fn find_region<C: Cloud>(
    ctx: &RegionCtx<'_>,
    cloud: &C,
    region: &str,
    ami: &str,
) -> Result<(C::Fleet, Option<C::Locks>, Vec<Group>), Error> {
    let settings = ctx.settings;
    // Every call of the checks is retried as the deploy's are (throttling before the first
    // change never fails a deploy by itself).
    let d = Instant::now() + settings.gate_timeout;
    // `--unlock` needs no AMI.
    if !settings.unlock {
        ami_available(ctx, cloud, region, ami).await?;
    }
    let fleet = cloud.fleet(region).await?;
    let table = match &settings.lock_table {
        Some(t) => Some(cloud.locks(region, t).await?),
        None => None,
    };
    let groups = if settings.groups.is_empty() {
        patiently(ctx.cancel, d, || fleet.groups(ctx.want, &[])).await?
    } else {
        named_groups(ctx, &fleet, region).await?
    };
    let groups = if settings.unlock {
        groups
    } else {
        in_traffic(ctx, region, groups)
    };
    if groups.is_empty() {
        return Err(no_groups(ctx, region));
    }
    latest_shared_outside(ctx, &fleet, region, &groups).await?;
    if !settings.unlock {
        alarms_exist(ctx, &fleet, region, d).await?;
        refused_groups(ctx, region, &groups)?;
    }
    Ok((fleet, table, groups))
}

/// The error of a region where no group is tagged as the component's.
fn no_groups(ctx: &RegionCtx<'_>, region: &str) -> Error {
    InputError::whole_file(
        ctx.settings.component_file.display().to_string(),
        format!(
            "no Auto Scaling group in {region} is tagged {}",
            ctx.want
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .with_hint("tag the component's groups, or name them with --group")
    .into()
}

/// Every alarm of the gate exists in `region` (one it cannot see would never fire).
async fn alarms_exist<F: Fleet>(
    ctx: &RegionCtx<'_>,
    fleet: &F,
    region: &str,
    d: Instant,
) -> Result<(), Error> {
    let settings = ctx.settings;
    if settings.alarms.is_empty() {
        return Ok(());
    }
    let found = patiently(ctx.cancel, d, || fleet.alarms(&settings.alarms)).await?;
    let missing: Vec<&str> = settings
        .alarms
        .iter()
        .filter(|a| !found.contains_key(*a))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(InputError::whole_file(
            settings.component_file.display().to_string(),
            format!(
                "no CloudWatch alarm named {} in {region}: the gate could never see it",
                missing.join(", ")
            ),
        )
        .with_hint("check --alarm and deploy.alarms: an alarm belongs to one region")
        .into());
    }
    Ok(())
}

/// A group a deploy would refuse stops the deploy here; with `--plan`, it is a warning.
fn refused_groups(ctx: &RegionCtx<'_>, region: &str, groups: &[Group]) -> Result<(), Error> {
    let settings = ctx.settings;
    for g in groups {
        if let Err(e) = deployable(settings, ctx.instance_tags, g) {
            if !settings.plan_only {
                return Err(e);
            }
            ctx.ui.progress(
                Some(region),
                &format!(
                    "warning: a deploy would be refused: {}",
                    e.render().trim().trim_start_matches("error: ")
                ),
            );
        }
    }
    Ok(())
}

/// The groups a deploy (and `--rollback`) starts from: blue/green's old groups kept out of
/// traffic, and a new group still being grown beside the group in traffic, are left out (said).
fn in_traffic(ctx: &RegionCtx<'_>, region: &str, groups: Vec<Group>) -> Vec<Group> {
    let growing: Vec<String> = groups
        .iter()
        .filter_map(|g| g.tags.get(crate::tags::BLUEGREEN))
        .filter_map(|v| super::blue_green::record::parse_switch(v).ok())
        .map(|sw| sw.new)
        .collect();
    groups
        .into_iter()
        .filter(|g| {
            // A switch recorded on it: it is the group in traffic, even once retired (a
            // switch killed between retiring it and removing the record).
            let switching = g.tags.contains_key(crate::tags::BLUEGREEN);
            if let (Some(r), false) = (g.tags.get(crate::tags::RETIRED), switching) {
                let until = super::blue_green::record::parse_retired(r)
                    .map(|r| format!(" (kept until {})", r.until))
                    .unwrap_or_default();
                ctx.ui.progress(
                    Some(region),
                    &format!(
                        "{}: an old blue/green group out of traffic{until}: left alone",
                        g.name
                    ),
                );
                return false;
            }
            !growing.contains(&g.name)
        })
        .collect()
}

/// The Auto Scaling processes a deploy (and its rollback) cannot do without: new instances
/// launched, old ones terminated, registered with the load balancers, health checked and
/// replaced when unhealthy. AWS enforces a suspension (a user's, or its own administrative
/// one); moto and the fake-free tests would not notice.
pub const NEEDED_PROCESSES: [&str; 5] = [
    "Launch",
    "Terminate",
    "AddToLoadBalancer",
    "HealthCheck",
    "ReplaceUnhealthy",
];

/// Room on the group for gears' own tags (the record, the lock, the tags to restore) and the
/// instance tags it sets: AWS allows 50, and a deploy that ran out would fail half-way.
fn tag_room(
    settings: &DeploySettings,
    instance_tags: &BTreeMap<String, String>,
    g: &Group,
) -> Result<(), Error> {
    // Blue/green writes its switch and cluster on the group, and its clone gets the group's
    // tags, the instance tags and those two (then `gears:retired` when it is kept).
    let blue_green: &[&str] = if settings.strategy == Strategy::BlueGreen {
        &[
            crate::tags::BLUEGREEN,
            crate::tags::CLUSTER,
            crate::tags::RETIRED,
        ]
    } else {
        &[]
    };
    let adding: Vec<&str> = [STATE_TAG, LOCK_TAG, TAGS_TAG]
        .into_iter()
        .chain(blue_green.iter().copied())
        .chain(instance_tags.keys().map(String::as_str))
        .filter(|k| !g.tags.contains_key(*k))
        .collect();
    if g.tags.len() + adding.len() > MAX_GROUP_TAGS {
        Err(InputError::whole_file(
            format!("group {}", g.name),
            format!(
                "it has {} tags and a deploy adds {} ({}): AWS allows {MAX_GROUP_TAGS} on a group",
                g.tags.len(),
                adding.len(),
                adding.join(", ")
            ),
        )
        .with_hint(format!(
            "remove {} of the group's tags",
            g.tags.len() + adding.len() - MAX_GROUP_TAGS
        ))
        .into())
    } else {
        Ok(())
    }
}

/// The most tags AWS allows on an Auto Scaling group.
pub const MAX_GROUP_TAGS: usize = 50;

/// What makes a deploy of `g` impossible with these settings, found before any change (exit 3):
/// a process it needs suspended, a traffic source it cannot gate on, capacity in units, a warm
/// pool, no room for its tags, or instance-refresh preferences AWS refuses.
fn deployable(
    settings: &DeploySettings,
    instance_tags: &BTreeMap<String, String>,
    g: &Group,
) -> Result<(), Error> {
    let refresh = settings.strategy == Strategy::InstanceRefresh;
    // What a blue/green switch or rollback in flight (recorded on the group) suspended as the
    // group left traffic: the run that continues it takes the group out again, or `--abort`
    // resumes them.
    let switching: Vec<String> = g
        .tags
        .get(crate::tags::BLUEGREEN)
        .and_then(|v| super::blue_green::record::parse_switch(v).ok())
        .map(|sw| sw.susp)
        .unwrap_or_default();
    let blocked: Vec<&str> = g
        .suspended
        .iter()
        .filter(|p| !switching.contains(p))
        .map(String::as_str)
        .filter(|p| NEEDED_PROCESSES.contains(p) || (refresh && *p == "InstanceRefresh"))
        .collect();
    if !blocked.is_empty() {
        return Err(InputError::whole_file(
            format!("group {}", g.name),
            format!(
                "its {} process{} suspended: a deploy (and a rollback) cannot launch, retire or gate instances without {}",
                blocked.join(", "),
                if blocked.len() == 1 { " is" } else { "es are" },
                if blocked.len() == 1 { "it" } else { "them" },
            ),
        )
        .with_hint(format!(
            "once you know why they were suspended: aws autoscaling resume-processes --auto-scaling-group-name {} --scaling-processes {}",
            crate::text::shell_quote(&g.name),
            blocked.join(" ")
        ))
        .into());
    }
    let refuse = |why: String, hint: &str| -> Result<(), Error> {
        Err(InputError::whole_file(format!("group {}", g.name), why)
            .with_hint(hint)
            .into())
    };
    if !g.other_traffic.is_empty() {
        return refuse(
            format!(
                "it has traffic sources gears cannot read the health of ({}): the gate would pass instances they do not serve",
                g.other_traffic.join(", ")
            ),
            "deploy it with AWS's own tools, or move it behind a target group or a Classic load balancer",
        );
    }
    if let Some(why) = &g.units {
        return refuse(
            format!("{why}: its desired capacity counts units, not instances, and gears rolls and rolls back by instances (the roll would never settle)"),
            "give the group instance counts (DesiredCapacityType units, overrides of weight 1) for the deploy",
        );
    }
    if g.warm_pool {
        return refuse(
            "it has a warm pool: a scale-out draws on pooled instances, which keep the launch spec they were made with, so a batch would bring in the old AMI".to_owned(),
            &format!(
                "delete the pool for the deploy (aws autoscaling delete-warm-pool --auto-scaling-group-name {} --force-delete), or roll it with AWS's instance refresh from the console",
                crate::text::shell_quote(&g.name)
            ),
        );
    }
    tag_room(settings, instance_tags, g)?;
    if refresh {
        refresh_preferences(settings.min_healthy, settings.batch(), g.desired)
            .map_err(|why| Error::from(InputError::whole_file(format!("group {}", g.name), why)))?;
    }
    Ok(())
}

/// No tags asked for (groups by name, or every group of the region).
static NO_TAGS: BTreeMap<String, String> = BTreeMap::new();

/// The AMI exists in `region` and is available, before anything is locked or made (a typo
/// would otherwise roll every group through a gate that can only time out).
async fn ami_available<C: Cloud>(
    ctx: &RegionCtx<'_>,
    cloud: &C,
    region: &str,
    ami: &str,
) -> Result<(), Error> {
    use crate::aws::Images;
    let d = Instant::now() + ctx.settings.gate_timeout;
    let images = cloud.images(region).await?;
    let query = crate::aws::BaseAmiQuery {
        id: Some(ami.to_owned()),
        ..Default::default()
    };
    let what = format!("AMI {ami}");
    let found = crate::wait::retry(
        d,
        ctx.cancel,
        || images.find_base_ami(&query),
        CloudError::is_retryable,
    )
    .await;
    match found {
        Ok(Some(img)) if img.state == "available" => Ok(()),
        Ok(Some(img)) => Err(InputError::whole_file(
            what,
            format!("in {region} it is {}, not available", img.state),
        )
        .into()),
        // In an environment's account an AMI of the build account is seen only when shared.
        Ok(None) => Err(match &ctx.settings.account {
            Some(a) => InputError::whole_file(
                what,
                format!(
                    "{ami} is not shared with account {} (or does not exist in {region})",
                    a.role.role_arn.account()
                ),
            )
            .with_hint(format!(
                "add it to share.accounts: \"{}\" in the component file and bake again (a reused bake shares it)",
                a.role.role_arn.account()
            )),
            None => InputError::whole_file(what, format!("it does not exist in {region}"))
                .with_hint("check the manifest or --ami: an AMI belongs to one region"),
        }
        .into()),
        Err(e)
            if e.kind() == crate::aws::ErrorKind::Invalid
                || e.kind() == crate::aws::ErrorKind::NotFound =>
        {
            Err(InputError::whole_file(what, format!("not an AMI in {region}: {e}")).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The groups `--group` names: each must exist, and belong to this component and this
/// environment (when its tags say which).
async fn named_groups<F: Fleet>(
    ctx: &RegionCtx<'_>,
    fleet: &F,
    region: &str,
) -> Result<Vec<Group>, Error> {
    let settings = ctx.settings;
    let d = Instant::now() + settings.gate_timeout;
    let found = patiently(ctx.cancel, d, || fleet.groups(&NO_TAGS, &settings.groups)).await?;
    let missing: Vec<&str> = settings
        .groups
        .iter()
        .filter(|n| !found.iter().any(|g| &g.name == *n))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::usage(
            format!(
                "--group: no Auto Scaling group named {} in {region}",
                missing.join(", ")
            ),
            None,
        ));
    }
    let component = ctx
        .want
        .get(crate::tags::COMPONENT)
        .cloned()
        .unwrap_or_default();
    for (tag, want) in [
        (crate::tags::COMPONENT, &component),
        (crate::tags::ENVIRONMENT, &settings.environment),
    ] {
        if let Some((g, have)) = found
            .iter()
            .find_map(|g| g.tags.get(tag).filter(|v| *v != want).map(|v| (g, v)))
        {
            return Err(Error::usage(
                format!(
                    "--group {}: the group is tagged {tag}={have}, not {want}",
                    g.name
                ),
                None,
            ));
        }
    }
    Ok(found)
}

/// A template on `$Latest` shared with groups outside this deploy: the new version would
/// change what they launch, ungated (and stay their `$Latest` after a rollback). Refused for a
/// deploy; a warning for `--plan`, `--abort` and `--unlock`.
async fn latest_shared_outside<F: Fleet>(
    ctx: &RegionCtx<'_>,
    fleet: &F,
    region: &str,
    groups: &[Group],
) -> Result<(), Error> {
    let settings = ctx.settings;
    let latest: Vec<&str> = groups
        .iter()
        .filter(|g| !g.tags.contains_key(STATE_TAG))
        .filter_map(|g| g.template.as_ref())
        .filter(|t| t.version == "$Latest")
        .map(|t| t.id.as_str())
        .collect();
    if latest.is_empty() {
        return Ok(());
    }
    let d = Instant::now() + settings.gate_timeout;
    let all = patiently(ctx.cancel, d, || fleet.groups(&NO_TAGS, &[])).await?;
    let others: Vec<String> = all
        .iter()
        .filter(|o| !groups.iter().any(|g| g.name == o.name))
        .filter_map(|o| {
            o.template
                .as_ref()
                .filter(|t| t.version == "$Latest" && latest.contains(&t.id.as_str()))
                .map(|t| format!("{} ({})", o.name, t.id))
        })
        .collect();
    if others.is_empty() {
        return Ok(());
    }
    let e = InputError::whole_file(
        settings.component_file.display().to_string(),
        format!(
            "in {region}, {} launch from the same template's $Latest: the new version would change what they launch, outside this deploy's gate",
            others.join(", ")
        ),
    )
    .with_hint("deploy them together (--group), or point them at a version number of their own");
    if !(settings.plan_only || settings.unlock || settings.abort) {
        return Err(e.into());
    }
    ctx.ui.progress(
        Some(region),
        &format!(
            "warning: {}",
            Error::from(e).render().trim().trim_start_matches("error: ")
        ),
    );
    Ok(())
}
