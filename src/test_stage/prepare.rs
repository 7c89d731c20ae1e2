//! What `gears test` checks and builds before it launches anything: the component, its smoke
//! file and user data, the AMI to test, and the launch call with its tags.

use crate::aws::{BaseAmiQuery, Cloud, Images, LaunchSpec};
use crate::cancel::Cancel;
use crate::error::{Error, InputError};
use crate::test_stage::settings::TestSettings;
use crate::wait::unless_cancelled;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// What the component file and the smoke file say to test, checked before anything is launched.
pub(super) struct Prepared {
    pub(super) component: crate::component::Component,
    pub(super) smoke_path: PathBuf,
    pub(super) file: crate::smoke::spec::SmokeFile,
    pub(super) user_data: Option<String>,
    pub(super) ami: String,
    pub(super) region: String,
    pub(super) version: String,
}

/// The input error for an AMI that cannot be tested.
fn not_available(what: String) -> Error {
    InputError::whole_file("--ami", what)
        .with_hint("bake the AMI first, or name one that exists and is available in that region")
        .into()
}

/// The AMI, its region, and the version it carries.
fn choose_ami(
    settings: &TestSettings,
    component: &crate::component::Component,
) -> Result<(String, String, String), Error> {
    let chosen = settings.ami.resolve(component)?;
    let (region, ami) = chosen.one(component);
    Ok((ami, region, chosen.version))
}

/// Loads the component and its smoke file, and checks the smoke tests, the user data and the
/// AMI choice.
pub(super) async fn check_input(
    settings: &TestSettings,
    cancel: &Cancel,
) -> Result<Prepared, Error> {
    let component = crate::component::load(&settings.component_file)?;
    let t = &component.test;
    let smoke_path = t
        .smoke_file
        .clone()
        .unwrap_or_else(|| component.dir.join("smoke.yaml"));
    let file = crate::smoke::load_for_instances(&smoke_path, t.port, cancel).await?;
    let user_data = match (&t.user_data, &t.user_data_file) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(f)) => Some(std::fs::read_to_string(f).map_err(|e| Error::Read {
            path: f.display().to_string(),
            source: e,
        })?),
        _ => None,
    };
    let (ami, region, chosen) = choose_ami(settings, &component)?;
    let version = settings.version.clone().unwrap_or(chosen);
    Ok(Prepared {
        component,
        smoke_path,
        file,
        user_data,
        ami,
        region,
        version,
    })
}

/// Checks that the AMI exists and is available, and returns the version to test: the chosen
/// one, else (with --ami) the one the AMI carries.
pub(super) async fn check_image<C: Cloud>(
    cloud: &C,
    input: &Prepared,
    cancel: &Cancel,
) -> Result<String, Error> {
    let (ami, region) = (&input.ami, &input.region);
    let images = unless_cancelled(cancel, cloud.images(region)).await??;
    let query = BaseAmiQuery {
        id: Some(ami.clone()),
        ..Default::default()
    };
    let found = crate::wait::retry(
        tokio::time::Instant::now() + std::time::Duration::from_secs(120),
        cancel,
        || images.find_base_ami(&query),
        crate::aws::CloudError::is_retryable,
    );
    let image = match unless_cancelled(cancel, found).await?? {
        None => {
            return Err(not_available(format!(
                "AMI {ami} does not exist in {region}"
            )))
        }
        Some(img) if img.state != "available" => {
            return Err(not_available(format!(
                "AMI {ami} in {region} is {}, not available",
                img.state
            )))
        }
        Some(img) => img,
    };
    if !input.version.is_empty() {
        return Ok(input.version.clone());
    }
    // --ami: the version the AMI carries, if it is one of ours; an AMI shared from another
    // account shows none of its owner's tags here.
    match image.tags.get("COMPONENT_VERSION") {
        Some(v) => Ok(v.clone()),
        None if image.tags.is_empty() && !image.public && !image.owner.is_empty() => Err(InputError::whole_file(
            "--ami",
            format!(
                "{ami} shows no tags here, so no version (its owner is account {}: AWS shows an AMI's tags only in the account that owns it)",
                image.owner
            ),
        )
        .with_hint("give the version with --version, or test from the bake's manifest (--manifest)")
        .into()),
        None => Ok(String::new()),
    }
}

/// When an instance launched now with `ttl` expires, as its `gears:expires-at` tag says it.
pub(super) fn expires_at(ttl: Duration) -> String {
    (chrono::Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1)))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The launch call of the test instance: the component's test settings and the tags.
pub(super) fn launch_spec(input: &Prepared, run_id: &str, expires_at: &str) -> LaunchSpec {
    let (component, t) = (&input.component, &input.component.test);
    LaunchSpec {
        image_id: input.ami.clone(),
        instance_type: t
            .instance_type
            .clone()
            .unwrap_or_else(|| component.instance_type.clone()),
        subnet_id: t.subnet_id.clone().or_else(|| component.subnet_id.clone()),
        security_group_ids: t.security_groups.clone(),
        instance_profile: t.instance_profile.clone(),
        key_name: t.key_name.clone(),
        user_data: input.user_data.clone(),
        tags: instance_tags(&component.name, &input.version, run_id, expires_at),
        client_token: Some(run_id.to_owned()),
        imds: t.imds,
    }
}

/// The tags of a test instance, so `gears reap` and humans can find it.
fn instance_tags(
    component: &str,
    version: &str,
    run_id: &str,
    expires_at: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "Name".to_owned(),
            format!("gears-test {component} {version}")
                .chars()
                .take(crate::bake::plan::MAX_TAG_VALUE)
                .collect(),
        ),
        (crate::tags::COMPONENT.to_owned(), component.to_owned()),
        (
            crate::tags::VERSION.to_owned(),
            version
                .chars()
                .take(crate::bake::plan::MAX_TAG_VALUE)
                .collect(),
        ),
        (crate::tags::RUN_ID.to_owned(), run_id.to_owned()),
        (crate::tags::PURPOSE.to_owned(), "test".to_owned()),
        (crate::tags::EXPIRES_AT.to_owned(), expires_at.to_owned()),
        (crate::tags::MANAGED_BY.to_owned(), "gears".to_owned()),
    ])
}
