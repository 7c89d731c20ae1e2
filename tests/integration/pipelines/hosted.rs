//! The GitHub Actions workflow and the GitLab CI file in `pipelines/`: their jobs, credentials by
//! OIDC, the manifest and the JUnit reports as artifacts, one deploy per environment at a time,
//! and every gears command parsed with gears' own command line. Then the real checkers from the
//! venv scripts/test.sh makes (actionlint; check-jsonschema with its built-in GitLab CI schema)
//! pass on the shipped files and fail on a broken copy of each.

use super::{check_commands, flag_value, gears_commands, read};
use crate::common::{need, tempdir};
use serde_yaml::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// A string or a list of strings (`needs: bake`, `needs: [bake, test]`).
fn one_or_many(v: &Value) -> Vec<&str> {
    match v {
        Value::Sequence(s) => s.iter().map(text).collect(),
        Value::String(s) => vec![s.as_str()],
        _ => Vec::new(),
    }
}

/// A job's environment: `environment: live` or `environment: {name: live}`.
fn environment(job: &Value) -> Option<&str> {
    job["environment"]
        .as_str()
        .or_else(|| job["environment"]["name"].as_str())
}

fn the_environment(argv: &[String]) -> Option<&str> {
    flag_value(argv, "--environment").or_else(|| flag_value(argv, "-e"))
}

/// Whether a step `uses:` the action (any version).
fn uses(step: &Value, action: &str) -> bool {
    text(&step["uses"]).split('@').next() == Some(action)
}

#[test]
fn github_actions_workflow_has_the_jobs_and_every_gears_command_exists() {
    let doc: Value = serde_yaml::from_str(&read("github-actions.yml")).expect("YAML");
    assert_eq!(text(&doc["permissions"]["id-token"]), "write");
    assert_eq!(text(&doc["permissions"]["contents"]), "read");
    let jobs = doc["jobs"].as_mapping().expect("jobs: a map");
    let names: Vec<&str> = jobs.keys().map(text).collect();
    assert_eq!(names, ["bake", "test", "deploy-stage", "deploy-live"]);
    for pair in names.windows(2) {
        let needs = one_or_many(&doc["jobs"][pair[1]]["needs"]);
        assert!(needs.contains(&pair[0]), "{}: needs {needs:?}", pair[1]);
    }
    assert_eq!(environment(&doc["jobs"]["deploy-live"]), Some("live"));
    let mut commands = Vec::new();
    for name in &names {
        commands.extend(github_job(name, &doc["jobs"][*name]));
    }
    check_commands("github-actions.yml", &commands);
}

/// One job's gears commands, after checking what they need: OIDC credentials before the first,
/// the manifest uploaded by bake and downloaded before use, each JUnit file uploaded pass or
/// fail, a deploy in its environment with one run at a time.
fn github_job(name: &str, job: &Value) -> Vec<Vec<String>> {
    let steps = job["steps"].as_sequence().expect("steps: a list");
    let creds = steps
        .iter()
        .position(|s| uses(s, "aws-actions/configure-aws-credentials"));
    let mut commands = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        for argv in gears_commands(text(&step["run"])) {
            let creds = creds.unwrap_or_else(|| panic!("{name}: no configure-aws-credentials"));
            assert!(creds < i, "{name}: gears runs before the credentials");
            let with = &steps[creds]["with"];
            assert!(
                !text(&with["role-to-assume"]).is_empty() && !text(&with["aws-region"]).is_empty()
            );
            let later = &steps[i + 1..];
            if let Some(junit) = flag_value(&argv, "--junit") {
                assert!(
                    later.iter().any(|s| uses(s, "actions/upload-artifact")
                        && text(&s["with"]["path"]).lines().any(|p| p.trim() == junit)
                        && text(&s["if"]).contains("always()")),
                    "{name}: {junit} is not uploaded pass or fail"
                );
            }
            if let Some(m) = flag_value(&argv, "--manifest") {
                if argv[1] == "bake" {
                    let env = Path::new(m).with_extension("env");
                    assert!(
                        later.iter().any(|s| uses(s, "actions/upload-artifact")
                            && text(&s["with"]["name"]) == "manifest"
                            && text(&s["with"]["path"]).contains(m)
                            && text(&s["with"]["path"]).contains(env.to_str().unwrap())),
                        "{name}: the manifest {m} and its env file are not uploaded"
                    );
                } else {
                    assert!(
                        steps[..i]
                            .iter()
                            .any(|s| uses(s, "actions/download-artifact")
                                && text(&s["with"]["name"]) == "manifest"),
                        "{name}: the manifest {m} is not downloaded first"
                    );
                }
            }
            if argv[1] == "deploy" {
                let env = the_environment(&argv).unwrap_or_default();
                assert_eq!(environment(job), Some(env), "{name}: deploys {env}");
                let group = text(&job["concurrency"]["group"]);
                assert!(group.contains(env), "{name}: concurrency group {group:?}");
                assert_eq!(job["concurrency"]["cancel-in-progress"], Value::Bool(false));
            }
            commands.push(argv);
        }
    }
    commands
}

/// GitLab CI's global keywords: every other top-level key not starting with `.` is a job.
const GITLAB_KEYWORDS: &[&str] = &[
    "stages",
    "variables",
    "default",
    "workflow",
    "include",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
];

#[test]
fn gitlab_ci_has_the_stages_and_every_gears_command_exists() {
    let doc: Value = serde_yaml::from_str(&read("gitlab-ci.yml")).expect("YAML");
    let stages = one_or_many(&doc["stages"]);
    assert_eq!(stages, ["bake", "test", "deploy-stage", "deploy-live"]);
    let default = &doc["default"];
    let tokens = default["id_tokens"]
        .as_mapping()
        .expect("default: id_tokens");
    assert!(tokens.values().all(|t| !text(&t["aud"]).is_empty()));
    let before = one_or_many(&default["before_script"]).join("\n");
    for var in ["AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"] {
        assert!(before.contains(var), "before_script: no {var}");
    }
    let mut commands = Vec::new();
    let mut groups = Vec::new();
    for (name, job) in doc.as_mapping().unwrap() {
        let name = text(name);
        if GITLAB_KEYWORDS.contains(&name) || name.starts_with('.') {
            continue;
        }
        assert!(stages.contains(&text(&job["stage"])), "{name}: stage");
        let script = one_or_many(&job["script"]).join("\n");
        for argv in gears_commands(&script) {
            gitlab_command(name, job, &script, &argv);
            if argv[1] == "deploy" {
                groups.push(text(&job["resource_group"]).to_owned());
            }
            commands.push(argv);
        }
    }
    assert_eq!(doc["deploy-live"]["when"], Value::from("manual"));
    let mut unique = groups.clone();
    unique.sort();
    unique.dedup();
    assert!(
        unique.len() == groups.len() && !groups.contains(&String::new()),
        "{groups:?}"
    );
    check_commands("gitlab-ci.yml", &commands);
}

/// What one gears command of a GitLab job needs: its JUnit file a report pass or fail, the
/// manifest an artifact of bake (with the dotenv report from its env file) that later jobs
/// need, a deploy in its environment.
fn gitlab_command(name: &str, job: &Value, script: &str, argv: &[String]) {
    let artifacts = &job["artifacts"];
    if let Some(junit) = flag_value(argv, "--junit") {
        assert!(
            one_or_many(&artifacts["reports"]["junit"]).contains(&junit)
                && text(&artifacts["when"]) == "always",
            "{name}: {junit} is not a test report pass or fail"
        );
    }
    if let Some(m) = flag_value(argv, "--manifest") {
        if argv[1] == "bake" {
            let env = Path::new(m).with_extension("env");
            let env = env.to_str().unwrap();
            let paths = one_or_many(&artifacts["paths"]);
            assert!(
                paths.contains(&m) && paths.contains(&env),
                "{name}: {paths:?}"
            );
            let dotenv = text(&artifacts["reports"]["dotenv"]);
            assert!(
                !dotenv.is_empty()
                    && script.contains(env)
                    && script.contains(&format!(">{dotenv}")),
                "{name}: no dotenv report written from {env}"
            );
        } else {
            let needs = one_or_many(&job["needs"]);
            assert!(needs.contains(&"bake"), "{name}: needs {needs:?}, not bake");
        }
    }
    if argv[1] == "deploy" {
        let env = the_environment(argv).unwrap_or_default();
        assert_eq!(environment(job), Some(env), "{name}: deploys {env}");
        assert!(
            text(&job["resource_group"]).contains(env),
            "{name}: resource_group"
        );
    }
}

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pipelines")
        .join(name)
}

/// A copy of the shipped file in `dir` with the first `from` replaced by `to`.
fn broken_copy(dir: &Path, name: &str, from: &str, to: &str) -> PathBuf {
    let text = read(name);
    assert!(text.contains(from), "{name}: no {from:?}");
    let path = dir.join(name);
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    path
}

/// Runs a checker from the venv of scripts/test.sh: its exit code and what it printed.
fn check(tool: &str, args: &[&str], file: &Path) -> (i32, String) {
    let bin = Path::new(&need("GEARS_TEST_VENV")).join("bin").join(tool);
    let o = Command::new(&bin)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/lib.sh: ensure_venv)", bin.display()));
    let out = String::from_utf8_lossy(&o.stdout) + String::from_utf8_lossy(&o.stderr);
    (o.status.code().unwrap_or(-1), out.into_owned())
}

/// actionlint without shellcheck and pyflakes (the scripts do not install them), so the check
/// is the same on every machine.
const ACTIONLINT: &[&str] = &["-no-color", "-shellcheck=", "-pyflakes="];

#[test]
fn actionlint_passes_on_the_workflow_and_fails_on_a_broken_copy() {
    let (code, out) = check("actionlint", ACTIONLINT, &shipped("github-actions.yml"));
    assert_eq!(code, 0, "{out}");
    let dir = tempdir();
    let broken = broken_copy(dir.path(), "github-actions.yml", "runs-on:", "run-on:");
    let (code, out) = check("actionlint", ACTIONLINT, &broken);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(r#""runs-on" section is missing"#), "{out}");
}

const GITLAB_SCHEMA: &[&str] = &["--builtin-schema", "vendor.gitlab-ci"];

#[test]
fn the_gitlab_schema_passes_on_the_file_and_fails_on_a_broken_copy() {
    let (code, out) = check("check-jsonschema", GITLAB_SCHEMA, &shipped("gitlab-ci.yml"));
    assert_eq!(code, 0, "{out}");
    let dir = tempdir();
    let broken = broken_copy(dir.path(), "gitlab-ci.yml", "  script:", "  scirpt:");
    let (code, out) = check("check-jsonschema", GITLAB_SCHEMA, &broken);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("'scirpt' was unexpected"), "{out}");
}
