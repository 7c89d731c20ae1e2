//! After a bake, and when an earlier bake is reused: the AMI hygiene the component file asks for,
//! on every AMI of the manifest in every region. `deprecate_after` deprecates each AMI that many
//! days after its bake (EnableImageDeprecation: a reuse sets the same time again);
//! `deregistration_protection` turns on EC2's deregistration protection
//! (EnableImageDeregistrationProtection). gears makes both calls itself, whatever the Packer in
//! use: Packer 1.6.6 has neither option, and a reuse runs no Packer.

use crate::aws::Images;
use crate::cancel::Cancel;
use crate::component::hygiene::{deprecation_time, Protection};
use crate::component::Component;
use crate::error::Error;
use crate::manifest::Manifest;
use crate::wait::patiently;

/// How long each call waits out throttling (the AMIs exist by then: a rerun repeats it).
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(300);

/// The minute a bake started, from the manifest's `created_at` (`YYYYMMDDHHMM`, UTC); now when
/// it does not read.
fn baked_at(manifest: &Manifest) -> chrono::DateTime<chrono::Utc> {
    chrono::NaiveDateTime::parse_from_str(&format!("{}00", manifest.created_at), "%Y%m%d%H%M%S")
        .map(|t| t.and_utc())
        .unwrap_or_else(|_| chrono::Utc::now())
}

/// Deprecates and protects every AMI of `manifest` as `component` asks, through the port of its
/// region; the manifest records what was set.
pub async fn apply<I: Images>(
    mut manifest: Manifest,
    ports: &[I],
    component: &Component,
    cancel: &Cancel,
) -> Result<Manifest, Error> {
    // A reused bake older than its deprecation time is deprecated now (EC2 refuses a time in
    // the past, which would fail every rerun).
    let soonest = chrono::Utc::now() + chrono::Duration::minutes(1);
    let deprecate = component
        .deprecate_after
        .map(|d| deprecation_time(baked_at(&manifest), d).max(soonest));
    let protect = component.deregistration_protection;
    if deprecate.is_none() && protect.is_none() {
        return Ok(manifest);
    }
    for regions in manifest.amis.values() {
        for (region, ami) in regions {
            let Some(port) = ports.iter().find(|p| p.region() == region) else {
                // Never silently: a region without a port would leave its AMI as it is.
                return Err(crate::aws::CloudError::api(
                    "EnableImageDeprecation",
                    region,
                    None,
                    format!("{ami}: no EC2 client for {region}"),
                )
                .into());
            };
            let deadline = tokio::time::Instant::now() + PATIENCE;
            if let Some(at) = deprecate {
                patiently(cancel, deadline, || port.deprecate(ami, at)).await?;
            }
            if let Some(p) = protect {
                let cooldown = p == Protection::WithCooldown;
                patiently(cancel, deadline, || port.protect(ami, cooldown)).await?;
            }
        }
    }
    manifest.deprecate_at = deprecate.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    manifest.deregistration_protection = protect.map(|p| p.as_str().to_owned());
    Ok(manifest)
}
