//! The Bake statement against the lookups `gears bake` makes itself (packer's own calls are
//! not Rust code).

use super::*;
use crate::bake::run::Baked;
use crate::bake::settings::BakeSettings;

/// A bake of hello 7.0.1 with a packer that does not exist (exit 4 once it is started).
fn stage(dir: &Path) -> (BakeSettings, FakeCloud) {
    let file = dir.join("gears.yaml");
    std::fs::write(
        &file,
        format!("{COMPONENT}builders: [{{type: amazon-ebs, name: web}}]\ncommunicator: none\n"),
    )
    .unwrap();
    let settings = BakeSettings {
        component_file: file,
        overrides: crate::component::metadata::Overrides {
            version: Some("7.0.1".into()),
            git_sha: Some("abc".into()),
        },
        endpoint: None,
        endpoint_flag: None,
        manifest: dir.join("m.json"),
        work_dir: dir.join(".gears"),
        packer: "/nonexistent/packer".into(),
        dry_run: false,
        explain: false,
        force: false,
        output: crate::settings::OutputFormat::Human,
        heartbeat: Duration::from_secs(30),
    };
    let cloud = FakeCloud::new();
    cloud.add_image("us-east-1", image("ami-0b0b0b0b0b0b0b0b0", &[]));
    (settings, cloud)
}

/// What gears' own code calls in a bake: the base AMI and an earlier bake to reuse. What
/// packer calls is its own (the rest of the Bake statement).
#[tokio::test(start_paused = true)]
async fn the_bake_statement_lists_every_action_bakes_own_lookups_call() {
    let mut runs: Runs = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let (s, cloud) = stage(dir.path());
    let e = crate::bake::run::bake(&s, &ctx(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap_err();
    assert_eq!(e.exit(), crate::exit::Exit::Packer, "{}", e.render());
    runs.push(("a bake up to packer", cloud.calls()));

    let (s, cloud) = stage(dir.path());
    cloud.add_image(
        "us-east-1",
        image(
            "ami-old",
            &[
                ("COMPONENT_NAME", "hello"),
                ("COMPONENT_VERSION", "7.0.1"),
                ("GIT_SHA", "abc"),
                ("gears:run-id", "old-run"),
                ("gears:builder", "web"),
                ("CREATED_AT", "202601010000"),
                ("AMI_VERSION", "7.0.1-202601010000"),
            ],
        ),
    );
    let baked = crate::bake::run::bake(&s, &ctx(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    assert!(
        matches!(baked, Baked::Manifest(ref m) if m.reused),
        "{baked:?}"
    );
    runs.push(("a bake that reuses an earlier one", cloud.calls()));

    // The same reuse with `share:`: the AMI shared and its permissions read back.
    let text = std::fs::read_to_string(&s.component_file).unwrap();
    std::fs::write(
        &s.component_file,
        format!("{text}share: {{accounts: [\"111111111111\"]}}\n"),
    )
    .unwrap();
    let calls_before = cloud.calls().len();
    crate::bake::run::bake(&s, &ctx(), &Cancel::new(), &Cleanup::default(), &cloud)
        .await
        .unwrap();
    let shared: Vec<String> = cloud.calls()[calls_before..].to_vec();
    assert!(
        shared.iter().any(|c| c.starts_with("ModifyImageAttribute")),
        "{shared:?}"
    );
    runs.push(("a reused bake shared with an account", shared));
    assert_listed("Bake", &runs);
}
