//! What packer's builds leave, as `gears reap` looks for it: the fake and moto alike.

use super::{FakeRig, MotoRig, Rig, Tags, REGION};
use crate::aws::{Cloud, ErrorKind, Instances};

contracts!(spot_templates_are_found_by_prefix_and_tags_and_deleted);

/// Launch templates are found by name prefix and exact tags (with when they were made), and
/// deleted; deleting one that is gone is EC2's NotFound.
async fn spot_templates_are_found_by_prefix_and_tags_and_deleted<R: Rig>(r: &R) {
    let run = format!("run-{}", crate::random::uuid_v7());
    let tags: Tags = [
        ("gears:managed-by", "gears"),
        ("gears:purpose", "bake"),
        ("gears:run-id", run.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let suffix = &run[run.len() - 7..];
    let ours = r
        .spot_template(&format!("packer-fleet-launch-template-{suffix}"), &tags)
        .await;
    let mut other = tags.clone();
    other.insert("gears:run-id".into(), format!("{run}x"));
    r.spot_template(&format!("packer-fleet-launch-template-{suffix}x"), &other)
        .await;
    r.spot_template(&format!("not-packer-{suffix}"), &tags)
        .await;
    let port = r.cloud().instances(REGION).await.unwrap();
    let found = port
        .launch_templates("packer-fleet-launch-template-", &tags)
        .await
        .unwrap();
    let ids: Vec<&str> = found.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, [ours.as_str()], "{found:?}");
    assert_eq!(found[0].tags, tags);
    assert!(found[0].created_at.is_some(), "{found:?}");
    port.delete_launch_template(&ours).await.unwrap();
    let after = port
        .launch_templates("packer-fleet-launch-template-", &tags)
        .await
        .unwrap();
    assert!(after.is_empty(), "{after:?}");
    let e = port.delete_launch_template(&ours).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}
