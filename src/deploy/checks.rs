//! The checks before any change: the AMI, the groups, templates shared outside the deploy.
use super::*;

/// The groups of one region (checked: every region's are found before any region changes).
#[allow(clippy::type_complexity)]
pub(super) async fn find_region<C: Cloud>(
    ctx: &RegionCtx<'_>,
    cloud: &C,
    region: &str,
    ami: &str,
) -> Result<(C::Fleet, Option<C::Locks>, Vec<Group>), Error> {
    use crate::aws::Images;
    let (settings, want) = (ctx.settings, ctx.want);
    // The AMI exists here and is available, before anything is locked or made (a typo would
    // otherwise roll every group through a gate that can only time out). `--unlock` needs none.
    if !settings.unlock {
        let images = cloud.images(region).await?;
        let query = crate::aws::BaseAmiQuery {
            id: Some(ami.to_owned()),
            ..Default::default()
        };
        let what = format!("AMI {ami}");
        match images.find_base_ami(&query).await {
            Ok(Some(img)) if img.state == "available" => {}
            Ok(Some(img)) => {
                return Err(InputError::whole_file(
                    what,
                    format!("in {region} it is {}, not available", img.state),
                )
                .into())
            }
            Ok(None) => {
                return Err(
                    InputError::whole_file(what, format!("it does not exist in {region}"))
                        .with_hint("check the manifest or --ami: an AMI belongs to one region")
                        .into(),
                )
            }
            Err(e)
                if e.kind() == crate::aws::ErrorKind::Invalid
                    || e.kind() == crate::aws::ErrorKind::NotFound =>
            {
                return Err(
                    InputError::whole_file(what, format!("not an AMI in {region}: {e}")).into(),
                )
            }
            Err(e) => return Err(e.into()),
        }
    }
    let fleet = cloud.fleet(region).await?;
    let table = match &settings.lock_table {
        Some(t) => Some(cloud.locks(region, t).await?),
        None => None,
    };
    let groups = if settings.groups.is_empty() {
        fleet.groups(want, &[]).await?
    } else {
        let found = fleet.groups(&BTreeMap::new(), &settings.groups).await?;
        let missing: Vec<&String> = settings
            .groups
            .iter()
            .filter(|n| !found.iter().any(|g| &g.name == *n))
            .collect();
        if !missing.is_empty() {
            return Err(Error::usage(
                format!(
                    "--group: no Auto Scaling group named {} in {region}",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None,
            ));
        }
        // A named group must belong to this component (when it says which)...
        let component = want.get("gears:component").cloned().unwrap_or_default();
        if let Some(g) = found.iter().find(|g| {
            g.tags
                .get("gears:component")
                .is_some_and(|c| *c != component)
        }) {
            return Err(Error::usage(
                format!(
                    "--group {}: the group is tagged gears:component={}, not {component}",
                    g.name, g.tags["gears:component"]
                ),
                None,
            ));
        }
        // ...and to this environment (when it says which).
        if let Some(g) = found.iter().find(|g| {
            g.tags
                .get("gears:environment")
                .is_some_and(|e| *e != settings.environment)
        }) {
            return Err(Error::usage(
                format!(
                    "--group {}: the group is tagged gears:environment={}, not {}",
                    g.name, g.tags["gears:environment"], settings.environment
                ),
                None,
            ));
        }
        found
    };
    if groups.is_empty() {
        return Err(InputError::whole_file(
            settings.component_file.display().to_string(),
            format!(
                "no Auto Scaling group in {region} is tagged {}",
                want.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_hint("tag the component's groups, or name them with --group")
        .into());
    }
    // A template on `$Latest` shared with groups outside this deploy: the new version would
    // change what they launch, ungated (and stay their `$Latest` after a rollback).
    let deploying = !(settings.plan_only || settings.unlock || settings.abort);
    let latest: Vec<&str> = groups
        .iter()
        .filter(|g| !g.tags.contains_key(STATE_TAG))
        .filter_map(|g| g.template.as_ref())
        .filter(|t| t.version == "$Latest")
        .map(|t| t.id.as_str())
        .collect();
    if !latest.is_empty() {
        let all = fleet.groups(&BTreeMap::new(), &[]).await?;
        let others: Vec<String> = all
            .iter()
            .filter(|o| !groups.iter().any(|g| g.name == o.name))
            .filter(|o| {
                o.template
                    .as_ref()
                    .is_some_and(|t| t.version == "$Latest" && latest.contains(&t.id.as_str()))
            })
            .map(|o| {
                format!(
                    "{} ({})",
                    o.name,
                    o.template
                        .as_ref()
                        .map(|t| t.id.as_str())
                        .unwrap_or_default()
                )
            })
            .collect();
        if !others.is_empty() {
            let e = InputError::whole_file(
                settings.component_file.display().to_string(),
                format!(
                    "in {region}, {} launch from the same template's $Latest: the new version would change what they launch, outside this deploy's gate",
                    others.join(", ")
                ),
            )
            .with_hint("deploy them together (--group), or point them at a version number of their own");
            if deploying {
                return Err(e.into());
            }
            ctx.ui.progress(
                Some(region),
                &format!(
                    "warning: {}",
                    Error::from(e).render().trim().trim_start_matches("error: ")
                ),
            );
        }
    }
    Ok((fleet, table, groups))
}
