//! The deploy as a whole: settings and manifest to targets, every region checked before any
//! changes, then the regions rolled in parallel; the exit decided once for the run.
use crate::aws::Cloud;
use crate::cancel::Cancel;
use crate::deploy::checks::find_region;
use crate::deploy::lock::holder;
use crate::deploy::region::{roll_region, RegionCtx};
use crate::deploy::{DeploySettings, Deployed, Failed, SmokeGate};
use crate::error::Error;
use std::collections::BTreeMap;

/// Runs `gears deploy` against `cloud`, with progress to `ui`. What each group did is kept when
/// an error decides the exit ([`Failed`]), so the report is printed whatever ends the run.
#[allow(clippy::result_large_err)] // once per run: the report travels with the error
pub async fn deploy<C: Cloud>(
    settings: &DeploySettings,
    ctx: &crate::context::RunContext,
    cancel: &Cancel,
    cleanup: &crate::cancel::Cleanup,
    cloud: &C,
    ui: &dyn crate::ui::Reporter,
) -> Result<Deployed, Failed> {
    let component = crate::component::load(&settings.component_file)?;
    let chosen = settings.ami.resolve(&component)?;
    if !chosen.missing.is_empty() {
        // Regions the component deploys to that the manifest lacks: said, since the fleet
        // would be left on two AMIs across regions.
        ui.warning(&format!(
            "{} has no AMI for {} (in the component's ami_regions): not deployed there",
            chosen.source,
            chosen.missing.join(", ")
        ));
    }
    let want = group_tags(settings, &component.name);
    let instance_tags = instance_tags(settings, &component.name, &chosen);
    // The smoke tests of the gate: read and checked before anything changes.
    let gate = match (&component.test.smoke_file, settings.no_smoke) {
        (Some(f), false) => Some(SmokeGate::load(f, &component, settings, cancel).await?),
        _ => None,
    };
    let run = crate::random::uuid_v7();
    let rctx = RegionCtx {
        cleanup,
        ui,
        smoke: gate.as_ref(),
        settings,
        cancel,
        want: &want,
        instance_tags: &instance_tags,
        run: &run,
        failed: Default::default(),
        versions: Default::default(),
        who: holder(ctx),
    };
    let targets = &chosen.targets;
    // Every region's groups found and checked before any region changes.
    let found = futures::future::join_all(
        targets
            .iter()
            .map(|(region, ami)| find_region(&rctx, cloud, region, ami)),
    )
    .await;
    let mut ready = Vec::new();
    let mut errors: Vec<Error> = Vec::new();
    for (f, (region, ami)) in found.into_iter().zip(targets) {
        match f {
            Ok(f) => ready.push((region, ami, f)),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(most_severe(errors, ui).into());
    }
    warn_tag_lock_alone(settings, ctx, ui);
    // Regions in parallel, the groups of a region `--parallel` at a time.
    let results =
        futures::future::join_all(ready.iter().map(|(region, ami, (fleet, table, groups))| {
            roll_region(&rctx, fleet, table.as_ref(), region, ami, groups.clone())
        }))
        .await;
    let mut outcomes = Vec::new();
    for (o, e) in results {
        outcomes.extend(o);
        errors.extend(e);
    }
    decide(Deployed { groups: outcomes }, errors, cancel, ui)
}

/// In CI, a deploy that changes groups on their tag lock alone says so.
fn warn_tag_lock_alone(
    settings: &DeploySettings,
    ctx: &crate::context::RunContext,
    ui: &dyn crate::ui::Reporter,
) {
    let changing = !(settings.plan_only || settings.abort || settings.unlock);
    if changing && settings.lock_table.is_none() && ctx.is_ci() {
        ui.warning(
            "deploying with the groups' tag lock alone, which is no compare-and-swap: two deploys that start within a moment of each other can both take it; name a lock table (--lock-table, GEARS_LOCK_TABLE, or deploy.lock_table in the component file)",
        );
    }
}

/// The tags that find the component's groups.
fn group_tags(settings: &DeploySettings, component: &str) -> BTreeMap<String, String> {
    let mut want = BTreeMap::from([
        (crate::tags::COMPONENT.to_owned(), component.to_owned()),
        (
            crate::tags::ENVIRONMENT.to_owned(),
            settings.environment.clone(),
        ),
    ]);
    if let Some(c) = &settings.country {
        want.insert(crate::tags::COUNTRY.into(), c.clone());
    }
    want
}

/// The tags the groups put on the instances they launch.
fn instance_tags(
    settings: &DeploySettings,
    component: &str,
    chosen: &crate::manifest::Chosen,
) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::from([
        ("COMPONENT_NAME".to_owned(), component.to_owned()),
        ("ENVIRONMENT".to_owned(), settings.environment.clone()),
    ]);
    if !chosen.version.is_empty() {
        tags.insert("COMPONENT_VERSION".into(), chosen.version.clone());
        tags.insert("AMI_VERSION".into(), chosen.ami_version.clone());
    }
    if let Some(c) = &settings.country {
        tags.insert("COUNTRY".into(), c.clone());
    }
    tags
}

/// The most severe of `errors`; the others are said.
fn most_severe(mut errors: Vec<Error>, ui: &dyn crate::ui::Reporter) -> Error {
    errors.sort_by_key(|e| std::cmp::Reverse(e.exit().severity()));
    for other in &errors[1..] {
        ui.note(&other.render());
    }
    errors.remove(0)
}

/// The run's exit, decided once: a signal, unless a rollback failed (7: a human must look);
/// else the most severe of the errors and what the groups did.
#[allow(clippy::result_large_err)] // once per run: the report travels with the error
fn decide(
    deployed: Deployed,
    mut errors: Vec<Error>,
    cancel: &Cancel,
    ui: &dyn crate::ui::Reporter,
) -> Result<Deployed, Failed> {
    let groups_exit = deployed.exit();
    let needs_human = groups_exit == crate::exit::Exit::NeedsHuman;
    if let (Some(sig), false) = (cancel.signal(), needs_human) {
        errors.retain(|e| !matches!(e, Error::Interrupted(_)));
        for e in &errors {
            ui.note(&e.render());
        }
        return Err(Failed {
            error: Error::Interrupted(sig),
            groups: deployed.groups,
        });
    }
    if errors.is_empty() {
        return Ok(deployed);
    }
    errors.sort_by_key(|e| std::cmp::Reverse(e.exit().severity()));
    let first = &errors[0];
    let error_wins = match first {
        Error::Interrupted(_) => !needs_human,
        e => e.exit().most_severe(groups_exit) == e.exit(),
    };
    if error_wins {
        let error = most_severe(errors, ui);
        return Err(Failed {
            error,
            groups: deployed.groups,
        });
    }
    for e in &errors {
        ui.note(&e.render());
    }
    Ok(deployed)
}
