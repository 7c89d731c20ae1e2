//! The environment variables gears reads, all through [`crate::context::RunContext`] (or the AWS
//! SDK's own chain), and `docs/reference/environment.md` made from them. A test finds every
//! call of `var` with a literal name in `src/` and fails when one is missing here.

use super::{cell, header};
use std::fmt::Write;

/// `(name, who reads it, meaning)`. A name ending in `*` is a prefix.
pub const VARS: &[(&str, &str, &str)] = &[
    ("GEARS_AWS_TIMEOUT", "every AWS call", "Seconds one AWS call attempt may take (default 30; connecting at most 10); the call with the SDK's retries fails after three times that, naming the operation."),
    ("GEARS_LOCK_STALE", "deploy, status", "Seconds without renewal after which a deploy lock's run counts as gone and the lock is taken over (default 60); the heartbeat renews every quarter of it. For emulators and tests."),
    ("GEARS_LOCK_TABLE", "deploy", "The DynamoDB lock table, when `--lock-table` names none (before the component file's `deploy.lock_table`)."),
    ("AWS_ENDPOINT_URL", "bake, test, deploy, reap, amis, status, pipeline", "An AWS endpoint for every service (an emulator such as moto); `--endpoint-url` wins. Read by the AWS SDK too."),
    ("AWS_ENDPOINT_URL_EC2", "bake", "EC2's endpoint for Packer's template (`custom_endpoint_ec2`), before `AWS_ENDPOINT_URL`."),
    ("AWS_PROFILE", "the AWS SDK, packer", "The AWS profile; `--profile NAME` sets it for gears and the tools it runs."),
    ("AWS_REGION", "the AWS SDK", "The default region, with the rest of the SDK's standard settings (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, SSO profiles, credential processes, instance roles)."),
    ("TEST_HOST", "smoke", "The host when `gears smoke` is given none, as in Smolder."),
    ("TEST_FILE", "smoke", "The smoke file when `gears smoke` is given none, as in Smolder."),
    ("NO_COLOR", "smoke, every progress view", "Set and not empty: no colour."),
    ("CI", "every command", "Set to anything but `false` or `0`: running under CI, so progress is timestamped lines with a heartbeat, never live bars."),
    ("GO_SERVER_URL", "every command", "GoCD: running under CI."),
    ("JENKINS_URL", "every command", "Jenkins: running under CI."),
    ("GO_PIPELINE_LABEL", "bake", "GoCD: the component version when `--version` is not given; also means CI."),
    ("BUILD_NUMBER", "bake, deploy", "Jenkins: the component version after `GO_PIPELINE_LABEL`; with `JOB_NAME`, the CI job named in a deploy lock; also means CI."),
    ("GO_REVISION_*", "bake", "GoCD: the revision when `--git-sha` is not given (the first material by name)."),
    ("GIT_COMMIT", "bake", "Jenkins: the revision after GoCD's."),
    ("GIT_URL", "bake", "Jenkins: the repository when the component file names none."),
    ("GITHUB_ACTIONS", "every command", "`true`: running as a GitHub Actions step: an error in a file is also printed as an annotation on its line (`::error file=…,line=…,col=…::`), and each stage's output is a collapsible group (`::group::`)."),
    ("GITLAB_CI", "bake, deploy, pipeline", "`true`: running as a GitLab CI job: each stage's output is a collapsible section (`section_start`/`section_end`)."),
    ("GITHUB_STEP_SUMMARY", "pipeline, deploy, smoke", "GitHub Actions: the file `gears pipeline run` appends its stage table to, `gears deploy` its groups, and `gears smoke` its failed checks (secrets masked), as Markdown."),
    ("GITHUB_RUN_NUMBER", "bake", "GitHub Actions: the component version after GoCD's and Jenkins'; `.GITHUB_RUN_ATTEMPT` is appended when the run was retried."),
    ("GITHUB_RUN_ATTEMPT", "bake", "GitHub Actions: the attempt of a retried run, appended to the version when over 1."),
    ("GITHUB_SHA", "bake", "GitHub Actions: the revision after GoCD's and Jenkins'."),
    ("GITHUB_SERVER_URL", "bake, deploy", "GitHub Actions: with `GITHUB_REPOSITORY`, the repository when the component file names none, and the run's link in a deploy lock."),
    ("CI_PIPELINE_IID", "bake", "GitLab CI: the component version (the pipeline's number in the project) after GitHub's."),
    ("CI_COMMIT_SHA", "bake", "GitLab CI: the revision after GitHub's."),
    ("CI_PROJECT_URL", "bake", "GitLab CI: the repository after GitHub's."),
    ("GO_PIPELINE_NAME", "deploy", "GoCD: with `GO_PIPELINE_COUNTER`, `GO_STAGE_NAME`, `GO_STAGE_COUNTER` and `GO_JOB_NAME`, the CI job named in a deploy lock."),
    ("GO_PIPELINE_COUNTER", "deploy", "GoCD: part of the CI job named in a deploy lock."),
    ("GO_STAGE_NAME", "deploy", "GoCD: part of the CI job named in a deploy lock."),
    ("GO_STAGE_COUNTER", "deploy", "GoCD: part of the CI job named in a deploy lock."),
    ("GO_JOB_NAME", "deploy", "GoCD: part of the CI job named in a deploy lock."),
    ("BUILD_TAG", "deploy", "Jenkins: the CI job named in a deploy lock."),
    ("JOB_NAME", "deploy", "Jenkins: with `BUILD_NUMBER`, the CI job named in a deploy lock when `BUILD_TAG` is not set."),
    ("GITHUB_REPOSITORY", "bake, deploy", "GitHub Actions: the repository (with `GITHUB_SERVER_URL`), and with `GITHUB_RUN_ID` the CI job named in a deploy lock."),
    ("GITHUB_RUN_ID", "deploy", "GitHub Actions: with `GITHUB_SERVER_URL` and `GITHUB_REPOSITORY`, the link to the run named in a deploy lock (and so in `gears status`)."),
    ("CI_JOB_URL", "deploy", "GitLab CI: the link to the job named in a deploy lock (and so in `gears status`)."),
    ("HOSTNAME", "deploy", "The host named in a deploy lock."),
];

/// The page.
pub(super) fn page() -> String {
    let mut out = header("Environment variables");
    out.push_str(
        "What gears reads from its environment. Settings resolve in one order: the command \
         line, then the environment, then the component file, then the default. gears passes \
         its whole environment on to the tools it runs (packer, ansible).\n\n\
         | variable | read by | meaning |\n|---|---|---|\n",
    );
    for (name, by, meaning) in VARS {
        let _ = writeln!(out, "| `{name}` | {} | {} |", cell(by), cell(meaning));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::VARS;
    use std::path::Path;

    /// Every `var` call with a literal name under `src/`.
    fn read_in(dir: &Path, found: &mut Vec<(String, String)>) {
        let re = regex::Regex::new(r#"\.var\("([A-Z][A-Z0-9_]*)"\)"#).unwrap();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                read_in(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for c in re.captures_iter(&text) {
                    found.push((c[1].to_owned(), path.display().to_string()));
                }
            }
        }
    }

    #[test]
    fn every_variable_gears_reads_is_in_the_table() {
        let mut found = Vec::new();
        read_in(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(found.len() > 10, "the search found too little: {found:?}");
        let missing: Vec<String> = found
            .iter()
            .filter(|(name, _)| !VARS.iter().any(|(v, _, _)| v == name))
            .map(|(name, file)| format!("{name} (read in {file})"))
            .collect();
        assert!(
            missing.is_empty(),
            "add these to VARS in src/reference/env.rs, then regenerate the reference: {}",
            missing.join(", ")
        );
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = VARS.iter().map(|(n, _, _)| *n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), VARS.len());
    }
}
