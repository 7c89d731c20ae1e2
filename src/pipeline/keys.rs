//! The keys of a pipeline file and what each means. `docs/reference/pipeline-file.md` is made
//! from [`KEYS`], and a test proves it names exactly the fields the file's types read, so a new
//! key without a line here fails.

/// `(key, meaning)`: a stage's key is `stage.key`, a deploy entry's `deploy[].key`.
pub const KEYS: &[(&str, &str)] = &[
    ("component", "The component file, relative to the pipeline file. Required."),
    ("manifest", "Where the manifest is kept between stages, relative to the pipeline file. Default: `gears-manifest.json` beside it; `--manifest` overrides."),
    ("bake", "The bake stage (`bake.*`); left out, no bake runs."),
    ("test", "The test stage (`test.*`); left out, no test runs."),
    ("deploy", "The environments to deploy to, in order: a list of entries (`deploy[].*`)."),
    ("bake.force", "Bake even if an AMI of this version and revision exists (`--force`). Default false."),
    ("test.builder", "The manifest's builder to test. Default: the component file's first."),
    ("test.region", "The region to test in. Default: the component file's first region."),
    ("test.target_host", "Where the smoke tests go instead of the instance (`HOST[:PORT]`: tunnels, emulators); `--target-host` overrides."),
    ("test.ready_timeout", "Seconds the instance has to pass its smoke tests, from the start. Default 600."),
    ("test.junit", "A JUnit XML report of the smoke tests, relative to the pipeline file."),
    ("deploy[].environment", "The environment (the groups' `gears:environment` tag). Required; each at most once."),
    ("deploy[].country", "The groups' `gears:country` tag; also tagged on the instances."),
    ("deploy[].builder", "The manifest's builder to deploy. Default: the component file's first."),
    ("deploy[].batch", "Instances replaced per batch: `N` or `P%` of the group. Default `25%`."),
    ("deploy[].strategy", "`rolling` (default), `instance-refresh` or `blue-green`."),
    ("deploy[].lock_table", "A DynamoDB table for the deploy locks, as `--lock-table`."),
    ("deploy[].parallel", "Groups of one region rolled at once. Default 1."),
    ("deploy[].min_healthy", "`P%` of desired capacity kept healthy; below 100% part of each batch is replaced in place. Default `100%`."),
    ("deploy[].gate_timeout", "Seconds a batch may take to become healthy before the group rolls back. Default 600."),
    ("deploy[].poll", "Seconds between looks at the groups, at most. Default 5."),
    ("deploy[].smoke_target", "Where the health gate's smoke tests go instead of each new instance (`HOST[:PORT]`)."),
    ("deploy[].alarms", "CloudWatch alarms that gate the deploy, beside the component file's."),
    ("deploy[].bake_time", "Seconds a healthy batch keeps being gated before gears acts on it."),
];

#[cfg(test)]
mod tests {
    use super::super::{BakeStage, DeployStage, PipelineFile, TestStage};
    use super::KEYS;
    use crate::testing::fields::{assert_documented, fields_of};

    /// Every field of the pipeline file's types has a line in [`KEYS`], and every line a field.
    #[test]
    fn every_pipeline_file_key_is_documented() {
        assert_documented(
            KEYS,
            &[
                ("", fields_of::<PipelineFile>()),
                ("bake.", fields_of::<BakeStage>()),
                ("test.", fields_of::<TestStage>()),
                ("deploy[].", fields_of::<DeployStage>()),
            ],
            "src/pipeline/keys.rs",
        );
    }
}
