//! What the CI servers that render their own markers get from gears: on GitHub Actions
//! (`GITHUB_ACTIONS=true`), an error in a file as an annotation on its line
//! (`::error file=…,line=…,col=…::…`), each stage's long output in a collapsible group, and a
//! Markdown summary of a pipeline run appended to `$GITHUB_STEP_SUMMARY` (the stage writes the
//! Markdown); on GitLab CI (`GITLAB_CI=true`), the stages' output in collapsible sections.
//! Elsewhere nothing changes.

use crate::context::RunContext;
use crate::error::{Error, InputError};

/// Running as a GitHub Actions step.
pub fn github(ctx: &RunContext) -> bool {
    ctx.var("GITHUB_ACTIONS") == Some("true")
}

/// Running as a GitLab CI job.
pub fn gitlab(ctx: &RunContext) -> bool {
    ctx.var("GITLAB_CI") == Some("true")
}

/// A collapsible part of the job log around a stage's long output (packer's lines, a deploy's
/// batches): GitHub's `::group::`/`::endgroup::`, GitLab's `section_start`/`section_end`
/// markers; nothing elsewhere. It closes when dropped, so the error that ends a stage is printed
/// after it, in sight.
pub struct Section {
    end: Option<End>,
}

enum End {
    GitHub,
    GitLab(String),
}

/// GitLab's section names: letters, digits, `_`, `.` and `-`.
fn section_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Section {
    /// Opens a section named `name` with the heading `title`.
    pub fn open(ctx: &RunContext, name: &str, title: &str) -> Section {
        let end = if github(ctx) {
            eprintln!("::group::{}", data(title));
            Some(End::GitHub)
        } else if gitlab(ctx) {
            let name = section_name(name);
            eprintln!(
                "\x1b[0Ksection_start:{}:{name}[collapsed=true]\r\x1b[0K{}",
                unix_now(),
                title.replace(['\r', '\n'], " ")
            );
            Some(End::GitLab(name))
        } else {
            None
        };
        Section { end }
    }
}

impl Drop for Section {
    fn drop(&mut self) {
        match self.end.take() {
            Some(End::GitHub) => eprintln!("::endgroup::"),
            Some(End::GitLab(name)) => {
                eprintln!("\x1b[0Ksection_end:{}:{name}\r\x1b[0K", unix_now())
            }
            None => {}
        }
    }
}

/// A workflow command's message: `%`, CR and LF escaped as the runner unescapes them.
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: also `:` and `,`, which end a property.
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

fn input(e: &InputError) -> String {
    if e.line == 0 {
        return format!("::error file={}::{}", property(&e.path), data(&e.message));
    }
    format!(
        "::error file={},line={},col={}::{}",
        property(&e.path),
        e.line,
        e.column.max(1),
        data(&e.message)
    )
}

/// The annotations of `e`: one per error in a file, at its line and column; else one for the
/// run, with the error's first line.
pub fn annotations(e: &Error) -> Vec<String> {
    match e {
        Error::Input(i) => vec![input(i)],
        Error::Inputs(all) => all.iter().map(input).collect(),
        other => {
            let text = other.render();
            let first = text.lines().next().unwrap_or_default();
            vec![format!(
                "::error::{}",
                data(first.trim_start_matches("error: "))
            )]
        }
    }
}

/// Appends `markdown` to the step summary, when GitHub names one. A summary that cannot be
/// written is said, never a failure of the stage.
pub fn append_summary(ctx: &RunContext, markdown: &str) {
    let Some(path) = ctx.var("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return;
    };
    use std::io::Write;
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(markdown.as_bytes()));
    if let Err(e) = written {
        eprintln!("warning: the step summary {path} could not be written: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_error_is_an_annotation_on_its_line_with_values_escaped() {
        let e = Error::from(InputError::at(
            "svc, a:b/gears.yaml",
            "a: 1\nbad: %x\n",
            2,
            6,
            "`%x`: bad\nvalue",
        ));
        assert_eq!(
            annotations(&e),
            ["::error file=svc%2C a%3Ab/gears.yaml,line=2,col=6::`%25x`: bad%0Avalue"]
        );
        let e = Error::usage("no host", None);
        assert_eq!(annotations(&e), ["::error::no host"]);
    }

    #[test]
    fn only_github_writes_a_summary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        let p = path.to_str().unwrap();
        append_summary(&RunContext::from_vars([("GITHUB_STEP_SUMMARY", p)]), "a\n");
        append_summary(&RunContext::from_vars([("GITHUB_STEP_SUMMARY", p)]), "b\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\n");
        assert!(github(&RunContext::from_vars([("GITHUB_ACTIONS", "true")])));
        assert!(!github(&RunContext::from_vars([("CI", "true")])));
    }
}
