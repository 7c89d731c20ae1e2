//! A pure parser of `packer build -machine-readable` lines, as Packer 1.6.6 and current Packer
//! (1.7 to 1.16, read in its `packer/ui.go` and `command/build.go`) print them:
//! `timestamp,target,type,data...`, with `%!(PACKER_COMMA)` for commas inside data and the two
//! characters `\n` (`\r`) for newlines. A JSON template's build is named by its builder's name
//! (`web`), an HCL2 one's `<type>.<source>` (`amazon-ebs.web`, or `<build>.<type>.<source>` in a
//! named build block); events name the builder the same way for both, by the source's name
//! ([`builder_of`]). Never parses packer's human output.

/// The level of a `ui` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiLevel {
    Say,
    Message,
    /// Also used for a shell-local step's stderr in a successful build: not a failure by itself.
    Error,
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Text for humans. `builder` is taken from a `==> name:` or `    name:` prefix when present.
    Ui {
        level: UiLevel,
        builder: Option<String>,
        text: String,
    },
    /// `<builder>,artifact-count,N`.
    ArtifactCount { builder: String, count: usize },
    /// `<builder>,artifact,I,KEY,VALUE...`.
    Artifact {
        builder: String,
        index: usize,
        key: String,
        value: String,
    },
    /// `,error-count,N`.
    ErrorCount(usize),
    /// `<builder>,error,MESSAGE`: the build failed with this message.
    BuildError { builder: String, message: String },
    /// Any other machine-readable line (`version`, `ui` variants we do not know...).
    Other {
        target: String,
        kind: String,
        data: Vec<String>,
    },
}

/// The builder a build's name means: its last `.`-separated part, the source's name in HCL2
/// (`amazon-ebs.web` → `web`); a JSON template's builder name as it is (gears' builder names
/// have no `.`).
pub fn builder_of(build: &str) -> &str {
    build.rsplit('.').next().unwrap_or(build)
}

/// Undoes packer's escaping of one data field.
pub fn unescape(s: &str) -> String {
    s.replace("%!(PACKER_COMMA)", ",")
        .replace("\\n", "\n")
        .replace("\\r", "\r")
}

/// Parses one stdout line; `None` when it is not a machine-readable line.
pub fn parse_line(line: &str) -> Option<Event> {
    let line = line.trim_end_matches(['\r', '\n']);
    let mut parts = line.splitn(4, ',');
    let ts = parts.next()?;
    if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let target = builder_of(parts.next()?).to_owned();
    let kind = parts.next()?.to_owned();
    let rest = parts.next().unwrap_or("");
    let data: Vec<String> = rest.split(',').map(unescape).collect();
    Some(match kind.as_str() {
        "ui" if data.len() >= 2 => {
            let level = match data[0].as_str() {
                "say" => UiLevel::Say,
                "message" => UiLevel::Message,
                "error" => UiLevel::Error,
                _ => return Some(Event::Other { target, kind, data }),
            };
            let text = data[1..].join(",");
            let builder = builder_prefix(&text);
            Event::Ui {
                level,
                builder,
                text,
            }
        }
        "artifact-count" => Event::ArtifactCount {
            builder: target,
            count: data.first().and_then(|d| d.parse().ok()).unwrap_or(0),
        },
        "artifact" if data.len() >= 2 => match data[0].parse() {
            Ok(index) => Event::Artifact {
                builder: target,
                index,
                key: data[1].clone(),
                value: data[2..].join(","),
            },
            Err(_) => Event::Other { target, kind, data },
        },
        "error-count" => Event::ErrorCount(data.first().and_then(|d| d.parse().ok()).unwrap_or(0)),
        "error" if !target.is_empty() => Event::BuildError {
            builder: target,
            message: data.join(","),
        },
        _ => Event::Other { target, kind, data },
    })
}

/// `==> ebs-a: Launching...` or `    ebs-a: Instance ID: ...` → `ebs-a`.
fn builder_prefix(text: &str) -> Option<String> {
    let first = text.lines().next()?;
    let t = first
        .strip_prefix("==> ")
        .or_else(|| first.strip_prefix("    "))?
        .trim_start();
    // `name: text`, or `name:` alone (an empty line of a step's output).
    let (name, rest) = t.split_once(':')?;
    (!name.is_empty()
        && (rest.is_empty() || rest.starts_with(' '))
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
    .then(|| builder_of(name).to_owned())
}

/// Splits an artifact id `region:ami,region:ami` into pairs.
pub fn parse_artifact_id(id: &str) -> Vec<(String, String)> {
    id.split(',')
        .filter_map(|p| p.split_once(':'))
        .map(|(r, a)| (r.trim().to_owned(), a.trim().to_owned()))
        .filter(|(_, a)| a.starts_with("ami-"))
        .collect()
}

/// What a build's events add up to: the AMIs per builder and region (artifact 0 of each
/// build; the manifest post-processor repeats it as artifact 1), and the errors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildSummary {
    pub amis: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    /// `<builder>: <message>` of every `<builder>,error,...` line: the reasons a build failed.
    pub build_errors: Vec<String>,
    /// `ui,error` texts: stderr of steps, warnings; failures only together with a bad exit.
    pub ui_errors: Vec<String>,
    pub error_count: usize,
}

impl BuildSummary {
    /// Takes one event into account.
    pub fn observe(&mut self, ev: &Event) {
        match ev {
            Event::Artifact {
                builder,
                index: 0,
                key,
                value,
            } if key == "id" => {
                self.amis
                    .entry(builder.clone())
                    .or_default()
                    .extend(parse_artifact_id(value));
            }
            Event::BuildError { builder, message } => {
                self.build_errors.push(format!("{builder}: {message}"))
            }
            Event::Ui {
                level: UiLevel::Error,
                text,
                ..
            } => self.ui_errors.push(text.clone()),
            Event::ErrorCount(n) => self.error_count = *n,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_lines_are_unescaped_and_attributed() {
        assert_eq!(
            parse_line("1795370028,,ui,say,==> amazon-ebs: No volumes to clean up%!(PACKER_COMMA) skipping"),
            Some(Event::Ui {
                level: UiLevel::Say,
                builder: Some("amazon-ebs".into()),
                text: "==> amazon-ebs: No volumes to clean up, skipping".into()
            })
        );
        assert_eq!(
            parse_line("1,,ui,error,Error: \\n\\n1 error occurred"),
            Some(Event::Ui {
                level: UiLevel::Error,
                builder: None,
                text: "Error: \n\n1 error occurred".into()
            })
        );
    }

    #[test]
    fn artifacts_and_errors() {
        let e = parse_line("1795370028,amazon-ebs,artifact,0,id,eu-west-1:ami-594e6bb09dfa1b1fb%!(PACKER_COMMA)us-east-1:ami-755269494da82ff5d").unwrap();
        let Event::Artifact {
            builder,
            index,
            key,
            value,
        } = e
        else {
            panic!("{e:?}")
        };
        assert_eq!(
            (builder.as_str(), index, key.as_str()),
            ("amazon-ebs", 0, "id")
        );
        assert_eq!(
            parse_artifact_id(&value),
            vec![
                ("eu-west-1".to_owned(), "ami-594e6bb09dfa1b1fb".to_owned()),
                ("us-east-1".to_owned(), "ami-755269494da82ff5d".to_owned())
            ]
        );
        assert_eq!(
            parse_line("1,amazon-ebs,artifact-count,2"),
            Some(Event::ArtifactCount {
                builder: "amazon-ebs".into(),
                count: 2
            })
        );
        assert_eq!(parse_line("1,,error-count,1"), Some(Event::ErrorCount(1)));
        assert_eq!(
            parse_line("1,amazon-ebs,error,Script exited with non-zero exit status: 3.Allowed exit codes are: [0]"),
            Some(Event::BuildError { builder: "amazon-ebs".into(), message: "Script exited with non-zero exit status: 3.Allowed exit codes are: [0]".into() })
        );
    }

    #[test]
    fn empty_output_lines_still_name_their_builder() {
        let Some(Event::Ui { builder, .. }) =
            parse_line("1,,ui,message,    web:\\n    web: playbook: /x.yml")
        else {
            panic!()
        };
        assert_eq!(builder.as_deref(), Some("web"));
        let Some(Event::Ui { builder, .. }) =
            parse_line("1,,ui,say,Build 'web' finished after 1 second.")
        else {
            panic!()
        };
        assert_eq!(builder, None);
    }

    #[test]
    fn human_lines_are_not_events() {
        assert_eq!(parse_line("==> amazon-ebs: hello"), None);
        assert_eq!(parse_line(""), None);
        assert_eq!(parse_line("Build 'x' errored"), None);
    }

    fn summarise(log: &str) -> BuildSummary {
        let mut s = BuildSummary::default();
        for line in log.lines() {
            let ev = parse_line(line).unwrap_or_else(|| panic!("not machine-readable: {line}"));
            s.observe(&ev);
        }
        s
    }

    /// A real log: Packer 1.6.6, two amazon-ebs builders into two regions against moto, with a
    /// shell-local step writing to stderr (`ui,error`) in a build that succeeded.
    #[test]
    fn captured_successful_build() {
        let s = summarise(include_str!(
            "../../tests/fixtures/packer/two-builders-two-regions.log"
        ));
        assert_eq!(s.amis.len(), 2);
        assert_eq!(s.amis["web"]["us-east-1"], "ami-63618a20b10b85f7b");
        assert_eq!(s.amis["web"]["eu-west-1"], "ami-6e5fa7a479c5ae128");
        assert_eq!(s.amis["worker"]["us-east-1"], "ami-aacbb95db13dc8749");
        assert_eq!(s.amis["worker"]["eu-west-1"], "ami-b1be33ce8147c0852");
        assert_eq!(
            s.ui_errors,
            vec![
                "==> web: warning, on stderr",
                "==> worker: warning, on stderr"
            ]
        );
        assert!(s.build_errors.is_empty());
        assert_eq!(s.error_count, 0);
    }

    /// A real log of a shell-local step exiting 3 in both builds.
    #[test]
    fn captured_failed_build() {
        let s = summarise(include_str!(
            "../../tests/fixtures/packer/provisioner-fails.log"
        ));
        assert!(s.amis.is_empty());
        assert_eq!(s.error_count, 2);
        assert_eq!(
            s.build_errors,
            vec![
                "web: Script exited with non-zero exit status: 3.Allowed exit codes are: [0]",
                "worker: Script exited with non-zero exit status: 3.Allowed exit codes are: [0]"
            ]
        );
    }

    /// Failures that end a run before any build error line: only `ui,error`, no error-count;
    /// the exit code is the signal (process.rs shows these texts when there is no build error).
    #[test]
    fn captured_failures_before_a_build() {
        let s = summarise(include_str!(
            "../../tests/fixtures/packer/template-error.out"
        ));
        assert!(s.amis.is_empty() && s.build_errors.is_empty() && s.error_count == 0);
        assert!(
            s.ui_errors[0].starts_with("Failed to parse template: Error parsing JSON"),
            "{s:?}"
        );
        let s = summarise(include_str!(
            "../../tests/fixtures/packer/var-file-braces.out"
        ));
        assert!(
            s.ui_errors[0].contains("function \"b\" not\ndefined"),
            "{s:?}"
        );
    }

    #[test]
    fn captured_unknown_ami_keeps_tabs_and_commas() {
        let s = summarise(include_str!("../../tests/fixtures/packer/unknown-ami.out"));
        assert_eq!(s.error_count, 1);
        assert_eq!(
            s.build_errors,
            vec!["ebs: Error querying AMI: InvalidAMIID.NotFound: The image id '[ami-deadbeef000000000]' does not exist\n\tstatus code: 400, request id: request-id"]
        );
    }

    #[test]
    fn captured_interruption_has_no_artifact_and_no_error_count() {
        let log = include_str!("../../tests/fixtures/packer/interrupted.out");
        let s = summarise(log);
        assert!(s.amis.is_empty() && s.error_count == 0 && s.build_errors.is_empty());
        assert!(
            s.ui_errors
                .contains(&"Cancelling build after receiving interrupt".to_owned()),
            "{s:?}"
        );
        let said: Vec<_> = log.lines().filter_map(parse_line).collect();
        assert!(said.iter().any(|e| matches!(e, Event::Ui { text, .. } if text == "Cleanly cancelled builds after being interrupted.")));
    }

    /// Packer 1.6.6 building gears' HCL2 template: builds named `amazon-ebs.web`, events by
    /// the builder's name, as for JSON.
    #[test]
    fn captured_hcl2_build_names_its_builders_by_source() {
        let s = summarise(include_str!(
            "../../tests/fixtures/packer/hcl2-two-builders.log"
        ));
        assert_eq!(s.amis["web"]["us-east-1"], "ami-96f9e91cccf02ca72");
        assert_eq!(s.amis["web"]["eu-west-1"], "ami-638e6b5be1ba67c10");
        assert_eq!(s.amis["worker"]["eu-west-1"], "ami-5c3fb4b3cd43ca3bf");
        assert!(s.build_errors.is_empty() && s.error_count == 0);
    }

    /// One line each of Packer 1.6.6 (recorded) and current Packer (1.16.0's format, from its
    /// source: see tests/fixtures/packer/README.md), JSON and HCL2 build names, and what each
    /// means.
    #[test]
    fn lines_of_old_and_current_packer() {
        let ui = |level, builder: Option<&str>, text: &str| Event::Ui {
            level,
            builder: builder.map(str::to_owned),
            text: text.to_owned(),
        };
        let id = |builder: &str, value: &str| Event::Artifact {
            builder: builder.into(),
            index: 0,
            key: "id".into(),
            value: value.into(),
        };
        let table: &[(&str, Event)] = &[
            // 1.6.6, JSON template.
            ("1795370028,,ui,message,    amazon-ebs: AMI: ami-755269494da82ff5d", ui(UiLevel::Message, Some("amazon-ebs"), "    amazon-ebs: AMI: ami-755269494da82ff5d")),
            ("1795370028,amazon-ebs,artifact,0,id,eu-west-1:ami-594e6bb09dfa1b1fb%!(PACKER_COMMA)us-east-1:ami-755269494da82ff5d", id("amazon-ebs", "eu-west-1:ami-594e6bb09dfa1b1fb,us-east-1:ami-755269494da82ff5d")),
            // 1.6.6, HCL2 template.
            ("1796667235,,ui,message,    amazon-ebs.web: AMI: ami-96f9e91cccf02ca72", ui(UiLevel::Message, Some("web"), "    amazon-ebs.web: AMI: ami-96f9e91cccf02ca72")),
            ("1796667235,amazon-ebs.worker,artifact-count,2", Event::ArtifactCount { builder: "worker".into(), count: 2 }),
            // Current Packer: a builder's message is a `say` with the arrow; `\r` escaped.
            ("1796700000,,ui,say,==> amazon-ebs.web: Found Image ID: ami-0123456789abcdef0", ui(UiLevel::Say, Some("web"), "==> amazon-ebs.web: Found Image ID: ami-0123456789abcdef0")),
            ("1796700000,,ui,error,==> amazon-ebs.web: progress\\r done", ui(UiLevel::Error, Some("web"), "==> amazon-ebs.web: progress\r done")),
            ("1796700001,amazon-ebs.web,artifact,0,id,eu-west-1:ami-0aaaaaaaaaaaaaaaa%!(PACKER_COMMA)us-east-1:ami-0bbbbbbbbbbbbbbbb", id("web", "eu-west-1:ami-0aaaaaaaaaaaaaaaa,us-east-1:ami-0bbbbbbbbbbbbbbbb")),
            // A named build block: `<build>.<type>.<source>`.
            ("1796700001,gears.amazon-ebs.web,error,Error launching source instance: UnauthorizedOperation", Event::BuildError { builder: "web".into(), message: "Error launching source instance: UnauthorizedOperation".into() }),
            ("1796700001,,error-count,1", Event::ErrorCount(1)),
            ("1796700002,,ui,say,Build 'amazon-ebs.web' finished after 9 seconds 853 milliseconds.", ui(UiLevel::Say, None, "Build 'amazon-ebs.web' finished after 9 seconds 853 milliseconds.")),
            ("1796700002,,version,1.16.0", Event::Other { target: String::new(), kind: "version".into(), data: vec!["1.16.0".into()] }),
        ];
        for (line, want) in table {
            assert_eq!(parse_line(line).as_ref(), Some(want), "{line}");
        }
    }

    #[test]
    fn null_artifacts_have_no_amis() {
        assert!(parse_artifact_id("Null").is_empty());
    }
}
