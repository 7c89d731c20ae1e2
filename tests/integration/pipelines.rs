//! The CI files in `pipelines/` (GoCD YAML config and a declarative Jenkinsfile here, the GitHub
//! Actions workflow and the GitLab CI file in `hosted`): they parse, have bake, test and deploy
//! stages, hand the manifest on and publish JUnit reports, and every gears command in them parses
//! with gears' own command line. Also `gears completions`, the other file a CI agent or a shell
//! setup takes from gears.

mod hosted;

use crate::common::{gears, parts};
use clap::Parser;
use serde_yaml::Value;
use std::path::Path;

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pipelines")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What a POSIX shell makes of a simple command line: words, with quotes removed. A word that
/// is only a variable (`$X`, `"${X}"`) becomes `PLACEHOLDER`, as a value would. Operators and
/// expansions beyond that are not needed for the files checked.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' if matches!(chars.peek(), Some('"' | '\\' | '$' | '`')) => {
                            word.extend(chars.next());
                        }
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    let var = regex::Regex::new(r"^\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)$")
        .expect("valid regex");
    words
        .into_iter()
        .map(|w| {
            if var.is_match(&w) {
                "PLACEHOLDER".to_owned()
            } else {
                w
            }
        })
        .collect()
}

/// The gears command lines of a shell script (a `sh` step, a `run: |` or `script:` block): one
/// command a line, a line ending in `\` continued on the next, comments skipped.
fn gears_commands(script: &str) -> Vec<Vec<String>> {
    script
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .map(shell_words)
        .filter(|argv| argv.first().map(String::as_str) == Some("gears"))
        .collect()
}

/// Whether gears' own command line accepts `argv` (`gears ...`); the error otherwise.
fn parses(argv: &[String]) -> Result<(), String> {
    gears::cli::Cli::try_parse_from(argv)
        .map(|_| ())
        .map_err(|e| format!("`{}`: {e}", argv.join(" ")))
}

#[test]
fn the_shell_word_splitter_and_the_check_bite() {
    assert_eq!(
        shell_words(r#"gears smoke "$TEST_HOST" 'a b' c\ d "x\"y" ${T}"#),
        [
            "gears",
            "smoke",
            "PLACEHOLDER",
            "a b",
            "c d",
            "x\"y",
            "PLACEHOLDER"
        ]
    );
    assert!(parses(&shell_words("gears deploy --environment stage")).is_ok());
    assert!(parses(&shell_words("gears deploy --enviroment stage")).is_err());
    assert!(parses(&shell_words("gears bake --no-such-flag")).is_err());
    assert!(parses(&shell_words("gears amis prune --keep 5 --yes")).is_ok());
    assert_eq!(
        gears_commands("set -e\n  # gears bake\n  gears deploy \\\n  -e stage\ngears smoke h f\n"),
        [
            vec!["gears", "deploy", "-e", "stage"],
            vec!["gears", "smoke", "h", "f"]
        ]
    );
}

/// A single-key map's key and value (GoCD's `- bake: {...}` stages and `- exec: {...}` tasks).
fn single(v: &Value) -> (String, &Value) {
    let m = v.as_mapping().expect("a one-key map");
    assert_eq!(m.len(), 1, "{v:?}");
    let (k, v) = m.iter().next().unwrap();
    (k.as_str().unwrap().to_owned(), v)
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other).unwrap().trim().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The value after `flag` in `argv`.
fn flag_value<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    argv.iter()
        .position(|a| a == flag)
        .and_then(|i| argv.get(i + 1))
        .map(String::as_str)
}

#[test]
fn gocd_yaml_parses_and_every_gears_command_exists() {
    let text = read("gocd.yaml");
    let doc: Value = serde_yaml::from_str(&text).expect("gocd.yaml is YAML");
    assert!(doc["format_version"].as_u64().is_some());
    let pipelines = doc["pipelines"].as_mapping().expect("pipelines: a map");
    let mut commands: Vec<Vec<String>> = Vec::new();
    let main = &doc["pipelines"]["hello-service"];
    let mut stage_names = Vec::new();
    for (_, pipeline) in pipelines {
        assert!(pipeline["materials"].is_mapping());
        for stage in pipeline["stages"].as_sequence().expect("stages: a list") {
            let (name, stage) = single(stage);
            if std::ptr::eq(pipeline, main) {
                stage_names.push(name.clone());
            }
            let jobs = stage["jobs"].as_mapping().expect("jobs: a map");
            for (job, body) in jobs {
                let job = format!("{name}/{}", job.as_str().unwrap());
                let published: Vec<(String, String)> = body["artifacts"]
                    .as_sequence()
                    .map(|v| {
                        v.iter()
                            .map(|a| {
                                let (kind, a) = single(a);
                                (kind, a["source"].as_str().unwrap().to_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut fetched = Vec::new();
                for task in body["tasks"].as_sequence().expect("tasks: a list") {
                    let (kind, task) = single(task);
                    match kind.as_str() {
                        "exec" => {
                            let command = task["command"].as_str().unwrap().to_owned();
                            let args = strs(&task["arguments"]);
                            let argv: Vec<String> = if command == "gears" {
                                // No shell: a `$` would reach gears literally.
                                for a in &args {
                                    assert!(
                                        !a.contains('$'),
                                        "{job}: exec argument {a:?}: GoCD passes it literally (no shell); let gears read the variable, or use sh -c"
                                    );
                                }
                                std::iter::once(command).chain(args).collect()
                            } else if (command == "sh" || command == "bash")
                                && args.first().map(String::as_str) == Some("-c")
                            {
                                shell_words(&args[1])
                            } else {
                                continue;
                            };
                            if argv.first().map(String::as_str) == Some("gears") {
                                if let Some(junit) = flag_value(&argv, "--junit") {
                                    assert!(
                                        published.contains(&("test".into(), junit.into())),
                                        "{job}: {junit} is not published as a test artifact"
                                    );
                                }
                                if let Some(m) = flag_value(&argv, "--manifest") {
                                    let baked = argv[1] == "bake";
                                    assert!(
                                        (baked && published.contains(&("build".into(), m.into())))
                                            || (!baked && fetched.contains(&m.to_owned())),
                                        "{job}: the manifest {m} is not handed on as an artifact"
                                    );
                                }
                                commands.push(argv);
                            }
                        }
                        "fetch" => {
                            assert!(task["stage"].is_string() && task["job"].is_string());
                            fetched.push(task["source"].as_str().unwrap().to_owned());
                        }
                        other => panic!("{job}: unexpected task {other}"),
                    }
                }
            }
        }
    }
    assert!(
        stage_names.starts_with(&["bake".into(), "test".into()])
            && stage_names.iter().any(|s| s.starts_with("deploy")),
        "{stage_names:?}"
    );
    check_commands("gocd.yaml", &commands);
}

/// Every command parses, and bake, test and deploy (with an environment) are among them.
fn check_commands(file: &str, commands: &[Vec<String>]) {
    let errors: Vec<String> = commands.iter().filter_map(|c| parses(c).err()).collect();
    assert!(errors.is_empty(), "{file}:\n{}", errors.join("\n"));
    for stage in ["bake", "test", "deploy"] {
        assert!(
            commands
                .iter()
                .any(|c| c.get(1).map(String::as_str) == Some(stage)),
            "{file}: no gears {stage}"
        );
    }
    assert!(commands
        .iter()
        .filter(|c| c[1] == "deploy")
        .all(|c| flag_value(c, "--environment").is_some()));
}

/// Whether braces balance outside strings and comments.
fn braces_balance(text: &str) -> Result<(), String> {
    let mut depth = 0i32;
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '\'' | '"' => {
                while let Some(d) = chars.next() {
                    match d {
                        '\\' => {
                            chars.next();
                        }
                        '\n' => return Err(format!("line {line}: unterminated string")),
                        d if d == c => break,
                        _ => {}
                    }
                }
            }
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("line {line}: unbalanced }}"));
                }
            }
            _ => {}
        }
    }
    if depth == 0 {
        Ok(())
    } else {
        Err(format!("{depth} unclosed {{"))
    }
}

#[test]
fn jenkinsfile_is_declarative_and_every_gears_command_exists() {
    let text = read("Jenkinsfile");
    braces_balance(&text).unwrap();
    assert!(braces_balance("pipeline { stage('}') {").is_err());
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "pipeline {",
        "agent ",
        "stages {",
        "stage('bake')",
        "stage('test')",
        "stage('deploy",
    ] {
        assert!(code.contains(needle), "Jenkinsfile: no {needle}");
    }
    let steps = regex::Regex::new(r#"\bsh\s+(?:'([^']*)'|"([^"]*)")"#).unwrap();
    let mut commands = Vec::new();
    for c in steps.captures_iter(&code) {
        let script = c.get(1).or(c.get(2)).unwrap().as_str();
        for argv in gears_commands(script) {
            if let Some(junit) = flag_value(&argv, "--junit") {
                assert!(
                    code.contains(&format!("testResults: '{junit}'")),
                    "Jenkinsfile: {junit} is not published with junit"
                );
            }
            commands.push(argv);
        }
    }
    assert!(code.contains("stash name: 'manifest'") && code.contains("unstash 'manifest'"));
    assert!(code.contains("archiveArtifacts artifacts: 'gears-manifest.json"));
    check_commands("Jenkinsfile", &commands);
}

#[test]
fn completions_for_every_shell() {
    let o = gears().args(["completions", "bash"]).output().unwrap();
    let (out, err, code) = parts(&o);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deploy") && out.contains("--environment"));
    assert!(out.contains("amis") && out.contains("--keep"));
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let o = gears().args(["completions", shell]).output().unwrap();
        let (out, err, code) = parts(&o);
        assert_eq!(code, 0, "{shell}: {err}");
        // fish spells a long option `-l environment`.
        assert!(
            out.contains("deploy") && out.contains("environment"),
            "{shell}"
        );
    }
    let o = gears().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(parts(&o).2, 2);
}
