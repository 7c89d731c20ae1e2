//! After a bake, and when an earlier bake is reused: every AMI of the manifest shared as the
//! component file's `share:` asks, in every region, then read back from EC2 (a 200 is not proof
//! that a permission took); the manifest records the shares.

use crate::accounts::Shares;
use crate::aws::{CloudError, ImageShares, Images};
use crate::cancel::Cancel;
use crate::error::Error;
use crate::manifest::Manifest;
use crate::wait::patiently;

/// How long sharing one AMI waits out throttling.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(300);

/// What `wanted` lacks in what EC2 answered for `ami`: its launch permissions, and the
/// accounts' create-volume permission on each snapshot.
fn missing(wanted: &Shares, seen: &ImageShares) -> Vec<String> {
    let mut missing = wanted.missing_from(&seen.launch);
    for (snapshot, users) in &seen.snapshots {
        missing.extend(
            (wanted.accounts.iter())
                .filter(|a| !users.contains(a))
                .map(|a| format!("account {a} on snapshot {snapshot}")),
        );
    }
    missing
}

/// How long a read-back waits for permissions that did take to show (EC2 is eventually
/// consistent), and between two looks.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(30);
const LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// What EC2 answers for `ami`'s permissions, looked at again while something `wanted` is
/// missing, for up to [`SETTLE`]: the last answer.
async fn read_back<I: Images>(
    port: &I,
    ami: &str,
    wanted: &Shares,
    cancel: &Cancel,
    deadline: tokio::time::Instant,
) -> Result<ImageShares, Error> {
    let settled = tokio::time::Instant::now() + SETTLE;
    loop {
        let seen = patiently(cancel, deadline, || port.shares_of(ami)).await?;
        if missing(wanted, &seen).is_empty() || tokio::time::Instant::now() >= settled {
            return Ok(seen);
        }
        crate::wait::unless_cancelled(cancel, tokio::time::sleep(LOOK_EVERY)).await?;
    }
}

/// Shares every AMI of `manifest` through the port of its region and reads the permissions
/// back; any that did not take is exit 5 (AWS said yes and did not do it: retry the stage).
pub async fn share<I: Images>(
    mut manifest: Manifest,
    ports: &[I],
    wanted: &Shares,
    cancel: &Cancel,
) -> Result<Manifest, Error> {
    if wanted.is_empty() {
        return Ok(manifest);
    }
    for (_, regions) in manifest.amis.iter() {
        for (region, ami) in regions {
            // The AMIs are made by now: throttling waits (a rerun would reuse and share them),
            // a permanent error or a signal ends the step.
            let deadline = tokio::time::Instant::now() + PATIENCE;
            let lacking = match ports.iter().find(|p| p.region() == region) {
                Some(port) => {
                    patiently(cancel, deadline, || port.share(ami, wanted)).await?;
                    let seen = read_back(port, ami, wanted, cancel, deadline).await?;
                    manifest.owner_account = manifest.owner_account.take().or(seen.owner.clone());
                    missing(wanted, &seen)
                }
                // Never silently: a region without a port would leave its AMI unshared.
                None => vec![format!("anyone (no EC2 client for {region})")],
            };
            if !lacking.is_empty() {
                return Err(CloudError::api(
                    "DescribeImageAttribute",
                    region,
                    None,
                    format!(
                        "{ami} is not shared with {} although the share was answered with success (read back)",
                        lacking.join(", ")
                    ),
                )
                .into());
            }
        }
    }
    manifest.shares = wanted.clone();
    Ok(manifest)
}
